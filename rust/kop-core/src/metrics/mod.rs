//! Prometheus metrics: counters recorded on the request path (atomics in arrays allocated
//! once, per-topic counters on the topic itself), gauges read from the broker's state when
//! scraped, and the HTTP listener that serves them with `/health` and `/ready`
//! (docs/metrics.md lists every metric).

pub mod connections;
pub mod events;
pub mod histogram;
pub mod hooks;
pub mod http;
pub mod requests;
mod scrape;
pub mod text;
pub mod topics;

use std::sync::Arc;

use parking_lot::Mutex;

pub use scrape::render;

/// Text in the exposition format from outside kop-core (the Python bridge's worker pool).
pub type Collector = Arc<dyn Fn() -> String + Send + Sync>;

/// The counters one server records (held by its `Broker`).
#[derive(Default)]
pub struct Metrics {
    pub requests: requests::RequestStats,
    pub connections: connections::ConnectionStats,
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

    fn collected(&self) -> Vec<Collector> {
        self.collectors.lock().clone()
    }
}
