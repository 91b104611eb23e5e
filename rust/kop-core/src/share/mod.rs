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

use crate::broker::partition::Partition;
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
            renew_enabled: true,
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
        if let Some(v) = overrides.get("share.renew.acknowledge.enable") {
            s.renew_enabled = !v.trim().eq_ignore_ascii_case("false");
        }
        s
    }
}

impl AutoOffsetReset {
    /// `earliest`, `latest` or `by_duration:<ISO-8601 duration>` (anything else: earliest;
    /// the group config is validated when set).
    fn parse(v: &str) -> AutoOffsetReset {
        let v = v.trim();
        if v.eq_ignore_ascii_case("latest") {
            return AutoOffsetReset::Latest;
        }
        match (v.get(..12), v.get(12..)) {
            (Some(p), Some(d)) if p.eq_ignore_ascii_case("by_duration:") => {
                duration_ms(d.trim()).map_or(AutoOffsetReset::Earliest, AutoOffsetReset::ByDuration)
            }
            _ => AutoOffsetReset::Earliest,
        }
    }

    /// Where a share partition of `p` without state starts.
    pub fn start_in(self, p: &Partition) -> i64 {
        match self {
            AutoOffsetReset::Latest => p.high_watermark(),
            AutoOffsetReset::Earliest => p.log_start_offset(),
            AutoOffsetReset::ByDuration(ms) => {
                match p.offset_for_timestamp(crate::now_ms().saturating_sub(ms)) {
                    Ok(Some(point)) => point.offset,
                    _ => p.high_watermark(),
                }
            }
        }
    }
}

/// Milliseconds of an ISO-8601 duration as Java's `Duration.parse` takes it (`PnDTnHnMn.nS`,
/// not negative); None if malformed.
fn duration_ms(s: &str) -> Option<i64> {
    let rest = s.strip_prefix(['P', 'p'])?;
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: f64 = 0.0;
    if !days.is_empty() {
        ms += days.strip_suffix(['D', 'd'])?.parse::<u64>().ok()? as f64 * 86_400_000.0;
    }
    match time {
        None if days.is_empty() => return None,
        None => {}
        Some("") => return None,
        Some(mut t) => {
            for (unit, scale) in [('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)] {
                if let Some(i) = t.find([unit, unit.to_ascii_lowercase()]) {
                    let n: f64 = t[..i].trim_start_matches('+').parse().ok()?;
                    if n < 0.0 || (unit != 'S' && n.fract() != 0.0) {
                        return None;
                    }
                    ms += n * scale;
                    t = &t[i + 1..];
                }
            }
            if !t.is_empty() {
                return None;
            }
        }
    }
    (ms <= i64::MAX as f64).then_some(ms as i64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_parse_as_kafka_names_them() {
        assert_eq!(AutoOffsetReset::parse("latest"), AutoOffsetReset::Latest);
        assert_eq!(
            AutoOffsetReset::parse("earliest"),
            AutoOffsetReset::Earliest
        );
        assert_eq!(
            AutoOffsetReset::parse("by_duration:PT1H30M"),
            AutoOffsetReset::ByDuration(5_400_000)
        );
        assert_eq!(
            AutoOffsetReset::parse("BY_DURATION:P1DT0.5S"),
            AutoOffsetReset::ByDuration(86_400_500)
        );
        assert_eq!(
            AutoOffsetReset::parse("by_duration:P"),
            AutoOffsetReset::Earliest
        );
        assert_eq!(duration_ms("PT"), None);
        assert_eq!(duration_ms("PT-1S"), None);
        assert_eq!(duration_ms("P2D"), Some(172_800_000));
    }
}
