//! A fixed-bucket latency histogram on atomics (no lock on the recording path).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus `le`); the last bucket is +Inf.
pub const BOUNDS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in microseconds, for the comparison on the recording path.
const BOUNDS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

#[derive(Default)]
pub struct Histogram {
    /// Per bucket (not cumulative; cumulated when rendered), the last one +Inf.
    buckets: [AtomicU64; 15],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// What a histogram held at one moment, cumulated as Prometheus wants it.
pub struct HistogramSnapshot {
    pub cumulative: [u64; 15],
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let slot = BOUNDS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(BOUNDS_MICROS.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0u64; 15];
        let mut running = 0;
        for (out, b) in cumulative.iter_mut().zip(&self.buckets) {
            running += b.load(Relaxed);
            *out = running;
        }
        HistogramSnapshot {
            // The count is the +Inf bucket, so the two always agree in one scrape.
            count: running,
            cumulative,
            sum_seconds: self.sum_micros.load(Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        let h = Histogram::default();
        h.record(Duration::from_micros(100));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[3], 2);
        assert_eq!(s.cumulative[13], 2);
        assert_eq!(s.cumulative[14], 3);
        assert_eq!(s.count, 3);
        assert!((s.sum_seconds - 60.0031).abs() < 1e-6);
    }
}
