//! Share groups (KIP-932, "Kafka queues"): membership and assignment (`groups.rs`), share
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
use crate::storage::Metadata;
pub use partition::ShareLimits;
pub use states::{AutoOffsetReset, ShareKey, ShareSettings, ShareStates};

/// Everything of share groups an instance holds.
pub struct ShareCoordinator {
    pub groups: groups::ShareGroups,
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
            auto_offset_reset: if c.share_auto_offset_reset == "earliest" {
                AutoOffsetReset::Earliest
            } else {
                AutoOffsetReset::Latest
            },
        }
    }
}

impl ShareCoordinator {
    pub fn new(metadata: Arc<Metadata>, c: &ServerConfig) -> ShareCoordinator {
        ShareCoordinator {
            groups: groups::ShareGroups::default(),
            sessions: sessions::ShareSessions::new(
                c.group_share_max_share_sessions.max(1) as usize,
                groups::SESSION_TIMEOUT * 2,
            ),
            states: ShareStates::new(metadata, ShareSettings::from_server(c)),
        }
    }

    /// A member is gone (left, timed out, or its session closed): its share session ends and
    /// the records it holds become available again.
    pub fn member_gone(&self, group: &str, member: &str) {
        self.sessions.close(group, member);
        self.states.release_member(group, member);
    }
}

/// How long members of share groups have between heartbeats (exposed for the docs/tests).
pub const SESSION_TIMEOUT: Duration = groups::SESSION_TIMEOUT;
