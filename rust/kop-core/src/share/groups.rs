//! Share groups' membership (KIP-932's ShareGroupHeartbeat): members subscribe to topics and the
//! coordinator assigns them partitions with Kafka's simple share assignor rule — a partition
//! may go to several members (they share its records), every subscribed partition is assigned,
//! and each member gets at least one partition when there are enough. There is no revocation:
//! a member moves to the group's epoch with its new assignment at its next heartbeat.
//!
//! A share group is a kind of group of the group coordinator (`GroupKind::Share`): it is stored
//! in the group log whenever its membership changes (`group/share.rs`), so after a restart, a
//! kill -9 or a coordinator move its members go on heartbeating at their epochs. The share
//! partitions' delivery state is stored apart (`states.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::KafkaError;

/// Kafka's `group.share.session.timeout.ms` and `group.share.heartbeat.interval.ms`.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(45_000);
pub const HEARTBEAT_INTERVAL_MS: i32 = 5_000;
pub const LEAVE_EPOCH: i32 = -1;

/// topic id -> partitions.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

fn now_instant() -> Instant {
    Instant::now()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareMember {
    pub id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub subscribed: Vec<String>,
    pub assigned: Assignment,
    /// A restored member's session starts again at the load.
    #[serde(skip, default = "now_instant")]
    last_heartbeat: Instant,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// Subscribed topics as last assigned: (id, partition count). A change reassigns.
    topics_seen: BTreeMap<String, (Uuid, i32)>,
    /// Wall-clock time of the last change between empty and not.
    #[serde(default)]
    pub state_since_ms: i64,
}

impl ShareGroup {
    /// Kafka's share group states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }
}

/// A ShareGroupHeartbeat, decoded.
pub struct ShareHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub subscribed: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug)]
pub struct ShareHeartbeatOut {
    pub epoch: i32,
    /// Sent when the member's assignment changed (and on joining).
    pub assignment: Option<Assignment>,
    /// Partitions the group now has that it had none of before (their share partitions are
    /// started at `share.auto.offset.reset` then).
    pub new_partitions: Vec<(Uuid, i32)>,
}

/// Resolves a topic name to (topic id, partition count).
pub type Topics<'a> = &'a dyn Fn(&str) -> Option<(Uuid, i32)>;

/// Kafka's simple assignor over homogeneous subscriptions, per topic: with at least as many
/// partitions as members, partitions go round-robin to the members; with more members than
/// partitions, each member gets one partition (round-robin), so several share each.
fn assign(
    members: &BTreeMap<String, ShareMember>,
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (name, &(id, count)) in topics {
        let subscribers: Vec<&String> = members
            .values()
            .filter(|m| m.subscribed.iter().any(|t| t == name))
            .map(|m| &m.id)
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let n = subscribers.len();
        let partitions = count as usize;
        for i in 0..n.max(partitions) {
            let member = subscribers[i % n];
            let partition = (i % partitions) as i32;
            out.entry(member.clone())
                .or_default()
                .entry(id)
                .or_default()
                .insert(partition);
        }
    }
    out
}

impl ShareGroup {
    pub fn new(state_since_ms: i64) -> ShareGroup {
        ShareGroup {
            state_since_ms,
            ..ShareGroup::default()
        }
    }

    /// A heartbeat of `group_id`. Members that timed out meanwhile are dropped first.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        hb: ShareHeartbeat,
        topics: Topics<'_>,
        now: Instant,
    ) -> Result<ShareHeartbeatOut, (KafkaError, String)> {
        let group = self;
        let joining = hb.member_epoch == 0;
        expire(group, now, &mut Vec::new());
        if hb.member_epoch == LEAVE_EPOCH {
            if group.members.remove(&hb.member_id).is_some() {
                group.epoch += 1;
                reassign(group, topics, now);
            }
            return Ok(ShareHeartbeatOut {
                epoch: LEAVE_EPOCH,
                assignment: None,
                new_partitions: Vec::new(),
            });
        }
        let mut changed = false;
        match group.members.get_mut(&hb.member_id) {
            None if !joining => {
                return Err((
                    KafkaError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {group_id}.",
                        hb.member_id
                    ),
                ))
            }
            None => {
                let subscribed = hb.subscribed.clone().unwrap_or_default();
                if subscribed.is_empty() {
                    return Err((
                        KafkaError::InvalidRequest,
                        "SubscribedTopicNames must be set in first request.".into(),
                    ));
                }
                group.members.insert(
                    hb.member_id.clone(),
                    ShareMember {
                        id: hb.member_id.clone(),
                        rack_id: hb.rack_id.clone(),
                        client_id: hb.client_id.clone(),
                        client_host: hb.client_host.clone(),
                        epoch: 0,
                        subscribed,
                        assigned: Assignment::new(),
                        last_heartbeat: now,
                    },
                );
                changed = true;
            }
            Some(m) => {
                if !joining && hb.member_epoch != m.epoch {
                    return Err((
                        KafkaError::FencedMemberEpoch,
                        format!(
                            "The share group member has a smaller member epoch ({}) than the one known by the group coordinator ({}).",
                            hb.member_epoch, m.epoch
                        ),
                    ));
                }
                m.last_heartbeat = now;
                if let Some(s) = &hb.subscribed {
                    let mut s = s.clone();
                    s.sort();
                    s.dedup();
                    let mut current = m.subscribed.clone();
                    current.sort();
                    if s != current {
                        m.subscribed = s;
                        changed = true;
                    }
                }
            }
        }
        // Topics created or grown since the last assignment reassign too.
        if topics_now(group, topics) != group.topics_seen {
            changed = true;
        }
        let before: BTreeSet<(Uuid, i32)> = assigned_partitions(group);
        if changed {
            group.epoch += 1;
            reassign(group, topics, now);
        }
        let new_partitions = assigned_partitions(group)
            .difference(&before)
            .copied()
            .collect();
        let epoch = group.epoch;
        let m = group
            .members
            .get_mut(&hb.member_id)
            .expect("the member was just found or added");
        let send = joining || m.epoch != epoch;
        m.epoch = epoch;
        Ok(ShareHeartbeatOut {
            epoch,
            assignment: send.then(|| m.assigned.clone()),
            new_partitions,
        })
    }

    /// Drops the members whose session timed out; returns them.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        expire(self, now, &mut gone);
        gone
    }

    /// Whether what is stored of the group differs (a heartbeat that only refreshed a
    /// member's session changes nothing stored).
    pub fn same_stored(&self, other: &ShareGroup) -> bool {
        self.epoch == other.epoch
            && self.assignment_epoch == other.assignment_epoch
            && self.topics_seen == other.topics_seen
            && self.members.len() == other.members.len()
            && self
                .members
                .values()
                .zip(other.members.values())
                .all(|(a, b)| {
                    a.id == b.id
                        && a.epoch == b.epoch
                        && a.subscribed == b.subscribed
                        && a.assigned == b.assigned
                        && a.rack_id == b.rack_id
                        && a.client_id == b.client_id
                        && a.client_host == b.client_host
                })
    }
}

fn topics_now(group: &ShareGroup, topics: Topics<'_>) -> BTreeMap<String, (Uuid, i32)> {
    let names: BTreeSet<&String> = group.members.values().flat_map(|m| &m.subscribed).collect();
    names
        .into_iter()
        .filter_map(|n| topics(n).map(|t| (n.clone(), t)))
        .collect()
}

fn assigned_partitions(group: &ShareGroup) -> BTreeSet<(Uuid, i32)> {
    group
        .members
        .values()
        .flat_map(|m| {
            m.assigned
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        })
        .collect()
}

fn reassign(group: &mut ShareGroup, topics: Topics<'_>, _now: Instant) {
    group.topics_seen = topics_now(group, topics);
    let mut targets = assign(&group.members, &group.topics_seen);
    for m in group.members.values_mut() {
        m.assigned = targets.remove(&m.id).unwrap_or_default();
    }
    group.assignment_epoch = group.epoch;
}

/// Removes the members whose session timed out (and reassigns if any did).
fn expire(group: &mut ShareGroup, now: Instant, gone: &mut Vec<String>) {
    let before = gone.len();
    group.members.retain(|id, m| {
        let alive = now.saturating_duration_since(m.last_heartbeat) < SESSION_TIMEOUT;
        if !alive {
            gone.push(id.clone());
        }
        alive
    });
    if gone.len() > before {
        group.epoch += 1;
        let seen = group.topics_seen.clone();
        let mut targets = assign(&group.members, &seen);
        for m in group.members.values_mut() {
            m.assigned = targets.remove(&m.id).unwrap_or_default();
        }
        group.assignment_epoch = group.epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(member: &str, epoch: i32, topics: Option<&[&str]>) -> ShareHeartbeat {
        ShareHeartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            rack_id: None,
            subscribed: topics.map(|ts| ts.iter().map(|t| t.to_string()).collect()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    #[test]
    fn members_share_a_single_partition_and_split_several() {
        let t = Uuid::from_u128(1);
        let one = |n: &str| (n == "t").then_some((t, 1));
        let mut g = ShareGroup::new(0);
        let now = Instant::now();
        let a = g
            .heartbeat("g", hb("a", 0, Some(&["t"])), &one, now)
            .unwrap();
        assert_eq!(a.epoch, 1);
        assert_eq!(a.new_partitions, vec![(t, 0)]);
        let b = g
            .heartbeat("g", hb("b", 0, Some(&["t"])), &one, now)
            .unwrap();
        assert_eq!(b.epoch, 2);
        assert_eq!(b.assignment.unwrap()[&t], BTreeSet::from([0]));
        // a is behind the group epoch: it gets the (same) assignment at epoch 2.
        let a = g.heartbeat("g", hb("a", 1, None), &one, now).unwrap();
        assert_eq!((a.epoch, a.assignment.unwrap()[&t].len()), (2, 1));
        assert_eq!(
            g.heartbeat("g", hb("a", 1, None), &one, now).unwrap_err().0,
            KafkaError::FencedMemberEpoch
        );
        // Four partitions: two each.
        let four = |n: &str| (n == "t").then_some((t, 4));
        let a = g.heartbeat("g", hb("a", 2, None), &four, now).unwrap();
        assert_eq!(a.assignment.unwrap()[&t], BTreeSet::from([0, 2]));
        // b times out: a gets everything.
        let later = now + SESSION_TIMEOUT;
        g.heartbeat("g", hb("a", 3, None), &four, later - Duration::from_secs(1))
            .unwrap();
        assert!(g.tick(later - Duration::from_millis(1)).is_empty());
        assert_eq!(g.tick(later), vec!["b".to_string()]);
        let a = g.heartbeat("g", hb("a", 3, None), &four, later).unwrap();
        assert_eq!(a.assignment.unwrap()[&t].len(), 4);
        assert_eq!(
            g.heartbeat("g", hb("z", 5, None), &four, later)
                .unwrap_err()
                .0,
            KafkaError::UnknownMemberId
        );
        let left = g
            .heartbeat("g", hb("a", LEAVE_EPOCH, None), &four, later)
            .unwrap();
        assert_eq!(left.epoch, LEAVE_EPOCH);
        assert_eq!(g.state_name(), "Empty");
    }

    #[test]
    fn a_stored_group_resumes_at_its_epochs() {
        let t = Uuid::from_u128(1);
        let two = |n: &str| (n == "t").then_some((t, 2));
        let mut g = ShareGroup::new(0);
        let now = Instant::now();
        g.heartbeat("g", hb("a", 0, Some(&["t"])), &two, now)
            .unwrap();
        g.heartbeat("g", hb("b", 0, Some(&["t"])), &two, now)
            .unwrap();
        let before = g.clone();
        // A heartbeat that only refreshes the session changes nothing stored.
        g.heartbeat("g", hb("b", 2, None), &two, now + Duration::from_secs(1))
            .unwrap();
        assert!(g.same_stored(&before));
        let json = serde_json::to_string(&g).unwrap();
        let mut restored: ShareGroup = serde_json::from_str(&json).unwrap();
        assert!(restored.same_stored(&g));
        // The members go on at their epochs (a at 1 catches up to 2), nobody is fenced.
        let later = Instant::now();
        let a = restored
            .heartbeat("g", hb("a", 1, None), &two, later)
            .unwrap();
        assert_eq!(a.epoch, 2);
        assert_eq!(a.assignment.unwrap()[&t], BTreeSet::from([0]));
        let b = restored
            .heartbeat("g", hb("b", 2, None), &two, later)
            .unwrap();
        assert_eq!((b.epoch, b.assignment), (2, None));
        assert!(restored.tick(later + SESSION_TIMEOUT / 2).is_empty());
    }
}
