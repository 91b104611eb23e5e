//! The GROUP resource and dynamic BROKER configs, checked against Apache Kafka 4.4's answers.

use kafka_protocol::messages::alter_configs_request;

use super::tests::{alter, alter_resource, change, code, describe, resource, values};
use super::*;
use crate::broker::dynamic_config::{SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT_BROKER};
use crate::group::configs::{SOURCE_DEFAULT as GROUP_DEFAULT, SOURCE_DYNAMIC_GROUP};

#[tokio::test]
async fn group_configs_are_described_altered_validated_and_applied() {
    let ctx = RequestContext::builder().build();
    let one = |name: &str, value: &str| {
        vec![alter_resource(
            RESOURCE_GROUP,
            "g",
            vec![change(name, OP_SET, Some(value))],
        )]
    };
    assert_eq!(
        alter(&ctx, one("consumer.heartbeat.interval.ms", "6000"), false).await[0].1,
        0
    );
    let bad = code(KafkaError::InvalidConfig);
    for (k, v) in [
        ("consumer.session.timeout.ms", "5000"),
        ("foo.bar", "1"),
        ("share.isolation.level", "x"),
    ] {
        assert_eq!(alter(&ctx, one(k, v), false).await[0].1, bad, "{k}={v}");
    }
    let settings = ctx.broker.groups.group_configs.effective("g");
    assert_eq!(settings.consumer_heartbeat_interval_ms, 6000);
    assert_eq!(settings.consumer_session_timeout_ms, 45_000);

    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![resource(RESOURCE_GROUP, "g", None)]);
    let resp = describe(&ctx, 4, req).await;
    let all = values(&resp.results[0]);
    assert_eq!(all.len(), 21);
    assert!(all.contains(&(
        "consumer.heartbeat.interval.ms".into(),
        "6000".into(),
        SOURCE_DYNAMIC_GROUP
    )));
    assert!(all.contains(&(
        "share.delivery.count.limit".into(),
        "5".into(),
        GROUP_DEFAULT
    )));
    let hb = resp.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "consumer.heartbeat.interval.ms")
        .unwrap();
    assert_eq!(
        hb.synonyms[1].name.as_str(),
        "group.consumer.heartbeat.interval.ms"
    );
    assert_eq!(hb.config_type, 3);

    // Legacy AlterConfigs replaces all of the group's overrides.
    let legacy = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(RESOURCE_GROUP)
            .with_resource_name(sb("g"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(sb("consumer.session.timeout.ms"))
                .with_value(Some(sb("50000")))]),
    ]);
    let resp = alter_configs(&ctx, &ctx.header(ApiKey::AlterConfigs, 2), legacy).await;
    assert_eq!(resp.responses[0].error_code, 0);
    let settings = ctx.broker.groups.group_configs.effective("g");
    assert_eq!(settings.consumer_heartbeat_interval_ms, 5000);
    assert_eq!(settings.consumer_session_timeout_ms, 50_000);
}

#[tokio::test]
async fn group_configs_need_the_group_acls() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.allow(
        "User:alice",
        authz::Operation::AlterConfigs,
        authz::ResourceType::Group,
        "mine",
    );
    let set = |g: &str| {
        alter_resource(
            RESOURCE_GROUP,
            g,
            vec![change("consumer.session.timeout.ms", OP_SET, Some("50000"))],
        )
    };
    let out = alter(&ctx, vec![set("mine"), set("theirs")], false).await;
    assert_eq!(out[0].1, 0);
    assert_eq!(out[1].1, code(KafkaError::GroupAuthorizationFailed));
    let req = DescribeConfigsRequest::default().with_resources(vec![
        resource(RESOURCE_GROUP, "mine", None),
        resource(RESOURCE_GROUP, "theirs", None),
    ]);
    let resp = describe(&ctx, 4, req).await;
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(
        resp.results[1].error_code,
        code(KafkaError::GroupAuthorizationFailed)
    );
}

#[tokio::test]
async fn dynamic_broker_configs_apply_to_topic_defaults() {
    let ctx = RequestContext::builder().build();
    let t = ctx.topic("t", 1);
    let me = ctx.broker.config.node_id.to_string();
    let set = |name: &str, k: &str, v: &str| {
        vec![alter_resource(
            RESOURCE_BROKER,
            name,
            vec![change(k, OP_SET, Some(v))],
        )]
    };
    assert_eq!(
        alter(&ctx, set("", "log.retention.ms", "1000"), false).await[0].1,
        0
    );
    assert_eq!(
        alter(&ctx, set(&me, "message.max.bytes", "2000"), false).await[0].1,
        0
    );
    let invalid = code(KafkaError::InvalidRequest);
    assert_eq!(
        alter(&ctx, set("", "broker.id", "7"), false).await[0].1,
        invalid
    );
    assert_eq!(
        alter(&ctx, set("", "log.retention.ms", "abc"), false).await[0].1,
        invalid
    );

    let topic = |keys: &[&str]| resource(RESOURCE_TOPIC, "t", Some(keys));
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![topic(&["retention.ms", "max.message.bytes"])]);
    let resp = describe(&ctx, 4, req).await;
    assert_eq!(
        values(&resp.results[0]),
        [
            (
                "max.message.bytes".into(),
                "2000".into(),
                SOURCE_DYNAMIC_BROKER
            ),
            (
                "retention.ms".into(),
                "1000".into(),
                SOURCE_DYNAMIC_DEFAULT_BROKER
            ),
        ]
    );
    assert_eq!(t.partitions()[0].effective_config().max_message_bytes, 2000);

    let req = DescribeConfigsRequest::default().with_resources(vec![
        resource(
            RESOURCE_BROKER,
            &me,
            Some(&["log.retention.ms", "broker.id"]),
        ),
        resource(RESOURCE_BROKER, "", None),
    ]);
    let resp = describe(&ctx, 4, req).await;
    let node = &resp.results[0].configs;
    assert_eq!(node[0].name.as_str(), "broker.id");
    assert!(node[0].read_only);
    assert_eq!(node[1].config_source, SOURCE_DYNAMIC_DEFAULT_BROKER);
    assert!(!node[1].read_only);
    assert_eq!(
        values(&resp.results[1]),
        [(
            "log.retention.ms".into(),
            "1000".into(),
            SOURCE_DYNAMIC_DEFAULT_BROKER
        )]
    );
    // A DELETE brings the static setting back.
    let delete = vec![alter_resource(
        RESOURCE_BROKER,
        &me,
        vec![change("message.max.bytes", OP_DELETE, None)],
    )];
    assert_eq!(alter(&ctx, delete, false).await[0].1, 0);
    assert_eq!(
        t.partitions()[0].effective_config().max_message_bytes,
        ctx.broker.config.message_max_bytes
    );
}
