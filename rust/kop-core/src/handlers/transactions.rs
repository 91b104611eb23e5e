//! The transactional producer's APIs: AddPartitionsToTxn (with the v4+ batched and verify-only
//! forms partition leaders use), AddOffsetsToTxn and EndTxn. The rules live in `crate::txn`.

use std::collections::BTreeMap;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;

use super::authz::{self, Operation, ResourceType};
use super::producer_id::fenced_for;
use super::RequestContext;
use crate::error::{code_of, KafkaError};
use crate::group::GROUPS_TOPIC;
use crate::txn::{EndRequest, TopicPartition};

/// WRITE on the transactional id, as Kafka checks for every transactional API.
async fn may_write_transaction(ctx: &RequestContext, api: &str, transactional_id: &str) -> bool {
    authz::allowed(
        ctx,
        api,
        Operation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    )
    .await
}

/// One transaction of an AddPartitionsToTxn request.
struct Addition<'a> {
    transactional_id: &'a str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &'a [AddPartitionsToTxnTopic],
}

pub async fn add_partitions(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let version = header.request_api_version;
    let resp = AddPartitionsToTxnResponse::default();
    if version <= 3 {
        let addition = Addition {
            transactional_id: &req.v3_and_below_transactional_id,
            producer_id: req.v3_and_below_producer_id.0,
            epoch: req.v3_and_below_producer_epoch,
            verify_only: false,
            topics: &req.v3_and_below_topics,
        };
        let results = add_one(ctx, version, &addition).await;
        return resp.with_results_by_topic_v3_and_below(results);
    }
    // The batched form is sent by partition leaders (Kafka's brokers), not by clients.
    if !authz::cluster_allowed(ctx, "AddPartitionsToTxn", Operation::ClusterAction).await {
        return resp.with_error_code(KafkaError::ClusterAuthorizationFailed.code());
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let addition = Addition {
            transactional_id: &t.transactional_id,
            producer_id: t.producer_id.0,
            epoch: t.producer_epoch,
            verify_only: t.verify_only,
            topics: &t.topics,
        };
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(add_one(ctx, version, &addition).await),
        );
    }
    resp.with_results_by_transaction(results)
}

/// The per-partition results of one transaction's addition (or verification).
async fn add_one(
    ctx: &RequestContext,
    version: i16,
    a: &Addition<'_>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let requested: Vec<TopicPartition> = a
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p)))
        .collect();
    let all =
        |r: Result<(), KafkaError>| requested.iter().map(|p| (p.clone(), r)).collect::<Vec<_>>();
    let outcome: Vec<(TopicPartition, Result<(), KafkaError>)> = if !a.verify_only
        && !may_write_transaction(ctx, "AddPartitionsToTxn", a.transactional_id).await
    {
        all(Err(KafkaError::TransactionalIdAuthorizationFailed))
    } else {
        let denied = authz::denied(
            ctx,
            "AddPartitionsToTxn",
            Operation::Write,
            ResourceType::Topic,
            requested.iter().map(|(t, _)| t.as_str()),
        )
        .await;
        let refused = |(topic, partition): &TopicPartition| {
            let group_shard = a.verify_only
                && topic == GROUPS_TOPIC
                && usize::try_from(*partition)
                    .is_ok_and(|p| p < ctx.broker.transactions.shard_count());
            if group_shard {
                None // a group coordinator's question about its shard (`txn_admission.rs`)
            } else if denied.contains(topic) {
                Some(KafkaError::TopicAuthorizationFailed)
            } else if ctx
                .broker
                .topic(topic)
                .and_then(|t| t.partition(*partition))
                .is_none()
            {
                Some(KafkaError::UnknownTopicOrPartition)
            } else {
                None
            }
        };
        let refusals: Vec<_> = requested.iter().map(refused).collect();
        if refusals.iter().any(Option::is_some) {
            // Kafka adds nothing then: the others are "not attempted".
            requested
                .iter()
                .zip(refusals)
                .map(|(p, r)| {
                    (
                        p.clone(),
                        Err(r.unwrap_or(KafkaError::OperationNotAttempted)),
                    )
                })
                .collect()
        } else if a.verify_only {
            let coordinator = &ctx.broker.transactions;
            match coordinator.verify(a.transactional_id, a.producer_id, a.epoch, &requested) {
                Ok(each) => requested.iter().cloned().zip(each).collect(),
                Err(e) => all(Err(e)),
            }
        } else {
            let fenced = fenced_for_txn(version, KafkaError::ProducerFenced);
            let added = ctx.broker.transactions.add(
                a.transactional_id,
                a.producer_id,
                a.epoch,
                fenced,
                &requested,
                None,
            );
            all(added.map_err(|e| fenced_for_txn(version, e)))
        }
    };
    topic_results(outcome)
}

fn topic_results(
    outcome: Vec<(TopicPartition, Result<(), KafkaError>)>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for ((topic, partition), r) in outcome {
        let code = code_of(&r);
        by_topic.entry(topic).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(partition)
                .with_partition_error_code(code),
        );
    }
    by_topic
        .into_iter()
        .map(|(topic, results)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(super::sb(topic)))
                .with_results_by_partition(results)
        })
        .collect()
}

/// PRODUCER_FENCED is answered by AddPartitionsToTxn, AddOffsetsToTxn and EndTxn from v2.
fn fenced_for_txn(version: i16, e: KafkaError) -> KafkaError {
    // The same rule as InitProducerId's, two versions earlier.
    fenced_for(version + 2, e)
}

pub async fn add_offsets(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let version = header.request_api_version;
    let answer = async {
        if !may_write_transaction(ctx, "AddOffsetsToTxn", &req.transactional_id).await {
            return Err(KafkaError::TransactionalIdAuthorizationFailed);
        }
        if !authz::group_allowed(ctx, "AddOffsetsToTxn", Operation::Read, &req.group_id).await {
            return Err(KafkaError::GroupAuthorizationFailed);
        }
        if req.group_id.is_empty() {
            return Err(KafkaError::InvalidGroupId);
        }
        ctx.broker.transactions.add(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            fenced_for_txn(version, KafkaError::ProducerFenced),
            &[],
            Some(&req.group_id),
        )
    };
    let code = match answer.await {
        Ok(()) => 0,
        Err(e) => fenced_for_txn(version, e).code(),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub async fn end(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let version = header.request_api_version;
    let answer = async {
        if !may_write_transaction(ctx, "EndTxn", &req.transactional_id).await {
            return Err(KafkaError::TransactionalIdAuthorizationFailed);
        }
        let end = EndRequest {
            transactional_id: &req.transactional_id,
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
            commit: req.committed,
            tv2: version >= 5,
            fenced: fenced_for_txn(version, KafkaError::ProducerFenced),
        };
        ctx.broker.transactions.end(&*ctx.broker, &end).await
    };
    match answer.await {
        Ok((id, epoch)) => EndTxnResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => EndTxnResponse::default()
            .with_error_code(fenced_for_txn(version, e).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
