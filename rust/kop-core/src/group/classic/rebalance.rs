//! The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and the timers
//! (join/sync deadlines, session expiry), following Kafka's classic group coordinator.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{ClassicGroup, GroupState, JoinOutcome, Member, SyncOutcome};
use crate::error::KafkaError;
use crate::group::state::{GroupConfig, Now, Reply};

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED with its id.
    pub require_known_member_id: bool,
    /// v9+: a rejoining static leader may be told to skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request, decoded.
pub struct SyncParams<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
    pub protocol_type: Option<&'a str>,
    pub protocol_name: Option<&'a str>,
    pub assignments: Vec<(String, Bytes)>,
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

fn now_join<T>(v: T) -> Reply<T> {
    Reply::Now(v)
}

impl ClassicGroup {
    /// The answer to a join that finds the member already in the current generation.
    fn current_join_outcome(&self, member_id: &str, skip: bool) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        let is_leader = leader == member_id;
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            skip_assignment: is_leader && skip,
            members: if is_leader {
                self.member_list()
            } else {
                Vec::new()
            },
        }
    }

    fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
            .collect()
    }

    pub fn join(&mut self, p: JoinParams, now: Now, cfg: &GroupConfig) -> Reply<JoinOutcome> {
        if !self.accepts_joining_member(&p.member_id, cfg.max_size) {
            if self.members.contains_key(&p.member_id) {
                self.remove_member(&p.member_id, KafkaError::GroupMaxSizeReached);
                self.members_left(now, cfg);
            }
            return now_join(JoinOutcome::error(KafkaError::GroupMaxSizeReached, ""));
        }
        if self.state == GroupState::Dead {
            return now_join(JoinOutcome::error(
                KafkaError::CoordinatorNotAvailable,
                &p.member_id,
            ));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return now_join(JoinOutcome::error(
                KafkaError::InconsistentGroupProtocol,
                &p.member_id,
            ));
        }
        if p.member_id.is_empty() {
            return self.join_unknown_member(p, now, cfg);
        }
        if self.pending.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            return self.add_member_and_rebalance(id, p, now, cfg);
        }
        if let Err(e) = self.validate_member(&p.member_id, p.instance_id.as_deref()) {
            return now_join(JoinOutcome::error(e, &p.member_id));
        }
        let changed = {
            let m = &self.members[&p.member_id];
            m.protocols != p.protocols
        };
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(p, now, cfg),
            GroupState::CompletingRebalance if !changed => {
                // The member's join response was lost: answer it again.
                self.touch(&p.member_id, now);
                now_join(self.current_join_outcome(&p.member_id, false))
            }
            GroupState::Stable if !changed && !self.is_leader(&p.member_id) => {
                self.touch(&p.member_id, now);
                now_join(self.current_join_outcome(&p.member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(p, now, cfg)
            }
            GroupState::Empty | GroupState::Dead => now_join(JoinOutcome::error(
                KafkaError::UnknownMemberId,
                &p.member_id,
            )),
        }
    }

    /// Kafka's admission under `group.max.size`: an empty group takes anyone; while a
    /// rebalance is prepared the members already waiting to join are counted (so when the limit
    /// was lowered, the last to rejoin are left out); otherwise the members.
    fn accepts_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::awaiting_join)
                    || self.members.values().filter(|m| m.awaiting_join()).count() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    fn join_unknown_member(
        &mut self,
        p: JoinParams,
        now: Now,
        cfg: &GroupConfig,
    ) -> Reply<JoinOutcome> {
        let prefix = p.instance_id.clone().unwrap_or_else(|| p.client_id.clone());
        let new_id = new_member_id(&prefix);
        if let Some(inst) = p.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&inst).cloned() {
                return self.rejoin_static_member(old_id, new_id, p, now, cfg);
            }
            return self.add_member_and_rebalance(new_id, p, now, cfg);
        }
        if p.require_known_member_id {
            let session = Duration::from_millis(p.session_timeout_ms.max(0) as u64);
            self.pending.insert(new_id.clone(), now.at + session);
            return now_join(JoinOutcome::error(KafkaError::MemberIdRequired, &new_id));
        }
        self.add_member_and_rebalance(new_id, p, now, cfg)
    }

    /// A static member came back with an unknown member id: it takes over its instance id
    /// (fencing the old member id) and, if nothing else changed, keeps its assignment.
    fn rejoin_static_member(
        &mut self,
        old_id: String,
        new_id: String,
        p: JoinParams,
        now: Now,
        cfg: &GroupConfig,
    ) -> Reply<JoinOutcome> {
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members
                .remove(p.instance_id.as_deref().unwrap_or_default());
            return self.add_member_and_rebalance(new_id, p, now, cfg);
        };
        member.fail_waiters(KafkaError::FencedInstanceId);
        member.protocols = p.protocols.clone();
        member.id = new_id.clone();
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.session_timeout = Duration::from_millis(p.session_timeout_ms.max(0) as u64);
        member.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64);
        member.last_heartbeat = now.at;
        self.members.insert(new_id.clone(), member);
        if let Some(inst) = &p.instance_id {
            self.static_members.insert(inst.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol {
                    // Same protocol next generation: no rebalance, the member keeps its
                    // assignment (SyncGroup at this generation returns it).
                    self.persist();
                    now_join(self.current_join_outcome(&new_id, p.supports_skip_assignment))
                } else {
                    self.update_member_and_rebalance(
                        JoinParams {
                            member_id: new_id,
                            ..p
                        },
                        now,
                        cfg,
                    )
                }
            }
            _ => self.update_member_and_rebalance(
                JoinParams {
                    member_id: new_id,
                    ..p
                },
                now,
                cfg,
            ),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        p: JoinParams,
        now: Now,
        cfg: &GroupConfig,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if let Some(inst) = &p.instance_id {
            self.static_members.insert(inst.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        let member = Member {
            id: id.clone(),
            instance_id: p.instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            session_timeout: Duration::from_millis(p.session_timeout_ms.max(0) as u64),
            rebalance_timeout: Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64),
            protocols: p.protocols,
            assignment: Bytes::new(),
            last_heartbeat: now.at,
            join_waiter: Some(tx),
            sync_waiter: None,
        };
        self.members.insert(id, member);
        match self.state {
            GroupState::PreparingRebalance => {
                if self.initial_delay {
                    self.extend_initial_delay(now, cfg);
                }
                self.try_complete_join(now);
            }
            _ => self.prepare_rebalance(now, cfg),
        }
        Reply::Wait(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        p: JoinParams,
        now: Now,
        cfg: &GroupConfig,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&p.member_id) {
            if let Some(old) = m.join_waiter.take() {
                let _ = old.send(JoinOutcome::error(KafkaError::UnknownMemberId, &m.id));
            }
            m.protocols = p.protocols;
            m.session_timeout = Duration::from_millis(p.session_timeout_ms.max(0) as u64);
            m.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64);
            m.join_waiter = Some(tx);
            m.last_heartbeat = now.at;
        }
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(now);
        } else {
            self.prepare_rebalance(now, cfg);
        }
        Reply::Wait(rx)
    }

    fn touch(&mut self, member_id: &str, now: Now) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now.at;
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Starts a rebalance: every member must rejoin before the join deadline.
    pub fn prepare_rebalance(&mut self, now: Now, cfg: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(Err(KafkaError::RebalanceInProgress));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.set_state(GroupState::PreparingRebalance, now.ms);
        self.sync_deadline = None;
        let rebalance_timeout = self.max_rebalance_timeout();
        if was_empty {
            // As in Kafka, the first join phase of an empty group ends from the timer, never
            // inside the JoinGroup that started it (not even with a delay of 0), so that
            // consumers started together get into the first generation.
            let delay = cfg.initial_join_phase().min(rebalance_timeout);
            self.initial_delay = true;
            self.initial_delay_ends = Some(now.at + rebalance_timeout.max(delay));
            self.join_deadline = Some(now.at + delay);
        } else {
            self.initial_delay = false;
            self.join_deadline = Some(now.at + rebalance_timeout);
        }
        self.try_complete_join(now);
    }

    /// A member joined during the initial delay: wait another delay, within the rebalance timeout.
    fn extend_initial_delay(&mut self, now: Now, cfg: &GroupConfig) {
        if let Some(limit) = self.initial_delay_ends {
            self.join_deadline = Some((now.at + cfg.initial_join_phase()).min(limit));
        }
    }

    /// Ends the join phase if every member has rejoined (or the deadline has passed).
    pub fn try_complete_join(&mut self, now: Now) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined =
            self.pending.is_empty() && self.members.values().all(Member::awaiting_join);
        let expired = self.join_deadline.is_none_or(|d| now.at >= d);
        if self.initial_delay {
            if !expired {
                return;
            }
            self.initial_delay = false;
            if !self.pending.is_empty() {
                // Members that were just handed their id with MEMBER_ID_REQUIRED rejoin within
                // a round trip: wait for them (Kafka's all-members-joined rule, which it skips
                // here) rather than start a generation that they would break up at once. The
                // wait ends when they rejoin, their id expires, or the rebalance timeout.
                self.join_deadline = self.initial_delay_ends;
                return;
            }
            self.complete_join(now);
        } else if all_joined || expired {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Now) {
        // Dynamic members that did not rejoin are out; static ones keep their place.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, KafkaError::UnknownMemberId);
        }
        self.initial_delay = false;
        self.initial_delay_ends = None;
        if self.members.is_empty() {
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            self.join_deadline = None;
            self.set_state(GroupState::Empty, now.ms);
            self.persist();
            return;
        }
        if !self.members.values().any(Member::awaiting_join) {
            // Only static members that have not rejoined: wait for them (or their session).
            self.join_deadline = Some(now.at + self.max_rebalance_timeout());
            return;
        }
        let leader_ok = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(Member::awaiting_join);
        if !leader_ok {
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join())
                .map(|m| m.id.clone());
        }
        self.generation += 1;
        self.protocol = self.select_protocol();
        self.join_deadline = None;
        self.set_state(GroupState::CompletingRebalance, now.ms);
        self.sync_deadline = Some(now.at + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.current_join_outcome(&id, false);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_heartbeat = now.at;
                m.assignment = Bytes::new();
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(outcome);
                }
            }
        }
    }

    /// Removes a member (leave, expiry, fencing); parked requests get `error`.
    pub fn remove_member(&mut self, id: &str, error: KafkaError) {
        if let Some(mut m) = self.members.remove(id) {
            m.fail_waiters(error);
            if let Some(inst) = &m.instance_id {
                if self.static_members.get(inst).map(String::as_str) == Some(id) {
                    self.static_members.remove(inst);
                }
            }
        }
    }

    /// After members left: rebalance (or finish the rebalance under way).
    fn members_left(&mut self, now: Now, cfg: &GroupConfig) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub fn sync(&mut self, p: SyncParams<'_>, now: Now, cfg: &GroupConfig) -> Reply<SyncOutcome> {
        let SyncParams {
            member_id,
            instance_id,
            generation,
            protocol_type,
            protocol_name,
            assignments,
        } = p;
        if self.state == GroupState::Dead {
            return Reply::Now(Err(KafkaError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            return Reply::Now(Err(e));
        }
        if generation != self.generation {
            return Reply::Now(Err(KafkaError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return Reply::Now(Err(KafkaError::InconsistentGroupProtocol));
        }
        let answer = |g: &ClassicGroup, a: Bytes| -> SyncOutcome {
            Ok((g.protocol_type.clone(), g.protocol.clone(), a))
        };
        match self.state {
            GroupState::Empty | GroupState::Dead => Reply::Now(Err(KafkaError::UnknownMemberId)),
            GroupState::PreparingRebalance => Reply::Now(Err(KafkaError::RebalanceInProgress)),
            GroupState::Stable => {
                self.touch(member_id, now);
                let a = self.members[member_id].assignment.clone();
                Reply::Now(answer(self, a))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_heartbeat = now.at;
                    if let Some(old) = m.sync_waiter.replace(tx) {
                        let _ = old.send(Err(KafkaError::UnknownMemberId));
                    }
                }
                if self.is_leader(member_id) {
                    for m in self.members.values_mut() {
                        m.assignment = assignments
                            .iter()
                            .find(|(id, _)| *id == m.id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    if self.record_size() > cfg.max_record_bytes {
                        // Kafka cannot store such a group record either: everyone gets
                        // UNKNOWN_SERVER_ERROR and the group rebalances.
                        tracing::warn!(group = %self.id, bytes = self.record_size(), "group metadata too large to store");
                        for m in self.members.values_mut() {
                            m.assignment = Bytes::new();
                            if let Some(w) = m.sync_waiter.take() {
                                let _ = w.send(Err(KafkaError::UnknownServerError));
                            }
                        }
                        self.prepare_rebalance(now, cfg);
                        return Reply::Wait(rx);
                    }
                    self.sync_deadline = None;
                    self.set_state(GroupState::Stable, now.ms);
                    self.persist();
                    let (pt, pn) = (self.protocol_type.clone(), self.protocol.clone());
                    for m in self.members.values_mut() {
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(Ok((pt.clone(), pn.clone(), m.assignment.clone())));
                        }
                    }
                }
                Reply::Wait(rx)
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> Result<(), KafkaError> {
        if self.state == GroupState::Dead {
            return Err(KafkaError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(KafkaError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(KafkaError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.touch(member_id, now);
                Err(KafkaError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.touch(member_id, now);
                Ok(())
            }
        }
    }

    /// LeaveGroup for several members; one result per member, in order.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Now,
        cfg: &GroupConfig,
    ) -> Vec<Result<(), KafkaError>> {
        let mut removed = false;
        let results = leaving
            .iter()
            .map(|(member_id, instance_id)| {
                let id = match instance_id {
                    Some(inst) => match self.static_members.get(inst) {
                        None => return Err(KafkaError::UnknownMemberId),
                        Some(id) if !member_id.is_empty() && id != member_id => {
                            return Err(KafkaError::FencedInstanceId)
                        }
                        Some(id) => id.clone(),
                    },
                    None => member_id.clone(),
                };
                if self.pending.remove(&id).is_some() {
                    removed = true;
                    return Ok(());
                }
                if !self.members.contains_key(&id) {
                    return Err(KafkaError::UnknownMemberId);
                }
                self.remove_member(&id, KafkaError::UnknownMemberId);
                removed = true;
                Ok(())
            })
            .collect();
        if removed {
            self.members_left(now, cfg);
        }
        results
    }

    /// Timers: join/sync deadlines, session expiry, expired pending member ids.
    pub fn tick(&mut self, now: Now, cfg: &GroupConfig) {
        self.pending.retain(|_, deadline| *deadline > now.at);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now.at.saturating_duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(id, KafkaError::UnknownMemberId);
        }
        if !expired.is_empty() {
            self.members_left(now, cfg);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now.at >= d)
        {
            // The leader never sent its assignment: drop whoever did not sync and start over.
            let lagging: Vec<String> = self
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in &lagging {
                self.remove_member(id, KafkaError::UnknownMemberId);
            }
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(Err(KafkaError::RebalanceInProgress));
                }
            }
            self.prepare_rebalance(now, cfg);
        }
        self.try_complete_join(now);
    }
}
