//! The cleaner's I/O budget (Kafka's `log.cleaner.io.max.bytes.per.second`): bytes read and
//! written by all cleans together, at most this many per second on average, so cleaning
//! never takes the disk (or, for memory logs, the CPU) from produce and fetch.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Shared by every clean of a broker (one cleaner at a time, as Kafka's default one thread).
pub struct Throttle {
    /// Bytes per second; 0 or less: unlimited.
    rate: f64,
    window: Mutex<(Instant, u64)>,
}

/// After this long within budget, a new averaging window starts (an idle cleaner does not
/// save up a burst).
const WINDOW: Duration = Duration::from_secs(1);

impl Throttle {
    pub fn new(bytes_per_second: f64) -> Throttle {
        Throttle {
            rate: bytes_per_second,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Counts `bytes` of I/O, sleeping (the calling blocking thread) while over budget.
    pub fn acquire(&self, bytes: u64) {
        if self.rate <= 0.0 {
            return;
        }
        let wait = {
            let mut w = self.window.lock();
            w.1 += bytes;
            let elapsed = w.0.elapsed();
            let due = Duration::from_secs_f64(w.1 as f64 / self.rate);
            if due > elapsed {
                due - elapsed
            } else {
                if elapsed > WINDOW {
                    *w = (Instant::now(), 0);
                }
                Duration::ZERO
            }
        };
        if wait > Duration::from_millis(1) {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_average_rate() {
        let t = Throttle::new(1_000_000.0);
        let start = Instant::now();
        for _ in 0..20 {
            t.acquire(10_000); // 200 KB at 1 MB/s: about 200 ms
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(180), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
        let free = Throttle::new(0.0);
        let start = Instant::now();
        free.acquire(u64::MAX / 2);
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
