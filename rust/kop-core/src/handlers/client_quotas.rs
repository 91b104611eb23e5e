//! DescribeClientQuotas and AlterClientQuotas (KIP-546), as Kafka's controller answers them:
//! the same entity and value checks and errors (`ClientQuotaControlManager`, and for the
//! describe filter `ClientQuotasImage.describe`). The quotas are kept and enforced by
//! `quotas/`; they are stored with the data, so every kop instance sharing it applies them.
//! Kafka asks for ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster.

use std::collections::HashSet;

use kafka_protocol::messages::*;

use super::{authz, sb, RequestContext};
use crate::auth::acl::Operation;
use crate::error::KafkaError;
use crate::quotas::entity::{Entity, Match};
use crate::quotas::Alteration;

/// Kafka's quota entity types.
const ENTITY_TYPES: [&str; 3] = ["user", "client-id", "ip"];

/// `ComponentData.match_type`: the named entity, the default entity, any entity of the type.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

fn error(err: KafkaError, message: String) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default()
        .with_error_code(err.code())
        .with_error_message(Some(sb(message)))
        .with_entries(None)
}

/// Kafka's validation of the filter: INVALID_REQUEST, or UNSUPPORTED_VERSION for an entity
/// type it does not know.
fn check_filter(req: &DescribeClientQuotasRequest) -> Result<(), (KafkaError, String)> {
    let invalid = |m: String| Err((KafkaError::InvalidRequest, m));
    let mut types = HashSet::new();
    for c in &req.components {
        let entity_type = c.entity_type.as_str();
        if entity_type.is_empty() {
            return invalid("Invalid empty entity type.".into());
        }
        if !types.insert(entity_type) {
            return invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            ));
        }
        if !ENTITY_TYPES.contains(&entity_type) {
            return Err((
                KafkaError::UnsupportedVersion,
                format!("Unsupported entity type {entity_type}"),
            ));
        }
        match (c.match_type, &c._match) {
            (MATCH_EXACT, None) => {
                return invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                )
            }
            (MATCH_DEFAULT, Some(_)) => {
                return invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                )
            }
            (MATCH_SPECIFIED, Some(_)) => {
                return invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                )
            }
            (MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED, _) => {}
            (other, _) => return invalid(format!("Unknown match type {other}")),
        }
    }
    if types.contains("ip") && (types.contains("user") || types.contains("client-id")) {
        return invalid(
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."
                .into(),
        );
    }
    Ok(())
}

pub async fn describe(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    // Kafka: DESCRIBE_CONFIGS on the cluster.
    if !authz::cluster_allowed(ctx, "DescribeClientQuotas", Operation::DescribeConfigs).await {
        let err = KafkaError::ClusterAuthorizationFailed;
        return error(err, err.to_string());
    }
    if let Err((err, message)) = check_filter(&req) {
        return error(err, message);
    }
    let filter: Vec<(&str, Match<'_>)> = req
        .components
        .iter()
        .map(|c| {
            let m = match (c.match_type, &c._match) {
                (MATCH_EXACT, Some(name)) => Match::Exact(name.as_str()),
                (MATCH_DEFAULT, _) => Match::Default,
                _ => Match::Any,
            };
            (c.entity_type.as_str(), m)
        })
        .collect();
    let configs = ctx.broker.quotas.configs();
    let entries = configs
        .describe(&filter, req.strict)
        .into_iter()
        .map(|(entity, values)| {
            use kafka_protocol::messages::describe_client_quotas_response::{
                EntityData, EntryData, ValueData,
            };
            EntryData::default()
                .with_entity(
                    entity
                        .components()
                        .into_iter()
                        .map(|(t, name)| {
                            EntityData::default()
                                .with_entity_type(sb(t))
                                .with_entity_name(name.map(sb))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(sb(k.as_str())).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// An entity as Kafka's messages show it (`ClientQuotaEntity(entries={user=alice})`).
fn entity_text(entity: &Entity) -> String {
    let parts: Vec<String> = entity
        .components()
        .into_iter()
        .map(|(t, n)| format!("{t}={}", n.unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", parts.join(", "))
}

/// One entry of AlterClientQuotas checked: what to change, or Kafka's error.
fn check_entry(
    entry: &alter_client_quotas_request::EntryData,
) -> Result<Alteration, (KafkaError, String)> {
    let invalid = |m: String| (KafkaError::InvalidRequest, m);
    let entity = Entity::parse(
        entry
            .entity
            .iter()
            .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
    )
    .map_err(invalid)?;
    let mut ops: Vec<(String, Option<f64>)> = Vec::new();
    for op in &entry.ops {
        let key = op.key.to_string();
        if ops.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity {}",
                entity_text(&entity)
            )));
        }
        if op.remove {
            ops.push((key, None));
        } else {
            entity.check_value(&key, op.value).map_err(invalid)?;
            ops.push((key, Some(op.value)));
        }
    }
    Ok((entity, ops))
}

pub async fn alter(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    let allowed = authz::cluster_allowed(ctx, "AlterClientQuotas", Operation::AlterConfigs).await;
    let mut results: Vec<Result<(), (KafkaError, String)>> = Vec::new();
    let mut alterations: Vec<Alteration> = Vec::new();
    let mut seen: HashSet<Entity> = HashSet::new();
    for entry in &req.entries {
        let result = if !allowed {
            let err = KafkaError::ClusterAuthorizationFailed;
            Err((err, err.to_string()))
        } else {
            check_entry(entry).and_then(|(entity, ops)| {
                if !seen.insert(entity.clone()) {
                    return Err((
                        KafkaError::InvalidRequest,
                        format!("Ignoring duplicate entity {}", entity_text(&entity)),
                    ));
                }
                alterations.push((entity, ops));
                Ok(())
            })
        };
        results.push(result);
    }
    if !req.validate_only && !alterations.is_empty() {
        if let Err(e) = ctx.broker.quotas.alter(&alterations) {
            tracing::warn!(error = %e, "storing client quotas failed");
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err((
                    KafkaError::UnknownServerError,
                    format!("cannot store the quotas: {e}"),
                ));
            }
        } else {
            tracing::info!(principal = %ctx.principal, entities = alterations.len(), "client quotas altered");
        }
    }
    let entries = req
        .entries
        .iter()
        .zip(results)
        .map(|(entry, result)| {
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err((err, message)) => (err.code(), Some(sb(message))),
            };
            EntryData::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|e| {
                            EntityData::default()
                                .with_entity_type(e.entity_type.clone())
                                .with_entity_name(e.entity_name.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;

    fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(sb(entity_type))
            .with_match_type(match_type)
            .with_match(name.map(sb))
    }

    fn code(components: Vec<ComponentData>) -> i16 {
        let req = DescribeClientQuotasRequest::default().with_components(components);
        match check_filter(&req) {
            Ok(()) => 0,
            Err((e, _)) => e.code(),
        }
    }

    #[test]
    fn filters_are_checked_as_kafka_does() {
        assert_eq!(code(vec![]), 0);
        assert_eq!(code(vec![component("user", MATCH_EXACT, Some("alice"))]), 0);
        assert_eq!(
            code(vec![
                component("user", MATCH_DEFAULT, None),
                component("client-id", MATCH_SPECIFIED, None)
            ]),
            0
        );
        assert_eq!(code(vec![component("user", MATCH_EXACT, None)]), 42);
        assert_eq!(code(vec![component("user", MATCH_DEFAULT, Some("a"))]), 42);
        assert_eq!(
            code(vec![component("user", MATCH_SPECIFIED, Some("a"))]),
            42
        );
        assert_eq!(code(vec![component("user", 7, None)]), 42);
        assert_eq!(code(vec![component("", MATCH_SPECIFIED, None)]), 42);
        assert_eq!(
            code(vec![
                component("user", MATCH_SPECIFIED, None),
                component("user", MATCH_DEFAULT, None)
            ]),
            42
        );
        assert_eq!(
            code(vec![
                component("ip", MATCH_SPECIFIED, None),
                component("user", MATCH_SPECIFIED, None)
            ]),
            42
        );
        assert_eq!(code(vec![component("group", MATCH_SPECIFIED, None)]), 35);
    }
}
