//! Committed offsets of a group: commit validation, fetch, delete and retention (KIP-211).

use super::classic::GroupState;
use super::state::{Group, GroupKind, OffsetEntry};
use super::store::{GroupRecord, OffsetRecord};
use crate::error::KafkaError;

/// Kafka's `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// Kafka's `validateOffsetCommit` of the member-epoch kinds (consumer and streams groups): a
/// commit with no member id and a negative epoch (admin tools, assign()-only consumers) to a
/// group without members is taken; otherwise the member must be in the group at that epoch.
pub fn validate_member_epoch(
    member_epoch: Option<i32>,
    group_is_empty: bool,
    member_id: &str,
    epoch: i32,
) -> Result<(), KafkaError> {
    if epoch < 0 && member_id.is_empty() && group_is_empty {
        return Ok(());
    }
    match member_epoch {
        None => Err(KafkaError::UnknownMemberId),
        Some(current) if current != epoch => Err(KafkaError::StaleMemberEpoch),
        Some(_) => Ok(()),
    }
}

impl Group {
    /// Whether this member may commit at this generation (Kafka's `validateOffsetCommit`).
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), KafkaError> {
        let c = match &self.kind {
            GroupKind::Consumer(m) => return m.validate_commit(member_id, generation),
            GroupKind::Streams(s) => return s.validate_commit(member_id, generation),
            // A share group commits no offsets (its progress is the share partitions' state).
            GroupKind::Share(_) => return Err(KafkaError::GroupIdNotFound),
            GroupKind::Classic(c) => c,
        };
        if c.state == GroupState::Dead {
            return Err(KafkaError::CoordinatorNotAvailable);
        }
        if generation < 0 && c.state == GroupState::Empty {
            // Admin tools and assign()-only consumers.
            return Ok(());
        }
        c.validate_member(member_id, instance_id)?;
        if generation != c.generation {
            return Err(KafkaError::IllegalGeneration);
        }
        if c.state == GroupState::CompletingRebalance {
            return Err(KafkaError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Stores one committed offset (queued for durability).
    pub fn commit(&mut self, topic: &str, partition: i32, entry: OffsetEntry) {
        self.writes.push(GroupRecord::Offset(OffsetRecord {
            group: self.id.clone(),
            topic: topic.to_string(),
            partition,
            offset: entry.offset,
            leader_epoch: entry.leader_epoch,
            metadata: entry.metadata.clone(),
            commit_ms: entry.commit_ms,
        }));
        self.apply_commit(topic, partition, entry);
    }

    pub fn committed(&self, topic: &str, partition: i32) -> Option<&OffsetEntry> {
        self.offsets.get(&(topic.to_string(), partition))
    }

    /// Every partition with a committed offset, grouped by topic.
    pub fn committed_topics(&self) -> Vec<(String, Vec<i32>)> {
        let mut out: Vec<(String, Vec<i32>)> = Vec::new();
        for (topic, partition) in self.offsets.keys() {
            match out.last_mut() {
                Some((t, ps)) if t == topic => ps.push(*partition),
                _ => out.push((topic.clone(), vec![*partition])),
            }
        }
        out
    }

    /// Removes a partition's committed offset and the offsets pending for it in transactions
    /// (Kafka's offset tombstone); queues the removal if there was either.
    fn drop_offset(&mut self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        let committed = self.offsets.remove(&key).is_some();
        self.txn.committed_seq.remove(&key);
        let removed = self.txn.drop_partition(topic, partition) | committed;
        if removed {
            self.writes.push(GroupRecord::OffsetRemoved {
                group: self.id.clone(),
                topic: topic.to_string(),
                partition,
            });
        }
        removed
    }

    /// OffsetDelete: the group-level check, then per partition whether it may be deleted.
    pub fn delete_offsets(
        &mut self,
        topics: &[(String, Vec<i32>)],
    ) -> Result<Vec<Vec<Result<(), KafkaError>>>, KafkaError> {
        if self.is_dead() {
            return Err(KafkaError::GroupIdNotFound);
        }
        let subscribed = if self.is_empty() {
            Vec::new()
        } else {
            self.subscribed_topics().ok_or(KafkaError::NonEmptyGroup)?
        };
        Ok(topics
            .iter()
            .map(|(topic, partitions)| {
                partitions
                    .iter()
                    .map(|&p| {
                        if subscribed.contains(topic) {
                            Err(KafkaError::GroupSubscribedToTopic)
                        } else {
                            self.drop_offset(topic, p);
                            Ok(())
                        }
                    })
                    .collect()
            })
            .collect())
    }

    /// Removes every offset of a deleted topic.
    pub fn remove_topic(&mut self, topic: &str) {
        let pending = self.txn.pending.values().flat_map(|p| p.offsets.keys());
        let mut doomed: Vec<i32> = self
            .offsets
            .keys()
            .chain(pending)
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| *p)
            .collect();
        doomed.sort_unstable();
        doomed.dedup();
        for p in doomed {
            self.drop_offset(topic, p);
        }
    }

    /// Kafka's offset retention: offsets of an empty group expire `retention_ms` after the group
    /// became empty (or after the commit, for groups that never had members); offsets of topics
    /// a consumer group no longer subscribes to expire after the commit. An offset with a
    /// transaction pending on its partition does not expire yet (as Kafka). Returns how many
    /// expired.
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> usize {
        let subscribed = if self.is_empty() {
            Some(Vec::new())
        } else {
            self.subscribed_topics()
        };
        let Some(subscribed) = subscribed else {
            return 0;
        };
        let empty_consumer_group = self.is_empty() && self.is_consumer_protocol();
        let state_since = self.state_since_ms();
        let doomed: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|((topic, partition), e)| {
                if subscribed.contains(topic) || self.txn.is_pending(topic, *partition) {
                    return false;
                }
                let base = if empty_consumer_group {
                    state_since.max(e.commit_ms)
                } else {
                    e.commit_ms
                };
                now_ms.saturating_sub(base) >= retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (t, p) in &doomed {
            self.drop_offset(t, *p);
        }
        doomed.len()
    }
}
