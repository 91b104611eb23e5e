//! The coordinator's side of share groups (KIP-932): a ShareGroupHeartbeat runs on the group
//! under its shard's lock, and the group's membership is stored as one record
//! (`GroupRecord::Share`) whenever it changed, so a coordinator that restarts, is killed or
//! takes the shard over resumes the group at its epochs, as Kafka's group coordinator does
//! from `__consumer_offsets`.

use super::state::{Group, GroupKind, Now};
use super::store::GroupRecord;
use super::GroupCoordinator;
use crate::error::KafkaError;
use crate::share::groups::{ShareGroup, ShareHeartbeat, ShareHeartbeatOut, Topics};

impl Group {
    pub fn share(&self) -> Option<&ShareGroup> {
        match &self.kind {
            GroupKind::Share(s) => Some(s),
            _ => None,
        }
    }
}

impl GroupCoordinator {
    /// One ShareGroupHeartbeat. A group id of another type (even an empty one with offsets)
    /// is GROUP_ID_NOT_FOUND, as in Kafka.
    pub fn share_heartbeat(
        &self,
        group_id: &str,
        hb: ShareHeartbeat,
        topics: Topics<'_>,
    ) -> Result<ShareHeartbeatOut, (KafkaError, String)> {
        self.admit(group_id).map_err(|e| (e, e.to_string()))?;
        let joining = hb.member_epoch == 0;
        let member = hb.member_id.clone();
        self.with_group(group_id, joining, |g| {
            if g.share().is_none() {
                if !g.is_unused() {
                    return Err((
                        KafkaError::GroupIdNotFound,
                        format!("Group {group_id} is not a share group."),
                    ));
                }
                g.kind = GroupKind::Share(ShareGroup::new(crate::now_ms()));
            }
            let GroupKind::Share(s) = &mut g.kind else {
                return Err((KafkaError::UnknownServerError, String::new()));
            };
            let before = s.clone();
            let now = Now::current();
            let out = s.heartbeat(group_id, hb, topics, now.at);
            if !s.same_stored(&before) {
                if s.members.is_empty() != before.members.is_empty() {
                    s.state_since_ms = now.ms;
                }
                let record = GroupRecord::Share {
                    group: group_id.to_string(),
                    state: Box::new(s.clone()),
                };
                g.writes.push(record);
            }
            out
        })
        .map_err(|e| match e {
            KafkaError::GroupIdNotFound => (
                KafkaError::UnknownMemberId,
                format!("Member {member} is not a member of group {group_id}."),
            ),
            e => (e, e.to_string()),
        })?
    }

    /// Runs `f` on a share group; Err(GroupIdNotFound) if there is none of that id.
    pub fn with_share_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ShareGroup) -> T,
    ) -> Result<T, KafkaError> {
        self.with_group_of_kind(group_id, Group::share, f)
    }

    /// Whether `group_id` is a share group coordinated here.
    pub fn is_share_group(&self, group_id: &str) -> bool {
        self.with_share_group(group_id, |_| ()).is_ok()
    }

    /// Whether the share group has members now.
    pub fn share_group_has_members(&self, group_id: &str) -> bool {
        self.with_share_group(group_id, |s| !s.members.is_empty())
            .unwrap_or(false)
    }
}
