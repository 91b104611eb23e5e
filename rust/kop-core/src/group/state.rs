//! A group as Kafka names its kinds: what every group has (id, committed offsets, offsets
//! pending in transactions, records to store) and its kind — a classic group (`classic/`), a
//! KIP-848 consumer group (`consumer.rs`), a Streams group (`streams/`) or a share group
//! (`share.rs`).
//!
//! The transitions only mutate a `Group` and queue the records that must be made durable in
//! `Group::writes`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::classic::{ClassicGroup, GroupState, JoinOutcome, JoinParams, SyncOutcome, SyncParams};
use super::consumer::ConsumerGroup;
use super::store::GroupRecord;
use super::streams::StreamsGroup;
use super::txn_offsets::TxnOffsets;
use crate::error::KafkaError;
use crate::share::groups::ShareGroup;

/// The coordinator's settings (from `ServerConfig`).
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: i64,
    pub max_session_timeout_ms: i64,
    pub offsets_retention_ms: i64,
    /// Largest group metadata record the store takes (Kafka: the offsets topic's message size
    /// limit); a bigger assignment fails SyncGroup with UNKNOWN_SERVER_ERROR, as in Kafka.
    pub max_record_bytes: usize,
    /// Members of a classic group at most (Kafka group.max.size).
    pub max_size: usize,
    /// Members of a KIP-848 consumer group at most (Kafka group.consumer.max.size).
    pub consumer_max_size: usize,
    /// Standby replicas per task of a Streams group without its own
    /// streams.num.standby.replicas (Kafka group.streams.num.standby.replicas).
    pub streams_num_standby_replicas: usize,
    /// The first assignment of a Streams group that was empty waits this long (ms) unless the
    /// group sets streams.initial.rebalance.delay.ms (Kafka
    /// group.streams.initial.rebalance.delay.ms).
    pub streams_initial_rebalance_delay_ms: u64,
}

/// The shortest first join phase of an empty group: one period of the coordinator's timer
/// (`broker::housekeeping::group_timers`). Kafka ends that phase from its timer too, so with
/// `group.initial.rebalance.delay.ms=0` members that join a few milliseconds apart still share
/// the first generation there; answering inside the first JoinGroup would leave them none.
pub const MIN_INITIAL_JOIN_PHASE: Duration = Duration::from_millis(100);

impl GroupConfig {
    /// How long the first join phase of an empty group lasts at least, and how much each new
    /// member extends it (within the rebalance timeout).
    pub fn initial_join_phase(&self) -> Duration {
        self.initial_rebalance_delay.max(MIN_INITIAL_JOIN_PHASE)
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            max_record_bytes: 1_048_588,
            max_size: i32::MAX as usize,
            consumer_max_size: i32::MAX as usize,
            streams_num_standby_replicas: 0,
            streams_initial_rebalance_delay_ms: 3_000,
        }
    }
}

/// The time a state transition happens at, passed in (so tests drive the timers): the
/// monotonic clock for deadlines and sessions, the wall clock for what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub ms: i64,
}

impl Now {
    pub fn current() -> Now {
        Now {
            at: Instant::now(),
            ms: crate::now_ms(),
        }
    }
}

/// `d` later, on both clocks.
impl std::ops::Add<Duration> for Now {
    type Output = Now;
    fn add(self, d: Duration) -> Now {
        Now {
            at: self.at + d,
            ms: self
                .ms
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// An answer available now, or one the caller waits for (a rebalance in progress).
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

/// The kinds of group Kafka 4.4 coordinates that kop serves (one id, one kind at a time).
pub enum GroupKind {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
    /// KIP-1071 (`streams/`).
    Streams(StreamsGroup),
    /// KIP-932 (`share.rs`, `crate::share::groups`).
    Share(ShareGroup),
}

pub struct Group {
    pub id: String,
    pub kind: GroupKind,
    pub offsets: BTreeMap<(String, i32), OffsetEntry>,
    /// Offsets pending in producers' transactions (`txn_offsets.rs`).
    pub txn: TxnOffsets,
    /// Records to make durable, drained by the coordinator after every operation.
    pub writes: Vec<GroupRecord>,
}

impl Group {
    /// A new group is an empty classic group, as in Kafka (a consumer group heartbeat turns an
    /// empty group into a consumer group).
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            kind: GroupKind::Classic(ClassicGroup::new(id, now_ms)),
            offsets: BTreeMap::new(),
            txn: TxnOffsets::default(),
            writes: Vec::new(),
        }
    }

    pub fn classic(&self) -> Option<&ClassicGroup> {
        match &self.kind {
            GroupKind::Classic(c) => Some(c),
            _ => None,
        }
    }

    pub fn classic_mut(&mut self) -> Option<&mut ClassicGroup> {
        match &mut self.kind {
            GroupKind::Classic(c) => Some(c),
            _ => None,
        }
    }

    pub fn consumer(&self) -> Option<&ConsumerGroup> {
        match &self.kind {
            GroupKind::Consumer(c) => Some(c),
            _ => None,
        }
    }

    pub fn streams(&self) -> Option<&StreamsGroup> {
        match &self.kind {
            GroupKind::Streams(s) => Some(s),
            _ => None,
        }
    }

    /// Wall-clock time of the kind's last state change (offsets of an empty group expire
    /// from it).
    pub fn state_since_ms(&self) -> i64 {
        match &self.kind {
            GroupKind::Classic(c) => c.state_since_ms,
            GroupKind::Consumer(c) => c.state_since_ms,
            GroupKind::Streams(s) => s.state_since_ms,
            GroupKind::Share(s) => s.state_since_ms,
        }
    }

    /// Kafka's DEAD state: the group is being removed.
    pub fn is_dead(&self) -> bool {
        self.classic().is_some_and(|c| c.state == GroupState::Dead)
    }

    /// No members (of either protocol).
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(c) => c.state == GroupState::Empty,
            GroupKind::Consumer(c) => c.members.is_empty(),
            GroupKind::Streams(s) => s.members.is_empty(),
            GroupKind::Share(s) => s.members.is_empty(),
        }
    }

    /// (state name, protocol type, group type) as ListGroups reports them.
    pub fn listing(&self) -> (&'static str, String, &'static str) {
        match &self.kind {
            GroupKind::Classic(c) => (
                c.state.name(),
                c.protocol_type.clone().unwrap_or_default(),
                "classic",
            ),
            GroupKind::Consumer(c) => (c.state_name(), "consumer".into(), "consumer"),
            GroupKind::Streams(s) => (s.state_name(), "streams".into(), "streams"),
            GroupKind::Share(s) => (s.state_name(), "share".into(), "share"),
        }
    }

    /// Nothing worth keeping: no members, no offsets, no open transaction (as Kafka, which
    /// keeps a group while a transaction has offsets pending in it).
    pub fn is_disposable(&self) -> bool {
        let no_members = match &self.kind {
            GroupKind::Classic(c) => c.state == GroupState::Empty && c.has_no_members(),
            GroupKind::Consumer(c) => c.members.is_empty(),
            GroupKind::Streams(s) => s.members.is_empty(),
            // As in Kafka, an empty share group stays until DeleteGroups.
            GroupKind::Share(_) => false,
        };
        no_members && self.offsets.is_empty() && self.txn.pending.is_empty()
    }

    /// Disposable, and never had a generation worth remembering: dropped as soon as an
    /// operation leaves it so (a group that had generations is removed by retention, with a
    /// record, so that its generation is not reused). A Streams group whose members all left
    /// stays Empty like a classic group that had generations (Kafka keeps it, listed,
    /// described and deletable, until its offsets expire and the next cleanup removes it).
    pub fn is_unused(&self) -> bool {
        match &self.kind {
            GroupKind::Share(s) => s.epoch == 0 && s.members.is_empty(),
            GroupKind::Streams(s) => s.epoch == 0 && self.is_disposable(),
            _ => self.is_disposable() && self.classic().is_none_or(|c| c.generation == 0),
        }
    }

    /// Topics the members subscribe to, if known; None means "unknown".
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        match &self.kind {
            GroupKind::Classic(c) => c.subscribed_topics(),
            GroupKind::Consumer(c) => Some(c.subscribed_topics()),
            GroupKind::Streams(s) => Some(s.subscribed_topics()),
            GroupKind::Share(_) => Some(Vec::new()),
        }
    }

    /// Whether the group's members use the consumer protocol (its offsets then expire from
    /// the time it became empty).
    pub fn is_consumer_protocol(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(c) => c.protocol_type.is_some(),
            GroupKind::Consumer(_) | GroupKind::Streams(_) | GroupKind::Share(_) => true,
        }
    }

    /// Runs a classic-protocol operation; a group of another kind answers `other`. A
    /// membership the operation changed is queued to be stored.
    fn classic_op<T>(&mut self, other: T, f: impl FnOnce(&mut ClassicGroup) -> T) -> T {
        let GroupKind::Classic(c) = &mut self.kind else {
            return other;
        };
        let out = f(c);
        if std::mem::take(&mut c.snapshot_due) {
            self.writes.push(GroupRecord::Group(c.snapshot()));
        }
        out
    }

    /// JoinGroup. An empty consumer group becomes a classic group again (its offsets stay);
    /// one with members refuses classic members.
    pub fn join(&mut self, p: JoinParams, now: Now, cfg: &GroupConfig) -> Reply<JoinOutcome> {
        if let GroupKind::Consumer(c) = &self.kind {
            if !c.members.is_empty() {
                let e = KafkaError::InconsistentGroupProtocol;
                return Reply::Now(JoinOutcome::error(e, &p.member_id));
            }
            self.kind = GroupKind::Classic(ClassicGroup::new(&self.id, c.state_since_ms));
        }
        if let GroupKind::Streams(s) = &self.kind {
            if !s.members.is_empty() {
                let e = KafkaError::InconsistentGroupProtocol;
                return Reply::Now(JoinOutcome::error(e, &p.member_id));
            }
            self.kind = GroupKind::Classic(ClassicGroup::new(&self.id, s.state_since_ms));
        }
        let other = Reply::Now(JoinOutcome::error(
            KafkaError::UnknownServerError,
            &p.member_id,
        ));
        self.classic_op(other, |c| c.join(p, now, cfg))
    }

    pub fn sync(&mut self, p: SyncParams<'_>, now: Now, cfg: &GroupConfig) -> Reply<SyncOutcome> {
        let other = Reply::Now(Err(KafkaError::UnknownMemberId));
        self.classic_op(other, |c| c.sync(p, now, cfg))
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> Result<(), KafkaError> {
        let other = Err(KafkaError::UnknownMemberId);
        self.classic_op(other, |c| {
            c.heartbeat(member_id, instance_id, generation, now)
        })
    }

    /// LeaveGroup for several members; one result per member, in order.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Now,
        cfg: &GroupConfig,
    ) -> Vec<Result<(), KafkaError>> {
        let other = vec![Err(KafkaError::UnknownMemberId); leaving.len()];
        self.classic_op(other, |c| c.leave(leaving, now, cfg))
    }

    /// Timers: deadlines and session expiry of either kind.
    pub fn tick(&mut self, now: Now, cfg: &GroupConfig) {
        if let GroupKind::Consumer(m) = &mut self.kind {
            let expired = m.tick(now.at);
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "consumer group member expired");
            }
            if !expired.is_empty() {
                if m.members.is_empty() {
                    m.state_since_ms = now.ms;
                }
                self.writes
                    .push(GroupRecord::Consumer(m.snapshot(&self.id)));
            }
            return;
        }
        if let GroupKind::Streams(s) = &mut self.kind {
            let expired = s.tick(now.at);
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "streams group member expired");
            }
            let assigned = s.end_assignment_delay(now.at);
            if !expired.is_empty() || assigned {
                if s.members.is_empty() {
                    s.state_since_ms = now.ms;
                }
                self.writes.push(GroupRecord::Streams {
                    group: self.id.clone(),
                    state: Box::new(s.clone()),
                });
            }
            return;
        }
        if let GroupKind::Share(s) = &mut self.kind {
            let expired = s.tick(now.at);
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "share group member expired");
            }
            if !expired.is_empty() {
                if s.members.is_empty() {
                    s.state_since_ms = now.ms;
                }
                self.writes.push(GroupRecord::Share {
                    group: self.id.clone(),
                    state: Box::new(s.clone()),
                });
            }
            return;
        }
        self.classic_op((), |c| c.tick(now, cfg));
    }
}
