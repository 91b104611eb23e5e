//! The share partitions this instance leads, each loaded from its document on first use and
//! saved (compare-and-set) after every change that must survive a restart.
//!
//! A share partition is served by the leader of its topic partition (ShareFetch goes there).
//! Its state is a document (`storage::Metadata::share_state`), which every instance can read:
//! when leadership moves (a Pulsar takeover), the new leader loads the state the old one saved,
//! and a save is conditional on the document still holding what this instance last read or
//! wrote — an instance that lost the partition without noticing cannot overwrite its
//! successor's state (its save fails, it forgets what it held and answers the request with
//! NOT_LEADER_OR_FOLLOWER). The cached state is keyed by the partition log's generation too
//! (bumped on every step-down), so a partition that comes back after a takeover is reloaded.
//!
//! A save is made before the answer of every acknowledgement (an accepted record is never
//! delivered again, even after kill -9), of every lock that expired or was released, and when
//! a share partition starts (so its start does not move with the log's end on a restart).
//! Acquisitions are not saved: after a crash a record that was acquired and not acknowledged
//! is delivered again, as Kafka allows.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use uuid::Uuid;

use super::partition::{ShareLimits, SharePartition};
use super::state_doc;
use crate::error::KafkaError;
use crate::storage::Metadata;

/// Where a share partition with no stored state starts (`share.auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    Latest,
    Earliest,
    /// `by_duration:<duration>`: the first record at most this many milliseconds old (the log
    /// end if there is none), as Kafka's ListOffsets by timestamp finds it.
    ByDuration(i64),
}

/// What a share group runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareSettings {
    pub limits: ShareLimits,
    pub auto_offset_reset: AutoOffsetReset,
    /// `share.isolation.level=read_committed`: deliver up to the last stable offset, archive
    /// the records of aborted transactions.
    pub read_committed: bool,
    /// `share.renew.acknowledge.enable` (KIP-1222, default true): RENEW acknowledgements are
    /// taken.
    pub renew_enabled: bool,
}

impl Default for ShareSettings {
    fn default() -> Self {
        ShareSettings {
            limits: ShareLimits::default(),
            auto_offset_reset: AutoOffsetReset::Latest,
            read_committed: false,
            renew_enabled: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// A stored share partition's start offset and done offsets in flight (`summaries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub topic_id: Uuid,
    pub partition: i32,
    pub start: i64,
    /// `SharePartition::delivery_complete_count`.
    pub delivery_complete: i64,
}

impl Summary {
    /// KIP-1226's lag given the partition's high watermark (`SharePartition::lag`).
    pub fn lag(&self, high_watermark: i64) -> i64 {
        super::partition::lag(high_watermark, self.start, self.delivery_complete)
    }
}

pub struct Slot {
    /// None until loaded (or after a failed save: reloaded on next use).
    pub state: Option<SharePartition>,
    /// The partition log's generation the state was loaded under.
    generation: u64,
    /// What the document holds as far as this instance knows (the compare-and-set base).
    stored: Option<Vec<u8>>,
}

pub struct ShareStates {
    metadata: Arc<Metadata>,
    defaults: ShareSettings,
    slots: Mutex<HashMap<ShareKey, Arc<Mutex<Slot>>>>,
}

/// A locked, loaded share partition. Changes are saved with `ShareStates::save`.
pub struct Locked {
    slot: Arc<Mutex<Slot>>,
}

impl Locked {
    pub fn guard(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock()
    }
}

impl Slot {
    /// The loaded state (a `Locked` always has one).
    pub fn sp(&mut self) -> &mut SharePartition {
        self.state.get_or_insert_with(|| SharePartition::new(0))
    }
}

impl ShareStates {
    pub fn new(metadata: Arc<Metadata>, defaults: ShareSettings) -> ShareStates {
        ShareStates {
            metadata,
            defaults,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The broker's defaults for share groups (a group's own configs apply over them:
    /// `ShareCoordinator::settings`).
    pub fn defaults(&self) -> ShareSettings {
        self.defaults
    }

    fn slot(&self, key: &ShareKey) -> Arc<Mutex<Slot>> {
        self.slots
            .lock()
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Slot {
                    state: None,
                    generation: 0,
                    stored: None,
                }))
            })
            .clone()
    }

    /// The share partition, loaded (or started at `start_if_new`, where
    /// `share.auto.offset.reset` puts it, and saved) if this instance did not hold it under
    /// this log generation.
    pub fn load(
        &self,
        key: &ShareKey,
        generation: u64,
        start_if_new: &dyn Fn() -> i64,
    ) -> Result<Locked, KafkaError> {
        let slot = self.slot(key);
        {
            let mut s = slot.lock();
            if s.state.is_none() || s.generation != generation {
                s.state = None;
                let stored = self
                    .metadata
                    .share_state(&key.group, key.topic_id, key.partition)?;
                let sp = match &stored {
                    Some(bytes) => state_doc::decode(bytes).map_err(|e| {
                        tracing::error!(group = %key.group, topic = %key.topic_id, partition = key.partition, "share state unreadable: {e}");
                        KafkaError::UnknownServerError
                    })?,
                    None => SharePartition::new(start_if_new()),
                };
                s.stored = stored;
                s.generation = generation;
                s.state = Some(sp);
                if s.stored.is_none() {
                    self.save_slot(key, &mut s)?;
                }
            }
        }
        Ok(Locked { slot })
    }

    /// Starts a share partition at `start` unless it has a stored state (a group's first
    /// assignment of the partition, as Kafka initializes share partitions then).
    pub fn initialize(&self, key: &ShareKey, start: i64) -> Result<(), KafkaError> {
        let bytes = state_doc::encode(&SharePartition::new(start));
        self.metadata.save_share_state(
            &key.group,
            key.topic_id,
            key.partition,
            Some(&bytes),
            None,
        )?;
        Ok(())
    }

    /// Saves the state if it changed. A failed compare-and-set means another instance wrote
    /// the document: this one forgets its copy and answers NOT_LEADER_OR_FOLLOWER.
    pub fn save(&self, key: &ShareKey, locked: &Locked) -> Result<(), KafkaError> {
        let mut s = locked.slot.lock();
        self.save_slot(key, &mut s)
    }

    fn save_slot(&self, key: &ShareKey, s: &mut Slot) -> Result<(), KafkaError> {
        let Some(sp) = &s.state else {
            return Ok(());
        };
        let bytes = state_doc::encode(sp);
        if s.stored.as_deref() == Some(bytes.as_slice()) {
            return Ok(());
        }
        let saved = self.metadata.save_share_state(
            &key.group,
            key.topic_id,
            key.partition,
            Some(&bytes),
            s.stored.as_deref(),
        );
        match saved {
            Ok(true) => {
                s.stored = Some(bytes);
                Ok(())
            }
            Ok(false) => {
                tracing::warn!(group = %key.group, topic = %key.topic_id, partition = key.partition,
                    "share state changed by another instance; reloading it");
                s.state = None;
                Err(KafkaError::NotLeaderOrFollower)
            }
            Err(e) => {
                s.state = None;
                Err(e.into())
            }
        }
    }

    /// The share partitions of a group held here.
    pub fn held(&self, group: &str) -> Vec<ShareKey> {
        self.slots
            .lock()
            .keys()
            .filter(|k| k.group == group)
            .cloned()
            .collect()
    }

    /// Releases the records `member` holds in the group's share partitions held here (its
    /// session closed or it left the group) and saves what changed.
    pub fn release_member(&self, group: &str, member: &str, limits: &ShareLimits) {
        for key in self.held(group) {
            let slot = self.slot(&key);
            let mut s = slot.lock();
            let released = s
                .state
                .as_mut()
                .is_some_and(|sp| sp.release_member(member, limits));
            if released {
                let _ = self.save_slot(&key, &mut s);
            }
        }
    }

    /// A group's stored share-partition start offsets: (topic id, partition, start).
    pub fn start_offsets(&self, group: &str) -> Result<Vec<(Uuid, i32, i64)>, KafkaError> {
        Ok(self
            .summaries(group)?
            .into_iter()
            .map(|s| (s.topic_id, s.partition, s.start))
            .collect())
    }

    /// What a group's stored share-partition states say (Kafka's ReadShareGroupStateSummary).
    /// Read from the documents, which every instance can read and which the leader saves
    /// before answering each acknowledgement and on every archive: only acquisitions are
    /// missing, and they are not in the summary (as in Kafka, which persists the same).
    pub fn summaries(&self, group: &str) -> Result<Vec<Summary>, KafkaError> {
        let mut out = Vec::new();
        for (topic_id, partition) in self.metadata.share_states(group)? {
            if let Some(bytes) = self.metadata.share_state(group, topic_id, partition)? {
                if let Ok(sp) = state_doc::decode(&bytes) {
                    out.push(Summary {
                        topic_id,
                        partition,
                        start: sp.start(),
                        delivery_complete: sp.delivery_complete_count(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Resets a share partition to start at `start` (AlterShareGroupOffsets) or deletes its
    /// state (None: DeleteShareGroupOffsets); the group must have no members (checked by the
    /// caller). Forgets any copy held here.
    pub fn reset(&self, key: &ShareKey, start: Option<i64>) -> Result<(), KafkaError> {
        let slot = self.slot(key);
        let mut s = slot.lock();
        s.state = None;
        let current = self
            .metadata
            .share_state(&key.group, key.topic_id, key.partition)?;
        let bytes = start.map(|o| state_doc::encode(&SharePartition::new(o)));
        if !self.metadata.save_share_state(
            &key.group,
            key.topic_id,
            key.partition,
            bytes.as_deref(),
            current.as_deref(),
        )? {
            return Err(KafkaError::CoordinatorNotAvailable);
        }
        Ok(())
    }

    /// The share partitions a group has a stored state for: (topic id, partition).
    pub fn stored(&self, group: &str) -> Result<Vec<(Uuid, i32)>, KafkaError> {
        Ok(self.metadata.share_states(group)?)
    }

    /// Deletes every stored share-partition state of a group (DeleteGroups).
    pub fn delete_group(&self, group: &str) -> Result<(), KafkaError> {
        for (topic_id, partition) in self.stored(group)? {
            let key = ShareKey {
                group: group.to_string(),
                topic_id,
                partition,
            };
            self.reset(&key, None)?;
        }
        self.slots.lock().retain(|k, _| k.group != group);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryDocuments;

    fn key() -> ShareKey {
        ShareKey {
            group: "g/with slash".into(),
            topic_id: Uuid::from_u128(9),
            partition: 0,
        }
    }

    /// Two instances over one storage, as on Pulsar: the partition moves from `a` to `b`
    /// (a takeover bumps the log generation); `b` continues from what `a` saved, and `a`,
    /// which has not noticed, cannot overwrite `b`'s state.
    #[test]
    fn the_new_leader_continues_from_the_saved_state_and_fences_the_old_one() {
        let meta = Arc::new(Metadata::new(Arc::new(MemoryDocuments::default())));
        let settings = ShareSettings::default();
        let limits = settings.limits;
        let a = ShareStates::new(meta.clone(), settings);
        let b = ShareStates::new(meta.clone(), settings);
        let batches: Vec<(i64, i64, bool)> = (0..4).map(|o| (o, o, true)).collect();
        // a starts the share partition at the log end (latest): 0 here.
        let la = a.load(&key(), 1, &|| 0).unwrap();
        la.guard().sp().acquire("m1", &batches, 10, 0, &limits);
        la.guard()
            .sp()
            .acknowledge("m1", 0, 1, &[1], &limits)
            .unwrap();
        a.save(&key(), &la).unwrap();
        // b takes over: 0-1 accepted, 2-3 were acquired at a and are available again.
        let lb = b.load(&key(), 7, &|| 4).unwrap();
        let got = lb.guard().sp().acquire("m2", &batches, 10, 0, &limits);
        assert_eq!(
            (got[0].first, got[0].last, got[0].delivery_count),
            (2, 3, 2)
        );
        lb.guard()
            .sp()
            .acknowledge("m2", 2, 3, &[1], &limits)
            .unwrap();
        b.save(&key(), &lb).unwrap();
        // a still holds its copy: its save is refused and it forgets the copy.
        la.guard()
            .sp()
            .acknowledge("m1", 2, 3, &[3], &limits)
            .unwrap();
        assert_eq!(a.save(&key(), &la), Err(KafkaError::NotLeaderOrFollower));
        assert!(la.guard().state.is_none());
        let again = a.load(&key(), 1, &|| 4).unwrap();
        assert_eq!(again.guard().sp().start(), 4);
        assert_eq!(
            a.start_offsets("g/with slash").unwrap(),
            vec![(key().topic_id, 0, 4)]
        );
    }
}
