//! CreateTopics, DeleteTopics and CreatePartitions without a socket, checked against what
//! Apache Kafka's controller answers (`ControllerApis`, `ReplicationControlManager`).

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;

use super::*;
use crate::handlers::test_context::TestContext;

fn topic(name: &str, partitions: i32, replication: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(sb(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(replication)
}

fn assigned(name: &str, placements: &[(i32, &[i32])]) -> CreatableTopic {
    topic(name, -1, -1).with_assignments(
        placements
            .iter()
            .map(|(p, brokers)| {
                CreatableReplicaAssignment::default()
                    .with_partition_index(*p)
                    .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
            })
            .collect(),
    )
}

async fn create(
    ctx: &TestContext,
    version: i16,
    topics: Vec<CreatableTopic>,
) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default().with_topics(topics);
    create_topics(ctx, &ctx.header(ApiKey::CreateTopics, version), req).await
}

/// (name, error code) of each result.
fn codes(resp: &CreateTopicsResponse) -> Vec<(String, i16)> {
    resp.topics
        .iter()
        .map(|t| (t.name.to_string(), t.error_code))
        .collect()
}

fn code(e: KafkaError) -> i16 {
    e.code()
}

#[tokio::test]
async fn create_topics_creates_with_the_asked_or_default_partition_count() {
    let ctx = RequestContext::builder()
        .config(r#""num_partitions": 3"#)
        .build();
    let resp = create(&ctx, 7, vec![topic("a", 2, 1), topic("b", -1, -1)]).await;
    assert_eq!(codes(&resp), [("a".into(), 0), ("b".into(), 0)]);
    let counts: Vec<(i32, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.num_partitions, t.replication_factor))
        .collect();
    assert_eq!(counts, [(2, 1), (3, 1)]);
    for t in &resp.topics {
        let created = ctx.broker.topic(&t.name).expect("created");
        assert_eq!(created.id, t.topic_id);
        assert!(
            t.configs.as_ref().is_some_and(|c| !c.is_empty()),
            "v5+ returns configs"
        );
    }
    // Before v5 there are no configs in the answer.
    let old = create(&ctx, 4, vec![topic("c", 1, 1)]).await;
    assert_eq!(old.topics[0].error_code, 0);
    assert!(old.topics[0].configs.as_ref().is_none_or(Vec::is_empty));
}

#[tokio::test]
async fn create_topics_refuses_what_kafka_refuses() {
    let ctx = RequestContext::builder().build();
    ctx.topic("taken", 1);
    let cases = [
        (topic("taken", 1, 1), KafkaError::TopicAlreadyExists),
        (topic("", 1, 1), KafkaError::InvalidTopic),
        (topic(".", 1, 1), KafkaError::InvalidTopic),
        (topic("..", 1, 1), KafkaError::InvalidTopic),
        (topic("a/b", 1, 1), KafkaError::InvalidTopic),
        (topic(&"x".repeat(250), 1, 1), KafkaError::InvalidTopic),
        (topic("rf0", 1, 0), KafkaError::InvalidReplicationFactor),
        (topic("rf-2", 1, -2), KafkaError::InvalidReplicationFactor),
        (topic("rf3", 1, 3), KafkaError::InvalidReplicationFactor),
        (topic("p0", 0, 1), KafkaError::InvalidPartitions),
        (topic("p-2", -2, 1), KafkaError::InvalidPartitions),
        (
            topic("__cluster_metadata", 1, 1),
            KafkaError::InvalidRequest,
        ),
        // An existing topic is reported before a bad shape (Kafka's order).
        (topic("taken", 1, 3), KafkaError::TopicAlreadyExists),
    ];
    for (t, want) in cases {
        let name = t.name.to_string();
        let resp = create(&ctx, 7, vec![t]).await;
        let r = &resp.topics[0];
        assert_eq!(
            r.error_code,
            code(want),
            "{name:.20}: {:?}",
            r.error_message
        );
        assert!(r.error_message.is_some());
        assert_eq!((r.num_partitions, r.replication_factor), (-1, -1));
    }
    let longest = "y".repeat(249);
    let resp = create(&ctx, 7, vec![topic(&longest, 1, 1)]).await;
    assert_eq!(resp.topics[0].error_code, 0, "249 characters are allowed");
    assert_eq!(ctx.broker.topics().len(), 2);
}

#[tokio::test]
async fn a_topic_twice_in_one_create_request_is_an_invalid_request_and_not_created() {
    let ctx = RequestContext::builder().build();
    let resp = create(
        &ctx,
        7,
        vec![topic("dup", 1, 1), topic("ok", 1, 1), topic("dup", 2, 1)],
    )
    .await;
    assert_eq!(
        codes(&resp),
        [
            ("dup".into(), code(KafkaError::InvalidRequest)),
            ("ok".into(), 0)
        ]
    );
    assert_eq!(
        resp.topics[0].error_message.as_deref(),
        Some("Duplicate topic name.")
    );
    assert!(ctx.broker.topic("dup").is_none());
    assert!(ctx.broker.topic("ok").is_some());
}

#[tokio::test]
async fn create_topics_checks_manual_assignments() {
    let ctx = RequestContext::builder().build();
    let me = ctx.broker.config.node_id;
    let other = me + 1;
    let cases = [
        (assigned("two", &[(0, &[me]), (1, &[me])]), 0),
        (
            assigned("count", &[(0, &[me])]).with_num_partitions(1),
            code(KafkaError::InvalidRequest),
        ),
        (
            assigned("rf", &[(0, &[me])]).with_replication_factor(1),
            code(KafkaError::InvalidRequest),
        ),
        (
            assigned("twice", &[(0, &[me]), (0, &[me])]),
            code(KafkaError::InvalidReplicaAssignment),
        ),
        (
            assigned("gap", &[(0, &[me]), (2, &[me])]),
            code(KafkaError::InvalidReplicaAssignment),
        ),
        (
            assigned("elsewhere", &[(0, &[other])]),
            code(KafkaError::InvalidReplicaAssignment),
        ),
        (
            assigned("same-broker-twice", &[(0, &[me, me])]),
            code(KafkaError::InvalidReplicaAssignment),
        ),
        (
            assigned("empty", &[(0, &[])]),
            code(KafkaError::InvalidReplicaAssignment),
        ),
    ];
    for (t, want) in cases {
        let name = t.name.to_string();
        let resp = create(&ctx, 7, vec![t]).await;
        assert_eq!(resp.topics[0].error_code, want, "{name}");
    }
    assert_eq!(ctx.broker.topic("two").unwrap().partition_count(), 2);
    assert_eq!(ctx.broker.topics().len(), 1);
}

#[tokio::test]
async fn create_topics_checks_configs() {
    let ctx = RequestContext::builder().build();
    let with = |name: &str, key: &str, value: Option<&str>| {
        topic(name, 1, 1).with_configs(vec![CreatableTopicConfig::default()
            .with_name(sb(key))
            .with_value(value.map(sb))])
    };
    let resp = create(
        &ctx,
        7,
        vec![
            with("null", "retention.ms", None),
            with("bad", "retention.ms", Some("soon")),
            with("unknown", "no.such.config", Some("1")),
            with("good", "retention.ms", Some("1000")),
        ],
    )
    .await;
    let invalid = code(KafkaError::InvalidConfig);
    assert_eq!(
        codes(&resp),
        [
            ("null".into(), invalid),
            ("bad".into(), invalid),
            ("unknown".into(), invalid),
            ("good".into(), 0)
        ]
    );
    let good = ctx.broker.topic("good").unwrap();
    assert_eq!(good.config_overrides()["retention.ms"], "1000");
}

#[tokio::test]
async fn validate_only_creates_nothing() {
    let ctx = RequestContext::builder().build();
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic("v", 4, 1)])
        .with_validate_only(true);
    let resp = create_topics(&ctx, &ctx.header(ApiKey::CreateTopics, 7), req).await;
    let r = &resp.topics[0];
    assert_eq!((r.error_code, r.num_partitions), (0, 4));
    assert!(r.topic_id.is_nil());
    assert!(ctx.broker.topic("v").is_none());
}

#[tokio::test]
async fn create_topics_needs_create_on_the_cluster_or_the_topic() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.allow(
        "User:alice",
        authz::Operation::Create,
        authz::ResourceType::Topic,
        "mine",
    );
    let resp = create(&ctx, 7, vec![topic("mine", 1, 1), topic("theirs", 1, 1)]).await;
    assert_eq!(
        codes(&resp),
        [
            ("mine".into(), 0),
            ("theirs".into(), code(KafkaError::TopicAuthorizationFailed))
        ]
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Create,
        authz::ResourceType::Cluster,
        authz::CLUSTER_NAME,
    );
    let resp = create(&ctx, 7, vec![topic("theirs", 1, 1)]).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

async fn delete(
    ctx: &TestContext,
    version: i16,
    req: DeleteTopicsRequest,
) -> Vec<(Option<String>, uuid::Uuid, i16)> {
    delete_topics(ctx, &ctx.header(ApiKey::DeleteTopics, version), req)
        .await
        .responses
        .into_iter()
        .map(|r| (r.name.map(|n| n.to_string()), r.topic_id, r.error_code))
        .collect()
}

fn by_name(names: &[&str]) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default()
        .with_topic_names(names.iter().map(|n| TopicName(sb(*n))).collect())
}

fn states(states: &[(Option<&str>, uuid::Uuid)]) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default().with_topics(
        states
            .iter()
            .map(|(n, id)| {
                DeleteTopicState::default()
                    .with_name(n.map(|n| TopicName(sb(n))))
                    .with_topic_id(*id)
            })
            .collect(),
    )
}

#[tokio::test]
async fn delete_topics_by_name_and_by_id() {
    let ctx = RequestContext::builder().build();
    let a = ctx.topic("a", 1).id;
    let b = ctx.topic("b", 2).id;
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        delete(&ctx, 5, by_name(&["a", "nope"])).await,
        [
            (Some("a".into()), a, 0),
            (
                Some("nope".into()),
                uuid::Uuid::nil(),
                code(KafkaError::UnknownTopicOrPartition)
            )
        ]
    );
    assert_eq!(
        delete(&ctx, 6, states(&[(None, b), (None, unknown)])).await,
        [
            (Some("b".into()), b, 0),
            (None, unknown, code(KafkaError::UnknownTopicId))
        ]
    );
    assert!(ctx.broker.topics().is_empty());
}

#[tokio::test]
async fn delete_topics_refuses_ambiguous_requests_as_kafka() {
    let ctx = RequestContext::builder().build();
    let a = ctx.topic("a", 1).id;
    let b = ctx.topic("b", 1).id;
    let invalid = code(KafkaError::InvalidRequest);
    assert_eq!(
        delete(&ctx, 5, by_name(&["a", "a"])).await,
        [(Some("a".into()), uuid::Uuid::nil(), invalid)]
    );
    assert_eq!(
        delete(
            &ctx,
            6,
            states(&[
                (Some("a"), a),
                (None, uuid::Uuid::nil()),
                (None, b),
                (None, b)
            ])
        )
        .await,
        [
            (Some("a".into()), a, invalid),
            (None, uuid::Uuid::nil(), invalid),
            (None, b, invalid)
        ]
    );
    assert_eq!(ctx.broker.topics().len(), 2, "nothing was deleted");
}

#[tokio::test]
async fn delete_topics_needs_delete_on_the_topic_or_the_cluster() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    let mine = ctx.topic("mine", 1).id;
    ctx.topic("theirs", 1);
    ctx.allow(
        "User:alice",
        authz::Operation::Delete,
        authz::ResourceType::Topic,
        "mine",
    );
    let denied = code(KafkaError::TopicAuthorizationFailed);
    assert_eq!(
        delete(&ctx, 5, by_name(&["mine", "theirs", "ghost"])).await,
        [
            (Some("mine".into()), mine, 0),
            (Some("theirs".into()), uuid::Uuid::nil(), denied),
            // An unknown topic one may not delete is not disclosed as unknown.
            (Some("ghost".into()), uuid::Uuid::nil(), denied)
        ]
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Delete,
        authz::ResourceType::Cluster,
        authz::CLUSTER_NAME,
    );
    assert_eq!(delete(&ctx, 5, by_name(&["theirs"])).await[0].2, 0);
}

fn grow(name: &str, count: i32, assignments: Option<&[&[i32]]>) -> CreatePartitionsTopic {
    CreatePartitionsTopic::default()
        .with_name(TopicName(sb(name)))
        .with_count(count)
        .with_assignments(assignments.map(|a| {
            a.iter()
                .map(|brokers| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect()
        }))
}

async fn partitions(
    ctx: &TestContext,
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16)> {
    let req = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_validate_only(validate_only);
    create_partitions(ctx, &ctx.header(ApiKey::CreatePartitions, 3), req)
        .await
        .results
        .into_iter()
        .map(|r| (r.name.to_string(), r.error_code))
        .collect()
}

#[tokio::test]
async fn create_partitions_only_grows_existing_topics() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 2);
    let invalid = code(KafkaError::InvalidPartitions);
    assert_eq!(
        partitions(&ctx, vec![grow("t", 2, None)], false).await,
        [("t".into(), invalid)]
    );
    assert_eq!(
        partitions(&ctx, vec![grow("t", 1, None)], false).await[0].1,
        invalid
    );
    assert_eq!(
        partitions(&ctx, vec![grow("ghost", 3, None)], false).await[0].1,
        code(KafkaError::UnknownTopicOrPartition)
    );
    assert_eq!(
        partitions(&ctx, vec![grow("t", 5, None)], true).await[0].1,
        0
    );
    assert_eq!(
        ctx.broker.topic("t").unwrap().partition_count(),
        2,
        "validate only"
    );
    assert_eq!(
        partitions(&ctx, vec![grow("t", 5, None)], false).await[0].1,
        0
    );
    assert_eq!(ctx.broker.topic("t").unwrap().partition_count(), 5);
}

#[tokio::test]
async fn create_partitions_checks_duplicates_and_assignments() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    ctx.topic("u", 1);
    let me = ctx.broker.config.node_id;
    assert_eq!(
        partitions(
            &ctx,
            vec![grow("t", 2, None), grow("u", 2, None), grow("t", 3, None)],
            false
        )
        .await,
        [
            ("t".into(), code(KafkaError::InvalidRequest)),
            ("u".into(), 0)
        ]
    );
    assert_eq!(ctx.broker.topic("t").unwrap().partition_count(), 1);
    let bad = code(KafkaError::InvalidReplicaAssignment);
    for assignments in [
        &[&[me][..]][..],
        &[&[me + 1], &[me]],
        &[&[me, me], &[me]],
        &[&[], &[me]],
    ] {
        let got = partitions(&ctx, vec![grow("t", 3, Some(assignments))], false).await;
        assert_eq!(got[0].1, bad, "{assignments:?}");
    }
    assert_eq!(
        partitions(&ctx, vec![grow("t", 3, Some(&[&[me], &[me]]))], false).await[0].1,
        0
    );
    assert_eq!(ctx.broker.topic("t").unwrap().partition_count(), 3);
}

#[tokio::test]
async fn create_partitions_needs_alter_on_the_topic() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    ctx.allow(
        "User:alice",
        authz::Operation::Alter,
        authz::ResourceType::Topic,
        "mine",
    );
    let denied = code(KafkaError::TopicAuthorizationFailed);
    assert_eq!(
        partitions(
            &ctx,
            vec![
                grow("mine", 2, None),
                grow("theirs", 2, None),
                grow("ghost", 2, None)
            ],
            false
        )
        .await,
        [
            ("mine".into(), 0),
            ("theirs".into(), denied),
            ("ghost".into(), denied)
        ]
    );
}
