//! A rate measured over sampled windows, as Kafka's quota sensors measure it
//! (`quota.window.num` samples of `quota.window.size.seconds` each).
//!
//! Values are added to the newest sample; a sample is closed once it is a window old, and the
//! oldest is dropped when there are `num` of them. Samples older than `num` windows no longer
//! count. The rate is the sum of the samples over the time they span, where that span is at
//! least `num - 1` whole windows: a new client's first burst is spread over the full quota
//! window instead of producing a huge rate (and throttle time) from a few milliseconds.

use std::collections::VecDeque;

/// How rates are measured (Kafka's quota window settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Samples kept (`quota_window_num`, at least 2).
    pub num: u32,
    /// Length of one sample in milliseconds (`quota_window_size_seconds` × 1000).
    pub size_ms: u64,
}

impl Windows {
    pub fn new(num: i64, size_seconds: i64) -> Windows {
        Windows {
            num: num.clamp(2, 1000) as u32,
            size_ms: (size_seconds.max(1) as u64).saturating_mul(1000),
        }
    }

    /// Everything the samples cover.
    pub fn span_ms(&self) -> u64 {
        self.size_ms * u64::from(self.num)
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    value: f64,
}

#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<Sample>,
}

impl Rate {
    /// Forgets samples that no longer count at `now_ms`.
    fn purge(&mut self, w: Windows, now_ms: u64) {
        while let Some(s) = self.samples.front() {
            if now_ms.saturating_sub(s.start_ms) >= w.span_ms() {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn record(&mut self, w: Windows, value: f64, now_ms: u64) {
        self.purge(w, now_ms);
        let open = self
            .samples
            .back()
            .is_some_and(|s| now_ms < s.start_ms + w.size_ms);
        if !open {
            if self.samples.len() >= w.num as usize {
                self.samples.pop_front();
            }
            self.samples.push_back(Sample {
                start_ms: now_ms,
                value: 0.0,
            });
        }
        if let Some(s) = self.samples.back_mut() {
            s.value += value;
        }
    }

    /// The time the rate is taken over, in milliseconds.
    pub fn window_ms(&mut self, w: Windows, now_ms: u64) -> u64 {
        self.purge(w, now_ms);
        let oldest = self.samples.front().map_or(now_ms, |s| s.start_ms);
        let elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / w.size_ms;
        let min_full = u64::from(w.num - 1);
        if full < min_full {
            elapsed + (min_full - full) * w.size_ms
        } else {
            elapsed
        }
    }

    /// Per second.
    pub fn measure(&mut self, w: Windows, now_ms: u64) -> f64 {
        let window = self.window_ms(w, now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total * 1000.0 / window as f64
    }

    /// How long the client must wait for its rate to come back to `bound`: the excess over
    /// the bound, relative to it, times the window the rate is taken over (Kafka's formula).
    pub fn throttle_ms(&mut self, w: Windows, bound: f64, now_ms: u64) -> u64 {
        let rate = self.measure(w, now_ms);
        if rate <= bound || bound <= 0.0 && rate <= 0.0 {
            return 0;
        }
        if bound <= 0.0 {
            return w.span_ms();
        }
        let window = self.window_ms(w, now_ms) as f64;
        (((rate - bound) / bound) * window).round() as u64
    }

    /// True when nothing counts any more (the entry can be dropped).
    pub fn is_idle(&mut self, w: Windows, now_ms: u64) -> bool {
        self.purge(w, now_ms);
        self.samples.is_empty()
    }
}

/// Kafka's token bucket for `controller_mutation_rate` (KIP-599): up to `rate × span` tokens,
/// refilled at `rate` per second; a mutation may take the bucket below zero, and a client
/// whose bucket is below zero waits until it is back at zero.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(rate: f64, w: Windows, now_ms: u64) -> TokenBucket {
        TokenBucket {
            tokens: rate * w.span_ms() as f64 / 1000.0,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: f64, w: Windows, now_ms: u64) {
        let burst = rate * w.span_ms() as f64 / 1000.0;
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last_ms = now_ms.max(self.last_ms);
    }

    /// Milliseconds until the bucket is back at zero (0: it is not below zero).
    pub fn throttle_ms(&mut self, rate: f64, w: Windows, now_ms: u64) -> u64 {
        self.refill(rate, w, now_ms);
        if self.tokens >= 0.0 {
            0
        } else if rate <= 0.0 {
            w.span_ms()
        } else {
            (-self.tokens / rate * 1000.0).ceil() as u64
        }
    }

    pub fn take(&mut self, rate: f64, w: Windows, tokens: f64, now_ms: u64) {
        self.refill(rate, w, now_ms);
        self.tokens -= tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Windows = Windows {
        num: 11,
        size_ms: 1000,
    };

    #[test]
    fn a_first_burst_is_spread_over_the_whole_window() {
        let mut r = Rate::default();
        r.record(W, 1000.0, 0);
        // 10 full windows at least: 1000 / 10 s.
        assert_eq!(r.window_ms(W, 0), 10_000);
        assert!((r.measure(W, 0) - 100.0).abs() < 1e-9);
        assert_eq!(r.window_ms(W, 2500), 10_500);
    }

    #[test]
    fn a_steady_rate_is_measured_as_such() {
        let mut r = Rate::default();
        for second in 0..30u64 {
            for tick in 0..10u64 {
                r.record(W, 10.0, second * 1000 + tick * 100);
            }
        }
        // 100 per second for 30 s; the samples cover the last 11 s.
        let rate = r.measure(W, 29_999);
        assert!((rate - 100.0).abs() < 10.0, "{rate}");
    }

    #[test]
    fn old_samples_stop_counting() {
        let mut r = Rate::default();
        r.record(W, 1000.0, 0);
        assert!(!r.is_idle(W, 10_999));
        assert!(r.is_idle(W, 11_000));
        assert_eq!(r.measure(W, 11_000), 0.0);
    }

    #[test]
    fn throttle_time_is_the_excess_relative_to_the_bound_times_the_window() {
        let mut r = Rate::default();
        // 2000 over 10 s = 200/s against a bound of 100/s: twice the bound, one window long.
        r.record(W, 2000.0, 0);
        assert_eq!(r.throttle_ms(W, 100.0, 0), 10_000);
        let mut r = Rate::default();
        r.record(W, 1500.0, 0);
        assert_eq!(r.throttle_ms(W, 100.0, 0), 5_000);
        assert_eq!(r.throttle_ms(W, 200.0, 0), 0);
    }

    #[test]
    fn the_token_bucket_goes_negative_and_refills() {
        let w = Windows {
            num: 2,
            size_ms: 1000,
        };
        let mut b = TokenBucket::new(5.0, w, 0);
        assert_eq!(b.throttle_ms(5.0, w, 0), 0);
        b.take(5.0, w, 20.0, 0);
        // 10 tokens - 20 = -10 at 5/s: 2 s.
        assert_eq!(b.throttle_ms(5.0, w, 0), 2000);
        assert_eq!(b.throttle_ms(5.0, w, 1000), 1000);
        assert_eq!(b.throttle_ms(5.0, w, 2000), 0);
        // Never above the burst.
        assert_eq!(b.throttle_ms(5.0, w, 100_000), 0);
        b.take(5.0, w, 11.0, 100_000);
        assert_eq!(b.throttle_ms(5.0, w, 100_000), 200);
    }
}
