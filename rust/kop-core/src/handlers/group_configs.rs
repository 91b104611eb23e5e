//! The GROUP config resource (type 32): DescribeConfigs, IncrementalAlterConfigs and legacy
//! AlterConfigs of a group's configs (`group::configs`, which also validates them). A group
//! need not exist to be described or configured, as on Kafka.

use kafka_protocol::messages::{alter_configs_request, incremental_alter_configs_request};

use super::configs::{ConfigEntry, OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT};
use super::RequestContext;
use crate::error::KafkaError;
use crate::group::configs::GroupConfigs;

pub fn describe(ctx: &RequestContext, group_id: &str) -> Vec<ConfigEntry> {
    ctx.broker
        .groups
        .group_configs
        .describe(group_id)
        .into_iter()
        .map(|d| ConfigEntry {
            name: d.name.to_string(),
            value: d.value,
            source: d.source,
            kind: d.kind as i8,
            doc: d.doc,
            read_only: false,
            synonyms: d.synonyms,
        })
        .collect()
}

fn unknown(name: &str) -> (KafkaError, String) {
    (
        KafkaError::InvalidConfig,
        format!("Unknown group config name: {name}"),
    )
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

pub fn alter_incremental(
    ctx: &RequestContext,
    group_id: &str,
    validate_only: bool,
    ops: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<(), (KafkaError, String)> {
    let configs = &ctx.broker.groups.group_configs;
    let result = configs.alter(group_id, validate_only, |c| {
        for op in ops {
            let name = op.name.to_string();
            let is_list = GroupConfigs::is_list(&name).ok_or_else(|| unknown(&name))?;
            let value = op.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            match op.config_operation {
                OP_SET => {
                    c.insert(name, value);
                }
                OP_DELETE => {
                    c.remove(&name);
                }
                OP_APPEND | OP_SUBTRACT if is_list => {
                    let current = c
                        .get(&name)
                        .cloned()
                        .or_else(|| GroupConfigs::default_of(&name).map(String::from))
                        .unwrap_or_default();
                    let mut items = list(&current);
                    for v in list(&value) {
                        if op.config_operation == OP_APPEND && !items.contains(&v) {
                            items.push(v);
                        } else if op.config_operation == OP_SUBTRACT {
                            items.retain(|x| *x != v);
                        }
                    }
                    c.insert(name, items.join(","));
                }
                other => {
                    return Err((
                        KafkaError::InvalidConfig,
                        format!("operation {other} is not valid for {name}"),
                    ))
                }
            }
        }
        Ok(())
    });
    if result.is_ok() && !validate_only {
        tracing::info!(principal = %ctx.principal, group = group_id, "group configs altered");
    }
    result
}

/// Legacy AlterConfigs (Kafka 4.4 takes it for groups too): the given configs become the
/// group's overrides.
pub fn alter_replace(
    ctx: &RequestContext,
    group_id: &str,
    validate_only: bool,
    given: &[alter_configs_request::AlterableConfig],
) -> Result<(), (KafkaError, String)> {
    ctx.broker
        .groups
        .group_configs
        .alter(group_id, validate_only, |c| {
            c.clear();
            for g in given {
                if let Some(v) = &g.value {
                    c.insert(g.name.to_string(), v.to_string());
                }
            }
            Ok(())
        })
}
