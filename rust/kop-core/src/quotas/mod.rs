//! Client quotas, as Apache Kafka enforces them (KIP-13, KIP-55, KIP-124, KIP-219, KIP-257,
//! KIP-546, KIP-599, KIP-612).
//!
//! - `entity.rs`: the entities quotas are set on, Kafka's validation and precedence.
//! - `rate.rs`: rates over Kafka's sampled windows, and the token bucket of mutations.
//! - here: the quotas in force (stored with the data, the `quotas` document, and reloaded when
//!   another kop instance sharing the storage changes them), the rates of each client and the
//!   throttle times that follow from them.
//!
//! A throttled client gets its answer at once with `throttle_time_ms` set, and its connection
//! is then muted (not read) for that long (`Mute`, `net/connection.rs`), as Kafka does since
//! KIP-219.

pub mod entity;
pub mod rate;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::storage::metadata::Metadata;
use entity::{Applied, Entity, QuotaConfigs};
use rate::{Rate, TokenBucket, Windows};

/// How long a connection is to be muted after its current request (milliseconds): the
/// handlers raise it, the connection takes it.
#[derive(Debug, Default)]
pub struct Mute(AtomicU64);

impl Mute {
    pub fn at_least(&self, ms: u64) {
        self.0.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Kafka caps a throttle at this many windows' worth (`quota.window.num` × size).
fn cap(w: Windows, ms: u64) -> u64 {
    ms.min(w.span_ms())
}

/// Rates kept per client (or per group of clients sharing a quota).
struct Rates<K> {
    by_key: HashMap<K, Rate>,
    last_sweep_ms: u64,
}

impl<K> Default for Rates<K> {
    fn default() -> Self {
        Rates {
            by_key: HashMap::new(),
            last_sweep_ms: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq> Rates<K> {
    fn get(&mut self, w: Windows, key: K, now_ms: u64) -> &mut Rate {
        // Clients that went away are forgotten once their samples no longer count.
        if now_ms.saturating_sub(self.last_sweep_ms) >= w.span_ms() {
            self.last_sweep_ms = now_ms;
            self.by_key.retain(|_, r| !r.is_idle(w, now_ms));
        }
        self.by_key.entry(key).or_default()
    }
}

/// The client a request comes from, as quotas see it.
pub struct Client<'a> {
    /// The principal's name (`ANONYMOUS` before authentication).
    pub user: &'a str,
    pub client_id: &'a str,
}

pub struct QuotaManager {
    windows: Windows,
    /// `controller_mutation_rate`'s own windows (Kafka's `controller.quota.window.*`).
    mutation_windows: Windows,
    configs: RwLock<QuotaConfigs>,
    /// Any quota set at all (the fast path skips everything when not).
    any: AtomicBool,
    stored_in: Option<Arc<Metadata>>,
    /// Serialises this process's read-modify-writes of the stored quotas.
    store_lock: Mutex<()>,
    produce: Mutex<Rates<Applied>>,
    fetch: Mutex<Rates<Applied>>,
    request: Mutex<Rates<Applied>>,
    mutations: Mutex<HashMap<Applied, TokenBucket>>,
    connections: Mutex<Rates<IpAddr>>,
}

/// What AlterClientQuotas asks of one entity: set (Some) or remove (None) keys.
pub type Alteration = (Entity, Vec<(String, Option<f64>)>);

impl QuotaManager {
    /// The quotas stored in `stored_in` (None: kept in memory only, for tests).
    pub fn load(
        windows: Windows,
        mutation_windows: Windows,
        stored_in: Option<Arc<Metadata>>,
    ) -> io::Result<QuotaManager> {
        let m = QuotaManager {
            windows,
            mutation_windows,
            configs: RwLock::default(),
            any: AtomicBool::new(false),
            stored_in,
            store_lock: Mutex::new(()),
            produce: Mutex::default(),
            fetch: Mutex::default(),
            request: Mutex::default(),
            mutations: Mutex::default(),
            connections: Mutex::default(),
        };
        m.reload()?;
        Ok(m)
    }

    fn stored(&self) -> io::Result<(Option<Vec<u8>>, QuotaConfigs)> {
        let Some(metadata) = &self.stored_in else {
            return Ok((None, self.configs.read().clone()));
        };
        let data = metadata.quotas()?;
        let configs = match &data {
            None => QuotaConfigs::default(),
            Some(d) => QuotaConfigs::from_json(d).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("stored quotas: {e}"))
            })?,
        };
        Ok((data, configs))
    }

    fn install(&self, configs: QuotaConfigs) {
        self.any
            .store(!configs.entries.is_empty(), Ordering::Relaxed);
        *self.configs.write() = configs;
        // Token buckets start full for the new rates.
        self.mutations.lock().clear();
    }

    /// Takes the stored quotas again (another kop instance changed them). Blocks.
    pub fn reload(&self) -> io::Result<()> {
        if self.stored_in.is_none() {
            return Ok(());
        }
        let _guard = self.store_lock.lock();
        let (_, configs) = self.stored()?;
        if *self.configs.read() != configs {
            self.install(configs);
        }
        Ok(())
    }

    /// Applies alterations (already validated) and stores the result durably; also when
    /// another kop instance changes the quotas at the same time (compare-and-set). Blocks.
    pub fn alter(&self, alterations: &[Alteration]) -> io::Result<()> {
        let _guard = self.store_lock.lock();
        loop {
            let (before, mut configs) = self.stored()?;
            for (entity, ops) in alterations {
                configs.alter(entity, ops);
            }
            if let Some(metadata) = &self.stored_in {
                if !metadata.save_quotas(&configs.to_json(), before.as_deref())? {
                    continue;
                }
            }
            self.install(configs);
            return Ok(());
        }
    }

    /// The quotas in force (for DescribeClientQuotas).
    pub fn configs(&self) -> QuotaConfigs {
        self.configs.read().clone()
    }

    fn quota(&self, key: &str, client: &Client<'_>) -> Option<(f64, Applied)> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.configs
            .read()
            .resolve(key, client.user, client.client_id)
    }

    fn record(
        &self,
        rates: &Mutex<Rates<Applied>>,
        key: &str,
        client: &Client<'_>,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let Some((bound, applied)) = self.quota(key, client) else {
            return 0;
        };
        let w = self.windows;
        let mut rates = rates.lock();
        let rate = rates.get(w, applied, now_ms);
        rate.record(w, value, now_ms);
        cap(w, rate.throttle_ms(w, bound, now_ms))
    }

    /// Records a produce request of `bytes`; the throttle time it earns.
    pub fn record_produce(&self, client: &Client<'_>, bytes: usize, now_ms: u64) -> u64 {
        let key = entity::PRODUCER_BYTE_RATE;
        self.record(&self.produce, key, client, bytes as f64, now_ms)
    }

    /// Records a fetch response of `bytes`; the throttle time it earns. A throttled fetch is
    /// answered empty, and its bytes are taken back (`unrecord_fetch`), as Kafka does.
    pub fn record_fetch(&self, client: &Client<'_>, bytes: usize, now_ms: u64) -> u64 {
        let key = entity::CONSUMER_BYTE_RATE;
        self.record(&self.fetch, key, client, bytes as f64, now_ms)
    }

    pub fn unrecord_fetch(&self, client: &Client<'_>, bytes: usize, now_ms: u64) {
        self.record(
            &self.fetch,
            entity::CONSUMER_BYTE_RATE,
            client,
            -(bytes as f64),
            now_ms,
        );
    }

    /// The most a fetch may return: what the quota allows over its window (Kafka bounds a
    /// consumer's fetch size so one response cannot exceed it by much). None: no quota.
    pub fn fetch_max_bytes(&self, client: &Client<'_>) -> Option<usize> {
        let (bound, _) = self.quota(entity::CONSUMER_BYTE_RATE, client)?;
        let w = self.windows;
        let seconds = (w.span_ms() - w.size_ms) as f64 / 1000.0;
        Some((bound * seconds).clamp(1.0, i32::MAX as f64) as usize)
    }

    /// Records `nanos` of request handling (`request_percentage`: percent of one thread's
    /// time); the throttle time it earns, at most one window (Kafka's cap for requests).
    pub fn record_request_time(&self, client: &Client<'_>, nanos: u64, now_ms: u64) -> u64 {
        let percent = nanos as f64 * 100.0 / 1e9;
        let key = entity::REQUEST_PERCENTAGE;
        let ms = self.record(&self.request, key, client, percent, now_ms);
        ms.min(self.windows.size_ms)
    }

    /// `controller_mutation_rate`: how long the client must still wait (0: it may mutate).
    pub fn mutation_throttle_ms(&self, client: &Client<'_>, now_ms: u64) -> u64 {
        let Some((rate, applied)) = self.quota(entity::CONTROLLER_MUTATION_RATE, client) else {
            return 0;
        };
        let w = self.mutation_windows;
        let mut buckets = self.mutations.lock();
        let bucket = buckets
            .entry(applied)
            .or_insert_with(|| TokenBucket::new(rate, w, now_ms));
        bucket.throttle_ms(rate, w, now_ms)
    }

    /// Takes `mutations` (partitions created or deleted) from the client's bucket.
    pub fn record_mutations(&self, client: &Client<'_>, mutations: u32, now_ms: u64) {
        let Some((rate, applied)) = self.quota(entity::CONTROLLER_MUTATION_RATE, client) else {
            return;
        };
        let w = self.mutation_windows;
        let mut buckets = self.mutations.lock();
        buckets
            .entry(applied)
            .or_insert_with(|| TokenBucket::new(rate, w, now_ms))
            .take(rate, w, f64::from(mutations), now_ms);
    }

    /// A new connection from `ip`: None when admitted; when it exceeds the IP's
    /// `connection_creation_rate`, the throttle time, for which Kafka holds the connection
    /// unread before it closes it (KIP-612), so that the client does not reconnect at once.
    pub fn admit_connection(&self, ip: IpAddr, now_ms: u64) -> Option<u64> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let bound = self.configs.read().resolve_ip(&ip.to_string())?;
        let w = self.windows;
        let mut rates = self.connections.lock();
        let rate = rates.get(w, ip, now_ms);
        rate.record(w, 1.0, now_ms);
        if rate.measure(w, now_ms) > bound {
            let throttle = cap(w, rate.throttle_ms(w, bound, now_ms));
            // A refused connection does not count.
            rate.record(w, -1.0, now_ms);
            return Some(throttle);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::{Entity, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

    fn manager() -> QuotaManager {
        QuotaManager::load(Windows::new(11, 1), Windows::new(11, 1), None).unwrap()
    }

    fn user(name: &str) -> Entity {
        Entity {
            user: Some(Some(name.into())),
            ..Entity::default()
        }
    }

    const ALICE: Client<'static> = Client {
        user: "alice",
        client_id: "app",
    };
    const BOB: Client<'static> = Client {
        user: "bob",
        client_id: "app",
    };

    #[test]
    fn a_producer_over_its_quota_is_throttled_and_others_are_not() {
        let m = manager();
        m.alter(&[(
            user("alice"),
            vec![(PRODUCER_BYTE_RATE.into(), Some(1000.0))],
        )])
        .unwrap();
        // 10 s worth of quota in one go: exactly at the bound.
        assert_eq!(m.record_produce(&ALICE, 10_000, 0), 0);
        // Another 5 s worth: 50% over the bound for a 10 s window.
        assert_eq!(m.record_produce(&ALICE, 5_000, 0), 5_000);
        assert_eq!(m.record_produce(&BOB, 1 << 30, 0), 0);
        // Fetch has its own quota (none here).
        assert_eq!(m.record_fetch(&ALICE, 1 << 30, 0), 0);
    }

    #[test]
    fn throttles_are_capped_at_the_quota_window() {
        let m = manager();
        m.alter(&[(user("alice"), vec![(CONSUMER_BYTE_RATE.into(), Some(1.0))])])
            .unwrap();
        assert_eq!(m.record_fetch(&ALICE, 1 << 30, 0), 11_000);
        m.unrecord_fetch(&ALICE, 1 << 30, 0);
        assert_eq!(m.record_fetch(&ALICE, 0, 0), 0);
        assert_eq!(m.fetch_max_bytes(&ALICE), Some(10));
        assert_eq!(m.fetch_max_bytes(&BOB), None);
    }

    #[test]
    fn request_time_is_a_percentage_of_one_thread() {
        let m = manager();
        let e = user("alice");
        m.alter(&[(e, vec![(entity::REQUEST_PERCENTAGE.into(), Some(10.0))])])
            .unwrap();
        // 1 s of handling at once = 100% for 1 s, 10% over 10 s: at the bound.
        assert_eq!(m.record_request_time(&ALICE, 1_000_000_000, 0), 0);
        // More is throttled, for at most one window.
        assert_eq!(m.record_request_time(&ALICE, 1_000_000_000, 0), 1000);
    }

    #[test]
    fn mutations_take_the_bucket_below_zero_then_wait() {
        let m = manager();
        let e = user("alice");
        m.alter(&[(
            e,
            vec![(entity::CONTROLLER_MUTATION_RATE.into(), Some(1.0))],
        )])
        .unwrap();
        assert_eq!(m.mutation_throttle_ms(&ALICE, 0), 0);
        m.record_mutations(&ALICE, 21, 0);
        assert_eq!(m.mutation_throttle_ms(&ALICE, 0), 10_000);
        assert_eq!(m.mutation_throttle_ms(&ALICE, 10_000), 0);
    }

    #[test]
    fn connections_over_the_ip_rate_are_refused() {
        let m = manager();
        let any_ip = Entity {
            ip: Some(None),
            ..Entity::default()
        };
        m.alter(&[(
            any_ip,
            vec![(entity::CONNECTION_CREATION_RATE.into(), Some(1.0))],
        )])
        .unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let admitted = (0..20)
            .filter(|_| m.admit_connection(ip, 0).is_none())
            .count();
        // 1 per second over the 10 s the first window counts for.
        assert_eq!(admitted, 10);
        // The 11th: 10% over the bound for 10 s.
        assert_eq!(m.admit_connection(ip, 0), Some(1000));
        assert!(m.admit_connection("10.0.0.2".parse().unwrap(), 0).is_none());
    }
}
