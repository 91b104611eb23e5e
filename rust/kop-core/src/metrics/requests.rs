//! Per-API request counters, latency histograms and error counts: arrays indexed by API key
//! (and version, or error code) allocated once, so recording is a few relaxed atomic adds.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::ApiKey;

use super::histogram::Histogram;
use super::text::Text;

/// API keys below this are counted (Kafka's are below 100).
const API_SLOTS: usize = 128;
/// Versions above the last slot are counted in it.
const VERSION_SLOTS: usize = 24;
/// Error codes -1 ..= ERROR_SLOTS-2 (Kafka's are below 130).
const ERROR_SLOTS: usize = 160;

#[derive(Default)]
struct ApiStats {
    by_version: [AtomicU64; VERSION_SLOTS],
    latency: Histogram,
    errors: Vec<AtomicU64>,
}

pub struct RequestStats {
    apis: Vec<ApiStats>,
    /// Produce requests whose appends are done and that wait for the storage's receipts.
    pub produce_waiting: AtomicI64,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            apis: (0..API_SLOTS)
                .map(|_| ApiStats {
                    errors: (0..ERROR_SLOTS).map(|_| AtomicU64::new(0)).collect(),
                    ..Default::default()
                })
                .collect(),
            produce_waiting: AtomicI64::new(0),
        }
    }
}

fn slot(key: ApiKey) -> Option<usize> {
    usize::try_from(key as i16).ok().filter(|&i| i < API_SLOTS)
}

impl RequestStats {
    /// One request of `key` at `version`, answered after `elapsed`.
    pub fn record(&self, key: ApiKey, version: i16, elapsed: Duration) {
        let Some(api) = slot(key).map(|i| &self.apis[i]) else {
            return;
        };
        let v = usize::try_from(version).unwrap_or(0).min(VERSION_SLOTS - 1);
        api.by_version[v].fetch_add(1, Relaxed);
        api.latency.record(elapsed);
    }

    /// An error code in an answer of `key` (0, no error, is not counted).
    pub fn error(&self, key: ApiKey, code: i16) {
        if code == 0 {
            return;
        }
        let Some(api) = slot(key).map(|i| &self.apis[i]) else {
            return;
        };
        let c = usize::try_from(i32::from(code) + 1)
            .unwrap_or(0)
            .min(ERROR_SLOTS - 1);
        api.errors[c].fetch_add(1, Relaxed);
    }

    pub fn render(&self, t: &mut Text) {
        let named = || {
            self.apis.iter().enumerate().filter_map(|(i, s)| {
                let key = ApiKey::try_from(i as i16).ok()?;
                Some((format!("{key:?}"), s))
            })
        };
        t.family(
            "kop_requests_total",
            "counter",
            "Requests handled, by API and version.",
        );
        for (name, s) in named() {
            for (v, n) in s.by_version.iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    let version = v.to_string();
                    t.sample(
                        "kop_requests_total",
                        &[("api", &name), ("version", &version)],
                        n as f64,
                    );
                }
            }
        }
        t.family(
            "kop_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer being ready (produce: stored), by API.",
        );
        for (name, s) in named() {
            if s.latency.count() > 0 {
                t.histogram(
                    "kop_request_duration_seconds",
                    &[("api", &name)],
                    &s.latency.snapshot(),
                );
            }
        }
        t.family(
            "kop_request_errors_total",
            "counter",
            "Error codes answered, by API and Kafka error (each error code of an answer: top level, per group, topic and partition).",
        );
        for (name, s) in named() {
            for (c, n) in s.errors.iter().enumerate() {
                let n = n.load(Relaxed);
                if n == 0 {
                    continue;
                }
                let code = c as i16 - 1;
                let error = code
                    .err()
                    .map_or_else(|| code.to_string(), |e| format!("{e:?}"));
                let code = code.to_string();
                t.sample(
                    "kop_request_errors_total",
                    &[("api", &name), ("error", &error), ("code", &code)],
                    n as f64,
                );
            }
        }
        t.family(
            "kop_produce_waiting_requests",
            "gauge",
            "Produce requests appended and waiting for the storage to acknowledge them.",
        );
        t.sample(
            "kop_produce_waiting_requests",
            &[],
            self.produce_waiting.load(Relaxed) as f64,
        );
    }
}
