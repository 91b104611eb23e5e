//! Counters of rare events recorded where no server handle is at hand: Pulsar takeovers,
//! step-downs (fencing) and send latency (`broker::leadership`, `broker::partition`). They are
//! per process (several servers in one process share them), which is what an operator scrapes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::histogram::Histogram;
use super::text::Text;

/// A partition taken over (opened for appending) from a remote backend.
pub static TAKEOVERS: AtomicU64 = AtomicU64::new(0);
/// A takeover that failed (retried later).
pub static TAKEOVER_FAILURES: AtomicU64 = AtomicU64::new(0);
/// A partition stepped down because an append's receipt failed: usually another instance
/// fenced this one.
pub static STEP_DOWNS: AtomicU64 = AtomicU64::new(0);

static SEND_LATENCY: std::sync::LazyLock<Histogram> = std::sync::LazyLock::new(Histogram::default);

pub fn count(event: &AtomicU64) {
    event.fetch_add(1, Relaxed);
}

/// From an append to its receipt from the remote backend.
pub fn send_latency(elapsed: Duration) {
    SEND_LATENCY.record(elapsed);
}

pub fn render(t: &mut Text, remote: bool) {
    if !remote {
        return;
    }
    for (name, help, v) in [
        (
            "kop_pulsar_takeovers_total",
            "Partitions taken over (opened for appending) on Pulsar.",
            &TAKEOVERS,
        ),
        (
            "kop_pulsar_takeover_failures_total",
            "Takeovers of a partition that failed (retried).",
            &TAKEOVER_FAILURES,
        ),
        (
            "kop_pulsar_fencing_events_total",
            "Partitions that stepped down after a failed append receipt (fenced by another instance).",
            &STEP_DOWNS,
        ),
    ] {
        t.family(name, "counter", help);
        t.sample(name, &[], v.load(Relaxed) as f64);
    }
    t.family(
        "kop_pulsar_send_duration_seconds",
        "histogram",
        "Time from appending a batch to Pulsar's receipt for it.",
    );
    t.histogram(
        "kop_pulsar_send_duration_seconds",
        &[],
        &SEND_LATENCY.snapshot(),
    );
}
