//! TxnOffsetCommit (API 28): offsets committed in a producer's transaction, staged in the group
//! until the transaction ends (`group/transactions.rs`). Checked against Kafka's `KafkaApis`
//! and `GroupCoordinatorService.commitTransactionalOffsets`.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::authz::{self, Operation, ResourceType};
use super::{sb, RequestContext};
use crate::error::KafkaError;
use crate::group::offsets::OFFSET_METADATA_MAX_BYTES;
use crate::group::{OffsetEntry, TxnCommitter};
use crate::txn::TxnTarget;

/// The first version whose commit adds the group to the transaction itself (KIP-890, TV2).
const IMPLICIT_ADD_VERSION: i16 = 5;

/// (topic, partition, what the coordinator is asked to stage, or why not).
type Partitions = Vec<(String, i32, Result<OffsetEntry, KafkaError>)>;

pub async fn handle(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = header.request_api_version;
    let (txn_allowed, group_allowed, denied_topics) = authorize(ctx, &req).await;
    let early = if !txn_allowed {
        Some(KafkaError::TransactionalIdAuthorizationFailed)
    } else if !group_allowed {
        Some(KafkaError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(e) = early {
        let every = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.to_string(), p.partition_index, Err(e)))
            })
            .collect();
        return response(every);
    }
    let now = crate::now_ms();
    let mut partitions: Partitions = Vec::new();
    // Whether each partition goes to the coordinator (Kafka's KafkaApis keeps back only the
    // unauthorized and unknown ones; the metadata size is the coordinator's check).
    let mut forwarded = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or_default();
            let entry = if denied_topics.contains(t.name.as_str()) {
                Err(KafkaError::TopicAuthorizationFailed)
            } else if !partition_exists(ctx, &t.name, p.partition_index) {
                Err(KafkaError::UnknownTopicOrPartition)
            } else if metadata.len() > OFFSET_METADATA_MAX_BYTES {
                forwarded.push(true);
                partitions.push((
                    t.name.to_string(),
                    p.partition_index,
                    Err(KafkaError::OffsetMetadataTooLarge),
                ));
                continue;
            } else {
                Ok(OffsetEntry {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: metadata.to_string(),
                    commit_ms: now,
                })
            };
            forwarded.push(entry.is_ok());
            partitions.push((t.name.to_string(), p.partition_index, entry));
        }
    }
    if !forwarded.iter().any(|f| *f) {
        return response(
            partitions
                .into_iter()
                .map(|(t, p, r)| (t, p, r.map(|_| ())))
                .collect(),
        );
    }
    let who = TxnCommitter {
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        member_id: req.member_id.as_str(),
        instance_id: req.group_instance_id.as_deref(),
        generation: req.generation_id,
    };
    let staged = stage(ctx, &req, version, who, partitions.clone()).await;
    let results = match staged {
        Ok(r) => r,
        // A group or transaction error replaces the result of every forwarded partition.
        Err(e) => partitions
            .into_iter()
            .zip(forwarded)
            .map(|((t, p, r), fwd)| (t, p, if fwd { Err(e) } else { r.map(|_| ()) }))
            .collect(),
    };
    response(results)
}

/// Verifies the transaction holds the group (once per producer transaction in the group), then
/// stages the offsets.
async fn stage(
    ctx: &RequestContext,
    req: &TxnOffsetCommitRequest,
    version: i16,
    who: TxnCommitter<'_>,
    partitions: Partitions,
) -> Result<Vec<(String, i32, Result<(), KafkaError>)>, KafkaError> {
    let groups = &ctx.broker.groups;
    let group = req.group_id.as_str();
    if !groups.txn_open(group, who.producer_id, who.producer_epoch)? {
        ctx.broker
            .admit_to_transaction(
                req.transactional_id.as_str(),
                who.producer_id,
                who.producer_epoch,
                TxnTarget::Group(group),
                version >= IMPLICIT_ADD_VERSION,
            )
            .await
            .map_err(|e| verification_error(e, version))
            .map_err(coordinator_error)?;
    }
    groups.txn_offset_commit(group, who, partitions)
}

/// How Kafka's verification (`AddPartitionsToTxnManager`) reports a failed check to the group
/// coordinator's callers: a fenced producer as INVALID_PRODUCER_EPOCH (what producers handle
/// there), and TRANSACTION_ABORTABLE as INVALID_TXN_STATE to clients older than v4.
fn verification_error(e: KafkaError, version: i16) -> KafkaError {
    match e {
        KafkaError::ProducerFenced => KafkaError::InvalidProducerEpoch,
        KafkaError::TransactionAbortable if version < 4 => KafkaError::InvalidTxnState,
        e => e,
    }
}

/// Kafka's `handleOperationException`: errors of the write path clients of the group
/// coordinator don't expect become the coordinator errors they retry on.
fn coordinator_error(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::UnknownTopicOrPartition
        | KafkaError::NotEnoughReplicas
        | KafkaError::RequestTimedOut => KafkaError::CoordinatorNotAvailable,
        KafkaError::NotLeaderOrFollower | KafkaError::KafkaStorageError => {
            KafkaError::NotCoordinator
        }
        KafkaError::MessageTooLarge | KafkaError::RecordListTooLarge => {
            KafkaError::UnknownServerError
        }
        e => e,
    }
}

/// WRITE on the transactional id, READ on the group and on every topic, in one decision:
/// (transactional id allowed, group allowed, denied topics).
async fn authorize(
    ctx: &RequestContext,
    req: &TxnOffsetCommitRequest,
) -> (bool, bool, std::collections::HashSet<String>) {
    if authz::allow_all(ctx) {
        return (true, true, Default::default());
    }
    let mut names: Vec<&str> = req.topics.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut actions = vec![
        (
            Operation::Write,
            ResourceType::TransactionalId,
            req.transactional_id.as_str(),
        ),
        (Operation::Read, ResourceType::Group, req.group_id.as_str()),
    ];
    actions.extend(
        names
            .iter()
            .map(|n| (Operation::Read, ResourceType::Topic, *n)),
    );
    let decisions = authz::authorize(ctx, "TxnOffsetCommit", &actions).await;
    let denied = names
        .iter()
        .zip(decisions.iter().skip(2))
        .filter(|(_, ok)| !**ok)
        .map(|(n, _)| n.to_string())
        .collect();
    let allowed = |i: usize| decisions.get(i).copied().unwrap_or(false);
    (allowed(0), allowed(1), denied)
}

fn partition_exists(ctx: &RequestContext, topic: &str, partition: i32) -> bool {
    ctx.broker
        .topic(topic)
        .is_some_and(|t| t.partition(partition).is_some())
}

/// Partitions grouped by topic in request order.
fn response(results: Vec<(String, i32, Result<(), KafkaError>)>) -> TxnOffsetCommitResponse {
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (topic, partition, r) in results {
        let part = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(crate::error::code_of(&r));
        match topics.last_mut() {
            Some(t) if *t.name == *topic => t.partitions.push(part),
            _ => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

#[cfg(test)]
#[path = "txn_offsets_tests.rs"]
mod tests;
