//! Share groups' membership (KIP-932's ShareGroupHeartbeat): members subscribe to topics and the
//! coordinator assigns them partitions with Kafka's simple share assignor rule — a partition
//! may go to several members (they share its records), every subscribed partition is assigned,
//! and each member gets at least one partition when there are enough. There is no revocation:
//! a member moves to the group's epoch with its new assignment at its next heartbeat.
//!
//! Membership is in memory at the group's coordinator (as Kafka's, it is rebuilt by the
//! members): after a restart or a coordinator move a member's heartbeat gets
//! UNKNOWN_MEMBER_ID and it joins again; the share partitions' delivery state is durable
//! (`states.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::KafkaError;

/// Kafka's `group.share.session.timeout.ms` and `group.share.heartbeat.interval.ms`.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(45_000);
pub const HEARTBEAT_INTERVAL_MS: i32 = 5_000;
pub const LEAVE_EPOCH: i32 = -1;

/// topic id -> partitions.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub struct ShareMember {
    pub id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub subscribed: Vec<String>,
    pub assigned: Assignment,
    last_heartbeat: Instant,
}

#[derive(Default)]
pub struct ShareGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// Subscribed topics as last assigned: (id, partition count). A change reassigns.
    topics_seen: BTreeMap<String, (Uuid, i32)>,
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

#[derive(Default)]
pub struct ShareGroups {
    groups: Mutex<HashMap<String, ShareGroup>>,
}

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

impl ShareGroups {
    /// Whether `group` is a share group here.
    pub fn contains(&self, group: &str) -> bool {
        self.groups.lock().contains_key(group)
    }

    /// A heartbeat. `expired` receives the members that left or timed out meanwhile (their
    /// records are released by the caller).
    pub fn heartbeat(
        &self,
        group_id: &str,
        hb: ShareHeartbeat,
        topics: Topics<'_>,
        now: Instant,
        gone: &mut Vec<String>,
    ) -> Result<ShareHeartbeatOut, (KafkaError, String)> {
        let mut groups = self.groups.lock();
        let joining = hb.member_epoch == 0;
        if !joining && !groups.contains_key(group_id) {
            return Err((
                KafkaError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {group_id}.",
                    hb.member_id
                ),
            ));
        }
        let group = groups.entry(group_id.to_string()).or_default();
        expire(group, now, gone);
        if hb.member_epoch == LEAVE_EPOCH {
            if group.members.remove(&hb.member_id).is_some() {
                gone.push(hb.member_id.clone());
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

    /// Runs `f` over a share group (ShareGroupDescribe); GROUP_ID_NOT_FOUND if there is none.
    pub fn with_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ShareGroup) -> T,
    ) -> Result<T, KafkaError> {
        let mut groups = self.groups.lock();
        let g = groups
            .get_mut(group_id)
            .ok_or(KafkaError::GroupIdNotFound)?;
        let mut gone = Vec::new();
        expire(g, Instant::now(), &mut gone);
        Ok(f(g))
    }

    /// (group id, state) of every share group.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        let mut out: Vec<_> = self
            .groups
            .lock()
            .iter()
            .map(|(id, g)| (id.clone(), g.state_name()))
            .collect();
        out.sort();
        out
    }

    /// Deletes an empty share group (DeleteGroups); NON_EMPTY_GROUP if it has members.
    pub fn delete(&self, group_id: &str) -> Result<bool, KafkaError> {
        let mut groups = self.groups.lock();
        match groups.get(group_id) {
            None => Ok(false),
            Some(g) if !g.members.is_empty() => Err(KafkaError::NonEmptyGroup),
            Some(_) => {
                groups.remove(group_id);
                Ok(true)
            }
        }
    }

    /// Whether the group has members now (offset admin needs an empty group).
    pub fn has_members(&self, group_id: &str) -> bool {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group_id) else {
            return false;
        };
        expire(g, Instant::now(), &mut Vec::new());
        !g.members.is_empty()
    }

    /// Drops members whose session timed out, in every group; returns (group, member) of each.
    pub fn expire_all(&self, now: Instant) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, g) in self.groups.lock().iter_mut() {
            let mut gone = Vec::new();
            expire(g, now, &mut gone);
            out.extend(gone.into_iter().map(|m| (id.clone(), m)));
        }
        out
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
        let g = ShareGroups::default();
        let now = Instant::now();
        let mut gone = Vec::new();
        let a = g
            .heartbeat("g", hb("a", 0, Some(&["t"])), &one, now, &mut gone)
            .unwrap();
        assert_eq!(a.epoch, 1);
        assert_eq!(a.new_partitions, vec![(t, 0)]);
        let b = g
            .heartbeat("g", hb("b", 0, Some(&["t"])), &one, now, &mut gone)
            .unwrap();
        assert_eq!(b.epoch, 2);
        assert_eq!(b.assignment.unwrap()[&t], BTreeSet::from([0]));
        // a is behind the group epoch: it gets the (same) assignment at epoch 2.
        let a = g
            .heartbeat("g", hb("a", 1, None), &one, now, &mut gone)
            .unwrap();
        assert_eq!((a.epoch, a.assignment.unwrap()[&t].len()), (2, 1));
        assert_eq!(
            g.heartbeat("g", hb("a", 1, None), &one, now, &mut gone)
                .unwrap_err()
                .0,
            KafkaError::FencedMemberEpoch
        );
        // Four partitions: two each.
        let four = |n: &str| (n == "t").then_some((t, 4));
        let a = g
            .heartbeat("g", hb("a", 2, None), &four, now, &mut gone)
            .unwrap();
        assert_eq!(a.assignment.unwrap()[&t], BTreeSet::from([0, 2]));
        // b times out: a gets everything.
        let later = now + SESSION_TIMEOUT;
        g.heartbeat(
            "g",
            hb("a", 3, None),
            &four,
            later - Duration::from_secs(1),
            &mut gone,
        )
        .unwrap();
        let a = g
            .heartbeat("g", hb("a", 3, None), &four, later, &mut gone)
            .unwrap();
        assert_eq!(gone, vec!["b".to_string()]);
        assert_eq!(a.assignment.unwrap()[&t].len(), 4);
        assert_eq!(
            g.heartbeat("g", hb("z", 5, None), &four, later, &mut gone)
                .unwrap_err()
                .0,
            KafkaError::UnknownMemberId
        );
        let left = g
            .heartbeat("g", hb("a", LEAVE_EPOCH, None), &four, later, &mut gone)
            .unwrap();
        assert_eq!(left.epoch, LEAVE_EPOCH);
        assert_eq!(g.list(), vec![("g".to_string(), "Empty")]);
    }
}
