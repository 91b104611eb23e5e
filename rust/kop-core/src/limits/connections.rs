//! Kafka's connection limits: `max.connections` (a listener at the limit accepts no more until
//! a connection closes) and `max.connections.per.ip` with its per-address overrides (a
//! connection over its address's limit is closed at once).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{parse_connection_overrides, ServerConfig};

/// The open connections, in total and per client address.
pub struct ConnectionCounts {
    total: Arc<Semaphore>,
    pub max_total: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
}

/// A connection's place in the counts, given back when the connection ends.
pub struct ConnectionSlot {
    _total: Option<OwnedSemaphorePermit>,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl ConnectionCounts {
    pub fn new(config: &ServerConfig) -> ConnectionCounts {
        let max_total = usize::try_from(config.max_connections)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        ConnectionCounts {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            per_ip: Arc::default(),
            max_per_ip: usize::try_from(config.max_connections_per_ip).unwrap_or(usize::MAX),
            // Validated with the configuration.
            overrides: parse_connection_overrides(&config.max_connections_per_ip_overrides)
                .unwrap_or_default(),
        }
    }

    /// Waits for a place under `max_connections` (none is needed on an exempt listener).
    pub async fn wait_for_place(&self, exempt: bool) -> Option<OwnedSemaphorePermit> {
        if exempt {
            return None;
        }
        self.total.clone().acquire_owned().await.ok()
    }

    /// Whether a place is free under `max_connections` now.
    pub fn at_limit(&self) -> bool {
        self.total.available_permits() == 0
    }

    /// Counts a connection from `ip`; `None` when its address is at its limit.
    pub fn admit(&self, ip: IpAddr, place: Option<OwnedSemaphorePermit>) -> Option<ConnectionSlot> {
        let limit = self.limit_for(ip);
        let mut counts = self.per_ip.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            _total: place,
            ip,
            per_ip: self.per_ip.clone(),
        })
    }

    pub fn limit_for(&self, ip: IpAddr) -> usize {
        self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(max: i64, per_ip: i64, overrides: &str) -> ConnectionCounts {
        ConnectionCounts::new(&ServerConfig {
            max_connections: max,
            max_connections_per_ip: per_ip,
            max_connections_per_ip_overrides: overrides.into(),
            ..ServerConfig::default()
        })
    }

    #[test]
    fn overrides_parse_ipv4_and_ipv6_and_refuse_the_rest() {
        let parse_overrides = parse_connection_overrides;
        let o = parse_overrides(" 127.0.0.1:5, [::1]:0,::2:7 ").unwrap();
        assert_eq!(o[&"127.0.0.1".parse::<IpAddr>().unwrap()], 5);
        assert_eq!(o[&"::1".parse::<IpAddr>().unwrap()], 0);
        assert_eq!(o[&"::2".parse::<IpAddr>().unwrap()], 7);
        assert!(parse_overrides("").unwrap().is_empty());
        assert!(parse_overrides("localhost:3").is_err());
        assert!(parse_overrides("127.0.0.1").is_err());
        assert!(parse_overrides("127.0.0.1:-1").is_err());
    }

    #[test]
    fn an_address_gets_its_limit_and_its_places_back() {
        let c = counts(100, 2, "10.0.0.9:0,10.0.0.8:3");
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = c.admit(a, None).unwrap();
        let _second = c.admit(a, None).unwrap();
        assert!(
            c.admit(a, None).is_none(),
            "a third over max_connections_per_ip"
        );
        drop(first);
        assert!(
            c.admit(a, None).is_some(),
            "a closed connection frees its place"
        );
        assert!(
            c.admit("10.0.0.9".parse().unwrap(), None).is_none(),
            "0: none"
        );
        let b: IpAddr = "10.0.0.8".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| c.admit(b, None).unwrap()).collect();
        assert!(c.admit(b, None).is_none());
        drop(held);
        assert!(c.per_ip.lock().get(&b).is_none(), "no entry left behind");
    }

    #[tokio::test]
    async fn max_connections_waits_for_a_place() {
        let c = counts(1, 10, "");
        let place = c.wait_for_place(false).await;
        assert!(c.at_limit());
        let waiting = c.wait_for_place(false);
        tokio::pin!(waiting);
        assert!(
            futures_poll_once(waiting.as_mut()).await.is_none(),
            "no place"
        );
        drop(place);
        assert!(waiting.await.is_some(), "a place after one closed");
        assert!(
            c.wait_for_place(true).await.is_none(),
            "exempt: never waits"
        );
    }

    /// Polls a future once: Some(output) if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            _ = std::future::ready(()) => None,
        }
    }
}
