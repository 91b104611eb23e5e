//! Python hook calls: how many, how long, how many answers came from the cache.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::histogram::Histogram;
use super::text::Text;

#[derive(Default)]
pub struct HookStats {
    /// Calls into the hook (one per batch of cache misses).
    pub calls: AtomicU64,
    /// Calls that failed (raised, timed out, answered nonsense).
    pub failures: AtomicU64,
    /// Answers served from the cache without calling the hook.
    pub cache_hits: AtomicU64,
    pub latency: Histogram,
}

impl HookStats {
    pub fn called(&self, elapsed: Duration, ok: bool) {
        self.calls.fetch_add(1, Relaxed);
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
        self.latency.record(elapsed);
    }

    pub fn cache_hit(&self, n: u64) {
        if n > 0 {
            self.cache_hits.fetch_add(n, Relaxed);
        }
    }
}

/// The families of every hook in `hooks` (name, stats).
pub fn render(t: &mut Text, hooks: &[(&str, &HookStats)]) {
    type Counter = fn(&HookStats) -> &AtomicU64;
    let counters: [(&str, &str, Counter); 3] = [
        (
            "kop_hook_calls_total",
            "Calls into a Python hook, by hook.",
            |s| &s.calls,
        ),
        (
            "kop_hook_failures_total",
            "Hook calls that raised, timed out or answered nonsense, by hook.",
            |s| &s.failures,
        ),
        (
            "kop_hook_cache_hits_total",
            "Hook answers served from kop's cache instead of calling the hook, by hook.",
            |s| &s.cache_hits,
        ),
    ];
    for (family, help, counter) in counters {
        t.family(family, "counter", help);
        for (name, s) in hooks {
            t.sample(family, &[("hook", name)], counter(s).load(Relaxed) as f64);
        }
    }
    t.family(
        "kop_hook_duration_seconds",
        "histogram",
        "Time a hook call took (including the wait for a bridge worker), by hook.",
    );
    for (name, s) in hooks {
        t.histogram(
            "kop_hook_duration_seconds",
            &[("hook", name)],
            &s.latency.snapshot(),
        );
    }
}
