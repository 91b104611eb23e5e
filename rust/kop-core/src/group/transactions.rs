//! The group coordinator's part in transactions: TxnOffsetCommit stages offsets in a
//! producer's transaction (`txn_offsets.rs`), and the transaction coordinator ends them with
//! `complete_txn` when it writes the transaction's markers.

use super::state::{Group, OffsetEntry};
use super::GroupCoordinator;
use crate::error::KafkaError;

/// Who stages offsets with a TxnOffsetCommit: the transaction's producer, and (v3+) the
/// consumer group member it commits for (generation -1, empty member: none).
#[derive(Debug, Clone, Copy)]
pub struct TxnCommitter<'a> {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
}

/// A group created by this very request: nothing is kept in it yet.
fn is_new(g: &Group) -> bool {
    g.is_unused()
}

impl GroupCoordinator {
    /// Whether `producer_id` already has offsets pending in `group_id` at this epoch: its
    /// transaction holds the group, so a further TxnOffsetCommit needs no verification with
    /// the transaction coordinator. Err(NOT_COORDINATOR / INVALID_GROUP_ID) as `admit`.
    pub fn txn_open(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<bool, KafkaError> {
        self.admit(group_id)?;
        let groups = self
            .shard_for(group_id)
            .lock_active()
            .ok_or(KafkaError::NotCoordinator)?;
        Ok(groups
            .get(group_id)
            .is_some_and(|g| g.txn_open(producer_id, producer_epoch)))
    }

    /// TxnOffsetCommit (after the transaction was verified): validates the member as Kafka
    /// does for transactional commits, then stages each accepted offset in the producer's
    /// transaction; answers once they are durable. A group that does not exist is created for
    /// a commit without generation (admin tools, assign()) and is ILLEGAL_GENERATION otherwise.
    /// `offsets`: (topic, partition, entry); per-partition failures found by the caller arrive
    /// as `Err` entries and are echoed back.
    #[allow(clippy::type_complexity)]
    pub fn txn_offset_commit(
        &self,
        group_id: &str,
        who: TxnCommitter<'_>,
        offsets: Vec<(String, i32, Result<OffsetEntry, KafkaError>)>,
    ) -> Result<Vec<(String, i32, Result<(), KafkaError>)>, KafkaError> {
        self.admit(group_id)?;
        self.with_group(group_id, true, |g| {
            if who.generation >= 0 && is_new(g) {
                return Err(KafkaError::IllegalGeneration);
            }
            g.validate_txn_commit(who.member_id, who.instance_id, who.generation)?;
            g.fence_older_txn(who.producer_id, who.producer_epoch)?;
            Ok(offsets
                .into_iter()
                .map(|(topic, p, entry)| {
                    let r = entry.map(|e| {
                        g.stage_txn_offset(who.producer_id, who.producer_epoch, &topic, p, e)
                    });
                    (topic, p, r)
                })
                .collect())
        })?
    }

    /// Ends `producer_id`'s pending offsets in `group_id` (called by the transaction
    /// coordinator when it writes the transaction's markers): commit makes them the committed
    /// offsets (unless a plain commit of the partition came after them), abort drops them.
    /// Durable when it returns (a record in the group log). Idempotent: with nothing pending
    /// (already completed, never committed, or the group deleted meanwhile) it writes nothing
    /// and returns once the shard's earlier writes are durable. Err(NOT_COORDINATOR) if this
    /// instance does not coordinate the group's shard; Err(COORDINATOR_NOT_AVAILABLE) if the
    /// store failed (the shard is reloaded; call again).
    pub async fn complete_txn(
        &self,
        group_id: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), KafkaError> {
        if group_id.is_empty() {
            return Ok(()); // no offsets can be pending there
        }
        self.admit(group_id)?;
        match self.with_group(group_id, false, |g| g.complete_txn(producer_id, commit)) {
            Ok(true) => {
                tracing::debug!(group = group_id, producer_id, commit, "transaction ended");
                Ok(())
            }
            Ok(false) | Err(KafkaError::GroupIdNotFound) => self.writes_settled(group_id),
            Err(e) => Err(e),
        }
    }

    /// Ends `producer_id`'s pending offsets in every group of `shard`: what a transaction
    /// marker on a `__consumer_offsets` partition does in Kafka (WriteTxnMarkers from a peer
    /// kop instance whose transaction coordinator names only the partition). Durable when it
    /// returns; idempotent as `complete_txn`.
    pub async fn complete_txn_in_shard(
        &self,
        shard: usize,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), KafkaError> {
        let s = self
            .shards
            .get(shard)
            .ok_or(KafkaError::UnknownTopicOrPartition)?;
        let ticket = {
            let mut groups = s.lock_active().ok_or(KafkaError::NotCoordinator)?;
            let mut writes = Vec::new();
            for g in groups.values_mut() {
                if g.complete_txn(producer_id, commit) {
                    writes.append(&mut g.writes);
                }
            }
            if writes.is_empty() {
                Some(s.barrier())
            } else {
                s.enqueue(writes)
            }
        };
        self.stored(shard, ticket)?;
        if s.is_active() {
            Ok(())
        } else {
            Err(KafkaError::CoordinatorNotAvailable)
        }
    }

    /// Waits until every write queued so far on the group's shard is stored: a repeated
    /// completion answers only once the first one's record is durable.
    fn writes_settled(&self, group_id: &str) -> Result<(), KafkaError> {
        let shard = self.shard_of(group_id);
        let s = &self.shards[shard];
        let ticket = {
            let _groups = s.lock_active().ok_or(KafkaError::NotCoordinator)?;
            s.barrier()
        };
        self.stored(shard, Some(ticket))?;
        if s.is_active() {
            Ok(())
        } else {
            // An earlier write failed and the shard is being reloaded.
            Err(KafkaError::CoordinatorNotAvailable)
        }
    }
}
