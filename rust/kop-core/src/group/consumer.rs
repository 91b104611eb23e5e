//! KIP-848 consumer groups: ConsumerGroupHeartbeat with server-side assignment and
//! incremental reconciliation (revoke first, then assign partitions once their previous owner
//! released them), following Kafka's `GroupMetadataManager` / `CurrentAssignmentBuilder`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::assignor::{self, Assignment, AssignorMember};
use super::store::{AssignmentSnapshot, ConsumerMemberSnapshot, ConsumerSnapshot};
use crate::error::KafkaError;

/// Kafka's `group.consumer.session.timeout.ms` (a group's own: `configs.rs`).
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(45_000);

/// A KIP-848-style member (consumer or streams) is removed when its session lapsed or it kept
/// partitions or tasks past its revocation deadline.
pub(crate) fn member_expired(
    now: Instant,
    last_heartbeat: Instant,
    revocation_deadline: Option<Instant>,
    session: Duration,
) -> bool {
    now.saturating_duration_since(last_heartbeat) > session
        || revocation_deadline.is_some_and(|d| now > d)
}

pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub rebalance_timeout: Duration,
    pub subscribed: Vec<String>,
    /// SubscribedTopicRegex (RE2/J syntax, matched against whole names), and the topics it
    /// matched at the member's last heartbeat: topics created later join then.
    pub regex: Option<String>,
    pub regex_matched: Vec<String>,
    pub assignor: Option<String>,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub last_heartbeat: Instant,
    pub revocation_deadline: Option<Instant>,
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub target: BTreeMap<String, Assignment>,
    pub members: BTreeMap<String, ConsumerMember>,
    pub statics: HashMap<String, String>,
    pub assignor: String,
    /// Subscribed topics as last seen: a change (new topic, more partitions) bumps the epoch.
    pub topics_seen: BTreeMap<String, (Uuid, i32)>,
    /// Wall-clock time the group last became empty or was created (offsets of an empty group
    /// expire from it).
    pub state_since_ms: i64,
    /// The group's `consumer.session.timeout.ms` as of its last heartbeat (None: Kafka's
    /// default, `SESSION_TIMEOUT`).
    pub session_timeout: Option<Duration>,
    /// The epoch was already bumped by the operation under way (one bump per operation).
    bumped: bool,
}

/// A ConsumerGroupHeartbeat request, decoded.
pub struct HeartbeatParams {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Option<Vec<String>>,
    /// SubscribedTopicRegex as sent (None: unchanged; empty: none).
    pub regex: Option<String>,
    /// The topics the member's regex matches now (resolved by the caller; None: no regex).
    pub regex_matched: Option<Vec<String>>,
    pub assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

pub struct HeartbeatOut {
    pub member_id: String,
    pub epoch: i32,
    pub assignment: Option<Assignment>,
}

/// Resolves a topic name to (topic id, partition count).
pub type Topics<'a> = &'a dyn Fn(&str) -> Option<(Uuid, i32)>;

/// A SubscribedTopicRegex compiled as RE2/J uses it: the whole topic name must match. The
/// `regex` crate's syntax is RE2's.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

impl ConsumerMember {
    /// Every topic the member subscribes to: by name and by its regex.
    pub fn topics(&self) -> impl Iterator<Item = &String> {
        self.subscribed.iter().chain(&self.regex_matched)
    }
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|qs| !ps.is_disjoint(qs)))
}

fn subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|qs| ps.is_subset(qs)))
}

fn combine(a: &Assignment, b: &Assignment, keep: impl Fn(bool, bool) -> bool) -> Assignment {
    let mut out = Assignment::new();
    let topics: BTreeSet<&Uuid> = a.keys().chain(b.keys()).collect();
    for t in topics {
        let empty = BTreeSet::new();
        let (pa, pb) = (a.get(t).unwrap_or(&empty), b.get(t).unwrap_or(&empty));
        let ps: BTreeSet<i32> = pa
            .union(pb)
            .copied()
            .filter(|p| keep(pa.contains(p), pb.contains(p)))
            .collect();
        if !ps.is_empty() {
            out.insert(*t, ps);
        }
    }
    out
}

/// (group epoch, assignment epoch, per member: id, epoch, assigned, pending revocation).
pub type Fingerprint = (i32, i32, Vec<(String, i32, Assignment, Assignment)>);

fn to_snapshot(a: &Assignment) -> AssignmentSnapshot {
    a.iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

fn from_snapshot(a: &AssignmentSnapshot) -> Assignment {
    a.iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

impl ConsumerGroup {
    /// A new, empty consumer group (`state_since_ms`: when it came to be).
    pub fn new(state_since_ms: i64) -> ConsumerGroup {
        ConsumerGroup {
            state_since_ms,
            ..ConsumerGroup::default()
        }
    }

    /// The durable form of the group.
    pub fn snapshot(&self, group: &str) -> ConsumerSnapshot {
        ConsumerSnapshot {
            group: group.to_string(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            topics: self
                .topics_seen
                .iter()
                .map(|(name, (id, n))| (name.clone(), *id, *n))
                .collect(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberSnapshot {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i64,
                    subscribed: m.subscribed.clone(),
                    regex: m.regex.clone(),
                    regex_matched: m.regex_matched.clone(),
                    assignor: m.assignor.clone(),
                    assigned: to_snapshot(&m.assigned),
                    pending_revocation: to_snapshot(&m.pending_revocation),
                    target: self.target.get(&m.id).map(to_snapshot).unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its snapshot; members get a fresh session to come back.
    pub fn restore(s: ConsumerSnapshot, now: Instant, state_since_ms: i64) -> ConsumerGroup {
        let mut g = ConsumerGroup {
            state_since_ms,
            epoch: s.epoch,
            assignment_epoch: s.assignment_epoch,
            assignor: s.assignor,
            ..ConsumerGroup::default()
        };
        for m in s.members {
            g.target.insert(m.id.clone(), from_snapshot(&m.target));
            if let Some(inst) = &m.instance_id {
                g.statics.insert(inst.clone(), m.id.clone());
            }
            g.members.insert(
                m.id.clone(),
                ConsumerMember {
                    id: m.id,
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    subscribed: m.subscribed,
                    regex: m.regex,
                    regex_matched: m.regex_matched,
                    assignor: m.assignor,
                    assigned: from_snapshot(&m.assigned),
                    pending_revocation: from_snapshot(&m.pending_revocation),
                    last_heartbeat: now,
                    revocation_deadline: None,
                },
            );
        }
        g.topics_seen = s
            .topics
            .into_iter()
            .map(|(name, id, n)| (name, (id, n)))
            .collect();
        g
    }

    /// What changes the durable state (heartbeat timestamps do not).
    pub fn fingerprint(&self) -> Fingerprint {
        (
            self.epoch,
            self.assignment_epoch,
            self.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.epoch,
                        m.assigned.clone(),
                        m.pending_revocation.clone(),
                    )
                })
                .collect(),
        )
    }

    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.pending_revocation.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn bump(&mut self) {
        if !self.bumped {
            self.epoch += 1;
            self.bumped = true;
        }
    }

    /// Whether the partition is held (assigned or being revoked) by a member other than `me`.
    fn held_by_other(&self, me: &str, topic: &Uuid, p: i32) -> bool {
        self.members.values().any(|m| {
            m.id != me
                && (m.assigned.get(topic).is_some_and(|s| s.contains(&p))
                    || m.pending_revocation
                        .get(topic)
                        .is_some_and(|s| s.contains(&p)))
        })
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(m) = self.members.remove(id) {
            if let Some(inst) = &m.instance_id {
                if self.statics.get(inst).map(String::as_str) == Some(id) {
                    self.statics.remove(inst);
                }
            }
            self.target.remove(id);
            self.bump();
        }
    }

    /// Bumps the epoch if a subscribed topic appeared, vanished or grew.
    fn refresh_topics(&mut self, topics: Topics<'_>) {
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| m.topics()).collect();
        let seen: BTreeMap<String, (Uuid, i32)> = names
            .into_iter()
            .filter_map(|n| topics(n).map(|t| (n.clone(), t)))
            .collect();
        if seen != self.topics_seen {
            self.topics_seen = seen;
            self.bump();
        }
    }

    fn compute_target(&mut self) {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let name = votes
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
            .map_or(assignor::UNIFORM, |(name, _)| name)
            .to_string();
        let inputs: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .map(|m| AssignorMember {
                id: &m.id,
                topics: m
                    .topics()
                    .filter_map(|t| self.topics_seen.get(t).copied())
                    .collect(),
                previous: self.target.get(&m.id),
            })
            .collect();
        self.target = assignor::assign(&name, &inputs);
        self.assignor = name;
        self.assignment_epoch = self.epoch;
    }

    /// Moves a member towards its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: Instant) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get(id) else {
            return;
        };
        if !m.pending_revocation.is_empty() {
            let revoked = owned.is_some_and(|o| !intersects(o, &m.pending_revocation));
            if !revoked {
                return;
            }
            if let Some(m) = self.members.get_mut(id) {
                m.pending_revocation.clear();
                m.revocation_deadline = None;
            }
        }
        let Some(m) = self.members.get(id) else {
            return;
        };
        let keep = combine(&m.assigned, &target, |a, t| a && t);
        let revoke = combine(&m.assigned, &target, |a, t| a && !t);
        if !revoke.is_empty() && owned.is_none_or(|o| intersects(o, &revoke)) {
            let deadline = now + m.rebalance_timeout;
            if let Some(m) = self.members.get_mut(id) {
                m.assigned = keep;
                m.pending_revocation = revoke;
                m.revocation_deadline = Some(deadline);
            }
            return;
        }
        let wanted = combine(&target, &keep, |t, k| t && !k);
        let mut next = keep;
        for (t, ps) in &wanted {
            for &p in ps {
                if !self.held_by_other(id, t, p) {
                    next.entry(*t).or_default().insert(p);
                }
            }
        }
        if let Some(m) = self.members.get_mut(id) {
            if m.epoch != assignment_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = assignment_epoch;
            }
            m.assigned = next;
        }
    }

    pub fn heartbeat(
        &mut self,
        p: HeartbeatParams,
        now: Instant,
        topics: Topics<'_>,
    ) -> Result<HeartbeatOut, (KafkaError, String)> {
        self.bumped = false;
        if let Some(a) = &p.assignor {
            if !assignor::ASSIGNORS.contains(&a.as_str()) {
                return Err((
                    KafkaError::UnsupportedAssignor,
                    format!("server assignor {a} is not supported (uniform, range)"),
                ));
            }
        }
        if p.member_epoch == LEAVE_EPOCH || p.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(p, now);
        }
        let full_request = p.member_epoch == 0;
        if full_request {
            self.join(&p, now)?;
        } else {
            let m = self.members.get(&p.member_id).ok_or((
                KafkaError::UnknownMemberId,
                format!("member {} is not in the group", p.member_id),
            ))?;
            let fenced = p.member_epoch > m.epoch
                || (p.member_epoch < m.epoch
                    && (p.member_epoch != m.previous_epoch
                        || !p.owned.as_ref().is_none_or(|o| subset(o, &m.assigned))));
            if fenced {
                return Err((
                    KafkaError::FencedMemberEpoch,
                    format!(
                        "member epoch {} does not match the current epoch {}",
                        p.member_epoch, m.epoch
                    ),
                ));
            }
        }
        let before = self.members.get(&p.member_id).map(|m| m.assigned.clone());
        let mut changed = false;
        if let Some(m) = self.members.get_mut(&p.member_id) {
            m.last_heartbeat = now;
            if p.rebalance_timeout_ms > 0 {
                m.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms as u64);
            }
            if p.rack_id.is_some() {
                m.rack_id = p.rack_id.clone();
            }
            if let Some(mut subs) = p.subscribed.clone() {
                subs.sort();
                subs.dedup();
                if subs != m.subscribed {
                    m.subscribed = subs;
                    changed = true;
                }
            }
            if let Some(regex) = &p.regex {
                let regex = (!regex.is_empty()).then(|| regex.clone());
                if regex != m.regex {
                    m.regex = regex;
                    changed = true;
                }
            }
            let matched = if m.regex.is_some() {
                p.regex_matched
                    .clone()
                    .unwrap_or_else(|| m.regex_matched.clone())
            } else {
                Vec::new()
            };
            if matched != m.regex_matched {
                m.regex_matched = matched;
                changed = true;
            }
            if p.assignor.is_some() && p.assignor != m.assignor {
                m.assignor = p.assignor.clone();
                changed = true;
            }
        }
        if changed {
            self.bump();
        }
        self.refresh_topics(topics);
        if self.epoch > self.assignment_epoch {
            self.compute_target();
        }
        self.reconcile(&p.member_id, p.owned.as_ref(), now);
        let m = &self.members[&p.member_id];
        let send = full_request || p.owned.is_some() || before.as_ref() != Some(&m.assigned);
        Ok(HeartbeatOut {
            member_id: m.id.clone(),
            epoch: m.epoch,
            assignment: send.then(|| m.assigned.clone()),
        })
    }

    /// Kafka's `group.consumer.max.size`: a full group takes no new member (its members'
    /// heartbeats and leaves still go through).
    pub fn admits(&self, member_id: &str, max_size: usize) -> Result<(), (KafkaError, String)> {
        if self.members.len() >= max_size && !self.members.contains_key(member_id) {
            return Err((
                KafkaError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {max_size} members."
                ),
            ));
        }
        Ok(())
    }

    fn join(&mut self, p: &HeartbeatParams, now: Instant) -> Result<(), (KafkaError, String)> {
        if p.subscribed.is_none() && p.regex.is_none() {
            return Err((
                KafkaError::InvalidRequest,
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.".into(),
            ));
        }
        if let Some(inst) = &p.instance_id {
            if let Some(old) = self.statics.get(inst).cloned() {
                if old != p.member_id {
                    let active = self
                        .members
                        .get(&old)
                        .is_some_and(|m| m.epoch != STATIC_LEAVE_EPOCH);
                    if active {
                        return Err((
                            KafkaError::UnreleasedInstanceId,
                            format!("instance {inst} is still in use by member {old}"),
                        ));
                    }
                    // The static member is back: it takes over the old member's assignment.
                    if let Some(mut m) = self.members.remove(&old) {
                        m.id = p.member_id.clone();
                        m.epoch = m.previous_epoch.max(0);
                        m.client_id = p.client_id.clone();
                        m.client_host = p.client_host.clone();
                        m.last_heartbeat = now;
                        if let Some(t) = self.target.remove(&old) {
                            self.target.insert(p.member_id.clone(), t);
                        }
                        self.members.insert(p.member_id.clone(), m);
                        self.statics.insert(inst.clone(), p.member_id.clone());
                        return Ok(());
                    }
                }
            }
        }
        if self.members.contains_key(&p.member_id) {
            // Rejoining with epoch 0: it lost its partitions; start it over.
            self.remove_member(&p.member_id);
        }
        if let Some(inst) = &p.instance_id {
            self.statics.insert(inst.clone(), p.member_id.clone());
        }
        self.members.insert(
            p.member_id.clone(),
            ConsumerMember {
                id: p.member_id.clone(),
                instance_id: p.instance_id.clone(),
                rack_id: p.rack_id.clone(),
                client_id: p.client_id.clone(),
                client_host: p.client_host.clone(),
                epoch: 0,
                previous_epoch: -1,
                rebalance_timeout: Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64),
                subscribed: Vec::new(),
                regex: None,
                regex_matched: Vec::new(),
                assignor: None,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
                last_heartbeat: now,
                revocation_deadline: None,
            },
        );
        self.bump();
        Ok(())
    }

    fn leave(
        &mut self,
        p: HeartbeatParams,
        now: Instant,
    ) -> Result<HeartbeatOut, (KafkaError, String)> {
        let is_static = p.instance_id.is_some() && p.member_epoch == STATIC_LEAVE_EPOCH;
        match self.members.get_mut(&p.member_id) {
            None => Err((
                KafkaError::UnknownMemberId,
                format!("member {} is not in the group", p.member_id),
            )),
            Some(m) if is_static => {
                // Keeps its assignment for a session timeout, in case it comes back.
                m.previous_epoch = m.epoch;
                m.epoch = STATIC_LEAVE_EPOCH;
                m.last_heartbeat = now;
                Ok(HeartbeatOut {
                    member_id: p.member_id,
                    epoch: STATIC_LEAVE_EPOCH,
                    assignment: None,
                })
            }
            Some(_) => {
                self.remove_member(&p.member_id);
                Ok(HeartbeatOut {
                    member_id: p.member_id,
                    epoch: LEAVE_EPOCH,
                    assignment: None,
                })
            }
        }
    }

    /// Session expiry and revocation timeouts. Returns the members removed.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        self.bumped = false;
        let session = self.session_timeout.unwrap_or(SESSION_TIMEOUT);
        let doomed: Vec<String> = self
            .members
            .values()
            .filter(|m| member_expired(now, m.last_heartbeat, m.revocation_deadline, session))
            .map(|m| m.id.clone())
            .collect();
        for id in &doomed {
            self.remove_member(id);
        }
        doomed
    }

    /// OffsetCommit by a member at an epoch (Kafka's `ConsumerGroup.validateOffsetCommit`).
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), KafkaError> {
        let member_epoch = self.members.get(member_id).map(|m| m.epoch);
        super::offsets::validate_member_epoch(
            member_epoch,
            self.members.is_empty(),
            member_id,
            epoch,
        )
    }

    pub fn subscribed_topics(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .members
            .values()
            .flat_map(|m| m.topics().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(id: &str, epoch: i32, owned: Option<Assignment>) -> HeartbeatParams {
        HeartbeatParams {
            member_id: id.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            regex: None,
            regex_matched: None,
            assignor: None,
            owned,
            client_id: "c".into(),
            client_host: "/h".into(),
        }
    }

    fn total(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn members_expire_after_the_groups_own_session_timeout() {
        let topics = |n: &str| (n == "t").then_some((Uuid::from_u128(7), 1));
        let now = Instant::now();
        let mut g = ConsumerGroup {
            session_timeout: Some(Duration::from_secs(50)),
            ..ConsumerGroup::default()
        };
        g.heartbeat(hb("a", 0, None), now, &topics).unwrap();
        assert!(g.tick(now + Duration::from_secs(46)).is_empty());
        assert_eq!(g.tick(now + Duration::from_secs(51)), ["a"]);
    }

    #[test]
    fn a_full_group_takes_no_new_member_but_keeps_its_own() {
        let topics = |n: &str| (n == "t").then_some((Uuid::from_u128(7), 2));
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        g.heartbeat(hb("a", 0, None), now, &topics).unwrap();
        g.heartbeat(hb("b", 0, None), now, &topics).unwrap();
        let e = g.admits("c", 2).unwrap_err();
        assert_eq!(e.0, KafkaError::GroupMaxSizeReached);
        assert!(e.1.contains("maximum capacity of 2 members"), "{}", e.1);
        assert_eq!(g.admits("a", 2), Ok(()));
        assert_eq!(g.admits("c", 3), Ok(()));
    }

    #[test]
    fn second_member_gets_partitions_after_the_first_revokes() {
        let tid = Uuid::from_u128(7);
        let topics = |n: &str| (n == "t").then_some((tid, 4));
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g.heartbeat(hb("a", 0, None), now, &topics).unwrap();
        assert_eq!((a.epoch, total(a.assignment.as_ref().unwrap())), (1, 4));
        let b = g.heartbeat(hb("b", 0, None), now, &topics).unwrap();
        assert_eq!(b.epoch, 2);
        assert_eq!(
            total(b.assignment.as_ref().unwrap()),
            0,
            "a still holds everything"
        );
        // a is told to give up two partitions and stays at epoch 1 until it has.
        let a1 = g.heartbeat(hb("a", 1, None), now, &topics).unwrap();
        assert_eq!((a1.epoch, total(a1.assignment.as_ref().unwrap())), (1, 2));
        let owned = a1.assignment.clone();
        let a2 = g.heartbeat(hb("a", 1, owned), now, &topics).unwrap();
        assert_eq!(a2.epoch, 2);
        let b2 = g.heartbeat(hb("b", 2, None), now, &topics).unwrap();
        assert_eq!(total(b2.assignment.as_ref().unwrap()), 2);
        assert_eq!(g.state_name(), "Stable");
        let e = g.heartbeat(hb("b", 9, None), now, &topics).err().unwrap();
        assert_eq!(e.0, KafkaError::FencedMemberEpoch);
        let e = g.heartbeat(hb("zz", 2, None), now, &topics).err().unwrap();
        assert_eq!(e.0, KafkaError::UnknownMemberId);
        // b leaves: a gets everything back at the next epoch.
        g.heartbeat(hb("b", LEAVE_EPOCH, None), now, &topics)
            .unwrap();
        let a3 = g.heartbeat(hb("a", 2, None), now, &topics).unwrap();
        assert_eq!((a3.epoch, total(a3.assignment.as_ref().unwrap())), (3, 4));
        assert_eq!(g.validate_commit("a", 3), Ok(()));
        assert_eq!(g.validate_commit("a", 2), Err(KafkaError::StaleMemberEpoch));
    }

    #[test]
    fn a_regex_subscription_follows_the_topics_it_matches() {
        let ids = |n: &str| match n {
            "orders-1" => Some((Uuid::from_u128(1), 2)),
            "orders-2" => Some((Uuid::from_u128(2), 2)),
            _ => None,
        };
        let re = compile_regex("orders-.*").unwrap();
        assert!(re.is_match("orders-1") && !re.is_match("x-orders-1"));
        assert!(compile_regex("(unclosed").is_err());
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let by_regex = |epoch: i32, matched: &[&str]| HeartbeatParams {
            subscribed: None,
            regex: (epoch == 0).then(|| "orders-.*".to_string()),
            regex_matched: Some(matched.iter().map(|t| t.to_string()).collect()),
            ..hb("a", epoch, None)
        };
        let a = g.heartbeat(by_regex(0, &["orders-1"]), now, &ids).unwrap();
        assert_eq!((a.epoch, total(a.assignment.as_ref().unwrap())), (1, 2));
        // A topic created later matches at the next heartbeat: a new epoch assigns it.
        let a = g
            .heartbeat(by_regex(1, &["orders-1", "orders-2"]), now, &ids)
            .unwrap();
        assert_eq!((a.epoch, total(a.assignment.as_ref().unwrap())), (2, 4));
        assert_eq!(g.subscribed_topics(), ["orders-1", "orders-2"]);
        // Neither names nor a regex in the first request: refused.
        let none = HeartbeatParams {
            subscribed: None,
            ..hb("b", 0, None)
        };
        assert_eq!(
            g.heartbeat(none, now, &ids).err().unwrap().0,
            KafkaError::InvalidRequest
        );
    }
}
