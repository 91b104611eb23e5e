//! DescribeClientQuotas. kop enforces no client quotas, so there are none to describe: the
//! answer is Kafka's for a cluster without quotas, no entries. The filter is still checked as
//! Kafka 4.1 checks it (`ClientQuotasImage.describe`), with the same errors.
//!
//! AlterClientQuotas is not served (nor advertised): a quota kop would not enforce must not be
//! accepted. `kafka-configs --alter --add-config producer_byte_rate=...` fails in the client
//! with "The broker does not support ALTER_CLIENT_QUOTAS".

use std::collections::HashSet;

use kafka_protocol::messages::*;

use super::{authz, sb, RequestContext};
use crate::auth::acl::Operation;
use crate::error::KafkaError;

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
    match check_filter(&req) {
        Err((err, message)) => error(err, message),
        Ok(()) => DescribeClientQuotasResponse::default().with_entries(Some(Vec::new())),
    }
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
