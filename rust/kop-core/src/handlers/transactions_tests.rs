//! The transactional APIs on the wire's terms: versions, per-partition errors, authorization.

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::*;

use super::authz::{Operation, ResourceType};
use super::test_context::TestContext;
use super::{producer_id, sb, transaction_admin, transactions, RequestContext};
use crate::error::KafkaError;

async fn init(ctx: &TestContext, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(sb(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = producer_id::handle(ctx, &ctx.header(ApiKey::InitProducerId, 5), req).await;
    assert_eq!(resp.error_code, 0);
    (resp.producer_id.0, resp.producer_epoch)
}

fn topics(list: &[(&str, &[i32])]) -> Vec<AddPartitionsToTxnTopic> {
    list.iter()
        .map(|(t, ps)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(sb(*t)))
                .with_partitions(ps.to_vec())
        })
        .collect()
}

/// (topic, partition, error code), sorted.
fn codes(
    results: &[add_partitions_to_txn_response::AddPartitionsToTxnTopicResult],
) -> Vec<(String, i32, i16)> {
    let mut out: Vec<_> = results
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect();
    out.sort();
    out
}

async fn add_v3(
    ctx: &TestContext,
    id: &str,
    pid: i64,
    epoch: i16,
    t: &[(&str, &[i32])],
) -> Vec<(String, i32, i16)> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(sb(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics(t));
    let resp =
        transactions::add_partitions(ctx, &ctx.header(ApiKey::AddPartitionsToTxn, 3), req).await;
    codes(&resp.results_by_topic_v3_and_below)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_added_only_when_every_one_exists() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 2);
    let (pid, epoch) = init(&ctx, "tx").await;
    let unknown = KafkaError::UnknownTopicOrPartition.code();
    let skipped = KafkaError::OperationNotAttempted.code();
    assert_eq!(
        add_v3(&ctx, "tx", pid, epoch, &[("t", &[0, 5])]).await,
        vec![("t".into(), 0, skipped), ("t".into(), 5, unknown)]
    );
    assert_eq!(
        add_v3(&ctx, "tx", pid, epoch, &[("t", &[0, 1])]).await,
        vec![("t".into(), 0, 0), ("t".into(), 1, 0)]
    );
    let fenced = KafkaError::ProducerFenced.code();
    assert_eq!(
        add_v3(&ctx, "tx", pid, epoch + 1, &[("t", &[0])]).await,
        vec![("t".into(), 0, fenced)]
    );
    let described = transaction_admin::describe(
        &ctx,
        &ctx.header(ApiKey::DescribeTransactions, 0),
        DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(sb("tx")), TransactionalId(sb("nope"))]),
    )
    .await;
    let states = &described.transaction_states;
    assert_eq!(states[0].transaction_state.as_str(), "Ongoing");
    assert_eq!(states[0].topics[0].partitions, vec![0, 1]);
    assert_eq!(
        states[1].error_code,
        KafkaError::TransactionalIdNotFound.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batched_form_is_for_partition_leaders_and_verifies() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:broker")
        .build();
    ctx.topic("t", 1);
    ctx.allow(
        "User:broker",
        Operation::Write,
        ResourceType::TransactionalId,
        "tx",
    );
    ctx.allow("User:broker", Operation::Write, ResourceType::Topic, "t");
    let (pid, epoch) = init(&ctx, "tx").await;
    let batched = || {
        AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(sb("tx")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_verify_only(true)
                .with_topics(topics(&[("t", &[0])])),
        ])
    };
    let header = ctx.header(ApiKey::AddPartitionsToTxn, 5);
    let denied = transactions::add_partitions(&ctx, &header, batched()).await;
    assert_eq!(
        denied.error_code,
        KafkaError::ClusterAuthorizationFailed.code()
    );
    ctx.allow(
        "User:broker",
        Operation::ClusterAction,
        ResourceType::Cluster,
        "kafka-cluster",
    );
    let resp = transactions::add_partitions(&ctx, &header, batched()).await;
    let result = &resp.results_by_transaction[0];
    assert_eq!(
        codes(&result.topic_results),
        vec![("t".into(), 0, KafkaError::InvalidTxnState.code())]
    );
    assert_eq!(add_v3(&ctx, "tx", pid, epoch, &[("t", &[0])]).await[0].2, 0);
    let resp = transactions::add_partitions(&ctx, &header, batched()).await;
    assert_eq!(codes(&resp.results_by_transaction[0].topic_results)[0].2, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_v5_bumps_the_epoch_and_lists_show_the_states() {
    let ctx = RequestContext::builder().build();
    ctx.topic("t", 1);
    let (pid, epoch) = init(&ctx, "tx").await;
    add_v3(&ctx, "tx", pid, epoch, &[("t", &[0])]).await;
    let end = |epoch: i16, version: i16| {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb("tx")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(true);
        let ctx = &ctx;
        async move { transactions::end(ctx, &ctx.header(ApiKey::EndTxn, version), req).await }
    };
    let listed = |filter: &[&str]| {
        let req = ListTransactionsRequest::default()
            .with_state_filters(filter.iter().map(|s| sb(*s)).collect())
            .with_duration_filter(-1);
        let ctx = &ctx;
        async move { transaction_admin::list(ctx, &ctx.header(ApiKey::ListTransactions, 1), req).await }
    };
    let ongoing = listed(&["Ongoing", "Bogus"]).await;
    assert_eq!(ongoing.transaction_states.len(), 1);
    assert_eq!(ongoing.unknown_state_filters, vec![sb("Bogus")]);
    let resp = end(epoch, 5).await;
    assert_eq!(
        (resp.error_code, resp.producer_id.0, resp.producer_epoch),
        (0, pid, epoch + 1)
    );
    assert!(listed(&["Ongoing"]).await.transaction_states.is_empty());
    assert_eq!(
        listed(&["CompleteCommit"]).await.transaction_states.len(),
        1
    );
    // A stale epoch on an old version is INVALID_PRODUCER_EPOCH, on v2+ PRODUCER_FENCED.
    assert_eq!(
        end(epoch - 1, 1).await.error_code,
        KafkaError::InvalidProducerEpoch.code()
    );
    assert_eq!(
        end(epoch - 1, 3).await.error_code,
        KafkaError::ProducerFenced.code()
    );
}
