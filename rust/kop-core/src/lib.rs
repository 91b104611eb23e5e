//! kop-core: a Kafka wire-protocol server (no Python here; see `kop-py` for the bindings).

pub mod alloc_guard;
pub mod auth;
pub mod broker;
pub mod codec;
pub mod config;
pub mod error;
pub mod group;
pub mod handlers;
pub mod limits;
pub mod log_names;
pub mod metrics;
pub mod net;
pub mod quotas;
pub mod records;
pub mod registry;
pub mod share;
pub mod shutdown;
pub mod storage;
pub mod tenants;
pub mod txn;

pub use config::ServerConfig;
pub use net::{BoundListener, RunningServer};

/// Wall-clock milliseconds since the Unix epoch (Kafka timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
