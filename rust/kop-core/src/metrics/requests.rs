//! Per-API request counters, latency histograms and error counts: arrays indexed by API key
//! (and version, or error code) allocated once, so recording is a few relaxed atomic adds.
//! Keys are the wire's: the APIs the `kafka-protocol` crate has no key for (KIP-1071's 88 and
//! 89) are named here.

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

fn slot(key: i16) -> Option<usize> {
    usize::try_from(key).ok().filter(|&i| i < API_SLOTS)
}

/// The `api` label of a wire key: Kafka's name of the API.
fn api_name(key: i16) -> Option<String> {
    match key {
        88 => Some("StreamsGroupHeartbeat".into()),
        89 => Some("StreamsGroupDescribe".into()),
        _ => ApiKey::try_from(key).ok().map(|k| format!("{k:?}")),
    }
}

impl RequestStats {
    /// One request of wire key `key` at `version`, answered after `elapsed`.
    pub fn record(&self, key: i16, version: i16, elapsed: Duration) {
        let Some(api) = slot(key).map(|i| &self.apis[i]) else {
            return;
        };
        let v = usize::try_from(version).unwrap_or(0).min(VERSION_SLOTS - 1);
        api.by_version[v].fetch_add(1, Relaxed);
        api.latency.record(elapsed);
    }

    /// An error code in an answer of wire key `key` (0, no error, is not counted).
    pub fn error(&self, key: i16, code: i16) {
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
            self.apis
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((api_name(i as i16)?, s)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_requests_are_named_by_their_own_keys() {
        let stats = RequestStats::default();
        stats.record(88, 0, Duration::from_millis(1));
        stats.record(89, 0, Duration::from_millis(1));
        stats.record(
            ApiKey::ConsumerGroupHeartbeat as i16,
            1,
            Duration::from_millis(1),
        );
        stats.error(88, 25); // UNKNOWN_MEMBER_ID
        let mut t = Text::default();
        stats.render(&mut t);
        let out = t.into_string();
        let count = |line: &str| out.lines().filter(|l| l.starts_with(line)).count();
        assert_eq!(
            count(r#"kop_requests_total{api="StreamsGroupHeartbeat",version="0"} 1"#),
            1,
            "{out}"
        );
        assert_eq!(
            count(r#"kop_requests_total{api="StreamsGroupDescribe",version="0"} 1"#),
            1
        );
        assert_eq!(
            count(r#"kop_requests_total{api="ConsumerGroupHeartbeat",version="1"} 1"#),
            1
        );
        assert_eq!(
            count(r#"kop_requests_total{api="ConsumerGroupHeartbeat",version="0"}"#),
            0
        );
        assert_eq!(
            count(
                r#"kop_request_errors_total{api="StreamsGroupHeartbeat",error="UnknownMemberId",code="25"} 1"#
            ),
            1
        );
    }
}
