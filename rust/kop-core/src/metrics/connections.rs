//! Connections per listener: accepted and closed counters (open = accepted - closed), the
//! connections refused by a limit, and the time the listener waited at `max_connections`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::text::Text;

/// Why a connection was closed as soon as it was accepted.
#[derive(Clone, Copy, Debug)]
pub enum Refusal {
    /// Over its IP's `connection_creation_rate` quota.
    CreationRate,
    /// Over `max_connections_per_ip` (or the IP's override).
    PerIp,
    /// Too many unauthenticated connections on SASL listeners.
    Unauthenticated,
}

const REFUSALS: [(Refusal, &str); 3] = [
    (Refusal::CreationRate, "connection_creation_rate"),
    (Refusal::PerIp, "max_connections_per_ip"),
    (Refusal::Unauthenticated, "max_unauthenticated"),
];

#[derive(Default)]
pub struct ListenerConnections {
    accepted: AtomicU64,
    closed: AtomicU64,
    /// Per `Refusal`.
    refused: [AtomicU64; 3],
    /// Connections that waited for a place under `max_connections`, and how long in total.
    limit_waits: AtomicU64,
    limit_wait_micros: AtomicU64,
}

/// Counts a connection as closed when dropped (the connection task ends, however it ends).
pub struct OpenConnection(Arc<ListenerConnections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Relaxed);
    }
}

impl ListenerConnections {
    pub fn accepted(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Relaxed);
        OpenConnection(self.clone())
    }

    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// A connection that waited `waited` at `max_connections` before it was served.
    pub fn waited_at_limit(&self, waited: Duration) {
        self.limit_waits.fetch_add(1, Relaxed);
        let micros = waited.as_micros().min(u128::from(u64::MAX)) as u64;
        self.limit_wait_micros.fetch_add(micros, Relaxed);
    }
}

/// The listeners' counters, registered once when each accept loop starts.
#[derive(Default)]
pub struct ConnectionStats {
    listeners: Mutex<Vec<(String, Arc<ListenerConnections>)>>,
}

impl ConnectionStats {
    pub fn listener(&self, name: &str) -> Arc<ListenerConnections> {
        let mut all = self.listeners.lock();
        if let Some((_, c)) = all.iter().find(|(n, _)| n == name) {
            return c.clone();
        }
        let c = Arc::new(ListenerConnections::default());
        all.push((name.to_string(), c.clone()));
        c
    }

    pub fn render(&self, t: &mut Text) {
        let all = self.listeners.lock().clone();
        let counts: Vec<(&str, u64, u64)> = all
            .iter()
            .map(|(n, c)| (n.as_str(), c.accepted.load(Relaxed), c.closed.load(Relaxed)))
            .collect();
        t.family(
            "kop_connections",
            "gauge",
            "Client connections open, by listener.",
        );
        for (name, accepted, closed) in &counts {
            t.sample(
                "kop_connections",
                &[("listener", name)],
                accepted.saturating_sub(*closed) as f64,
            );
        }
        t.family(
            "kop_connections_accepted_total",
            "counter",
            "Client connections accepted, by listener.",
        );
        for (name, accepted, _) in &counts {
            t.sample(
                "kop_connections_accepted_total",
                &[("listener", name)],
                *accepted as f64,
            );
        }
        t.family(
            "kop_connections_closed_total",
            "counter",
            "Client connections closed, by listener.",
        );
        for (name, _, closed) in &counts {
            t.sample(
                "kop_connections_closed_total",
                &[("listener", name)],
                *closed as f64,
            );
        }
        t.family(
            "kop_connections_refused_total",
            "counter",
            "Connections closed as soon as accepted because a limit refused them, by listener and reason.",
        );
        for (name, c) in &all {
            for (why, reason) in REFUSALS {
                let n = c.refused[why as usize].load(Relaxed);
                t.sample(
                    "kop_connections_refused_total",
                    &[("listener", name), ("reason", reason)],
                    n as f64,
                );
            }
        }
        t.family(
            "kop_connections_limit_waits_total",
            "counter",
            "Connections that waited for a place under max_connections, by listener.",
        );
        for (name, c) in &all {
            let n = c.limit_waits.load(Relaxed);
            t.sample(
                "kop_connections_limit_waits_total",
                &[("listener", name)],
                n as f64,
            );
        }
        t.family(
            "kop_connections_limit_wait_seconds_total",
            "counter",
            "Time connections waited for a place under max_connections, by listener.",
        );
        for (name, c) in &all {
            let s = c.limit_wait_micros.load(Relaxed) as f64 / 1e6;
            t.sample(
                "kop_connections_limit_wait_seconds_total",
                &[("listener", name)],
                s,
            );
        }
    }
}
