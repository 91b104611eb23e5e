//! A classic group (Kafka's `ClassicGroup`): members, generation, the selected protocol, and
//! its durable form. The rebalance protocol's transitions live in `rebalance.rs`.

mod rebalance;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::store::{from_hex, to_hex, GroupSnapshot, MemberSnapshot};
use crate::error::KafkaError;
pub use rebalance::{JoinParams, SyncParams};

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

pub struct ClassicGroup {
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
    /// The membership changed and must be made durable (`Group` stores a snapshot after the
    /// operation).
    pub snapshot_due: bool,
}

impl ClassicGroup {
    pub fn new(id: &str, now_ms: i64) -> ClassicGroup {
        ClassicGroup {
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
            snapshot_due: false,
        }
    }

    pub fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// No members, and no member ids handed out that may still join.
    pub fn has_no_members(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Checks `member_id` / `instance_id` against the membership (Kafka's `validateMember`).
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), KafkaError> {
        if let Some(inst) = instance_id {
            match self.static_members.get(inst) {
                Some(id) if id != member_id => return Err(KafkaError::FencedInstanceId),
                Some(_) => {}
                None => return Err(KafkaError::UnknownMemberId),
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(KafkaError::UnknownMemberId)
        }
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

    /// Whether the group's membership is worth storing (it had a generation or has members).
    pub fn has_membership(&self) -> bool {
        self.generation > 0 || !self.members.is_empty()
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

    /// Rebuilds a group's membership from its last snapshot; members get a fresh session to
    /// come back (as after a Kafka coordinator failover).
    pub fn restore(s: GroupSnapshot, now: Instant) -> ClassicGroup {
        let mut g = ClassicGroup::new(&s.group, s.state_since_ms);
        g.generation = s.generation;
        g.protocol_type = s.protocol_type;
        g.protocol = s.protocol.clone();
        g.leader = s.leader;
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
        if !g.members.is_empty() {
            g.state = GroupState::Stable;
        }
        g
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

    /// Marks the group's membership to be made durable.
    pub fn persist(&mut self) {
        self.snapshot_due = true;
    }

    /// Topics the members subscribe to, if the group uses the consumer protocol and every
    /// member's subscription could be read; None means "unknown".
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
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
