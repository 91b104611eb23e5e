//! A classic group's data: members, generation, selected protocol, committed offsets (and
//! those pending in transactions).
//!
//! The transitions live in `classic.rs` (membership) and `offsets.rs`; both only mutate a
//! `Group` and queue the records that must be made durable in `Group::writes`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::consumer::ModernGroup;
use super::store::{to_hex, GroupRecord, GroupSnapshot, MemberSnapshot};
use super::txn_offsets::TxnOffsets;
use crate::error::KafkaError;

/// Kafka's classic group states (the names DescribeGroups and ListGroups report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

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
        }
    }
}

/// What a JoinGroup answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub error: Option<KafkaError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// (member id, instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(e: KafkaError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: Some(e),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup answers: the member's assignment, or an error.
pub type SyncOutcome = Result<(Option<String>, Option<String>, Bytes), KafkaError>;

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

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }

    pub fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// Answers a parked JoinGroup/SyncGroup with `error` (the member was removed or fenced).
    pub fn fail_waiters(&mut self, error: KafkaError) {
        if let Some(w) = self.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(error, &self.id));
        }
        if let Some(w) = self.sync_waiter.take() {
            let _ = w.send(Err(error));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// Wall-clock time of the last state change (offsets of an empty group expire from it).
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and until when they may join with them.
    pub pending: HashMap<String, Instant>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// When the join phase ends even if not every member has rejoined.
    pub join_deadline: Option<Instant>,
    /// In the initial delay of an empty group's first rebalance: no early completion.
    pub initial_delay: bool,
    pub initial_delay_ends: Option<Instant>,
    /// When members that have not sent SyncGroup are dropped (CompletingRebalance only).
    pub sync_deadline: Option<Instant>,
    pub offsets: BTreeMap<(String, i32), OffsetEntry>,
    /// Offsets pending in producers' transactions (`txn_offsets.rs`).
    pub txn: TxnOffsets,
    /// Set when this is a KIP-848 consumer group (the classic fields above are then unused).
    pub modern: Option<ModernGroup>,
    /// Records to make durable, drained by the coordinator after every operation.
    pub writes: Vec<GroupRecord>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            join_deadline: None,
            initial_delay: false,
            initial_delay_ends: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            txn: TxnOffsets::default(),
            modern: None,
            writes: Vec::new(),
        }
    }

    pub fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// No members (of either protocol).
    pub fn is_empty(&self) -> bool {
        match &self.modern {
            Some(m) => m.members.is_empty(),
            None => self.state == GroupState::Empty,
        }
    }

    /// (state name, protocol type, group type) as ListGroups reports them.
    pub fn listing(&self) -> (&'static str, String, &'static str) {
        match &self.modern {
            Some(m) => (m.state_name(), "consumer".into(), "consumer"),
            None => (
                self.state.name(),
                self.protocol_type.clone().unwrap_or_default(),
                "classic",
            ),
        }
    }

    /// Nothing worth keeping: no members, no offsets, no open transaction (as Kafka, which
    /// keeps a group while a transaction has offsets pending in it).
    pub fn is_disposable(&self) -> bool {
        self.is_empty()
            && self.members.is_empty()
            && self.pending.is_empty()
            && self.offsets.is_empty()
            && self.txn.pending.is_empty()
    }

    /// Protocols every member supports.
    fn candidates(&self) -> Vec<String> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return Vec::new();
        };
        let mut names: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in iter {
            names.retain(|n| m.supports(n));
        }
        names
    }

    /// Whether a member with these protocols may join (Kafka's `supportsProtocols`).
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidates()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// The protocol for the next generation: each member votes for its most preferred
    /// candidate; most votes wins (ties go to the first candidate in the leader's order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    /// The durable form of the group's membership.
    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupSnapshot {
            group: self.id.clone(),
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_since_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i64,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i64,
                    metadata: to_hex(&m.metadata(&protocol)),
                    assignment: to_hex(&m.assignment),
                })
                .collect(),
        }
    }

    /// About how many bytes the group's metadata record takes.
    pub fn record_size(&self) -> usize {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| {
                64 + m.id.len()
                    + m.instance_id.as_ref().map_or(0, String::len)
                    + m.client_id.len()
                    + m.client_host.len()
                    + m.metadata(&protocol).len()
                    + m.assignment.len()
            })
            .sum::<usize>()
            + 64
            + protocol.len()
    }

    /// Queues the group's membership to be made durable.
    pub fn persist(&mut self) {
        let snap = self.snapshot();
        self.writes.push(GroupRecord::Group(snap));
    }

    /// Topics the members subscribe to, if the group uses the consumer protocol and every
    /// member's subscription could be read; None means "unknown".
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if let Some(m) = &self.modern {
            return Some(m.subscribed_topics());
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            topics.extend(subscription_topics(&m.metadata(protocol))?);
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }
}

/// The topics of a ConsumerProtocolSubscription (any version: version i16, then the topic
/// array comes first). Parsed by hand with every length checked against the bytes present,
/// since the metadata is whatever the client sent.
pub fn subscription_topics(meta: &[u8]) -> Option<Vec<String>> {
    let take = |pos: &mut usize, n: usize| -> Option<&[u8]> {
        let end = pos.checked_add(n)?;
        let out = meta.get(*pos..end)?;
        *pos = end;
        Some(out)
    };
    let mut pos = 0;
    take(&mut pos, 2)?;
    let count = i32::from_be_bytes(take(&mut pos, 4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    if count > (meta.len() - pos) / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut pos, 2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        topics.push(String::from_utf8(take(&mut pos, len)?.to_vec()).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::subscription_topics;

    #[test]
    fn subscription_topics_are_parsed_defensively() {
        let mut ok = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff];
        assert_eq!(subscription_topics(&ok).unwrap(), vec!["a", "bc"]);
        ok[5] = 0x7f;
        assert!(subscription_topics(&ok).is_none(), "implausible count");
        assert!(subscription_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_none());
        assert!(subscription_topics(&[0, 1, 0, 0, 0, 1, 0, 9, b'a']).is_none());
        assert!(subscription_topics(&[]).is_none());
    }
}
