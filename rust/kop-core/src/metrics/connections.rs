//! Connections per listener: accepted and closed counters (open = accepted - closed).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

use super::text::Text;

#[derive(Default)]
pub struct ListenerConnections {
    accepted: AtomicU64,
    closed: AtomicU64,
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
    }
}
