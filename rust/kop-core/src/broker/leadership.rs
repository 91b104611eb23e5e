//! Who leads what, and taking over and letting go when that changes.
//!
//! The leader of a partition is the rendezvous choice (highest hash of member and partition)
//! over the live members (`cluster.rs`): every instance computes the same answer from the same
//! member set, and a join or a leave moves only the partitions the member wins or held. A stale
//! view is safe: the partition's exclusive Pulsar producer lets one instance append, and an
//! instance that does not lead a partition answers NOT_LEADER_OR_FOLLOWER, so clients refresh
//! their Metadata. Group shards are led like the partitions of `__consumer_offsets`.
//!
//! A partition steps down when an append's receipt fails (it may have been fenced) and is taken
//! over again by the next cluster check if this instance still leads it; a group shard is let
//! go when its store write fails and loaded again the same way (`group` module documentation).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::cluster::Cluster;
use super::partition::{LogOpener, Partition};
use super::producer_state::ProducerStates;
use super::topic_config::EffectiveTopicConfig;
use super::Broker;
use crate::records::batch::BatchHeader;
use crate::storage::Member;
use crate::storage::{LogSettings, PartitionLog, Receipt};

/// Group shards loaded at once by a takeover: as many as the Pulsar bridge runs blocking calls
/// at once.
const SHARD_LOADERS: usize = 4;

/// A group shard (`group::shard_of`) is led like partition `shard` of this topic: its leader
/// coordinates the shard's groups, as in Kafka.
pub use crate::group::GROUPS_TOPIC;

const LED_ELSEWHERE: &str = "another kop instance leads the partition";

/// The log of a partition this instance does not serve; `Partition` never reads or appends to
/// it (`Inner::opened` is false).
struct NoLog;

impl PartitionLog for NoLog {
    fn log_start_offset(&self) -> i64 {
        0
    }
    fn next_offset(&self) -> i64 {
        0
    }
    fn size_bytes(&self) -> u64 {
        0
    }
    fn append(&mut self, _: &BatchHeader, _: Bytes, _: i64) -> io::Result<Option<Receipt>> {
        Err(io::Error::other(LED_ELSEWHERE))
    }
    fn read(&self, _: i64, _: usize, _: i64) -> io::Result<Option<Bytes>> {
        Err(io::Error::other(LED_ELSEWHERE))
    }
    fn batch_at_timestamp(&self, _: i64) -> io::Result<Option<Bytes>> {
        Err(io::Error::other(LED_ELSEWHERE))
    }
    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>> {
        Err(io::Error::other(LED_ELSEWHERE))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn set_settings(&mut self, _: LogSettings) {}
    fn enforce_retention(&mut self, _: i64) -> io::Result<usize> {
        Ok(0)
    }
}

/// Don't retry a failed takeover more often than this.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

impl Cluster {
    /// The node that leads `partition` of `topic`.
    pub fn leader(&self, topic: &str, partition: i32) -> i32 {
        leader_among(&self.members(), topic, partition)
    }

    pub fn leads(&self, topic: &str, partition: i32) -> bool {
        self.leader(topic, partition) == self.node_id()
    }

    /// The node coordinating the groups of `shard`.
    pub fn group_coordinator(&self, shard: usize) -> i32 {
        self.leader(GROUPS_TOPIC, shard as i32)
    }

    pub fn leads_group_shard(&self, shard: usize) -> bool {
        self.group_coordinator(shard) == self.node_id()
    }
}

pub fn leader_among(members: &[Member], topic: &str, partition: i32) -> i32 {
    members
        .iter()
        .max_by_key(|m| (weight(m.node_id, topic, partition), m.node_id))
        .map_or(-1, |m| m.node_id)
}

/// A stable 64-bit hash of (node, topic, partition): FNV-1a, then a finalizer so that nearby
/// node ids spread over the whole range.
fn weight(node_id: i32, topic: &str, partition: i32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = node_id
        .to_be_bytes()
        .into_iter()
        .chain(topic.bytes())
        .chain(partition.to_be_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Broker {
    /// Catches up with the other kop instances sharing the storage: the live members (and so
    /// who leads which partition and the groups), and topics created, changed or deleted by
    /// them, and their client quotas. True when stored metadata changed (the caller then reloads
    /// security). Blocks.
    pub fn sync_cluster(&self) -> io::Result<bool> {
        let Some(state) = self.storage.members.cluster_state()? else {
            return Ok(false);
        };
        if self.cluster.set_members(state.members) {
            let nodes: Vec<i32> = self.cluster.members().iter().map(|m| m.node_id).collect();
            tracing::info!(?nodes, "kop instances changed");
        }
        let changed = self
            .metadata_version
            .swap(state.metadata_version, Ordering::AcqRel)
            != state.metadata_version;
        if changed {
            self.reload_topics()?;
            self.quotas.reload()?;
            self.groups.group_configs.reload()?;
            if self.dynamic_configs.reload()? {
                self.apply_dynamic_configs();
            }
        }
        self.apply_leadership();
        Ok(changed)
    }

    /// Takes over what this instance leads now and lets go of the rest.
    fn apply_leadership(&self) {
        for topic in self.topics() {
            for p in topic.partitions() {
                if self.cluster.leads(&topic.name, p.index) {
                    p.acquire();
                } else {
                    p.release();
                }
            }
        }
        for shard in 0..self.groups.shard_count() {
            if !self.cluster.leads_group_shard(shard) {
                self.groups.deactivate(shard);
                self.transactions.deactivate(shard);
            }
        }
        self.take_over_group_shards();
    }

    /// Loads the group and transaction shards this instance leads but does not coordinate yet
    /// (after a membership change, or after a failed store write let a shard go). Blocks.
    ///
    /// Shards load in parallel: each load waits on its store (a Pulsar read), and a survivor
    /// that takes over half of the shards one after the other keeps their groups waiting for
    /// seconds under load.
    pub fn take_over_group_shards(&self) {
        let due: Vec<usize> = (0..self.groups.shard_count())
            .filter(|&shard| {
                self.cluster.leads_group_shard(shard)
                    && !(self.groups.is_active(shard) && self.transactions.is_active(shard))
            })
            .collect();
        let next = AtomicUsize::new(0);
        let take_next = || {
            while let Some(&shard) = due.get(next.fetch_add(1, Ordering::Relaxed)) {
                self.take_over_group_shard(shard);
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..SHARD_LOADERS.min(due.len()) {
                scope.spawn(take_next);
            }
            take_next();
        });
    }

    fn take_over_group_shard(&self, shard: usize) {
        if !self.groups.is_active(shard) {
            match self.groups.activate(shard) {
                Ok(()) => tracing::info!(shard, "now the coordinator of this group shard"),
                Err(e) => {
                    tracing::error!(shard, error = %e, "loading a group shard failed; retrying")
                }
            }
        }
        // After the groups: completing a loaded transaction may commit offsets there.
        if !self.transactions.is_active(shard) {
            match self.transactions.activate(shard) {
                Ok(()) => tracing::info!(shard, "now the coordinator of this transaction shard"),
                Err(e) => tracing::error!(
                    shard,
                    error = %e,
                    "loading a transaction shard failed; retrying"
                ),
            }
        }
    }
}

impl Partition {
    /// A partition another instance leads: nothing is opened until `acquire`.
    pub fn led_elsewhere(
        index: i32,
        config: EffectiveTopicConfig,
        opener: Arc<dyn LogOpener>,
    ) -> Partition {
        let p = Partition::new(
            index,
            Box::new(NoLog),
            ProducerStates::default(),
            config,
            Some(opener),
        );
        p.led_here.store(false, Ordering::Release);
        let mut inner = p.inner.write();
        inner.opened = false;
        inner.stepped_down = Some(LED_ELSEWHERE.into());
        drop(inner);
        p
    }

    pub fn is_led_here(&self) -> bool {
        self.led_here.load(Ordering::Acquire)
    }

    /// Leads the partition from now on: unless its log is open and appending, it is taken over
    /// in the background (called again on every membership check, so a failed takeover is
    /// retried even when nobody appends).
    pub fn acquire(self: &Arc<Self>) {
        if !self.led_here.swap(true, Ordering::AcqRel) {
            *self.last_reopen.lock() = None;
        }
        let serving = {
            let inner = self.inner.read();
            inner.opened && inner.stepped_down.is_none()
        };
        if !serving {
            self.start_reopen();
        }
    }

    /// Stops leading the partition: appends and reads answer NOT_LEADER_OR_FOLLOWER, waiters
    /// are released, and the log is let go.
    pub fn release(&self) {
        if !self.led_here.swap(false, Ordering::AcqRel) {
            return;
        }
        let was_open = {
            let mut inner = self.inner.write();
            self.mark.send_modify(|m| m.generation += 1);
            inner.stepped_down = Some(LED_ELSEWHERE.into());
            inner.log = Box::new(NoLog);
            inner.producers = ProducerStates::default();
            std::mem::replace(&mut inner.opened, false)
        };
        if was_open {
            if let Some(opener) = &self.opener {
                opener.close();
            }
        }
    }

    /// Stops appending under `generation`. The takeover is left to the next `acquire` (the
    /// broker's cluster check, every 500 ms): a failed send usually means another instance
    /// fenced this one, and by then this instance may know it no longer leads the partition.
    pub(super) fn step_down(&self, generation: u64, why: String) {
        let mut inner = self.inner.write();
        let stepped = self.mark.send_if_modified(|m| {
            let current = m.generation == generation;
            if current {
                m.generation += 1;
            }
            current
        });
        if stepped {
            crate::metrics::events::count(&crate::metrics::events::STEP_DOWNS);
            tracing::warn!(partition = self.index, reason = %why, "storage append failed: stepping down");
            inner.stepped_down = Some(why);
        }
    }

    /// Takes the partition over again on a blocking thread (at most one at a time, backed off).
    fn start_reopen(self: &Arc<Self>) {
        let Some(opener) = self.opener.clone() else {
            return;
        };
        if !self.is_led_here() {
            return;
        }
        {
            let mut last = self.last_reopen.lock();
            if last.is_some_and(|t| t.elapsed() < REOPEN_BACKOFF) {
                return;
            }
            if self.reopening.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let partition = self.clone();
        let work = move || {
            let settings = partition.inner.read().config.log;
            match opener.open(settings) {
                Ok((log, producers)) => {
                    let mut inner = partition.inner.write();
                    if !partition.is_led_here() {
                        // Released while taking over: let go again.
                        drop(inner);
                        opener.close();
                        partition.reopening.store(false, Ordering::Release);
                        return;
                    }
                    let end = log.next_offset();
                    inner.log = log;
                    inner.producers = producers;
                    inner.opened = true;
                    inner.stepped_down = None;
                    partition.mark.send_modify(|m| m.high_watermark = end);
                    drop(inner);
                    partition.follow_external_end();
                    tracing::info!(
                        partition = partition.index,
                        next_offset = end,
                        "took the partition over again"
                    );
                }
                Err(e) => {
                    tracing::error!(partition = partition.index, error = %e, "takeover failed; retried on the next append")
                }
            }
            partition.reopening.store(false, Ordering::Release);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Endpoint;

    fn member(node_id: i32) -> Member {
        Member {
            node_id,
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + node_id,
            }],
        }
    }

    #[test]
    fn partitions_spread_over_members_and_only_a_leavers_move() {
        let three: Vec<Member> = (1..=3).map(member).collect();
        let two: Vec<Member> = vec![member(1), member(3)];
        let mut counts = [0usize; 4];
        let mut moved = 0;
        for p in 0..300 {
            let before = leader_among(&three, "orders", p);
            counts[before as usize] += 1;
            let after = leader_among(&two, "orders", p);
            if before != 2 {
                assert_eq!(
                    before, after,
                    "partition {p} moved though its leader stayed"
                );
            } else {
                moved += 1;
            }
        }
        assert_eq!(moved, counts[2]);
        for (node, &n) in counts.iter().enumerate().skip(1) {
            assert!((60..=140).contains(&n), "node {node} leads {n} of 300");
        }
    }
}
