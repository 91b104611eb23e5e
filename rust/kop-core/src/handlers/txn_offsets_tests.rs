//! TxnOffsetCommit and OffsetFetch `require_stable` without a socket, checked against Apache
//! Kafka's `KafkaApis.handleTxnOffsetCommitRequest` and `OffsetMetadataManager`.

use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};

use super::*;
use crate::handlers::offsets::offset_fetch;
use crate::handlers::test_context::TestContext;

/// The producer id of transaction "tx": the first one a fresh broker hands out.
const PID: i64 = 0;

/// Opens transaction "tx" (producer `PID`, epoch 0) holding the group's offsets, as
/// InitProducerId and AddOffsetsToTxn do (TxnOffsetCommit v5+ adds the group itself).
async fn open_txn(ctx: &TestContext, group: &str) {
    let coordinator = &ctx.broker.transactions;
    let fenced = KafkaError::ProducerFenced;
    let producer = coordinator
        .init_producer(&*ctx.broker, "tx", 60_000, None, fenced)
        .await;
    assert_eq!(producer, Ok((PID, 0)));
    if !group.is_empty() {
        coordinator
            .add("tx", PID, 0, fenced, &[], Some(group))
            .unwrap();
    }
}

/// A TxnOffsetCommit of (topic, partition, offset) for group `group` by transaction "tx",
/// without a member.
fn txn_commits(group: &str, offsets: &[(&str, i32, i64)]) -> TxnOffsetCommitRequest {
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(3)
            .with_committed_metadata(Some(sb(format!("m{offset}"))));
        match topics.last_mut() {
            Some(t) if t.name.as_str() == *topic => t.partitions.push(p),
            _ => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb(*topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(sb("tx")))
        .with_group_id(GroupId(sb(group)))
        .with_producer_id(ProducerId(PID))
        .with_producer_epoch(0)
        .with_topics(topics)
}

/// (topic, partition, error code) of each partition answered.
async fn txn_commit(
    ctx: &TestContext,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> Vec<(String, i32, i16)> {
    handle(ctx, &ctx.header(ApiKey::TxnOffsetCommit, version), req)
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

/// (partition, offset, error) of topic t in a v7 OffsetFetch.
async fn fetch_v7(ctx: &TestContext, group: &str, stable: bool) -> Vec<(i32, i64, i16)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_require_stable(stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(sb("t")))
            .with_partition_indexes(vec![0, 1])]));
    let resp = offset_fetch(ctx, &ctx.header(ApiKey::OffsetFetch, 7), req).await;
    assert_eq!(resp.error_code, 0);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect()
}

fn code(e: KafkaError) -> i16 {
    e.code()
}

fn ok(parts: &[(&str, i32)]) -> Vec<(String, i32, i16)> {
    parts.iter().map(|(t, p)| (t.to_string(), *p, 0)).collect()
}

#[tokio::test]
async fn transactional_offsets_are_unstable_until_the_transaction_commits() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 2);
    open_txn(&ctx, "g").await;
    for version in [0, 2, 3, 5] {
        let req = txn_commits("g", &[("t", 0, 10 + i64::from(version))]);
        assert_eq!(
            txn_commit(&ctx, version, req).await,
            ok(&[("t", 0)]),
            "v{version}"
        );
    }
    let unstable = code(KafkaError::UnstableOffsetCommit);
    assert_eq!(
        fetch_v7(&ctx, "g", true).await,
        [(0, -1, unstable), (1, -1, 0)]
    );
    assert_eq!(fetch_v7(&ctx, "g", false).await, [(0, -1, 0), (1, -1, 0)]);

    // v8+: per partition in the groups form.
    let req = OffsetFetchRequest::default()
        .with_require_stable(true)
        .with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(sb("t")))
                .with_partition_indexes(vec![0])]))]);
    let resp = offset_fetch(&ctx, &ctx.header(ApiKey::OffsetFetch, 8), req).await;
    assert_eq!(resp.groups[0].error_code, 0);
    assert_eq!(resp.groups[0].topics[0].partitions[0].error_code, unstable);

    ctx.broker
        .groups
        .complete_txn("g", PID, true)
        .await
        .unwrap();
    assert_eq!(fetch_v7(&ctx, "g", true).await, [(0, 15, 0), (1, -1, 0)]);
}

#[tokio::test]
async fn unknown_partitions_and_large_metadata_are_refused_per_partition() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    open_txn(&ctx, "g").await;
    let mut req = txn_commits("g", &[("t", 0, 1), ("t", 1, 1), ("nope", 0, 1)]);
    let big = "x".repeat(crate::group::offsets::OFFSET_METADATA_MAX_BYTES + 1);
    req.topics[0].partitions[0].committed_metadata = Some(sb(big));
    let unknown = code(KafkaError::UnknownTopicOrPartition);
    assert_eq!(
        txn_commit(&ctx, 3, req).await,
        [
            ("t".into(), 0, code(KafkaError::OffsetMetadataTooLarge)),
            ("t".into(), 1, unknown),
            ("nope".into(), 0, unknown)
        ]
    );
    assert!(ctx.broker.groups.list().is_empty(), "nothing staged");
}

#[tokio::test]
async fn member_checks_of_v3() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    open_txn(&ctx, "g").await;
    let req = txn_commits("g", &[("t", 0, 1)])
        .with_generation_id(2)
        .with_member_id(sb("m"));
    let illegal = code(KafkaError::IllegalGeneration);
    assert_eq!(txn_commit(&ctx, 3, req).await, [("t".into(), 0, illegal)]);
    // The group exists (offsets pending) and is empty: a member is unknown there.
    let req = txn_commits("g", &[("t", 0, 1)]);
    txn_commit(&ctx, 3, req).await;
    let req = txn_commits("g", &[("t", 0, 1)])
        .with_generation_id(0)
        .with_member_id(sb("m"));
    assert_eq!(
        txn_commit(&ctx, 3, req).await,
        [("t".into(), 0, code(KafkaError::UnknownMemberId))]
    );
    let req = txn_commits("", &[("t", 0, 1)]);
    assert_eq!(
        txn_commit(&ctx, 3, req).await,
        [("t".into(), 0, code(KafkaError::InvalidGroupId))]
    );
}

#[tokio::test]
async fn authorization_is_transactional_id_then_group_then_topics() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    ctx.topic("mine", 1);
    ctx.topic("theirs", 1);
    open_txn(&ctx, "").await;
    let req = || txn_commits("g", &[("mine", 0, 1), ("theirs", 0, 1)]);
    let every = |e: KafkaError| {
        vec![
            ("mine".to_string(), 0, code(e)),
            ("theirs".to_string(), 0, code(e)),
        ]
    };
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Group,
        "g",
    );
    assert_eq!(
        txn_commit(&ctx, 5, req()).await,
        every(KafkaError::TransactionalIdAuthorizationFailed)
    );
    ctx.security.authorizer.set_acls(Vec::new());
    ctx.allow(
        "User:alice",
        authz::Operation::Write,
        authz::ResourceType::TransactionalId,
        "tx",
    );
    assert_eq!(
        txn_commit(&ctx, 5, req()).await,
        every(KafkaError::GroupAuthorizationFailed)
    );
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Group,
        "g",
    );
    assert_eq!(
        txn_commit(&ctx, 5, req()).await,
        every(KafkaError::TopicAuthorizationFailed)
    );
    assert!(ctx.broker.groups.list().is_empty(), "nothing staged");
    ctx.allow(
        "User:alice",
        authz::Operation::Read,
        authz::ResourceType::Topic,
        "mine",
    );
    assert_eq!(
        txn_commit(&ctx, 5, req()).await,
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

#[test]
fn coordinator_errors_are_mapped_as_kafka_maps_them() {
    assert_eq!(
        verification_error(KafkaError::ProducerFenced, 5),
        KafkaError::InvalidProducerEpoch
    );
    assert_eq!(
        verification_error(KafkaError::TransactionAbortable, 3),
        KafkaError::InvalidTxnState
    );
    assert_eq!(
        verification_error(KafkaError::TransactionAbortable, 4),
        KafkaError::TransactionAbortable
    );
    assert_eq!(
        coordinator_error(KafkaError::KafkaStorageError),
        KafkaError::NotCoordinator
    );
    assert_eq!(
        coordinator_error(KafkaError::RequestTimedOut),
        KafkaError::CoordinatorNotAvailable
    );
    assert_eq!(
        coordinator_error(KafkaError::InvalidProducerEpoch),
        KafkaError::InvalidProducerEpoch
    );
}
