//! The coordinator's side of Streams groups: a heartbeat runs on the group under its shard's
//! lock, and the group's new state is stored as one record (`GroupRecord::Streams`) whenever
//! it changed, so a coordinator that restarts or takes the shard over resumes it.

use std::time::Duration;

use super::topology::{Configured, Topology};
use super::{HeartbeatOut, HeartbeatParams, StreamsGroup, SESSION_TIMEOUT};
use crate::error::KafkaError;
use crate::group::state::{Group, GroupKind, Now};
use crate::group::store::GroupRecord;
use crate::group::GroupCoordinator;

impl GroupCoordinator {
    pub fn streams_heartbeat(
        &self,
        group_id: &str,
        p: HeartbeatParams,
        num_standby: usize,
        configure: &dyn Fn(&Topology) -> Configured,
    ) -> Result<HeartbeatOut, (KafkaError, String)> {
        if let Err(e) = self.admit(group_id) {
            let why = match e {
                KafkaError::NotCoordinator => "this kop instance does not coordinate groups now",
                _ => "the group id is empty",
            };
            return Err((e, why.into()));
        }
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
            s.session_timeout = Some(SESSION_TIMEOUT.max(Duration::from_millis(1)));
            let before = s.clone();
            let now = Now::current();
            let out = s.heartbeat(p, now.at, num_standby, configure);
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
        self.admit(group_id)?;
        let groups = self
            .shard_for(group_id)
            .lock_active()
            .ok_or(KafkaError::NotCoordinator)?;
        let s = groups
            .get(group_id)
            .and_then(Group::streams)
            .ok_or(KafkaError::GroupIdNotFound)?;
        Ok(f(s))
    }
}

/// Whether what is stored of the group changed (a heartbeat that only refreshed a member's
/// session writes nothing).
fn durable_part_changed(before: &StreamsGroup, after: &StreamsGroup) -> bool {
    let strip = |s: &StreamsGroup| {
        let mut s = s.clone();
        for m in s.members.values_mut() {
            m.last_heartbeat = before_instant();
            m.revocation_deadline = None;
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
