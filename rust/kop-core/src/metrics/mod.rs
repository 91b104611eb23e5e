//! Prometheus metrics: the counters recorded on the request path (atomics in arrays allocated
//! once, per-topic counters on the topic itself) and the text format. A leaf above `records`:
//! storage, auth and broker record into it. The scrape (gauges read from the broker's state)
//! and the HTTP listener with `/health` and `/ready` are in `net/` (`metrics_scrape.rs`,
//! `metrics_http.rs`). docs/metrics.md lists every metric.

pub mod connections;
pub mod events;
pub mod histogram;
pub mod hooks;
pub mod requests;
pub mod text;
pub mod throttles;
pub mod topics;

use std::sync::Arc;

use parking_lot::Mutex;

/// Text in the exposition format from outside kop-core (the Python bridge's worker pool).
pub type Collector = Arc<dyn Fn() -> String + Send + Sync>;

/// The counters one server records (held by its `Broker`).
#[derive(Default)]
pub struct Metrics {
    pub requests: requests::RequestStats,
    pub connections: connections::ConnectionStats,
    pub throttles: throttles::ThrottleStats,
    /// Why the remote storage (Pulsar) is not answering, as of the last cluster check;
    /// None while it answers.
    pub remote_error: Mutex<Option<String>>,
    collectors: Mutex<Vec<Collector>>,
}

impl Metrics {
    /// Adds text to every scrape (e.g. the Python bridge's queue depth).
    pub fn add_collector(&self, c: Collector) {
        self.collectors.lock().push(c);
    }

    pub fn collected(&self) -> Vec<Collector> {
        self.collectors.lock().clone()
    }
}
