//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs (replace-all) for
//! topics, the broker (`broker_configs.rs`) and groups (`group_configs.rs`).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{authz, broker_configs, group_configs, sb, RequestContext};
use crate::broker::topic_config::{self, ConfigType, TOPIC_CONFIGS};
use crate::config::ServerConfig;
use crate::error::KafkaError;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;

/// Kafka's `ConfigSource` values.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One described config with its synonyms (most specific first, as Kafka orders them).
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    /// Kafka's `ConfigType` code.
    pub kind: i8,
    pub doc: &'static str,
    pub read_only: bool,
    pub synonyms: Vec<(String, String, i8)>,
}

/// Every topic config with its effective value and where it comes from.
pub fn topic_entries(
    overrides: &BTreeMap<String, String>,
    broker: &crate::broker::Broker,
) -> Vec<ConfigEntry> {
    let defaults = broker.topic_defaults();
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let default = def.default_value(&defaults);
            // kop's defaults are Kafka's: a broker-derived default only counts as a static
            // broker setting when the operator changed it (as Kafka reports it), or as a
            // dynamic one when set so.
            let dynamic = def
                .broker_synonym()
                .and_then(|n| broker.dynamic_configs.dynamic_value(n));
            let default_source = if let Some((_, source)) = dynamic {
                source
            } else if def.broker_synonym().is_some()
                && default != def.default_value(&ServerConfig::default())
            {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let mut synonyms = Vec::new();
            let (value, source) = match overrides.get(def.name) {
                Some(v) => {
                    synonyms.push((def.name.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC));
                    (v.clone(), SOURCE_DYNAMIC_TOPIC)
                }
                None => (default.clone(), default_source),
            };
            if let Some(broker_name) = def.broker_synonym() {
                synonyms.push((broker_name.to_string(), default, default_source));
            }
            ConfigEntry {
                name: def.name.to_string(),
                value,
                source,
                kind: def.kind as i8,
                doc: def.doc,
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

fn describe_one(
    ctx: &RequestContext,
    res: &describe_configs_request::DescribeConfigsResource,
) -> Result<Vec<ConfigEntry>, (KafkaError, String)> {
    match res.resource_type {
        RESOURCE_TOPIC => {
            let topic = ctx.broker.topic(&res.resource_name).ok_or((
                KafkaError::UnknownTopicOrPartition,
                format!("topic {} does not exist", res.resource_name.as_str()),
            ))?;
            Ok(topic_entries(&topic.config_overrides(), &ctx.broker))
        }
        RESOURCE_BROKER => {
            let name = res.resource_name.as_str();
            broker_configs::check_name(ctx, name)?;
            Ok(if name.is_empty() {
                broker_configs::default_entries(ctx)
            } else {
                broker_configs::node_entries(ctx)
            })
        }
        RESOURCE_GROUP => Ok(group_configs::describe(ctx, &res.resource_name)),
        other => Err((
            KafkaError::InvalidRequest,
            format!("resource type {other} is not supported"),
        )),
    }
}

/// `op` on each config resource: topics → the topic, groups → the group, the broker → the
/// cluster.
async fn authorize_resources<'a>(
    ctx: &RequestContext,
    api: &str,
    op: authz::Operation,
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> Vec<Result<(), (KafkaError, String)>> {
    let resources: Vec<(i8, &str)> = resources.collect();
    let actions: Vec<_> = resources
        .iter()
        .map(|&(rt, name)| match rt {
            RESOURCE_TOPIC => (op, authz::ResourceType::Topic, name),
            RESOURCE_GROUP => (op, authz::ResourceType::Group, name),
            _ => (op, authz::ResourceType::Cluster, authz::CLUSTER_NAME),
        })
        .collect();
    let decisions = authz::authorize(ctx, api, &actions).await;
    resources
        .iter()
        .zip(decisions)
        .map(|(&(rt, _), ok)| {
            if ok {
                Ok(())
            } else {
                let e = match rt {
                    RESOURCE_TOPIC => KafkaError::TopicAuthorizationFailed,
                    RESOURCE_GROUP => KafkaError::GroupAuthorizationFailed,
                    _ => KafkaError::ClusterAuthorizationFailed,
                };
                Err((e, e.to_string()))
            }
        })
        .collect()
}

pub async fn describe_configs(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let allowed = authorize_resources(
        ctx,
        "DescribeConfigs",
        authz::Operation::DescribeConfigs,
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    )
    .await;
    let results = req
        .resources
        .iter()
        .zip(allowed)
        .map(|(res, allowed)| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match allowed.and_then(|()| describe_one(ctx, res)) {
                Ok(entries) => {
                    // Null or empty: every config (as Kafka's ConfigHelper does).
                    let keys = res.configuration_keys.as_ref().filter(|k| !k.is_empty());
                    let configs = entries
                        .into_iter()
                        .filter(|e| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == e.name)))
                        .map(|e| {
                            let mut r = DescribeConfigsResourceResult::default()
                                .with_name(sb(&e.name))
                                .with_value(Some(sb(&e.value)))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source);
                            if req.include_synonyms {
                                r.synonyms = e
                                    .synonyms
                                    .into_iter()
                                    .map(|(n, v, s)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(sb(n))
                                            .with_value(Some(sb(v)))
                                            .with_source(s)
                                    })
                                    .collect();
                            }
                            if version >= 3 {
                                r.config_type = e.kind;
                                if req.include_documentation {
                                    r.documentation = Some(sb(e.doc));
                                }
                            }
                            r
                        })
                        .collect();
                    result.with_configs(configs)
                }
                Err((e, msg)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// Edits a topic's config overrides with `edit` and stores them once they are valid.
fn alter_topic(
    ctx: &RequestContext,
    name: &str,
    validate_only: bool,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), (KafkaError, String)>,
) -> Result<(), (KafkaError, String)> {
    let topic = ctx.broker.topic(name).ok_or((
        KafkaError::UnknownTopicOrPartition,
        format!("topic {name} does not exist"),
    ))?;
    let mut configs = topic.config_overrides();
    edit(&mut configs)?;
    topic_config::validate_overrides(&configs).map_err(|m| (KafkaError::InvalidConfig, m))?;
    if !validate_only {
        ctx.broker
            .set_topic_configs(&topic, configs)
            .map_err(|e| (e, e.to_string()))?;
    }
    Ok(())
}

fn known_topic_config(
    name: &str,
) -> Result<&'static topic_config::TopicConfigDef, (KafkaError, String)> {
    topic_config::lookup(name).ok_or((
        KafkaError::InvalidConfig,
        format!("unknown topic config {name}"),
    ))
}

/// IncrementalAlterConfigs' SET / DELETE / APPEND / SUBTRACT on a topic's overrides.
fn apply_incremental(
    ctx: &RequestContext,
    configs: &mut BTreeMap<String, String>,
    ops: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<(), (KafkaError, String)> {
    for c in ops {
        let name = c.name.to_string();
        let def = known_topic_config(&name)?;
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        let current = configs
            .get(&name)
            .cloned()
            .unwrap_or_else(|| def.default_value(&ctx.broker.config));
        let list = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        match c.config_operation {
            OP_SET => {
                configs.insert(name, value);
            }
            OP_DELETE => {
                configs.remove(&name);
            }
            OP_APPEND | OP_SUBTRACT if def.kind == ConfigType::List => {
                let mut items = list(&current);
                for v in list(&value) {
                    if c.config_operation == OP_APPEND && !items.contains(&v) {
                        items.push(v);
                    } else if c.config_operation == OP_SUBTRACT {
                        items.retain(|x| *x != v);
                    }
                }
                configs.insert(name, items.join(","));
            }
            op => {
                return Err((
                    KafkaError::InvalidConfig,
                    format!("operation {op} is not valid for {name}"),
                ))
            }
        }
    }
    Ok(())
}

/// Legacy AlterConfigs: the given configs become the topic's overrides; every other override
/// is removed, and so is one given with a null value (Kafka's replace-all).
fn replace_all(
    configs: &mut BTreeMap<String, String>,
    given: &[alter_configs_request::AlterableConfig],
) -> Result<(), (KafkaError, String)> {
    configs.clear();
    for c in given {
        known_topic_config(&c.name)?;
        if let Some(value) = &c.value {
            configs.insert(c.name.to_string(), value.to_string());
        }
    }
    Ok(())
}

fn unsupported_resource(resource_type: i8) -> Result<(), (KafkaError, String)> {
    Err((
        KafkaError::InvalidRequest,
        format!("resource type {resource_type} is not supported"),
    ))
}

/// A resource's (error code, error message) on the wire.
fn error_fields(result: Result<(), (KafkaError, String)>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((e, msg)) => (e.code(), Some(sb(msg))),
    }
}

/// Kafka's checks before authorization (`ConfigAdminManager.preprocess`): each resource once
/// per request, each config key once per resource, a value for every operation but DELETE.
fn preprocessed(
    req: &IncrementalAlterConfigsRequest,
    res: &incremental_alter_configs_request::AlterConfigsResource,
) -> Result<(), (KafkaError, String)> {
    let invalid = |msg: String| Err((KafkaError::InvalidRequest, msg));
    let same = |r: &&incremental_alter_configs_request::AlterConfigsResource| {
        r.resource_type == res.resource_type && r.resource_name == res.resource_name
    };
    if req.resources.iter().filter(same).count() > 1 {
        return invalid("Each resource must appear at most once.".into());
    }
    let mut keys = std::collections::HashSet::new();
    if !res.configs.iter().all(|c| keys.insert(c.name.as_str())) {
        return invalid("Error due to duplicate config keys".into());
    }
    let nulls: Vec<&str> = res
        .configs
        .iter()
        .filter(|c| c.config_operation != OP_DELETE && c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return invalid(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        ));
    }
    Ok(())
}

pub async fn incremental_alter_configs(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let allowed = authorize_resources(
        ctx,
        "IncrementalAlterConfigs",
        authz::Operation::AlterConfigs,
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    )
    .await;
    let responses = req
        .resources
        .iter()
        .zip(allowed)
        .map(|(res, allowed)| {
            let result =
                preprocessed(&req, res)
                    .and(allowed)
                    .and_then(|()| match res.resource_type {
                        RESOURCE_TOPIC => {
                            alter_topic(ctx, &res.resource_name, req.validate_only, |c| {
                                apply_incremental(ctx, c, &res.configs)
                            })
                        }
                        RESOURCE_BROKER => broker_configs::alter_incremental(
                            ctx,
                            &res.resource_name,
                            req.validate_only,
                            &res.configs,
                        ),
                        RESOURCE_GROUP => group_configs::alter_incremental(
                            ctx,
                            &res.resource_name,
                            req.validate_only,
                            &res.configs,
                        ),
                        other => unsupported_resource(other),
                    });
            let (code, message) = error_fields(result);
            AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub async fn alter_configs(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let allowed = authorize_resources(
        ctx,
        "AlterConfigs",
        authz::Operation::AlterConfigs,
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    )
    .await;
    let responses = req
        .resources
        .iter()
        .zip(allowed)
        .map(|(res, allowed)| {
            let result = match res.resource_type {
                _ if allowed.is_err() => allowed,
                RESOURCE_TOPIC => alter_topic(ctx, &res.resource_name, req.validate_only, |c| {
                    replace_all(c, &res.configs)
                }),
                RESOURCE_BROKER => broker_configs::alter_replace(
                    ctx,
                    &res.resource_name,
                    req.validate_only,
                    &res.configs,
                ),
                RESOURCE_GROUP => group_configs::alter_replace(
                    ctx,
                    &res.resource_name,
                    req.validate_only,
                    &res.configs,
                ),
                other => unsupported_resource(other),
            };
            let (code, message) = error_fields(result);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
#[path = "configs_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "config_resources_tests.rs"]
mod resource_tests;
