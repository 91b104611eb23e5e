//! The coordinator's side of Streams groups: a heartbeat runs on the group under its shard's
//! lock, and the group's new state is stored as one record (`GroupRecord::Streams`) whenever
//! it changed, so a coordinator that restarts or takes the shard over resumes it.

use std::time::Duration;

use super::topology::{Configured, Topology};
use super::{HeartbeatOut, HeartbeatParams, StreamsGroup, StreamsSettings};
use crate::error::KafkaError;
use crate::group::state::{Group, GroupKind, Now};
use crate::group::store::GroupRecord;
use crate::group::GroupCoordinator;

impl GroupCoordinator {
    /// The group's streams.num.standby.replicas and streams.initial.rebalance.delay.ms (else
    /// the broker's), streams.session.timeout.ms and streams.heartbeat.interval.ms.
    pub fn streams_settings(&self, group_id: &str) -> StreamsSettings {
        let s = self.group_configs.effective(group_id);
        StreamsSettings {
            num_standby: s
                .streams_num_standby_replicas
                .map_or(self.config.streams_num_standby_replicas, |n| {
                    usize::try_from(n).unwrap_or(0)
                }),
            session_timeout: Duration::from_millis(s.streams_session_timeout_ms.max(1) as u64),
            heartbeat_interval_ms: s.streams_heartbeat_interval_ms,
            initial_rebalance_delay: Duration::from_millis(
                s.streams_initial_rebalance_delay_ms
                    .map_or(self.config.streams_initial_rebalance_delay_ms, |ms| {
                        u64::try_from(ms).unwrap_or(0)
                    }),
            ),
        }
    }

    /// One StreamsGroupHeartbeat, with the group's settings now (a changed standby count
    /// gives the group a new target assignment).
    pub fn streams_heartbeat(
        &self,
        group_id: &str,
        p: HeartbeatParams,
        configure: &dyn Fn(&Topology) -> Configured,
    ) -> Result<HeartbeatOut, (KafkaError, String)> {
        if let Err(e) = self.admit(group_id) {
            let why = match e {
                KafkaError::NotCoordinator => "this kop instance does not coordinate groups now",
                _ => "the group id is empty",
            };
            return Err((e, why.into()));
        }
        let settings = self.streams_settings(group_id);
        self.with_group(group_id, p.member_epoch == 0, |g| {
            if g.streams().is_none() {
                if !g.is_empty() {
                    return Err((
                        KafkaError::GroupIdNotFound,
                        format!("Group {group_id} is not a streams group."),
                    ));
                }
                let since = g.state_since_ms();
                g.kind = GroupKind::Streams(StreamsGroup::new(since));
            }
            let GroupKind::Streams(s) = &mut g.kind else {
                return Err((KafkaError::UnknownServerError, String::new()));
            };
            s.session_timeout = Some(settings.session_timeout);
            s.initial_delay = settings.initial_rebalance_delay;
            let before = s.clone();
            let now = Now::current();
            let out = s.heartbeat(p, now.at, settings.num_standby, configure);
            if out.is_err() {
                // A refused heartbeat changes nothing (an invalid topology is found only once
                // the member has been taken in).
                *s = before;
                return out;
            }
            if durable_part_changed(&before, s) {
                if s.members.is_empty() {
                    s.state_since_ms = now.ms;
                }
                g.writes.push(GroupRecord::Streams {
                    group: group_id.to_string(),
                    state: Box::new(s.clone()),
                });
            }
            out
        })
        .map_err(|e| {
            let why = match e {
                KafkaError::GroupIdNotFound => format!("Group {group_id} not found."),
                _ => format!("group {group_id} is not available here now"),
            };
            (e, why)
        })?
    }

    /// Runs `f` on a Streams group; Err(GroupIdNotFound) if there is none of that id.
    pub fn with_streams_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&StreamsGroup) -> T,
    ) -> Result<T, KafkaError> {
        self.with_group_of_kind(group_id, Group::streams, f)
    }
}

/// Whether what is stored of the group changed (a heartbeat that only refreshed a member's
/// session, or brought task offsets or a new endpoint epoch, both kept in memory only,
/// writes nothing).
fn durable_part_changed(before: &StreamsGroup, after: &StreamsGroup) -> bool {
    let strip = |s: &StreamsGroup| {
        let mut s = s.clone();
        s.endpoint_epoch = 0;
        s.assignment_delayed_until = None;
        for m in s.members.values_mut() {
            m.last_heartbeat = before_instant();
            m.revocation_deadline = None;
            m.task_offsets.clear();
            m.task_end_offsets.clear();
        }
        s
    };
    strip(before) != strip(after)
}

/// One fixed instant, so that comparisons ignore the session clocks.
fn before_instant() -> std::time::Instant {
    static AT: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *AT.get_or_init(std::time::Instant::now)
}
