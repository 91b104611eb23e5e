//! The group coordinator: classic consumer groups and committed offsets.
//!
//! kop is the coordinator of every group. All groups sit behind one lock; an operation mutates
//! one `Group` (see `state.rs`, `classic.rs`, `offsets.rs`) and the records it queues are
//! appended to the `GroupStore` before the lock is released, so the store sees them in order
//! and an acknowledged commit is durable. JoinGroup and SyncGroup answers that must wait for a
//! rebalance come back over oneshot channels; `tick` runs the timers.
//!
//! Groups are split into shards, each with a store of its own: one shard on local storage, 50 on
//! Pulsar (`shard_of`, Kafka's `__consumer_offsets` partition of a group). With several kop
//! instances on one namespace each shard is coordinated by the instance that leads that
//! partition: the others hold nothing of it and answer NOT_COORDINATOR, so clients look the
//! coordinator up again.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod offsets;
pub mod state;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

pub use classic::{JoinParams, SyncParams};
pub use state::{GroupConfig, GroupState, JoinOutcome, OffsetEntry, Reply, SyncOutcome};
pub use store::{GroupRecord, GroupStore, LogGroupStore};

use crate::config::ServerConfig;
use crate::error::KafkaError;
use state::{Group, Member};
use store::from_hex;

/// Compact the store once this many bytes were appended since the last compaction.
const COMPACT_AFTER_BYTES: u64 = 64 << 20;

/// What DescribeGroups reports about a member.
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// What DescribeGroups reports about a group.
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    shards: Vec<Shard>,
    pub config: GroupConfig,
}

struct Shard {
    store: Arc<dyn GroupStore>,
    /// Whether this instance coordinates the shard's groups (loaded from its store).
    active: AtomicBool,
}

/// Kafka's `__consumer_offsets` partition of a group: `Utils.abs(groupId.hashCode()) % shards`
/// (Java's String hash; `Utils.abs` maps `i32::MIN` to 0).
pub fn shard_of(group_id: &str, shards: usize) -> usize {
    let hash = group_id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    hash.checked_abs().unwrap_or(0) as usize % shards.max(1)
}

impl GroupConfig {
    pub fn from_server(c: &ServerConfig) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(
                c.group_initial_rebalance_delay_ms.max(0) as u64,
            ),
            min_session_timeout_ms: c.group_min_session_timeout_ms,
            max_session_timeout_ms: c.group_max_session_timeout_ms,
            offsets_retention_ms: c.offsets_retention_minutes.saturating_mul(60_000),
            max_record_bytes: usize::try_from(c.message_max_bytes).unwrap_or(1_048_588),
        }
    }
}

fn valid_group_id(id: &str) -> Result<(), KafkaError> {
    if id.is_empty() {
        Err(KafkaError::InvalidGroupId)
    } else {
        Ok(())
    }
}

impl GroupCoordinator {
    /// One shard over `store`, replayed and compacted.
    pub fn open(store: Arc<dyn GroupStore>, config: GroupConfig) -> io::Result<GroupCoordinator> {
        let coordinator = GroupCoordinator::inactive(vec![store], config);
        coordinator.activate(0)?;
        Ok(coordinator)
    }

    /// One shard per store, none coordinated until `activate`.
    pub fn inactive(stores: Vec<Arc<dyn GroupStore>>, config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            groups: Mutex::new(HashMap::new()),
            shards: stores
                .into_iter()
                .map(|store| Shard {
                    store,
                    active: AtomicBool::new(false),
                })
                .collect(),
            config,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard (`__consumer_offsets` partition) of a group.
    pub fn shard_of(&self, group_id: &str) -> usize {
        shard_of(group_id, self.shards.len())
    }

    pub fn is_active(&self, shard: usize) -> bool {
        self.shards
            .get(shard)
            .is_some_and(|s| s.active.load(Ordering::Acquire))
    }

    fn store_of(&self, group_id: &str) -> &dyn GroupStore {
        &*self.shards[self.shard_of(group_id)].store
    }

    /// Stops coordinating a shard: forgets its groups (another instance loads them) and lets
    /// go of its store.
    pub fn deactivate(&self, shard: usize) {
        let mut groups = self.groups.lock();
        let Some(s) = self.shards.get(shard) else {
            return;
        };
        if !s.active.swap(false, Ordering::AcqRel) {
            return;
        }
        groups.retain(|id, _| self.shard_of(id) != shard);
        drop(groups);
        if let Err(e) = s.store.release() {
            tracing::warn!(shard, error = %e, "releasing a group store failed");
        }
        tracing::info!(shard, "no longer the coordinator of this group shard");
    }

    /// Starts coordinating a shard: replays its store and compacts it.
    /// Called by one thread at a time (broker start, then the cluster check).
    pub fn activate(&self, shard: usize) -> io::Result<()> {
        let Some(s) = self.shards.get(shard) else {
            return Ok(());
        };
        if s.active.load(Ordering::Acquire) {
            return Ok(());
        }
        // Loaded without the groups lock (the other shards keep serving); nothing writes this
        // shard meanwhile, as it is not active.
        let records = s.store.load()?;
        let now = Instant::now();
        let now_ms = crate::now_ms();
        let mut groups: HashMap<String, Group> = HashMap::new();
        for r in records {
            match r {
                GroupRecord::Offset(o) => {
                    let g = groups
                        .entry(o.group.clone())
                        .or_insert_with(|| Group::new(&o.group, now_ms));
                    g.offsets.insert(
                        (o.topic, o.partition),
                        OffsetEntry {
                            offset: o.offset,
                            leader_epoch: o.leader_epoch,
                            metadata: o.metadata,
                            commit_ms: o.commit_ms,
                        },
                    );
                }
                GroupRecord::OffsetRemoved {
                    group,
                    topic,
                    partition,
                } => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
                GroupRecord::Group(s) => {
                    let g = groups
                        .entry(s.group.clone())
                        .or_insert_with(|| Group::new(&s.group, now_ms));
                    restore(g, s, now);
                }
                GroupRecord::Consumer(c) => {
                    let g = groups
                        .entry(c.group.clone())
                        .or_insert_with(|| Group::new(&c.group, now_ms));
                    g.modern = Some(consumer::ModernGroup::restore(c, now));
                }
                GroupRecord::GroupRemoved { group } => {
                    groups.remove(&group);
                }
            }
        }
        groups.retain(|_, g| !(g.is_disposable() && g.generation == 0));
        let count = groups.len();
        let mut current = self.groups.lock();
        current.retain(|id, _| self.shard_of(id) != shard);
        current.extend(groups);
        s.active.store(true, Ordering::Release);
        drop(current);
        self.compact_shard(shard)?;
        tracing::debug!(shard, groups = count, "group shard loaded");
        Ok(())
    }

    /// Err(INVALID_GROUP_ID) for an empty id, Err(NOT_COORDINATOR) if this instance does not
    /// coordinate the group's shard.
    pub fn admit(&self, group_id: &str) -> Result<(), KafkaError> {
        valid_group_id(group_id)?;
        if self.is_active(self.shard_of(group_id)) {
            Ok(())
        } else {
            Err(KafkaError::NotCoordinator)
        }
    }

    /// Rewrites the stores of the shards coordinated here with what is live.
    pub fn compact(&self) -> io::Result<()> {
        for shard in 0..self.shards.len() {
            self.compact_shard(shard)?;
        }
        Ok(())
    }

    fn compact_shard(&self, shard: usize) -> io::Result<()> {
        let groups = self.groups.lock();
        if !self.is_active(shard) {
            return Ok(()); // the store is another instance's
        }
        let mut live = Vec::new();
        for g in groups.values().filter(|g| self.shard_of(&g.id) == shard) {
            if let Some(m) = &g.modern {
                live.push(GroupRecord::Consumer(m.snapshot(&g.id)));
            } else if g.generation > 0 || !g.members.is_empty() {
                live.push(GroupRecord::Group(g.snapshot()));
            }
            for ((topic, partition), e) in &g.offsets {
                live.push(GroupRecord::Offset(store::OffsetRecord {
                    group: g.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: e.offset,
                    leader_epoch: e.leader_epoch,
                    metadata: e.metadata.clone(),
                    commit_ms: e.commit_ms,
                }));
            }
        }
        self.shards[shard].store.rewrite(&live)
    }

    /// Appends records of several groups, each to its shard's store.
    fn append_all(&self, writes: &[GroupRecord]) {
        if writes.is_empty() {
            return;
        }
        let mut by_shard: HashMap<usize, Vec<GroupRecord>> = HashMap::new();
        for w in writes {
            by_shard
                .entry(self.shard_of(w.group()))
                .or_default()
                .push(w.clone());
        }
        for (shard, records) in by_shard {
            if let Err(e) = self.shards[shard].store.append(&records) {
                tracing::error!(shard, error = %e, "group store append failed");
            }
        }
    }

    /// Runs `f` on the group (created if `create`), makes its queued records durable, and drops
    /// the group again if it holds nothing. Err(GroupIdNotFound) if absent and not created.
    fn with_group<T>(
        &self,
        id: &str,
        create: bool,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Result<T, KafkaError> {
        let mut groups = self.groups.lock();
        if !groups.contains_key(id) {
            if !create {
                return Err(KafkaError::GroupIdNotFound);
            }
            groups.insert(id.to_string(), Group::new(id, crate::now_ms()));
        }
        let group = groups.get_mut(id).ok_or(KafkaError::GroupIdNotFound)?;
        let out = f(group);
        let writes = std::mem::take(&mut group.writes);
        let disposable = group.is_disposable() && group.generation == 0;
        if disposable {
            groups.remove(id);
        }
        if let Err(e) = self.store_of(id).append(&writes) {
            tracing::error!(group = id, error = %e, "group store append failed");
            return Err(KafkaError::CoordinatorNotAvailable);
        }
        Ok(out)
    }

    pub fn join(&self, group_id: &str, p: JoinParams) -> Reply<JoinOutcome> {
        let fail = |e: KafkaError| Reply::Now(JoinOutcome::error(e, &p.member_id));
        if let Err(e) = self.admit(group_id) {
            return fail(e);
        }
        let session = i64::from(p.session_timeout_ms);
        if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            return fail(KafkaError::InvalidSessionTimeout);
        }
        let member_id = p.member_id.clone();
        let cfg = self.config;
        self.with_group(group_id, true, |g| g.join(p, Instant::now(), &cfg))
            .unwrap_or_else(|e| Reply::Now(JoinOutcome::error(e, &member_id)))
    }

    pub fn sync(&self, group_id: &str, p: SyncParams<'_>) -> Reply<SyncOutcome> {
        if let Err(e) = self.admit(group_id) {
            return Reply::Now(Err(e));
        }
        let cfg = self.config;
        self.with_group(group_id, false, |g| g.sync(p, Instant::now(), &cfg))
            .unwrap_or_else(|_| Reply::Now(Err(KafkaError::UnknownMemberId)))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), KafkaError> {
        self.admit(group_id)?;
        self.with_group(group_id, false, |g| {
            g.heartbeat(member_id, instance_id, generation, Instant::now())
        })
        .unwrap_or(Err(KafkaError::UnknownMemberId))
    }

    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), KafkaError>>, KafkaError> {
        self.admit(group_id)?;
        let cfg = self.config;
        self.with_group(group_id, false, |g| g.leave(members, Instant::now(), &cfg))
            .map_err(|_| KafkaError::UnknownMemberId)
    }

    /// A classic group's summary; None if there is no classic group of that id.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupSummary>, KafkaError> {
        self.admit(group_id)?;
        let groups = self.groups.lock();
        let Some(g) = groups.get(group_id).filter(|g| g.modern.is_none()) else {
            return Ok(None);
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        Ok(Some(GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }))
    }

    /// (group id, protocol type, state, group type) of every group (none on an inactive
    /// coordinator: Kafka's ListGroups lists the groups the broker coordinates).
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let groups = self.groups.lock();
        let mut out: Vec<_> = groups
            .values()
            .map(|g| {
                let (state, protocol_type, kind) = g.listing();
                (g.id.clone(), protocol_type, state, kind)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn delete_group(&self, group_id: &str) -> Result<(), KafkaError> {
        self.admit(group_id)?;
        let mut groups = self.groups.lock();
        let g = groups.get(group_id).ok_or(KafkaError::GroupIdNotFound)?;
        if !g.is_empty() {
            return Err(KafkaError::NonEmptyGroup);
        }
        self.store_of(group_id)
            .append(&[GroupRecord::GroupRemoved {
                group: group_id.to_string(),
            }])
            .map_err(|_| KafkaError::CoordinatorNotAvailable)?;
        groups.remove(group_id);
        Ok(())
    }

    /// OffsetCommit: validates the member, then stores each accepted offset.
    /// `offsets`: (topic, partition, entry); per-partition checks (unknown topic, metadata
    /// size) are the caller's and arrive as `Err` entries, echoed back.
    #[allow(clippy::type_complexity)]
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<(String, i32, Result<OffsetEntry, KafkaError>)>,
    ) -> Result<Vec<(String, i32, Result<(), KafkaError>)>, KafkaError> {
        self.admit(group_id)?;
        self.with_group(group_id, true, |g| {
            g.validate_commit(member_id, instance_id, generation)?;
            Ok(offsets
                .into_iter()
                .map(|(topic, p, entry)| {
                    let r = entry.map(|e| g.commit(&topic, p, e));
                    (topic, p, r)
                })
                .collect())
        })?
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        p: consumer::HeartbeatParams,
        topics: consumer::Topics<'_>,
    ) -> Result<consumer::HeartbeatOut, (KafkaError, String)> {
        if let Err(e) = self.admit(group_id) {
            let why = match e {
                KafkaError::NotCoordinator => "this kop instance does not coordinate groups now",
                _ => "the group id is empty",
            };
            return Err((e, why.into()));
        }
        self.with_group(group_id, p.member_epoch == 0, |g| {
            if g.modern.is_none() {
                if !g.is_empty() {
                    return Err((
                        KafkaError::GroupIdNotFound,
                        format!("group {group_id} is not a consumer group"),
                    ));
                }
                g.modern = Some(consumer::ModernGroup::default());
            }
            let m = g
                .modern
                .as_mut()
                .ok_or((KafkaError::UnknownServerError, String::new()))?;
            let before = m.fingerprint();
            let out = m.heartbeat(p, Instant::now(), topics);
            if m.fingerprint() != before {
                let snap = m.snapshot(group_id);
                let empty = m.members.is_empty();
                g.writes.push(GroupRecord::Consumer(snap));
                if empty {
                    g.state_since_ms = crate::now_ms();
                }
            }
            out
        })
        .map_err(|e| (e, format!("group {group_id} does not exist")))?
    }

    /// Runs `f` on a KIP-848 group; Err(GroupIdNotFound) if there is none of that id.
    pub fn with_consumer_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&consumer::ModernGroup) -> T,
    ) -> Result<T, KafkaError> {
        self.admit(group_id)?;
        let groups = self.groups.lock();
        let m = groups
            .get(group_id)
            .and_then(|g| g.modern.as_ref())
            .ok_or(KafkaError::GroupIdNotFound)?;
        Ok(f(m))
    }

    /// OffsetFetch v9 by a member of a consumer group: its id and epoch must be current.
    pub fn validate_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), KafkaError> {
        self.admit(group_id)?;
        let groups = self.groups.lock();
        match groups.get(group_id).and_then(|g| g.modern.as_ref()) {
            Some(m) => {
                let member = m
                    .members
                    .get(member_id)
                    .ok_or(KafkaError::UnknownMemberId)?;
                if member.epoch != epoch {
                    return Err(KafkaError::StaleMemberEpoch);
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// OffsetFetch for one group: `None` topics = every committed partition.
    #[allow(clippy::type_complexity)]
    pub fn fetch(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, Vec<(i32, Option<OffsetEntry>)>)> {
        let groups = self.groups.lock();
        let g = groups.get(group_id);
        let topics = match topics {
            Some(t) => t,
            None => g.map(Group::committed_topics).unwrap_or_default(),
        };
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                let entries = partitions
                    .into_iter()
                    .map(|p| (p, g.and_then(|g| g.committed(&topic, p).cloned())))
                    .collect();
                (topic, entries)
            })
            .collect()
    }

    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<Vec<Vec<Result<(), KafkaError>>>, KafkaError> {
        self.admit(group_id)?;
        self.with_group(group_id, false, |g| g.delete_offsets(topics))?
    }

    /// A topic was deleted: forget its offsets in every group.
    pub fn remove_topic(&self, topic: &str) {
        let ids: Vec<String> = self.groups.lock().keys().cloned().collect();
        for id in ids {
            let _ = self.with_group(&id, false, |g| g.remove_topic(topic));
        }
    }

    /// Timers of every group.
    pub fn tick(&self) {
        let now = Instant::now();
        let cfg = self.config;
        let mut groups = self.groups.lock();
        let mut writes = Vec::new();
        for g in groups.values_mut() {
            g.tick(now, &cfg);
            writes.append(&mut g.writes);
        }
        drop(groups);
        self.append_all(&writes);
    }

    /// Offset retention and removal of empty groups without offsets; compacts the store when
    /// enough has been appended.
    pub fn expire(&self, now_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        let mut groups = self.groups.lock();
        let mut writes = Vec::new();
        let mut dead = Vec::new();
        for g in groups.values_mut() {
            let n = g.expire_offsets(now_ms, retention);
            if n > 0 {
                tracing::info!(group = %g.id, offsets = n, "expired committed offsets");
            }
            writes.append(&mut g.writes);
            if g.is_disposable() {
                dead.push(g.id.clone());
                writes.push(GroupRecord::GroupRemoved {
                    group: g.id.clone(),
                });
            }
        }
        for id in dead {
            groups.remove(&id);
        }
        drop(groups);
        self.append_all(&writes);
        for (shard, s) in self.shards.iter().enumerate() {
            if s.store.garbage_hint() > COMPACT_AFTER_BYTES {
                if let Err(e) = self.compact_shard(shard) {
                    tracing::error!(shard, error = %e, "group store compaction failed");
                }
            }
        }
    }

    pub fn flush(&self) {
        for s in &self.shards {
            if let Err(e) = s.store.flush() {
                tracing::error!(error = %e, "group store fsync failed");
            }
        }
    }
}

/// Rebuilds a group's membership from its last snapshot; members get a fresh session to come
/// back (as after a Kafka coordinator failover).
fn restore(g: &mut Group, s: store::GroupSnapshot, now: Instant) {
    g.modern = None;
    g.generation = s.generation;
    g.protocol_type = s.protocol_type;
    g.protocol = s.protocol.clone();
    g.leader = s.leader;
    g.state_since_ms = s.state_since_ms;
    g.members.clear();
    g.static_members.clear();
    let protocol = s.protocol.unwrap_or_default();
    for m in s.members {
        if let Some(inst) = &m.instance_id {
            g.static_members.insert(inst.clone(), m.id.clone());
        }
        let member = Member {
            id: m.id.clone(),
            instance_id: m.instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
            rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
            protocols: vec![(
                protocol.clone(),
                Bytes::from(from_hex(&m.metadata).unwrap_or_default()),
            )],
            assignment: Bytes::from(from_hex(&m.assignment).unwrap_or_default()),
            last_heartbeat: now,
            join_waiter: None,
            sync_waiter: None,
        };
        g.members.insert(m.id, member);
    }
    g.state = if g.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
}
