//! Share groups (KIP-932, "Kafka queues"): membership and assignment (`groups.rs`, a kind of
//! group of the group coordinator, stored in its log: `group/share.rs`), share
//! sessions (`sessions.rs`), the delivery state of each share partition (`partition.rs`, pure)
//! and its durable copy (`states.rs`, `state_doc.rs`). The handlers are
//! `handlers/share_groups.rs` (ShareGroupHeartbeat, ShareGroupDescribe, the offset admin APIs)
//! and `handlers/share_fetch.rs` (ShareFetch, ShareAcknowledge).

pub mod groups;
pub mod partition;
#[cfg(test)]
mod partition_tests;
pub mod sessions;
pub mod state_doc;
pub mod states;

use std::sync::Arc;
use std::time::Duration;

use crate::config::ServerConfig;
use crate::error::KafkaError;
use crate::group::configs::GroupConfigs;
use crate::group::GroupCoordinator;
use crate::storage::overrides::Configs;
use crate::storage::Metadata;
pub use partition::ShareLimits;
pub use states::{AutoOffsetReset, ShareKey, ShareSettings, ShareStates};

/// Everything of share groups an instance holds besides their membership.
pub struct ShareCoordinator {
    pub sessions: sessions::ShareSessions,
    pub states: ShareStates,
}

impl ShareSettings {
    pub fn from_server(c: &ServerConfig) -> ShareSettings {
        ShareSettings {
            limits: ShareLimits {
                lock_ms: c.group_share_record_lock_duration_ms,
                delivery_limit: c.group_share_delivery_count_limit.clamp(1, i16::MAX as i64) as i16,
                max_in_flight: c.group_share_partition_max_record_locks,
            },
            auto_offset_reset: AutoOffsetReset::parse(&c.share_auto_offset_reset),
            read_committed: false,
        }
    }

    /// A group's settings: its GROUP configs (`kafka-configs --entity-type groups`) over the
    /// broker's `group.share.*` defaults (`self`).
    pub fn with_overrides(self, overrides: &Configs) -> ShareSettings {
        let mut s = self;
        let int = |name: &str| overrides.get(name).and_then(|v| v.parse::<i64>().ok());
        if let Some(v) = int("share.record.lock.duration.ms") {
            s.limits.lock_ms = v;
        }
        if let Some(v) = int("share.delivery.count.limit") {
            s.limits.delivery_limit = v.clamp(1, i16::MAX as i64) as i16;
        }
        if let Some(v) = int("share.partition.max.record.locks") {
            s.limits.max_in_flight = v;
        }
        if let Some(v) = overrides.get("share.auto.offset.reset") {
            s.auto_offset_reset = AutoOffsetReset::parse(v);
        }
        if let Some(v) = overrides.get("share.isolation.level") {
            s.read_committed = v == "read_committed";
        }
        s
    }
}

impl AutoOffsetReset {
    /// `earliest`, `latest` or `by_duration:<ISO-8601 duration>`; a duration starts at the
    /// log's start (kop keeps no time index to start by timestamp).
    fn parse(v: &str) -> AutoOffsetReset {
        if v == "latest" {
            AutoOffsetReset::Latest
        } else {
            AutoOffsetReset::Earliest
        }
    }
}

impl ShareCoordinator {
    pub fn new(metadata: Arc<Metadata>, c: &ServerConfig) -> ShareCoordinator {
        ShareCoordinator {
            sessions: sessions::ShareSessions::new(
                c.group_share_max_share_sessions.max(1) as usize,
                groups::SESSION_TIMEOUT * 2,
            ),
            states: ShareStates::new(metadata, ShareSettings::from_server(c)),
        }
    }

    /// What `group` runs with now.
    pub fn settings(&self, configs: &GroupConfigs, group: &str) -> ShareSettings {
        self.states
            .defaults()
            .with_overrides(&configs.overrides(group))
    }

    /// Whether `group` is a share group: one the coordinator holds, or one with a stored
    /// share-partition state.
    pub fn is_share_group(&self, coordinator: &GroupCoordinator, group: &str) -> bool {
        coordinator.is_share_group(group) || self.states.stored(group).is_ok_and(|s| !s.is_empty())
    }

    /// DeleteGroups of a share group: NON_EMPTY_GROUP while it has members, else its
    /// membership and its share partitions' states go.
    pub fn delete_group(
        &self,
        coordinator: &GroupCoordinator,
        group: &str,
    ) -> Result<(), KafkaError> {
        if coordinator.share_group_has_members(group) {
            return Err(KafkaError::NonEmptyGroup);
        }
        self.states.delete_group(group)?;
        match coordinator.delete_group(group) {
            Err(KafkaError::GroupIdNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A connection closed: the share sessions it opened end and their members' acquired
    /// records become available again (Kafka 4.4 does this from its connection-disconnect
    /// listener; leaving the group or timing out of it releases nothing by itself).
    pub fn connection_closed(&self, configs: &GroupConfigs, connection: u64) {
        for (group, member) in self.sessions.close_connection(connection) {
            let limits = self.settings(configs, &group).limits;
            self.states.release_member(&group, &member, &limits);
        }
    }

    /// A member closed its share session (epoch -1): the session ends and the records it
    /// holds become available again.
    pub fn member_gone(&self, configs: &GroupConfigs, group: &str, member: &str) {
        self.sessions.close(group, member);
        let limits = self.settings(configs, group).limits;
        self.states.release_member(group, member, &limits);
    }
}

/// How long members of share groups have between heartbeats (exposed for the docs/tests).
pub const SESSION_TIMEOUT: Duration = groups::SESSION_TIMEOUT;
