//! A group's offsets pending in producers' transactions (TxnOffsetCommit, Kafka's
//! `OffsetMetadataManager` pending transactional offsets).
//!
//! A transactional commit is staged per producer id and is invisible to OffsetFetch (which,
//! with `require_stable`, answers UNSTABLE_OFFSET_COMMIT for such a partition) until the
//! transaction coordinator ends the transaction: commit makes the staged offsets the committed
//! ones, abort drops them. A staged offset replaces the committed one only if it was written
//! after it: every offset write of a group gets a sequence number (its place in the group's
//! record order, which the store keeps and compaction preserves), and a plain OffsetCommit made
//! after the transactional one wins, as in Kafka (which compares the records' log offsets).

use std::collections::{BTreeMap, HashMap};

use super::classic::GroupState;
use super::state::{Group, GroupKind, OffsetEntry};
use super::store::{GroupRecord, OffsetRecord, TxnOffsetRecord};
use crate::error::KafkaError;

/// An offset staged in a transaction, with its place in the group's write order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub entry: OffsetEntry,
    pub seq: u64,
}

/// One producer's open transaction in a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingTxn {
    pub producer_epoch: i16,
    pub offsets: BTreeMap<(String, i32), Staged>,
}

/// The transactional side of a group's offsets.
#[derive(Debug, Default)]
pub struct TxnOffsets {
    /// Producer id -> its offsets pending in its open transaction.
    pub pending: BTreeMap<i64, PendingTxn>,
    /// The write order of each committed offset (see the module documentation).
    pub committed_seq: HashMap<(String, i32), u64>,
    /// The next offset write's sequence number.
    pub next_seq: u64,
}

impl TxnOffsets {
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Whether any open transaction has an offset for the partition.
    pub fn is_pending(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending.values().any(|p| p.offsets.contains_key(&key))
    }

    /// Drops every staged offset of the partition (a tombstone: OffsetDelete, a deleted topic,
    /// as Kafka's replay of an offset tombstone does); true if there was one.
    pub fn drop_partition(&mut self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        let mut dropped = false;
        for p in self.pending.values_mut() {
            dropped |= p.offsets.remove(&key).is_some();
        }
        // A transaction left with nothing staged holds the group for nothing.
        self.pending.retain(|_, p| !p.offsets.is_empty());
        dropped
    }
}

impl Group {
    /// Whether a TxnOffsetCommit of this member may stage offsets (Kafka's
    /// `validateOffsetCommit` with `isTransactional`: no group state is enforced, and a
    /// consumer group's stale member epoch is an ILLEGAL_GENERATION).
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), KafkaError> {
        let c = match &self.kind {
            GroupKind::Consumer(m) => {
                let epoch = m.members.get(member_id).map(|x| x.epoch);
                return txn_member_epoch(epoch, m.members.is_empty(), generation);
            }
            GroupKind::Streams(s) => {
                let epoch = s.members.get(member_id).map(|x| x.epoch);
                return txn_member_epoch(epoch, s.members.is_empty(), generation);
            }
            GroupKind::Share(_) => return Err(KafkaError::GroupIdNotFound),
            GroupKind::Classic(c) => c,
        };
        if c.state == GroupState::Dead {
            return Err(KafkaError::CoordinatorNotAvailable);
        }
        if generation < 0 && c.state == GroupState::Empty {
            return Ok(());
        }
        // Before v3 there is no member: such commits are accepted in any state.
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            c.validate_member(member_id, instance_id)?;
            if generation != c.generation {
                return Err(KafkaError::IllegalGeneration);
            }
        }
        Ok(())
    }

    /// Whether `producer_id` has an open transaction here at `producer_epoch` (then a further
    /// commit of it needs no verification with the transaction coordinator).
    pub fn txn_open(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.txn
            .pending
            .get(&producer_id)
            .is_some_and(|p| p.producer_epoch == producer_epoch)
    }

    /// The producer epoch check of a staged write (Kafka's producer state on the offsets
    /// partition): an older epoch than the one already staged is a zombie
    /// (INVALID_PRODUCER_EPOCH); a newer one means the staged transaction has ended (fenced or
    /// completed), so what it left here is dropped — e.g. a zombie's offsets that arrived after
    /// its transaction was aborted must not join its successor's.
    pub fn fence_older_txn(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), KafkaError> {
        match self.txn.pending.get(&producer_id).map(|p| p.producer_epoch) {
            Some(staged) if producer_epoch < staged => Err(KafkaError::InvalidProducerEpoch),
            Some(staged) if producer_epoch > staged => {
                tracing::info!(group = %self.id, producer_id, staged, producer_epoch, "dropping offsets staged at an older producer epoch");
                self.complete_txn(producer_id, false);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Stages one offset in `producer_id`'s transaction (queued for durability).
    pub fn stage_txn_offset(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
        entry: OffsetEntry,
    ) {
        self.writes.push(GroupRecord::TxnOffset(TxnOffsetRecord {
            group: self.id.clone(),
            producer_id,
            producer_epoch,
            topic: topic.to_string(),
            partition,
            offset: entry.offset,
            leader_epoch: entry.leader_epoch,
            metadata: entry.metadata.clone(),
            commit_ms: entry.commit_ms,
        }));
        self.apply_txn_offset(producer_id, producer_epoch, topic, partition, entry);
    }

    pub(super) fn apply_txn_offset(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
        entry: OffsetEntry,
    ) {
        let seq = self.txn.take_seq();
        let txn = self.txn.pending.entry(producer_id).or_default();
        txn.producer_epoch = producer_epoch;
        txn.offsets
            .insert((topic.to_string(), partition), Staged { entry, seq });
    }

    /// Ends `producer_id`'s transaction here (queued for durability); false if it had
    /// nothing pending (then nothing is written: a repeated completion is a no-op).
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) -> bool {
        if !self.apply_txn_end(producer_id, commit) {
            return false;
        }
        self.writes.push(GroupRecord::TxnEnd {
            group: self.id.clone(),
            producer_id,
            commit,
        });
        true
    }

    pub(super) fn apply_txn_end(&mut self, producer_id: i64, commit: bool) -> bool {
        let Some(txn) = self.txn.pending.remove(&producer_id) else {
            return false;
        };
        if commit {
            for (key, staged) in txn.offsets {
                let newer = self
                    .txn
                    .committed_seq
                    .get(&key)
                    .is_none_or(|&seq| staged.seq > seq);
                if newer {
                    self.txn.committed_seq.insert(key.clone(), staged.seq);
                    self.offsets.insert(key, staged.entry);
                }
            }
        }
        true
    }

    /// A plain offset write: the committed offset and its place in the write order.
    pub(super) fn apply_commit(&mut self, topic: &str, partition: i32, entry: OffsetEntry) {
        let seq = self.txn.take_seq();
        let key = (topic.to_string(), partition);
        self.txn.committed_seq.insert(key.clone(), seq);
        self.offsets.insert(key, entry);
    }

    /// The records that rebuild the group's offsets, committed and pending, in their write
    /// order (so a replay orders them as they were).
    pub(super) fn offset_records(&self) -> Vec<GroupRecord> {
        let mut out: Vec<(u64, GroupRecord)> = Vec::new();
        for ((topic, partition), e) in &self.offsets {
            let seq = self
                .txn
                .committed_seq
                .get(&(topic.clone(), *partition))
                .copied()
                .unwrap_or(0);
            out.push((
                seq,
                GroupRecord::Offset(OffsetRecord {
                    group: self.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: e.offset,
                    leader_epoch: e.leader_epoch,
                    metadata: e.metadata.clone(),
                    commit_ms: e.commit_ms,
                }),
            ));
        }
        for (&producer_id, txn) in &self.txn.pending {
            for ((topic, partition), s) in &txn.offsets {
                out.push((
                    s.seq,
                    GroupRecord::TxnOffset(TxnOffsetRecord {
                        group: self.id.clone(),
                        producer_id,
                        producer_epoch: txn.producer_epoch,
                        topic: topic.clone(),
                        partition: *partition,
                        offset: s.entry.offset,
                        leader_epoch: s.entry.leader_epoch,
                        metadata: s.entry.metadata.clone(),
                        commit_ms: s.entry.commit_ms,
                    }),
                ));
            }
        }
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, r)| r).collect()
    }
}

/// TxnOffsetCommit's check for the member-epoch kinds (consumer and streams groups): Kafka
/// answers a wrong epoch with ILLEGAL_GENERATION here (OffsetCommit says STALE_MEMBER_EPOCH).
fn txn_member_epoch(
    member_epoch: Option<i32>,
    group_is_empty: bool,
    generation: i32,
) -> Result<(), KafkaError> {
    if generation < 0 && group_is_empty {
        return Ok(());
    }
    match member_epoch {
        None => Err(KafkaError::UnknownMemberId),
        Some(epoch) if epoch == generation => Ok(()),
        Some(_) => Err(KafkaError::IllegalGeneration),
    }
}
