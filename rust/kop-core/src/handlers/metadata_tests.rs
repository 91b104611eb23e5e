//! Metadata and DescribeCluster without a socket, checked against Apache Kafka's
//! `KafkaApis.handleTopicMetadataRequest` / `handleDescribeCluster`.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;

use super::*;
use crate::handlers::test_context::{TestContext, HOST, PORT};

fn named(names: &[&str]) -> Option<Vec<MetadataRequestTopic>> {
    Some(
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(sb(*n)))))
            .collect(),
    )
}

async fn metadata(ctx: &TestContext, version: i16, req: MetadataRequest) -> MetadataResponse {
    handle(ctx, &ctx.header(ApiKey::Metadata, version), req).await
}

/// (name, error code, partition count) of each topic answered.
fn summary(resp: &MetadataResponse) -> Vec<(String, i16, usize)> {
    resp.topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.error_code,
                t.partitions.len(),
            )
        })
        .collect()
}

#[tokio::test]
async fn all_topics_with_this_broker_as_leader_of_every_partition() {
    let ctx = RequestContext::builder().build();
    let b = ctx.topic("b", 2);
    ctx.topic("a", 1);
    let resp = metadata(&ctx, 12, MetadataRequest::default().with_topics(None)).await;
    assert_eq!(summary(&resp), [("a".into(), 0, 1), ("b".into(), 0, 2)]);
    let node = ctx.broker.config.node_id;
    let broker = &resp.brokers[0];
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(
        (broker.node_id.0, broker.host.as_str(), broker.port),
        (node, HOST, PORT)
    );
    assert_eq!(resp.controller_id.0, node);
    assert_eq!(
        resp.cluster_id.as_deref(),
        Some(ctx.broker.cluster_id.as_str())
    );
    let topic = &resp.topics[1];
    assert_eq!(topic.topic_id, b.id);
    assert!(!topic.is_internal);
    for (i, p) in topic.partitions.iter().enumerate() {
        assert_eq!(p.partition_index, i as i32);
        assert_eq!(p.leader_id.0, node);
        assert_eq!(p.replica_nodes, [BrokerId(node)]);
        assert_eq!(p.isr_nodes, [BrokerId(node)]);
    }
}

#[tokio::test]
async fn an_empty_topic_list_means_all_topics_only_in_v0() {
    let ctx = RequestContext::builder().build();
    ctx.topic("a", 1);
    let empty = || MetadataRequest::default().with_topics(Some(Vec::new()));
    assert_eq!(metadata(&ctx, 0, empty()).await.topics.len(), 1);
    assert_eq!(metadata(&ctx, 1, empty()).await.topics.len(), 0);
    assert_eq!(metadata(&ctx, 13, empty()).await.topics.len(), 0);
}

#[tokio::test]
async fn unknown_topics_are_created_only_when_asked_and_allowed() {
    let unknown = KafkaError::UnknownTopicOrPartition.code();
    let ctx = RequestContext::builder()
        .config(r#""num_partitions": 2"#)
        .build();
    let no_create = MetadataRequest::default()
        .with_topics(named(&["x"]))
        .with_allow_auto_topic_creation(false);
    assert_eq!(
        summary(&metadata(&ctx, 12, no_create).await),
        [("x".into(), unknown, 0)]
    );
    assert!(ctx.broker.topic("x").is_none());
    let create = MetadataRequest::default()
        .with_topics(named(&["x"]))
        .with_allow_auto_topic_creation(true);
    assert_eq!(
        summary(&metadata(&ctx, 12, create).await),
        [("x".into(), 0, 2)]
    );
    // Before v4 there is no flag: auto-creation is always asked for.
    let old = MetadataRequest::default().with_topics(named(&["y"]));
    assert_eq!(summary(&metadata(&ctx, 3, old).await), [("y".into(), 0, 2)]);

    let off = RequestContext::builder()
        .config(r#""auto_create_topics": false"#)
        .build();
    let create = MetadataRequest::default()
        .with_topics(named(&["x"]))
        .with_allow_auto_topic_creation(true);
    assert_eq!(
        summary(&metadata(&off, 12, create).await),
        [("x".into(), unknown, 0)]
    );
    assert!(off.broker.topics().is_empty());
}

#[tokio::test]
async fn illegal_names_are_invalid_topics_and_never_created() {
    let ctx = RequestContext::builder().build();
    let long = "x".repeat(250);
    let req = MetadataRequest::default()
        .with_topics(named(&["a b", "..", &long]))
        .with_allow_auto_topic_creation(true);
    let resp = metadata(&ctx, 12, req).await;
    for t in &resp.topics {
        assert_eq!(t.error_code, KafkaError::InvalidTopic.code());
    }
    assert_eq!(resp.topics.len(), 3);
    assert!(ctx.broker.topics().is_empty());
}

#[tokio::test]
async fn topics_by_id_from_v12() {
    let ctx = RequestContext::builder().build();
    let t = ctx.topic("t", 3);
    let unknown = uuid::Uuid::new_v4();
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_topic_id(t.id)
            .with_name(None),
        MetadataRequestTopic::default()
            .with_topic_id(unknown)
            .with_name(None),
    ]));
    let resp = metadata(&ctx, 12, req).await;
    assert_eq!(
        summary(&resp),
        [
            ("t".into(), 0, 3),
            (String::new(), KafkaError::UnknownTopicId.code(), 0)
        ]
    );
    assert_eq!(resp.topics[1].topic_id, unknown);
    assert_eq!(resp.topics[1].name, None);
}

#[tokio::test]
async fn internal_topics_are_the_coordinator_shards_and_never_auto_created() {
    let ctx = RequestContext::builder().build();
    let all = || metadata(&ctx, 12, MetadataRequest::default().with_topics(None));
    assert!(
        all().await.topics.is_empty(),
        "listed once used, as on Kafka"
    );
    let req = MetadataRequest::default()
        .with_topics(named(&["__consumer_offsets"]))
        .with_allow_auto_topic_creation(true);
    let resp = metadata(&ctx, 12, req).await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0);
    assert!(t.is_internal);
    assert_eq!(t.partitions.len(), 50);
    assert!(t
        .partitions
        .iter()
        .all(|p| p.leader_id.0 == ctx.broker.cluster.node_id()));
    assert!(ctx.broker.topic("__consumer_offsets").is_none());
    let listed = all().await;
    assert_eq!(listed.topics.len(), 1);
    assert_eq!(listed.topics[0].topic_id, t.topic_id);
    let made = ctx
        .broker
        .create_topic("__transaction_state", 1, Default::default());
    assert_eq!(made.err().unwrap().0, KafkaError::TopicAlreadyExists);
}

#[tokio::test]
async fn acls_hide_topics_from_listings_and_refuse_named_ones() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    let describe = |name: &str| {
        ctx.allow(
            "User:alice",
            authz::Operation::Describe,
            authz::ResourceType::Topic,
            name,
        )
    };
    describe("mine");
    describe("new");
    let all = metadata(&ctx, 12, MetadataRequest::default().with_topics(None)).await;
    assert_eq!(summary(&all), [("mine".into(), 0, 1)]);
    let denied = KafkaError::TopicAuthorizationFailed.code();
    let req = MetadataRequest::default()
        .with_topics(named(&["mine", "theirs", "new"]))
        .with_allow_auto_topic_creation(true);
    assert_eq!(
        summary(&metadata(&ctx, 12, req.clone()).await),
        [
            ("mine".into(), 0, 1),
            ("theirs".into(), denied, 0),
            ("new".into(), denied, 0)
        ],
        "auto-creation needs CREATE"
    );
    assert!(ctx.broker.topic("new").is_none());
    ctx.allow(
        "User:alice",
        authz::Operation::Create,
        authz::ResourceType::Topic,
        "new",
    );
    assert_eq!(
        summary(&metadata(&ctx, 12, req).await)[2],
        ("new".into(), 0, 4)
    );
}

#[tokio::test]
async fn authorized_operations_are_reported_when_asked() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("t", 1);
    for op in [authz::Operation::Describe, authz::Operation::Read] {
        ctx.allow("User:alice", op, authz::ResourceType::Topic, "t");
    }
    let req = MetadataRequest::default()
        .with_topics(named(&["t"]))
        .with_include_topic_authorized_operations(true)
        .with_include_cluster_authorized_operations(true);
    let resp = metadata(&ctx, 10, req.clone()).await;
    let bits = |ops: &[authz::Operation]| ops.iter().fold(0, |b, op| b | 1 << op.code());
    assert_eq!(
        resp.topics[0].topic_authorized_operations,
        bits(&[authz::Operation::Read, authz::Operation::Describe])
    );
    assert_eq!(resp.cluster_authorized_operations, 0);
    // v11 dropped the cluster field (DescribeCluster has it): left at its default.
    let resp = metadata(&ctx, 11, req).await;
    assert_eq!(resp.cluster_authorized_operations, i32::MIN);
}

#[tokio::test]
async fn describe_cluster_needs_describe_on_the_cluster() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    let header = ctx.header(ApiKey::DescribeCluster, 1);
    let req = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let resp = describe_cluster(&ctx, &header, req.clone()).await;
    assert_eq!(
        resp.error_code,
        KafkaError::ClusterAuthorizationFailed.code()
    );
    assert!(resp.brokers.is_empty());
    ctx.allow(
        "User:alice",
        authz::Operation::Describe,
        authz::ResourceType::Cluster,
        authz::CLUSTER_NAME,
    );
    let resp = describe_cluster(&ctx, &header, req).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.endpoint_type, 1);
    assert_eq!(resp.cluster_id.as_str(), ctx.broker.cluster_id);
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(
        (resp.brokers[0].host.as_str(), resp.brokers[0].port),
        (HOST, PORT)
    );
    assert_eq!(
        resp.cluster_authorized_operations,
        1 << authz::Operation::Describe.code()
    );
}
