//! The group coordinator: classic and KIP-848 consumer groups and committed offsets.
//!
//! kop is the coordinator of every group. Groups are split into shards, each with a store of its
//! own: one shard on local storage, 50 on Pulsar (`shard_of`, Kafka's `__consumer_offsets`
//! partition of a group). With several kop instances on one namespace each shard is coordinated
//! by the instance that leads that partition: the others hold nothing of it and answer
//! NOT_COORDINATOR, so clients look the coordinator up again.
//!
//! Each shard's groups sit behind that shard's lock (`shard.rs`). An operation mutates one
//! `Group` (see `state.rs`, `classic.rs`, `consumer.rs`, `offsets.rs`), which queues the records
//! that must be durable; the coordinator takes a ticket for them in the shard's write queue
//! while still holding the lock, so they reach the store in the order of the changes, then
//! releases the lock and waits for the ticket (`write_queue.rs`: the first waiter writes
//! everything queued in one append). No lock is held across a store round trip, commits of
//! groups on different shards are written in parallel, and an acknowledged commit is durable.
//!
//! A failed write answers its operations with COORDINATOR_NOT_AVAILABLE. Their changes are
//! already in memory (and other requests may have read them meanwhile), so the shard is let go
//! right away: its groups are forgotten (parked JoinGroup/SyncGroup requests fail), its queued
//! writes finish, and it is loaded again from its store by the next takeover pass
//! (`broker::leadership`: every 500 ms on Pulsar if this instance still leads the shard, every
//! second on local storage). Until then its groups get NOT_COORDINATOR and clients retry; after
//! it, memory holds exactly what the store does. A failed write may still have stored part of
//! its records (as a timed-out request may have been applied); the reload shows them.
//!
//! JoinGroup and SyncGroup answers that must wait for a rebalance come back over oneshot
//! channels; `tick` runs the timers.

pub mod assignor;
pub mod classic;
#[cfg(test)]
mod concurrency_tests;
pub mod configs;
pub mod consumer;
pub mod offsets;
mod shard;
mod share;
pub mod state;
pub mod store;
pub mod streams;
#[cfg(test)]
mod tests;
mod transactions;
pub mod txn_offsets;
#[cfg(test)]
mod txn_tests;
mod write_queue;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use classic::{GroupState, JoinOutcome, SyncOutcome};
pub use classic::{JoinParams, SyncParams};
pub use state::{GroupConfig, Now, OffsetEntry, Reply};
pub use store::{GroupRecord, GroupStore, LogGroupStore};
pub use transactions::TxnCommitter;

use crate::config::ServerConfig;
use crate::error::KafkaError;
use shard::Shard;
use state::{Group, GroupKind};
use write_queue::Ticket;

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
    shards: Vec<Shard>,
    pub config: GroupConfig,
    /// The GROUP config resource: per-group overrides (`configs.rs`).
    pub group_configs: configs::GroupConfigs,
}

/// The topic whose partitions the group shards are, in Kafka's terms (transaction markers and
/// verification name a shard as a partition of it).
pub const GROUPS_TOPIC: &str = "__consumer_offsets";

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
            max_size: usize::try_from(c.group_max_size).unwrap_or(usize::MAX),
            consumer_max_size: usize::try_from(c.group_consumer_max_size).unwrap_or(usize::MAX),
            streams_num_standby_replicas: usize::try_from(c.group_streams_num_standby_replicas)
                .unwrap_or(0),
            streams_initial_rebalance_delay_ms: u64::try_from(
                c.group_streams_initial_rebalance_delay_ms,
            )
            .unwrap_or(0),
        }
    }
}

/// A member of a group that does not exist is an unknown member; other errors stay.
fn unknown_member_if_no_group(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::GroupIdNotFound => KafkaError::UnknownMemberId,
        e => e,
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
            shards: stores.into_iter().map(Shard::new).collect(),
            config,
            group_configs: configs::GroupConfigs::in_memory(),
        }
    }

    /// With the group configs stored with the data.
    pub fn with_group_configs(mut self, c: configs::GroupConfigs) -> GroupCoordinator {
        self.group_configs = c;
        self
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard (`__consumer_offsets` partition) of a group.
    pub fn shard_of(&self, group_id: &str) -> usize {
        shard_of(group_id, self.shards.len())
    }

    pub fn is_active(&self, shard: usize) -> bool {
        self.shards.get(shard).is_some_and(Shard::is_active)
    }

    fn shard_for(&self, group_id: &str) -> &Shard {
        &self.shards[self.shard_of(group_id)]
    }

    /// Stops coordinating a shard: forgets its groups (another instance loads them) and lets
    /// go of its store. Blocks until the shard's queued writes are done.
    pub fn deactivate(&self, shard: usize) {
        if self.shards.get(shard).is_some_and(Shard::deactivate) {
            tracing::info!(shard, "no longer the coordinator of this group shard");
        }
    }

    /// Starts coordinating a shard: replays its store and compacts it. Blocks.
    pub fn activate(&self, shard: usize) -> io::Result<()> {
        let Some(s) = self.shards.get(shard) else {
            return Ok(());
        };
        if !s.is_active() {
            let count = s.activate()?;
            tracing::debug!(shard, groups = count, "group shard loaded");
        }
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
        for s in &self.shards {
            s.compact()?;
        }
        Ok(())
    }

    /// Waits for a shard's write. A failed write means the groups in memory may hold what the
    /// store does not: the shard is let go, to be loaded again from its store (see the module
    /// documentation).
    fn stored(&self, shard: usize, ticket: Option<Ticket>) -> Result<(), KafkaError> {
        let Some(ticket) = ticket else {
            return Ok(());
        };
        let s = &self.shards[shard];
        match s.wait(ticket) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(shard, error = %e, "group store write failed; reloading the shard");
                shard::off_the_runtime(|| self.deactivate(shard));
                Err(KafkaError::CoordinatorNotAvailable)
            }
        }
    }

    /// Runs `f` on the group (created if `create`), queues its records, drops the group again
    /// if it holds nothing, and answers once the records are durable, holding no lock
    /// meanwhile. Err(GroupIdNotFound) if absent and not created.
    fn with_group<T>(
        &self,
        id: &str,
        create: bool,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Result<T, KafkaError> {
        self.with_group_then(id, create, true, f)
    }

    /// `with_group`; with `drop_unused`, a group left without members, offsets or generation
    /// (e.g. created by a request that failed) is dropped at once. Without it (OffsetDelete, as
    /// Kafka) it stays Empty until the next `expire`.
    fn with_group_then<T>(
        &self,
        id: &str,
        create: bool,
        drop_unused: bool,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Result<T, KafkaError> {
        let shard = self.shard_of(id);
        let s = &self.shards[shard];
        let (out, ticket) = {
            let mut groups = s.lock_active().ok_or(KafkaError::NotCoordinator)?;
            if !groups.contains_key(id) {
                if !create {
                    return Err(KafkaError::GroupIdNotFound);
                }
                groups.insert(id.to_string(), Group::new(id, crate::now_ms()));
            }
            let group = groups.get_mut(id).ok_or(KafkaError::GroupIdNotFound)?;
            let out = f(group);
            let writes = std::mem::take(&mut group.writes);
            if drop_unused && group.is_unused() {
                groups.remove(id);
            }
            (out, s.enqueue(writes))
        };
        self.stored(shard, ticket)?;
        Ok(out)
    }

    /// Runs `f` on every group coordinated here, shard by shard (dropping the groups it
    /// answers false for), and waits for their records.
    fn for_each_group(&self, mut f: impl FnMut(&mut Group) -> bool) {
        let mut tickets = Vec::new();
        for (shard, s) in self.shards.iter().enumerate() {
            let Some(mut groups) = s.lock_active() else {
                continue;
            };
            let mut writes = Vec::new();
            groups.retain(|_, g| {
                let keep = f(g);
                writes.append(&mut g.writes);
                keep
            });
            tickets.push((shard, s.enqueue(writes)));
        }
        for (shard, ticket) in tickets {
            let _ = self.stored(shard, ticket);
        }
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
        self.with_group(group_id, true, |g| g.join(p, Now::current(), &cfg))
            .unwrap_or_else(|e| Reply::Now(JoinOutcome::error(e, &member_id)))
    }

    pub fn sync(&self, group_id: &str, p: SyncParams<'_>) -> Reply<SyncOutcome> {
        if let Err(e) = self.admit(group_id) {
            return Reply::Now(Err(e));
        }
        let cfg = self.config;
        self.with_group(group_id, false, |g| g.sync(p, Now::current(), &cfg))
            .unwrap_or_else(|e| Reply::Now(Err(unknown_member_if_no_group(e))))
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
            g.heartbeat(member_id, instance_id, generation, Now::current())
        })
        .unwrap_or_else(|e| Err(unknown_member_if_no_group(e)))
    }

    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), KafkaError>>, KafkaError> {
        self.admit(group_id)?;
        let cfg = self.config;
        self.with_group(group_id, false, |g| g.leave(members, Now::current(), &cfg))
            .map_err(unknown_member_if_no_group)
    }

    /// A classic group's summary; None if there is no classic group of that id.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupSummary>, KafkaError> {
        self.admit(group_id)?;
        let groups = self
            .shard_for(group_id)
            .lock_active()
            .ok_or(KafkaError::NotCoordinator)?;
        let Some(g) = groups.get(group_id).and_then(Group::classic) else {
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
        let mut out = Vec::new();
        for s in &self.shards {
            let Some(groups) = s.lock_active() else {
                continue;
            };
            out.extend(groups.values().map(|g| {
                let (state, protocol_type, kind) = g.listing();
                (g.id.clone(), protocol_type, state, kind)
            }));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn delete_group(&self, group_id: &str) -> Result<(), KafkaError> {
        self.admit(group_id)?;
        let shard = self.shard_of(group_id);
        let s = &self.shards[shard];
        let ticket = {
            let mut groups = s.lock_active().ok_or(KafkaError::NotCoordinator)?;
            let g = groups.get(group_id).ok_or(KafkaError::GroupIdNotFound)?;
            if !g.is_empty() {
                return Err(KafkaError::NonEmptyGroup);
            }
            groups.remove(group_id);
            s.enqueue(vec![GroupRecord::GroupRemoved {
                group: group_id.to_string(),
            }])
        };
        self.stored(shard, ticket)
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
    /// The SubscribedTopicRegex a consumer group member subscribed with, if any.
    pub fn member_regex(&self, group_id: &str, member_id: &str) -> Option<String> {
        let groups = self.shard_for(group_id).lock_active()?;
        let member = groups.get(group_id)?.consumer()?.members.get(member_id)?;
        member.regex.clone()
    }

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
        let session = self
            .group_configs
            .effective(group_id)
            .consumer_session_timeout_ms;
        let max_size = self.config.consumer_max_size;
        self.with_group(group_id, p.member_epoch == 0, |g| {
            if g.consumer().is_none() {
                if !g.is_empty() {
                    return Err((
                        KafkaError::GroupIdNotFound,
                        format!("group {group_id} is not a consumer group"),
                    ));
                }
                let since = g.state_since_ms();
                g.kind = GroupKind::Consumer(consumer::ConsumerGroup::new(since));
            }
            let GroupKind::Consumer(m) = &mut g.kind else {
                return Err((KafkaError::UnknownServerError, String::new()));
            };
            m.session_timeout = Some(Duration::from_millis(session.max(1) as u64));
            if p.member_epoch >= 0 {
                m.admits(&p.member_id, max_size)?;
            }
            let before = m.fingerprint();
            let now = Now::current();
            let out = m.heartbeat(p, now.at, topics);
            if m.fingerprint() != before {
                if m.members.is_empty() {
                    m.state_since_ms = now.ms;
                }
                g.writes.push(GroupRecord::Consumer(m.snapshot(group_id)));
            }
            out
        })
        .map_err(|e| {
            let why = match e {
                KafkaError::GroupIdNotFound => format!("group {group_id} does not exist"),
                _ => format!("group {group_id} is not available here now"),
            };
            (e, why)
        })?
    }

    /// Runs `f` on a KIP-848 group; Err(GroupIdNotFound) if there is none of that id.
    pub fn with_consumer_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&consumer::ConsumerGroup) -> T,
    ) -> Result<T, KafkaError> {
        self.with_group_of_kind(group_id, Group::consumer, f)
    }

    /// Runs `f` on the group of one kind (`kind` picks it: `Group::consumer`, `Group::streams`,
    /// `Group::share`); Err(GroupIdNotFound) if there is none of that id and kind.
    pub fn with_group_of_kind<G, T>(
        &self,
        group_id: &str,
        kind: impl for<'g> FnOnce(&'g Group) -> Option<&'g G>,
        f: impl FnOnce(&G) -> T,
    ) -> Result<T, KafkaError> {
        self.admit(group_id)?;
        let groups = self
            .shard_for(group_id)
            .lock_active()
            .ok_or(KafkaError::NotCoordinator)?;
        let group = groups
            .get(group_id)
            .and_then(kind)
            .ok_or(KafkaError::GroupIdNotFound)?;
        Ok(f(group))
    }

    /// OffsetFetch v9 by a member of a consumer group: its id and epoch must be current.
    pub fn validate_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), KafkaError> {
        self.admit(group_id)?;
        let groups = self
            .shard_for(group_id)
            .lock_active()
            .ok_or(KafkaError::NotCoordinator)?;
        match groups.get(group_id).and_then(Group::consumer) {
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
        self.fetch_offsets(group_id, topics, false)
            .into_iter()
            .map(|(t, ps)| {
                (
                    t,
                    ps.into_iter().map(|(p, e)| (p, e.ok().flatten())).collect(),
                )
            })
            .collect()
    }

    /// OffsetFetch for one group: `None` topics = every committed partition. With
    /// `require_stable`, a partition with an offset pending in a transaction is
    /// Err(UNSTABLE_OFFSET_COMMIT) (Kafka's `fetchOffsets`); without, its last committed offset.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Vec<(String, Vec<(i32, Result<Option<OffsetEntry>, KafkaError>)>)> {
        let groups = self.shard_for(group_id).groups.lock();
        let g = groups.get(group_id);
        let topics = match topics {
            Some(t) => t,
            None => g.map(Group::committed_topics).unwrap_or_default(),
        };
        let answer = |topic: &str, p: i32| match g {
            Some(g) if require_stable && g.txn.is_pending(topic, p) => {
                Err(KafkaError::UnstableOffsetCommit)
            }
            Some(g) => Ok(g.committed(topic, p).cloned()),
            None => Ok(None),
        };
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                let entries = partitions
                    .into_iter()
                    .map(|p| (p, answer(&topic, p)))
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
        self.with_group_then(group_id, false, false, |g| g.delete_offsets(topics))?
    }

    /// A topic was deleted: forget its offsets in every group.
    pub fn remove_topic(&self, topic: &str) {
        self.for_each_group(|g| {
            g.remove_topic(topic);
            !g.is_unused()
        });
    }

    /// Timers of every group.
    pub fn tick(&self) {
        let now = Now::current();
        let cfg = self.config;
        self.for_each_group(|g| {
            g.tick(now, &cfg);
            true
        });
    }

    /// Offset retention and removal of empty groups without offsets; compacts the stores that
    /// had enough appended.
    pub fn expire(&self, now_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        self.for_each_group(|g| {
            let n = g.expire_offsets(now_ms, retention);
            if n > 0 {
                tracing::info!(group = %g.id, offsets = n, "expired committed offsets");
            }
            if g.is_disposable() {
                g.writes.push(GroupRecord::GroupRemoved {
                    group: g.id.clone(),
                });
                return false;
            }
            true
        });
        for (shard, s) in self.shards.iter().enumerate() {
            if s.store.garbage_hint() > COMPACT_AFTER_BYTES {
                if let Err(e) = s.compact() {
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
