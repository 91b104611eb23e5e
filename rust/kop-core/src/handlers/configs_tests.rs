//! DescribeConfigs and IncrementalAlterConfigs without a socket, checked against Apache Kafka's
//! `ConfigHelper` and `ConfigAdminManager`.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};

use super::*;
use crate::handlers::test_context::TestContext;

pub(super) fn resource(rtype: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(rtype)
        .with_resource_name(sb(name))
        .with_configuration_keys(keys.map(|k| k.iter().map(|k| sb(*k)).collect()))
}

pub(super) async fn describe(
    ctx: &TestContext,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    describe_configs(ctx, &ctx.header(ApiKey::DescribeConfigs, version), req).await
}

/// (name, value, source) of one described resource.
pub(super) fn values(r: &DescribeConfigsResult) -> Vec<(String, String, i8)> {
    r.configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or_default().to_string(),
                c.config_source,
            )
        })
        .collect()
}

pub(super) fn code(e: KafkaError) -> i16 {
    e.code()
}

#[tokio::test]
async fn a_topic_shows_every_config_with_its_source() {
    let ctx = RequestContext::builder().build();
    ctx.broker
        .create_topic(
            "t",
            1,
            [("retention.ms".to_string(), "1000".to_string())].into(),
        )
        .unwrap();
    let req =
        DescribeConfigsRequest::default().with_resources(vec![resource(RESOURCE_TOPIC, "t", None)]);
    let resp = describe(&ctx, 4, req).await;
    let all = values(&resp.results[0]);
    assert_eq!(all.len(), TOPIC_CONFIGS.len());
    assert!(all.contains(&("retention.ms".into(), "1000".into(), SOURCE_DYNAMIC_TOPIC)));
    assert!(all.contains(&("cleanup.policy".into(), "delete".into(), SOURCE_DEFAULT)));
    // Only the asked keys; synonyms and documentation when asked (types from v3).
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![resource(RESOURCE_TOPIC, "t", Some(&["retention.ms"]))])
        .with_include_synonyms(true)
        .with_include_documentation(true);
    let resp = describe(&ctx, 4, req).await;
    let config = &resp.results[0].configs;
    assert_eq!(config.len(), 1);
    let synonyms: Vec<(String, i8)> = config[0]
        .synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        [
            ("retention.ms".into(), SOURCE_DYNAMIC_TOPIC),
            ("log.retention.ms".into(), SOURCE_DEFAULT)
        ]
    );
    assert_eq!(config[0].config_type, ConfigType::Long as i8);
    assert!(config[0]
        .documentation
        .as_ref()
        .is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn unknown_topics_and_other_brokers_are_errors() {
    let ctx = RequestContext::builder().build();
    let me = ctx.broker.config.node_id.to_string();
    let req = DescribeConfigsRequest::default().with_resources(vec![
        resource(RESOURCE_TOPIC, "ghost", None),
        resource(RESOURCE_BROKER, &me, Some(&["broker.id"])),
        resource(RESOURCE_BROKER, "", Some(&["broker.id"])),
        resource(RESOURCE_BROKER, "99", None),
        resource(7, "x", None),
    ]);
    let resp = describe(&ctx, 4, req).await;
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    let invalid = code(KafkaError::InvalidRequest);
    assert_eq!(
        codes,
        [
            code(KafkaError::UnknownTopicOrPartition),
            0,
            0,
            invalid,
            invalid
        ]
    );
    assert_eq!(
        values(&resp.results[1]),
        [("broker.id".into(), me, SOURCE_STATIC_BROKER)]
    );
}

#[tokio::test]
async fn describe_configs_needs_describe_configs() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    ctx.allow(
        "User:alice",
        authz::Operation::AlterConfigs,
        authz::ResourceType::Topic,
        "mine",
    );
    let req = DescribeConfigsRequest::default().with_resources(vec![
        resource(RESOURCE_TOPIC, "mine", Some(&["retention.ms"])),
        resource(RESOURCE_TOPIC, "theirs", None),
        resource(RESOURCE_BROKER, "", None),
    ]);
    let codes: Vec<i16> = describe(&ctx, 4, req)
        .await
        .results
        .iter()
        .map(|r| r.error_code)
        .collect();
    assert_eq!(
        codes,
        [
            0,
            code(KafkaError::TopicAuthorizationFailed),
            code(KafkaError::ClusterAuthorizationFailed)
        ]
    );
}

pub(super) fn change(name: &str, op: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(sb(name))
        .with_config_operation(op)
        .with_value(value.map(sb))
}

pub(super) fn alter_resource(
    rtype: i8,
    name: &str,
    configs: Vec<AlterableConfig>,
) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(rtype)
        .with_resource_name(sb(name))
        .with_configs(configs)
}

/// (resource name, error code) of each answer.
pub(super) async fn alter(
    ctx: &TestContext,
    resources: Vec<AlterConfigsResource>,
    validate_only: bool,
) -> Vec<(String, i16)> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    incremental_alter_configs(ctx, &ctx.header(ApiKey::IncrementalAlterConfigs, 1), req)
        .await
        .responses
        .iter()
        .map(|r| (r.resource_name.to_string(), r.error_code))
        .collect()
}

#[tokio::test]
async fn set_delete_append_and_subtract() {
    let ctx = RequestContext::builder().build();
    let t = ctx.topic("t", 1);
    let set = vec![
        change("retention.ms", OP_SET, Some("5000")),
        change("cleanup.policy", OP_APPEND, Some("compact")),
    ];
    assert_eq!(
        alter(&ctx, vec![alter_resource(RESOURCE_TOPIC, "t", set)], false).await,
        [("t".into(), 0)]
    );
    let overrides = t.config_overrides();
    assert_eq!(overrides["retention.ms"], "5000");
    assert_eq!(overrides["cleanup.policy"], "delete,compact");
    let undo = vec![
        change("retention.ms", OP_DELETE, None),
        change("cleanup.policy", OP_SUBTRACT, Some("delete")),
    ];
    assert_eq!(
        alter(&ctx, vec![alter_resource(RESOURCE_TOPIC, "t", undo)], false).await[0].1,
        0
    );
    let overrides = t.config_overrides();
    assert!(!overrides.contains_key("retention.ms"));
    assert_eq!(overrides["cleanup.policy"], "compact");
    // validate_only changes nothing.
    let set = vec![change("retention.ms", OP_SET, Some("7"))];
    assert_eq!(
        alter(&ctx, vec![alter_resource(RESOURCE_TOPIC, "t", set)], true).await[0].1,
        0
    );
    assert!(!t.config_overrides().contains_key("retention.ms"));
}

#[tokio::test]
async fn bad_changes_are_refused_and_change_nothing() {
    let ctx = RequestContext::builder().build();
    let t = ctx.topic("t", 1);
    let invalid_config = code(KafkaError::InvalidConfig);
    for (configs, want) in [
        (
            vec![change("no.such.config", OP_SET, Some("1"))],
            invalid_config,
        ),
        (
            vec![change("retention.ms", OP_SET, Some("soon"))],
            invalid_config,
        ),
        (
            vec![change("retention.ms", OP_APPEND, Some("1"))],
            invalid_config,
        ),
        (vec![change("retention.ms", 9, Some("1"))], invalid_config),
        // Kafka's preprocessing: INVALID_REQUEST before anything is looked at.
        (
            vec![
                change("retention.ms", OP_SET, Some("1")),
                change("retention.ms", OP_DELETE, None),
            ],
            code(KafkaError::InvalidRequest),
        ),
        (
            vec![change("retention.ms", OP_SET, None)],
            code(KafkaError::InvalidRequest),
        ),
        (
            vec![change("cleanup.policy", OP_APPEND, None)],
            code(KafkaError::InvalidRequest),
        ),
    ] {
        let label = format!(
            "{:?}",
            configs
                .iter()
                .map(|c| (c.name.as_str(), c.config_operation))
                .collect::<Vec<_>>()
        );
        let got = alter(
            &ctx,
            vec![alter_resource(RESOURCE_TOPIC, "t", configs)],
            false,
        )
        .await;
        assert_eq!(got[0].1, want, "{label}");
    }
    assert!(t.config_overrides().is_empty());
    let set = || vec![change("retention.ms", OP_SET, Some("1"))];
    assert_eq!(
        alter(
            &ctx,
            vec![alter_resource(RESOURCE_TOPIC, "ghost", set())],
            false
        )
        .await[0]
            .1,
        code(KafkaError::UnknownTopicOrPartition)
    );
    // The same resource twice: both answers are INVALID_REQUEST.
    let twice = alter(
        &ctx,
        vec![
            alter_resource(RESOURCE_TOPIC, "t", set()),
            alter_resource(RESOURCE_TOPIC, "t", set()),
        ],
        false,
    )
    .await;
    let invalid = ("t".to_string(), code(KafkaError::InvalidRequest));
    assert_eq!(twice, [invalid.clone(), invalid]);
    // Only the dynamic broker configs kop applies can change at run time.
    let broker = alter(
        &ctx,
        vec![alter_resource(
            RESOURCE_BROKER,
            "",
            vec![change("broker.id", OP_SET, Some("1"))],
        )],
        false,
    )
    .await;
    assert_eq!(broker[0].1, code(KafkaError::InvalidRequest));
    assert!(t.config_overrides().is_empty());
}

#[tokio::test]
async fn alter_configs_needs_alter_configs() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    ctx.allow(
        "User:alice",
        authz::Operation::AlterConfigs,
        authz::ResourceType::Topic,
        "mine",
    );
    let set = || vec![change("retention.ms", OP_SET, Some("1"))];
    let got = alter(
        &ctx,
        vec![
            alter_resource(RESOURCE_TOPIC, "mine", set()),
            alter_resource(RESOURCE_TOPIC, "theirs", set()),
            alter_resource(RESOURCE_BROKER, "", set()),
        ],
        false,
    )
    .await;
    let codes: Vec<i16> = got.iter().map(|r| r.1).collect();
    assert_eq!(
        codes,
        [
            0,
            code(KafkaError::TopicAuthorizationFailed),
            code(KafkaError::ClusterAuthorizationFailed)
        ]
    );
}
