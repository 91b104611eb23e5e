//! Rate limit of log lines about bad input, per peer address: the first line of a peer is
//! written, then at most one per interval, carrying the number of lines kept back since the
//! last one. A client that sends garbage as fast as it can then costs a line per interval, not
//! a line per frame.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Peers remembered at once; beyond that, new peers share one entry (so the log stays bounded
/// even when the addresses change all the time).
const MAX_PEERS: usize = 10_000;

/// Where the peers beyond `MAX_PEERS` are counted.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

struct Peer {
    last: Instant,
    suppressed: u64,
}

pub struct LogLimiter {
    interval: Duration,
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

impl LogLimiter {
    /// `interval` zero writes every line.
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line about `peer` may be written now: `Some(n)` with the number of lines
    /// kept back since the last written one, `None` to keep this one back (it is counted).
    pub fn check(&self, peer: IpAddr) -> Option<u64> {
        self.check_at(peer, Instant::now())
    }

    fn check_at(&self, peer: IpAddr, now: Instant) -> Option<u64> {
        if self.interval.is_zero() {
            return Some(0);
        }
        let mut peers = self.peers.lock();
        if !peers.contains_key(&peer) && peers.len() >= MAX_PEERS {
            // Forget the peers quiet for a whole interval: their next line is written anyway.
            // (What they had kept back is lost from the count; they were quiet since.)
            let interval = self.interval;
            peers.retain(|_, p| now.duration_since(p.last) < interval);
        }
        let key = if peers.contains_key(&peer) || peers.len() < MAX_PEERS {
            peer
        } else {
            OVERFLOW
        };
        match peers.get_mut(&key) {
            None => {
                peers.insert(
                    key,
                    Peer {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
            Some(p) if now.duration_since(p.last) >= self.interval => {
                p.last = now;
                Some(std::mem::take(&mut p.suppressed))
            }
            Some(p) => {
                p.suppressed += 1;
                None
            }
        }
    }
}

/// `tracing::warn!` a line about bad input from `$peer` (a `SocketAddr`), through `$limiter`:
/// written if the limiter allows, with `suppressed = N` when lines were kept back.
#[macro_export]
macro_rules! warn_bad_input {
    ($limiter:expr, $peer:expr, $($rest:tt)+) => {{
        let peer: std::net::SocketAddr = $peer;
        match $limiter.check(peer.ip()) {
            None => {}
            Some(0) => tracing::warn!(%peer, $($rest)+),
            Some(suppressed) => tracing::warn!(%peer, suppressed, $($rest)+),
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_then_one_per_interval_with_the_count() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(a, t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(limiter.check_at(a, t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(
            limiter.check_at(b, t0),
            Some(0),
            "peers are limited separately"
        );
        assert_eq!(
            limiter.check_at(a, t0 + Duration::from_secs(10)),
            Some(1000)
        );
        assert_eq!(limiter.check_at(a, t0 + Duration::from_secs(11)), None);
        assert_eq!(limiter.check_at(a, t0 + Duration::from_secs(20)), Some(1));
    }

    #[test]
    fn zero_interval_writes_everything() {
        let limiter = LogLimiter::new(Duration::ZERO);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..100).all(|_| limiter.check(a) == Some(0)));
    }

    #[test]
    fn many_peers_stay_bounded() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let written = (0..3 * MAX_PEERS as u32)
            .filter(|i| {
                let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                limiter.check_at(ip, t0).is_some()
            })
            .count();
        // One line per remembered peer, plus one for all the others together.
        assert_eq!(written, MAX_PEERS + 1);
        assert!(limiter.peers.lock().len() <= MAX_PEERS + 1);
    }
}
