//! Completing a decided transaction: a COMMIT or ABORT marker on every partition it wrote to
//! and its offsets committed or dropped in every group it committed to, all at once.
//!
//! The coordinator reaches partitions and groups through `TxnParticipants` (implemented by the
//! broker in `broker/txn_markers.rs`, by a fake in tests).

use std::future::Future;

use super::state::{TopicPartition, TxnMeta, TxnStatus};
use crate::error::KafkaError;
use crate::records::control::ControlKind;

/// What the coordinator needs of the rest of the broker.
pub trait TxnParticipants: Send + Sync {
    /// A producer id never handed out before.
    fn next_producer_id(&self) -> Result<i64, KafkaError>;
    /// Writes a marker on each partition, durably when it completes; one result per
    /// partition, in order.
    fn write_markers(
        &self,
        partitions: &[TopicPartition],
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlKind,
    ) -> impl Future<Output = Vec<Result<(), KafkaError>>> + Send;
    /// Commits or drops the producer's pending offsets in one group, durably.
    fn complete_group(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> impl Future<Output = Result<(), KafkaError>> + Send;
}

/// Writes every marker and completes every group of a prepared transaction. A partition that
/// no longer exists is skipped (Kafka drops markers of deleted partitions too); any other
/// failure is returned and the whole completion is tried again later (a second marker for the
/// same transaction is harmless: readers skip markers of producers with no open transaction).
pub async fn write_markers<P: TxnParticipants>(
    participants: &P,
    meta: &TxnMeta,
) -> Result<(), KafkaError> {
    let commit = meta.status == TxnStatus::PrepareCommit;
    let kind = if commit {
        ControlKind::Commit
    } else {
        ControlKind::Abort
    };
    let partitions: Vec<TopicPartition> = meta.partitions.iter().cloned().collect();
    let markers = async {
        let written = participants
            .write_markers(&partitions, meta.producer_id, meta.producer_epoch, kind)
            .await;
        partitions
            .iter()
            .zip(written)
            .map(|((topic, partition), w)| match w {
                Err(KafkaError::UnknownTopicOrPartition) => {
                    tracing::debug!(topic, partition, "no marker for a deleted partition");
                    Ok(())
                }
                other => other,
            })
            .collect::<Vec<_>>()
    };
    let groups = meta
        .groups
        .iter()
        .map(|g| participants.complete_group(g, meta.producer_id, commit));
    let (markers, groups) = futures::future::join(markers, futures::future::join_all(groups)).await;
    markers.into_iter().chain(groups).collect()
}
