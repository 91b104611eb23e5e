//! KIP-1071 Streams groups: StreamsGroupHeartbeat with the topology held by the coordinator,
//! server-side task assignment (`assignor.rs`) and incremental reconciliation as Kafka's
//! `GroupMetadataManager.streamsGroupHeartbeat` does it: a member first gives up the tasks
//! its new target no longer has (it keeps its epoch until it reports them gone), and gets a
//! task only once the previous owner has given it up.

pub mod assignor;
mod coordinator;
mod copartition;
pub mod endpoints;
pub mod topology;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::assignor::{AssignorMember, MemberTasks, TaskSet};
use self::endpoints::EndpointTasks;
use self::topology::{
    Configured, Topology, ASSIGNMENT_DELAYED, SHUTDOWN_APPLICATION, STALE_TOPOLOGY,
};
use crate::error::KafkaError;

/// Kafka's `group.streams.session.timeout.ms` default.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(45_000);
/// Kafka's `group.streams.heartbeat.interval.ms` default.
pub const HEARTBEAT_INTERVAL_MS: i32 = 5_000;
/// The status detail of Kafka 4.4 while the first assignment waits.
const DELAYED_DETAIL: &str = "Assignment delayed due to the configured initial rebalance delay.";

/// What a Streams group runs with: its GROUP configs (`streams.*`) over the broker's settings
/// (`GroupCoordinator::streams_settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamsSettings {
    pub num_standby: usize,
    pub session_timeout: Duration,
    pub heartbeat_interval_ms: i32,
    /// How long the first assignment of a group that was empty waits for more members.
    pub initial_rebalance_delay: Duration,
}

pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

fn now_instant() -> Instant {
    Instant::now()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamsMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub process_id: String,
    pub user_endpoint: Option<(String, u16)>,
    pub client_tags: Vec<(String, String)>,
    pub topology_epoch: i32,
    pub epoch: i32,
    pub rebalance_timeout_ms: i32,
    pub assigned: MemberTasks,
    /// Active tasks given up in the new target that the member has not yet reported gone.
    pub pending_revocation: TaskSet,
    /// The changelog offsets and end offsets the member last reported (TaskOffsets and
    /// TaskEndOffsets), shown by StreamsGroupDescribe; kept in memory only, as Kafka does.
    #[serde(skip)]
    pub task_offsets: Vec<TaskOffset>,
    #[serde(skip)]
    pub task_end_offsets: Vec<TaskOffset>,
    #[serde(skip, default = "now_instant")]
    pub last_heartbeat: Instant,
    #[serde(skip)]
    pub revocation_deadline: Option<Instant>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamsGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub topology: Option<Topology>,
    /// Subtopology → number of tasks the last assignment was computed for.
    pub tasks: BTreeMap<String, i32>,
    pub members: BTreeMap<String, StreamsMember>,
    pub target: BTreeMap<String, MemberTasks>,
    /// `group.streams.num.standby.replicas` the target was computed with.
    pub num_standby: usize,
    pub state_since_ms: i64,
    /// A member asked for the whole application to shut down (status SHUTDOWN_APPLICATION
    /// to every member until the group is empty).
    pub shutdown_requested: bool,
    #[serde(skip)]
    pub session_timeout: Option<Duration>,
    /// Kafka's endpoint information epoch: bumped whenever a member with an IQ endpoint
    /// (`application.server`) gets other tasks or a member's endpoint changes; a member whose
    /// heartbeat carries another epoch gets every member's endpoint and partitions. In memory,
    /// as Kafka keeps it.
    #[serde(skip)]
    pub endpoint_epoch: i32,
    /// Kafka's `streams.initial.rebalance.delay.ms`: set by the coordinator at each heartbeat.
    #[serde(skip)]
    pub initial_delay: Duration,
    /// Until when the target assignment waits: a member joining the empty group starts the
    /// delay (Kafka's initial-rebalance timer, which is not restarted while it runs and, as a
    /// timer, is not stored either).
    #[serde(skip)]
    pub assignment_delayed_until: Option<Instant>,
}

/// One TaskOffset of a heartbeat: (subtopology, partition, offset).
pub type TaskOffset = (String, i32, i64);

/// A StreamsGroupHeartbeat request, decoded.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatParams {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topology: Option<Topology>,
    pub owned_active: Option<TaskSet>,
    pub owned_standby: Option<TaskSet>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<(String, u16)>,
    pub client_tags: Option<Vec<(String, String)>>,
    pub shutdown_application: bool,
    pub client_id: String,
    pub client_host: String,
    /// The endpoint information epoch the member last received.
    pub endpoint_epoch: i32,
    /// Null (None) when unchanged since the last heartbeat.
    pub task_offsets: Option<Vec<TaskOffset>>,
    pub task_end_offsets: Option<Vec<TaskOffset>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatOut {
    pub member_id: String,
    pub epoch: i32,
    pub tasks: MemberTasks,
    pub statuses: Vec<(i8, String)>,
    pub endpoint_epoch: i32,
    /// Every member's IQ endpoint and tasks, when the member's endpoint epoch is not the
    /// group's (None: unchanged).
    pub endpoints: Option<Vec<EndpointTasks>>,
}

fn minus(a: &TaskSet, b: &TaskSet) -> TaskSet {
    filter(a, |s, p| !assignor::contains(b, s, p))
}

fn filter(a: &TaskSet, keep: impl Fn(&str, i32) -> bool) -> TaskSet {
    let mut out = TaskSet::new();
    for (s, ps) in a {
        let kept: std::collections::BTreeSet<i32> =
            ps.iter().copied().filter(|&p| keep(s, p)).collect();
        if !kept.is_empty() {
            out.insert(s.clone(), kept);
        }
    }
    out
}

fn is_empty(a: &TaskSet) -> bool {
    a.values().all(|ps| ps.is_empty())
}

/// Whether a heartbeat changed member metadata that makes a new group epoch (Kafka's
/// `hasStreamsMemberMetadataChanged`): for a static member only what
/// `hasEpochRelevantMemberConfigChanged` looks at (topology epoch, rack, client tags, process
/// id), so that the instance coming back as it was moves no task; for a dynamic member any
/// metadata the heartbeat sets.
fn metadata_changed(before: &StreamsMember, after: &StreamsMember, is_static: bool) -> bool {
    let relevant = before.topology_epoch != after.topology_epoch
        || before.rack_id != after.rack_id
        || before.client_tags != after.client_tags
        || before.process_id != after.process_id;
    relevant
        || (!is_static
            && (before.user_endpoint != after.user_endpoint
                || before.rebalance_timeout_ms != after.rebalance_timeout_ms))
}

impl StreamsGroup {
    pub fn new(state_since_ms: i64) -> StreamsGroup {
        StreamsGroup {
            state_since_ms,
            ..StreamsGroup::default()
        }
    }

    /// Kafka's `StreamsGroupState` names.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.tasks.is_empty() {
            "NotReady"
        } else if self.epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !is_empty(&m.pending_revocation))
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn bump(&mut self) {
        self.epoch += 1;
    }

    /// One heartbeat. `configure` resolves a topology against the topics there are now.
    pub fn heartbeat(
        &mut self,
        p: HeartbeatParams,
        now: Instant,
        num_standby: usize,
        configure: &dyn Fn(&Topology) -> Configured,
    ) -> Result<HeartbeatOut, (KafkaError, String)> {
        if p.member_epoch == LEAVE_EPOCH || p.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(p);
        }
        if let Some(instance) = &p.instance_id {
            self.check_static_member(instance, &p.member_id, p.member_epoch)?;
        }
        let (was_empty, epoch_before) = (self.members.is_empty(), self.epoch);
        let before = self
            .members
            .get(&p.member_id)
            .map(|m| (m.assigned.clone(), m.user_endpoint.clone()));
        let mut statuses = Vec::new();
        // The member as it was (for a static member rejoining: the member it replaces).
        let prior: Option<StreamsMember>;
        if p.member_epoch == 0 {
            let Some(topology) = p.topology.clone() else {
                return Err((
                    KafkaError::InvalidRequest,
                    "Topology must be non-null when joining the group.".into(),
                ));
            };
            match &self.topology {
                Some(t) if t.epoch > topology.epoch => statuses.push((
                    STALE_TOPOLOGY,
                    format!(
                        "The member's topology epoch {} is behind the group's {}.",
                        topology.epoch, t.epoch
                    ),
                )),
                Some(t) if t.epoch == topology.epoch && *t != topology => {
                    return Err((
                        KafkaError::StreamsInvalidTopologyEpoch,
                        "Topology updated but topology epoch not incremented.".into(),
                    ))
                }
                Some(t) if *t == topology => {}
                _ => {
                    self.topology = Some(topology.clone());
                    self.bump();
                }
            }
            let topology_epoch = topology.epoch;
            if let Some(instance) = &p.instance_id {
                self.replace_static_member(instance, &p.member_id);
            }
            prior = self.members.get(&p.member_id).cloned();
            match self.members.get_mut(&p.member_id) {
                // A rejoin of a known member (after a fencing the client did not see).
                Some(m) => {
                    m.epoch = 0;
                    m.topology_epoch = topology_epoch;
                }
                None => {
                    self.members.insert(
                        p.member_id.clone(),
                        StreamsMember {
                            id: p.member_id.clone(),
                            instance_id: p.instance_id.clone(),
                            rack_id: p.rack_id.clone(),
                            client_id: p.client_id.clone(),
                            client_host: p.client_host.clone(),
                            process_id: p.process_id.clone().unwrap_or_default(),
                            user_endpoint: p.user_endpoint.clone(),
                            client_tags: p.client_tags.clone().unwrap_or_default(),
                            topology_epoch,
                            epoch: 0,
                            rebalance_timeout_ms: p.rebalance_timeout_ms,
                            assigned: MemberTasks::default(),
                            pending_revocation: TaskSet::new(),
                            task_offsets: Vec::new(),
                            task_end_offsets: Vec::new(),
                            last_heartbeat: now,
                            revocation_deadline: None,
                        },
                    );
                    self.bump();
                }
            }
        } else {
            let m = self.members.get(&p.member_id).ok_or_else(|| {
                (
                    KafkaError::UnknownMemberId,
                    format!("Member {} is not a member of the group.", p.member_id),
                )
            })?;
            prior = Some(m.clone());
            // The previous epoch is fine while the member still reconciles to the new one.
            if p.member_epoch != m.epoch {
                return Err((
                    KafkaError::FencedMemberEpoch,
                    format!(
                        "The streams group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its tasks and rejoin.",
                        p.member_epoch, m.epoch
                    ),
                ));
            }
        }
        if p.shutdown_application {
            self.shutdown_requested = true;
        }
        let is_static = p.instance_id.is_some();
        {
            let m = self.members.get_mut(&p.member_id).expect("member joined");
            m.last_heartbeat = now;
            if let Some(r) = p.rack_id {
                m.rack_id = Some(r);
            }
            if p.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = p.rebalance_timeout_ms;
            }
            if let Some(pid) = p.process_id {
                m.process_id = pid;
            }
            if p.user_endpoint.is_some() {
                m.user_endpoint = p.user_endpoint;
            }
            if let Some(tags) = p.client_tags {
                m.client_tags = tags;
            }
            if let Some(offsets) = p.task_offsets {
                m.task_offsets = offsets;
            }
            if let Some(offsets) = p.task_end_offsets {
                m.task_end_offsets = offsets;
            }
            // The member reports what it owns: revoked tasks it no longer has are released.
            if let Some(owned) = &p.owned_active {
                let still = filter(&m.pending_revocation, |s, q| {
                    assignor::contains(owned, s, q)
                });
                m.pending_revocation = still;
                if is_empty(&m.pending_revocation) {
                    m.revocation_deadline = None;
                }
            }
        }
        if let Some(prior) = &prior {
            if metadata_changed(prior, &self.members[&p.member_id], is_static) {
                self.bump();
            }
        }
        // The topology against the topics there are now; a change of task counts is a new
        // group epoch.
        let configured = match &self.topology {
            Some(t) => configure(t),
            None => Configured::default(),
        };
        if let Some(msg) = configured.invalid {
            // Nothing of this heartbeat is kept (the coordinator restores the group).
            return Err((KafkaError::StreamsInvalidTopology, msg));
        }
        // Kafka lists a delayed assignment after a stale topology, before the topology's own.
        let delayed_at = statuses.len();
        statuses.extend(configured.statuses.iter().cloned());
        if configured.tasks != self.tasks {
            self.tasks = configured.tasks.clone();
            self.bump();
        }
        // Kafka's initial rebalance delay: a new group epoch of a group that had no members
        // starts it; meanwhile no target is computed and every heartbeat is told so.
        if was_empty && self.epoch > epoch_before && !self.initial_delay.is_zero() {
            self.assignment_delayed_until
                .get_or_insert(now + self.initial_delay);
        }
        if self.assignment_delayed(now) {
            statuses.insert(delayed_at, (ASSIGNMENT_DELAYED, DELAYED_DETAIL.into()));
            // Meanwhile the member is in the group at its epoch, without tasks (all joined
            // since it was empty): a Streams client told epoch 0 would heartbeat again as a
            // join without its topology.
            if let Some(m) = self.members.get_mut(&p.member_id) {
                if is_empty(&m.assigned.active) && is_empty(&m.pending_revocation) {
                    m.epoch = self.epoch;
                }
            }
        } else {
            if self.epoch > self.assignment_epoch || num_standby != self.num_standby {
                self.compute_target(num_standby);
            }
            self.reconcile(&p.member_id, now);
        }
        if self.shutdown_requested {
            statuses.push((
                SHUTDOWN_APPLICATION,
                "A KafkaStreams instance encountered a fatal error and requested a shutdown for the entire application.".into(),
            ));
        }
        let m = &self.members[&p.member_id];
        // Kafka's rule: a new endpoint, or other tasks for a member with an endpoint, is a new
        // endpoint information epoch.
        let (tasks_changed, endpoint_changed) = match &before {
            Some((tasks, endpoint)) => (*tasks != m.assigned, *endpoint != m.user_endpoint),
            None => (true, m.user_endpoint.is_some()),
        };
        if endpoint_changed || (tasks_changed && m.user_endpoint.is_some()) {
            self.endpoint_epoch += 1;
        }
        let m = &self.members[&p.member_id];
        Ok(HeartbeatOut {
            member_id: m.id.clone(),
            epoch: m.epoch,
            tasks: m.assigned.clone(),
            statuses,
            endpoint_epoch: self.endpoint_epoch,
            endpoints: (p.endpoint_epoch != self.endpoint_epoch)
                .then(|| endpoints::of_members(self.members.values())),
        })
    }

    /// A leave: a dynamic member (or one leaving with -1) is removed and its tasks move; a
    /// static member leaving with -2 stays with its tasks (epoch -2) so that its instance,
    /// rejoining within the session timeout, gets them back without a rebalance (Kafka's
    /// `streamsGroupLeave`).
    fn leave(&mut self, p: HeartbeatParams) -> Result<HeartbeatOut, (KafkaError, String)> {
        if let Some(instance) = &p.instance_id {
            self.check_static_member(instance, &p.member_id, p.member_epoch)?;
        }
        let out = HeartbeatOut {
            member_id: p.member_id.clone(),
            epoch: p.member_epoch,
            ..HeartbeatOut::default()
        };
        if p.member_epoch == STATIC_LEAVE_EPOCH && p.instance_id.is_some() {
            if let Some(m) = self.members.get_mut(&p.member_id) {
                m.epoch = STATIC_LEAVE_EPOCH;
                // What it was revoking is given up now; what it holds stays its.
                m.pending_revocation = TaskSet::new();
                m.revocation_deadline = None;
            }
            return Ok(out);
        }
        if self.members.remove(&p.member_id).is_some() {
            self.target.remove(&p.member_id);
            self.bump();
            self.empty_target_when_empty();
        }
        Ok(out)
    }

    /// The last member gone, the (empty) target is that of the new group epoch, as Kafka's
    /// `streamsGroupFenceMember` records it (`--describe --state` shows the two epochs equal).
    fn empty_target_when_empty(&mut self) {
        if self.members.is_empty() {
            self.assignment_epoch = self.epoch;
        }
    }

    /// Whether the initial rebalance delay still runs at `now` (once it has passed it is
    /// forgotten).
    fn assignment_delayed(&mut self, now: Instant) -> bool {
        match self.assignment_delayed_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.assignment_delayed_until = None;
                false
            }
            None => false,
        }
    }

    /// The end of the initial rebalance delay, from the coordinator's timer: the target is
    /// computed then (Kafka's `computeDelayedTargetAssignment`; skipped if the group is empty
    /// again), so members get their tasks at their next heartbeat. True if it was.
    pub fn end_assignment_delay(&mut self, now: Instant) -> bool {
        if self.assignment_delayed_until.is_none() || self.assignment_delayed(now) {
            return false;
        }
        if self.members.is_empty() || self.epoch <= self.assignment_epoch {
            return false;
        }
        self.compute_target(self.num_standby);
        true
    }

    fn static_member(&self, instance: &str) -> Option<&StreamsMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Kafka's checks of a static member's heartbeat: a join may take over the instance only
    /// once its previous member left with -2; any other heartbeat must come from the member
    /// that holds the instance id.
    fn check_static_member(
        &self,
        instance: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), (KafkaError, String)> {
        let holder = self.static_member(instance);
        match holder {
            Some(m) if m.id == member_id => Ok(()),
            Some(m) if epoch == 0 => {
                if m.epoch == STATIC_LEAVE_EPOCH {
                    Ok(())
                } else {
                    Err((
                        KafkaError::UnreleasedInstanceId,
                        format!(
                            "Static member {} with instance id {instance} is not released yet.",
                            m.id
                        ),
                    ))
                }
            }
            None if epoch == 0 => Ok(()),
            Some(_) => Err((
                KafkaError::FencedInstanceId,
                format!("Static member {member_id} with instance id {instance} was fenced by another member."),
            )),
            None => Err((
                KafkaError::UnknownMemberId,
                format!("Instance id {instance} is unknown."),
            )),
        }
    }

    /// A static member rejoining under a new member id takes over the previous member's
    /// tasks and target (no new group epoch, as Kafka's `replaceStreamsMember`).
    fn replace_static_member(&mut self, instance: &str, member_id: &str) {
        let Some(old) = self.static_member(instance).cloned() else {
            return;
        };
        if old.id == member_id {
            return;
        }
        self.members.remove(&old.id);
        let target = self.target.remove(&old.id);
        let mut m = old;
        m.id = member_id.to_string();
        m.epoch = 0;
        self.members.insert(member_id.to_string(), m);
        if let Some(t) = target {
            self.target.insert(member_id.to_string(), t);
        }
    }

    fn compute_target(&mut self, num_standby: usize) {
        let empty = MemberTasks::default();
        let members: Vec<AssignorMember> = self
            .members
            .values()
            .map(|m| AssignorMember {
                id: &m.id,
                process_id: if m.process_id.is_empty() {
                    &m.id
                } else {
                    &m.process_id
                },
                previous: self.target.get(&m.id).unwrap_or(&empty),
            })
            .collect();
        self.target = assignor::assign(&members, &self.tasks, num_standby);
        self.num_standby = num_standby;
        self.assignment_epoch = self.epoch;
    }

    /// Whether another member holds `task` as an active task (or has yet to give it up).
    fn owned_elsewhere(&self, member: &str, s: &str, p: i32) -> bool {
        self.members.values().any(|o| {
            o.id != member
                && (assignor::contains(&o.assigned.active, s, p)
                    || assignor::contains(&o.pending_revocation, s, p))
        })
    }

    /// Moves a member towards its target (Kafka's `CurrentAssignmentBuilder` for Streams).
    fn reconcile(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let epoch = self.assignment_epoch;
        let m = &self.members[member_id];
        if !is_empty(&m.pending_revocation) {
            return; // still revoking: nothing new until the member reports them gone
        }
        if m.epoch == epoch && m.assigned == target {
            return;
        }
        let revoke = minus(&m.assigned.active, &target.active);
        if !is_empty(&revoke) {
            let m = self.members.get_mut(member_id).expect("member");
            m.assigned.active = minus(&m.assigned.active, &revoke);
            m.assigned.standby = filter(&m.assigned.standby, |s, p| {
                assignor::contains(&target.standby, s, p)
            });
            m.pending_revocation = revoke;
            m.revocation_deadline =
                Some(now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
            return;
        }
        // Take the tasks of the target nobody else holds any more.
        let free = filter(&target.active, |s, p| {
            !self.owned_elsewhere(member_id, s, p)
        });
        let m = self.members.get_mut(member_id).expect("member");
        m.assigned.active = free;
        m.assigned.standby = target.standby.clone();
        m.epoch = epoch;
    }

    /// Session expiry and revocation deadlines; the members removed.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let session = self.session_timeout.unwrap_or(SESSION_TIMEOUT);
        let doomed: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                crate::group::consumer::member_expired(
                    now,
                    m.last_heartbeat,
                    m.revocation_deadline,
                    session,
                )
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &doomed {
            self.members.remove(id);
            self.target.remove(id);
        }
        if !doomed.is_empty() {
            self.bump();
            self.empty_target_when_empty();
        }
        if self.members.is_empty() {
            self.shutdown_requested = false;
        }
        doomed
    }

    /// OffsetCommit by a member at an epoch (Kafka's `StreamsGroup.validateOffsetCommit`).
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), KafkaError> {
        let member_epoch = self.members.get(member_id).map(|m| m.epoch);
        crate::group::offsets::validate_member_epoch(
            member_epoch,
            self.members.is_empty(),
            member_id,
            epoch,
        )
    }

    /// The source topics of the topology (for offset fetches and describes).
    pub fn subscribed_topics(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .topology
            .iter()
            .flat_map(|t| &t.subtopologies)
            .flat_map(|s| s.source_topics.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests;
