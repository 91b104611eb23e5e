//! OffsetCommit, OffsetFetch and OffsetDelete without a socket, checked against Apache Kafka's
//! `KafkaApis` and group coordinator (`OffsetMetadataManager`).

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};

use super::*;
use crate::handlers::test_context::TestContext;

/// (topic, partition, offset) commits of a group, without a member (admin tools, assign()).
fn commits(group: &str, offsets: &[(&str, i32, i64)]) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(5)
            .with_committed_metadata(Some(sb(format!("m{offset}"))));
        match topics.last_mut() {
            Some(t) if t.name.as_str() == *topic => t.partitions.push(p),
            _ => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb(*topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(topics)
}

/// (topic, partition, error code) of each partition answered.
async fn commit(
    ctx: &TestContext,
    version: i16,
    req: OffsetCommitRequest,
) -> Vec<(String, i32, i16)> {
    offset_commit(ctx, &ctx.header(ApiKey::OffsetCommit, version), req)
        .await
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

fn wanted(topics: &[(&str, &[i32])]) -> Vec<OffsetFetchRequestTopic> {
    topics
        .iter()
        .map(|(t, ps)| {
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb(*t)))
                .with_partition_indexes(ps.to_vec())
        })
        .collect()
}

/// (topic, partition, offset, leader epoch, metadata, error) of a v1-v7 answer.
type Fetched = Vec<(String, i32, i64, i32, String, i16)>;

async fn fetch(
    ctx: &TestContext,
    version: i16,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> (i16, Fetched) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(topics.map(wanted));
    let resp = offset_fetch(ctx, &ctx.header(ApiKey::OffsetFetch, version), req).await;
    let parts = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or_default().to_string(),
                    p.error_code,
                )
            })
        })
        .collect();
    (resp.error_code, parts)
}

fn code(e: KafkaError) -> i16 {
    e.code()
}

#[tokio::test]
async fn committed_offsets_are_fetched_back() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 2);
    let req = commits("g", &[("t", 0, 10), ("t", 1, 20)]);
    assert_eq!(
        commit(&ctx, 9, req).await,
        [("t".into(), 0, 0), ("t".into(), 1, 0)]
    );
    let (error, got) = fetch(&ctx, 7, "g", Some(&[("t", &[0, 1])])).await;
    assert_eq!(error, 0);
    assert_eq!(
        got,
        [
            ("t".into(), 0, 10, 5, "m10".into(), 0),
            ("t".into(), 1, 20, 5, "m20".into(), 0)
        ]
    );
    // Every committed partition when no topics are named.
    assert_eq!(fetch(&ctx, 7, "g", None).await.1.len(), 2);
    // The leader epoch is answered from v5.
    let (_, old) = fetch(&ctx, 4, "g", Some(&[("t", &[0])])).await;
    assert_eq!((old[0].2, old[0].3), (10, -1));
}

#[tokio::test]
async fn the_leader_epoch_is_kept_only_from_commit_v6() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    commit(&ctx, 5, commits("g", &[("t", 0, 3)])).await;
    assert_eq!(fetch(&ctx, 7, "g", Some(&[("t", &[0])])).await.1[0].3, -1);
}

#[tokio::test]
async fn partitions_without_a_committed_offset_answer_minus_one() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 2);
    commit(&ctx, 9, commits("g", &[("t", 0, 1)])).await;
    // Unknown groups, topics and partitions are not errors for OffsetFetch (as Kafka).
    for (group, topic, partition) in [("g", "t", 1), ("g", "ghost", 0), ("nobody", "t", 0)] {
        let (error, got) = fetch(&ctx, 7, group, Some(&[(topic, &[partition])])).await;
        assert_eq!(error, 0);
        assert_eq!(got, [(topic.into(), partition, -1, -1, String::new(), 0)]);
    }
    assert!(fetch(&ctx, 7, "nobody", None).await.1.is_empty());
}

#[tokio::test]
async fn commits_to_unknown_partitions_fail_alone() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    let unknown = code(KafkaError::UnknownTopicOrPartition);
    let req = commits(
        "g",
        &[("t", 0, 1), ("t", 1, 1), ("t", -1, 1), ("ghost", 0, 1)],
    );
    assert_eq!(
        commit(&ctx, 9, req).await,
        [
            ("t".into(), 0, 0),
            ("t".into(), 1, unknown),
            ("t".into(), -1, unknown),
            ("ghost".into(), 0, unknown)
        ]
    );
    assert_eq!(fetch(&ctx, 7, "g", None).await.1.len(), 1);
}

#[tokio::test]
async fn metadata_longer_than_4096_bytes_is_refused() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 2);
    let mut req = commits("g", &[("t", 0, 1), ("t", 1, 1)]);
    req.topics[0].partitions[0].committed_metadata = Some(sb("x".repeat(4096)));
    req.topics[0].partitions[1].committed_metadata = Some(sb("x".repeat(4097)));
    assert_eq!(
        commit(&ctx, 9, req).await,
        [
            ("t".into(), 0, 0),
            ("t".into(), 1, code(KafkaError::OffsetMetadataTooLarge))
        ]
    );
}

#[tokio::test]
async fn a_generation_for_a_group_that_does_not_exist_is_refused_as_kafka() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    let with_generation = || {
        commits("nobody", &[("t", 0, 1)])
            .with_generation_id_or_member_epoch(1)
            .with_member_id(sb("m-1"))
    };
    assert_eq!(
        commit(&ctx, 8, with_generation()).await[0].2,
        code(KafkaError::IllegalGeneration)
    );
    assert_eq!(
        commit(&ctx, 9, with_generation()).await[0].2,
        code(KafkaError::GroupIdNotFound)
    );
    assert!(ctx.broker.groups.list().is_empty(), "no group was created");
    // An empty group that exists: the member is unknown.
    commit(&ctx, 9, commits("simple", &[("t", 0, 1)])).await;
    let req = with_generation().with_group_id(GroupId(sb("simple")));
    assert_eq!(
        commit(&ctx, 9, req).await[0].2,
        code(KafkaError::UnknownMemberId)
    );
}

#[tokio::test]
async fn an_empty_group_id_is_invalid() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    assert_eq!(
        commit(&ctx, 9, commits("", &[("t", 0, 1)])).await[0].2,
        code(KafkaError::InvalidGroupId)
    );
    assert_eq!(
        fetch(&ctx, 7, "", None).await.0,
        code(KafkaError::InvalidGroupId)
    );
}

#[tokio::test]
async fn commits_need_read_on_the_group_and_the_topics() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    let req = || commits("g", &[("mine", 0, 1), ("theirs", 0, 1)]);
    let group_denied = code(KafkaError::GroupAuthorizationFailed);
    assert_eq!(
        commit(&ctx, 9, req()).await,
        [
            ("mine".into(), 0, group_denied),
            ("theirs".into(), 0, group_denied)
        ]
    );
    assert!(
        ctx.broker.groups.list().is_empty(),
        "a denied commit creates no group"
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Group,
        "g",
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Topic,
        "mine",
    );
    assert_eq!(
        commit(&ctx, 9, req()).await,
        [
            ("mine".into(), 0, 0),
            (
                "theirs".into(),
                0,
                code(KafkaError::TopicAuthorizationFailed)
            )
        ]
    );
}

#[tokio::test]
async fn fetches_need_describe_on_the_group_and_the_topics() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Group,
        "g",
    );
    for topic in ["mine", "theirs"] {
        ctx.allow(
            "User:alice",
            authz::Operation::Read,
            authz::ResourceType::Topic,
            topic,
        );
    }
    commit(&ctx, 9, commits("g", &[("mine", 0, 1), ("theirs", 0, 2)])).await;
    let group_denied = code(KafkaError::GroupAuthorizationFailed);
    let listed: &[(&str, &[i32])] = &[("mine", &[0]), ("theirs", &[0])];
    assert_eq!(fetch(&ctx, 7, "other", Some(listed)).await.0, group_denied);
    // Before v2 the group error is on every partition.
    let (error, got) = fetch(&ctx, 1, "other", Some(listed)).await;
    assert_eq!(error, 0);
    assert!(got.iter().all(|p| p.5 == group_denied));
    // READ implies DESCRIBE; now only "theirs" loses it.
    ctx.security.authorizer.set_acls(Vec::new());
    ctx.allow(
        "User:alice",
        authz::Operation::Describe,
        authz::ResourceType::Group,
        "g",
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Describe,
        authz::ResourceType::Topic,
        "mine",
    );
    let (_, got) = fetch(&ctx, 7, "g", Some(listed)).await;
    assert_eq!(
        got,
        [
            ("mine".into(), 0, 1, 5, "m1".into(), 0),
            (
                "theirs".into(),
                0,
                -1,
                -1,
                String::new(),
                code(KafkaError::TopicAuthorizationFailed)
            )
        ]
    );
    // Asking for every topic leaves the denied one out.
    let (_, got) = fetch(&ctx, 7, "g", None).await;
    assert_eq!(
        got.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["mine"]
    );
}

#[tokio::test]
async fn v8_fetches_several_groups_at_once() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("t", 1);
    for group in ["a", "b"] {
        ctx.allow(
            "User:alice",
            authz::Operation::Read,
            authz::ResourceType::Group,
            group,
        );
    }
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Topic,
        "t",
    );
    commit(&ctx, 9, commits("a", &[("t", 0, 7)])).await;
    let group = |id: &str, topics: Option<Vec<OffsetFetchRequestTopics>>| {
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb(id)))
            .with_topics(topics)
    };
    let t0 = vec![OffsetFetchRequestTopics::default()
        .with_name(TopicName(sb("t")))
        .with_partition_indexes(vec![0])];
    let req = OffsetFetchRequest::default().with_groups(vec![
        group("a", None),
        group("b", Some(t0)),
        group("c", None),
    ]);
    let resp = offset_fetch(&ctx, &ctx.header(ApiKey::OffsetFetch, 8), req).await;
    let got: Vec<(String, i16, Vec<i64>)> = resp
        .groups
        .iter()
        .map(|g| {
            let offsets = g
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
                .collect();
            (g.group_id.to_string(), g.error_code, offsets)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".into(), 0, vec![7]),
            ("b".into(), 0, vec![-1]),
            (
                "c".into(),
                code(KafkaError::GroupAuthorizationFailed),
                vec![]
            )
        ]
    );
}

fn deletions(group: &str, topics: &[(&str, &[i32])]) -> OffsetDeleteRequest {
    OffsetDeleteRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(sb(*t)))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

/// (group error, [(topic, partition, error)]).
async fn delete(ctx: &TestContext, req: OffsetDeleteRequest) -> (i16, Vec<(String, i32, i16)>) {
    let resp = offset_delete(ctx, &ctx.header(ApiKey::OffsetDelete, 0), req).await;
    let parts = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    (resp.error_code, parts)
}

#[tokio::test]
async fn offsets_of_an_empty_group_are_deleted() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 2);
    commit(&ctx, 9, commits("g", &[("t", 0, 1), ("t", 1, 2)])).await;
    let unknown = code(KafkaError::UnknownTopicOrPartition);
    assert_eq!(
        delete(&ctx, deletions("g", &[("t", &[0, 5]), ("ghost", &[0])])).await,
        (
            0,
            vec![
                ("t".into(), 0, 0),
                ("t".into(), 5, unknown),
                ("ghost".into(), 0, unknown)
            ]
        )
    );
    let (_, left) = fetch(&ctx, 7, "g", None).await;
    assert_eq!(left.iter().map(|p| p.1).collect::<Vec<_>>(), [1]);
    assert_eq!(
        delete(&ctx, deletions("nobody", &[("t", &[0])])).await,
        (code(KafkaError::GroupIdNotFound), vec![])
    );
}

#[tokio::test]
async fn offset_delete_needs_delete_on_the_group_and_read_on_the_topics() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Group,
        "g",
    );
    for topic in ["mine", "theirs"] {
        ctx.allow(
            "User:alice",
            authz::Operation::Read,
            authz::ResourceType::Topic,
            topic,
        );
    }
    commit(&ctx, 9, commits("g", &[("mine", 0, 1), ("theirs", 0, 2)])).await;
    let req = || deletions("g", &[("mine", &[0]), ("theirs", &[0])]);
    assert_eq!(
        delete(&ctx, req()).await.0,
        code(KafkaError::GroupAuthorizationFailed)
    );
    ctx.security.authorizer.set_acls(Vec::new());
    ctx.allow(
        "User:alice",
        authz::Operation::Delete,
        authz::ResourceType::Group,
        "g",
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Topic,
        "mine",
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Describe,
        authz::ResourceType::Group,
        "g",
    );
    assert_eq!(
        delete(&ctx, req()).await,
        (
            0,
            vec![
                ("mine".into(), 0, 0),
                (
                    "theirs".into(),
                    0,
                    code(KafkaError::TopicAuthorizationFailed)
                )
            ]
        )
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Describe,
        authz::ResourceType::Topic,
        "theirs",
    );
    let (_, left) = fetch(&ctx, 7, "g", None).await;
    assert_eq!(
        left.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["theirs"]
    );
}
