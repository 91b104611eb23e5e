//! What one client may take from the server as a whole: request memory, a place among the
//! unauthenticated connections, log lines. Shared by every connection of a server.

pub mod connections;
pub mod log_limit;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::codec::frame::FrameRules;
use crate::codec::memory::{MemoryPool, WhenExhausted};
use crate::config::ServerConfig;
use connections::ConnectionCounts;
use log_limit::LogLimiter;

/// Kafka's `sasl.server.max.receive.size` default: the largest frame accepted before a SASL
/// connection has authenticated.
pub const SASL_MAX_RECEIVE: i32 = 524_288;

/// Bytes of each frame of an unauthenticated connection that need nothing from its pool
/// (SASL requests are far smaller): logins keep working while the pool is in use. Bounded by
/// `max_unauthenticated_connections`.
pub const UNAUTHENTICATED_FREE_BYTES: usize = 8192;

pub struct ConnectionLimits {
    /// Frames of authenticated connections (every connection on a listener without SASL).
    /// When it is empty the connection that needs memory waits, muted.
    pub memory: MemoryPool,
    /// Frames of connections on SASL listeners before they authenticate. When it is empty the
    /// connection that needs memory is closed.
    pub unauthenticated_memory: MemoryPool,
    unauthenticated: Arc<Semaphore>,
    pub max_unauthenticated: usize,
    /// `max_connections` and `max_connections_per_ip`.
    pub connections: ConnectionCounts,
    pub bad_input_log: LogLimiter,
    idle: Duration,
    stall: Duration,
    max_request: i32,
}

/// Bytes of request frames all authenticated connections may hold at once: at least one
/// largest request.
pub fn request_memory_budget(config: &ServerConfig) -> usize {
    (config.request_memory_bytes.max(0) as usize).max(config.max_request_bytes.max(0) as usize)
}

impl ConnectionLimits {
    pub fn new(config: &ServerConfig) -> ConnectionLimits {
        let max_unauthenticated = config.max_unauthenticated_connections.max(0) as usize;
        ConnectionLimits {
            memory: MemoryPool::new(request_memory_budget(config), 0, WhenExhausted::Wait),
            unauthenticated_memory: MemoryPool::new(
                config.unauthenticated_request_memory_bytes.max(0) as usize,
                UNAUTHENTICATED_FREE_BYTES,
                WhenExhausted::Fail,
            ),
            unauthenticated: Arc::new(Semaphore::new(max_unauthenticated)),
            max_unauthenticated,
            connections: ConnectionCounts::new(config),
            bad_input_log: LogLimiter::new(Duration::from_millis(
                config.bad_input_log_interval_ms.max(0) as u64,
            )),
            idle: Duration::from_millis(config.connections_max_idle_ms.max(1) as u64),
            stall: Duration::from_millis(config.frame_stall_timeout_ms.max(1) as u64),
            max_request: config.max_request_bytes,
        }
    }

    /// A place among the unauthenticated connections, held until the connection has
    /// authenticated or is closed; `None` when all are taken.
    pub fn unauthenticated_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.unauthenticated.clone().try_acquire_owned().ok()
    }

    /// How the next frame of a connection is read, and from which pool.
    pub fn frame(&self, authenticated: bool, raw_token: bool) -> (FrameRules, &MemoryPool) {
        let (max_size, pool) = if authenticated {
            (self.max_request, &self.memory)
        } else {
            (
                self.max_request.min(SASL_MAX_RECEIVE),
                &self.unauthenticated_memory,
            )
        };
        let rules = FrameRules {
            min_size: if raw_token {
                0
            } else {
                crate::codec::frame::MIN_REQUEST
            },
            max_size,
            idle: self.idle,
            stall: self.stall,
        };
        (rules, pool)
    }
}
