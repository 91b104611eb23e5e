//! Client quota throttles, per quota type (as Kafka's `throttle-time` sensors, but labelled by
//! quota type only: a label per client id would be unbounded).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::text::Text;

/// The quota a throttle comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    Produce,
    Fetch,
    Request,
    ControllerMutation,
}

const QUOTAS: [(Quota, &str); 4] = [
    (Quota::Produce, "produce"),
    (Quota::Fetch, "fetch"),
    (Quota::Request, "request"),
    (Quota::ControllerMutation, "controller_mutation"),
];

#[derive(Default)]
pub struct ThrottleStats {
    /// Per `Quota`: responses that carried a throttle time, and the sum of those times.
    throttled: [AtomicU64; 4],
    time_ms: [AtomicU64; 4],
}

impl ThrottleStats {
    /// A response throttled for `ms` by `quota` (0: not throttled, not counted).
    pub fn throttled(&self, quota: Quota, ms: u64) {
        if ms == 0 {
            return;
        }
        let i = quota as usize;
        self.throttled[i].fetch_add(1, Relaxed);
        self.time_ms[i].fetch_add(ms, Relaxed);
    }

    pub fn render(&self, t: &mut Text) {
        for (family, help, values) in [
            (
                "kop_quota_throttled_responses_total",
                "Responses that carried a quota throttle time (the connection was then muted), by quota.",
                &self.throttled,
            ),
            (
                "kop_quota_throttle_time_ms_total",
                "Throttle time given to clients, in milliseconds, by quota.",
                &self.time_ms,
            ),
        ] {
            t.family(family, "counter", help);
            for (q, name) in QUOTAS {
                t.sample(family, &[("quota", name)], values[q as usize].load(Relaxed) as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_are_counted_per_quota_and_zero_is_not_a_throttle() {
        let s = ThrottleStats::default();
        s.throttled(Quota::Fetch, 0);
        s.throttled(Quota::Fetch, 250);
        s.throttled(Quota::Fetch, 750);
        s.throttled(Quota::ControllerMutation, 10);
        let mut t = Text::default();
        s.render(&mut t);
        let out = t.into_string();
        assert!(out.contains("kop_quota_throttled_responses_total{quota=\"fetch\"} 2\n"));
        assert!(out.contains("kop_quota_throttle_time_ms_total{quota=\"fetch\"} 1000\n"));
        assert!(out.contains("kop_quota_throttled_responses_total{quota=\"produce\"} 0\n"));
        assert!(
            out.contains("kop_quota_throttle_time_ms_total{quota=\"controller_mutation\"} 10\n")
        );
    }
}
