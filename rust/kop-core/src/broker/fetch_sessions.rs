//! Incremental fetch sessions (KIP-227). A consumer's first fetch lists its partitions and
//! opens a session; later fetches name only the partitions whose position changed (and those
//! it stops fetching), and their answers hold only the partitions with news: records, an
//! error, or a moved high watermark, last stable offset or log start offset. The session
//! remembers, per partition, where the consumer fetches and what it was last told.
//!
//! Bounds: at most `max_incremental_fetch_session_cache_slots` sessions (Kafka's
//! `max.incremental.fetch.session.cache.slots`, default `MAX_SESSIONS`; 0: no sessions) and `MAX_CACHED_PARTITIONS` partitions over all of them. A full cache makes room by evicting
//! the least recently used session idle for `EVICTABLE_AFTER` (Kafka's
//! `min.incremental.fetch.session.eviction.ms`); otherwise the consumer is answered without a
//! session and keeps sending full fetches, as Kafka does. A session belongs to the principal
//! that opened it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::KafkaError;

pub const MAX_SESSIONS: usize = 1000;
pub const MAX_CACHED_PARTITIONS: usize = 1_000_000;
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// How a fetch names a topic: by name before Fetch v13, by id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(String),
    Id(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// Where the consumer fetches a partition from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub fetch_offset: i64,
    pub max_bytes: i32,
}

/// What an answer says about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    pub has_records: bool,
    pub error: bool,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone)]
struct CachedPartition {
    key: PartitionKey,
    position: Position,
    /// (high watermark, last stable offset, log start offset) last sent; None: never sent, or
    /// the last answer was an error (so the next one is sent whatever it says).
    sent: Option<(i64, i64, i64)>,
}

struct Session {
    principal: String,
    /// The epoch the next incremental fetch must carry.
    next_epoch: i32,
    /// In fetch order.
    partitions: Vec<CachedPartition>,
    /// Where each partition is in `partitions`.
    index: HashMap<PartitionKey, usize>,
    last_used: Instant,
}

impl Session {
    fn reindex(&mut self) {
        self.index = self
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.clone(), i))
            .collect();
    }
}

struct Cache {
    sessions: HashMap<i32, Session>,
    cached_partitions: usize,
    max_sessions: usize,
}

pub struct FetchSessions {
    cache: Mutex<Cache>,
}

impl Default for FetchSessions {
    fn default() -> Self {
        Self::with_slots(MAX_SESSIONS)
    }
}

/// Kafka's epoch sequence: 1, 2, ..., i32::MAX, 1, ...
fn after(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

fn new_session_id(taken: &HashMap<i32, Session>) -> i32 {
    loop {
        let bytes = Uuid::new_v4().into_bytes();
        let id = i32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
        if id != 0 && !taken.contains_key(&id) {
            return id;
        }
    }
}

impl Cache {
    fn remove(&mut self, id: i32) {
        if let Some(s) = self.sessions.remove(&id) {
            self.cached_partitions -= s.partitions.len();
        }
    }

    /// Evicts the least recently used session if it has been idle long enough.
    fn evict_one(&mut self, now: Instant) -> bool {
        let idle = self
            .sessions
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_used) >= EVICTABLE_AFTER)
            .min_by_key(|(_, s)| s.last_used)
            .map(|(&id, _)| id);
        match idle {
            Some(id) => {
                self.remove(id);
                true
            }
            None => false,
        }
    }

    fn has_room(&mut self, partitions: usize, now: Instant) -> bool {
        if self.max_sessions == 0 {
            return false;
        }
        while self.sessions.len() >= self.max_sessions
            || self.cached_partitions + partitions > MAX_CACHED_PARTITIONS
        {
            if !self.evict_one(now) {
                return false;
            }
        }
        true
    }
}

impl FetchSessions {
    /// A cache of at most `slots` sessions (0: sessions off, every fetch is answered as a
    /// full fetch without a session id, as Kafka does).
    pub fn with_slots(slots: usize) -> Self {
        FetchSessions {
            cache: Mutex::new(Cache {
                sessions: HashMap::new(),
                cached_partitions: 0,
                max_sessions: slots,
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.cache.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes a session (a fetch with its id and epoch -1 or 0); unknown ids are ignored.
    pub fn close(&self, id: i32) {
        self.cache.lock().remove(id);
    }

    /// Opens a session over the partitions of a full fetch and what its answer told about
    /// each; None when the cache has no room (the fetch is answered without a session).
    pub fn open(
        &self,
        principal: &str,
        partitions: Vec<(PartitionKey, Position, Told)>,
        now: Instant,
    ) -> Option<i32> {
        let mut cache = self.cache.lock();
        if !cache.has_room(partitions.len(), now) {
            return None;
        }
        let id = new_session_id(&cache.sessions);
        cache.cached_partitions += partitions.len();
        let partitions = partitions
            .into_iter()
            .map(|(key, position, told)| CachedPartition {
                key,
                position,
                sent: sent_state(&told),
            })
            .collect();
        let mut session = Session {
            principal: principal.to_string(),
            next_epoch: 1,
            partitions,
            index: HashMap::new(),
            last_used: now,
        };
        session.reindex();
        cache.sessions.insert(id, session);
        Some(id)
    }

    /// Starts incremental fetch `epoch` of session `id`: applies the positions the request
    /// changes or adds and drops the partitions it forgets; returns every partition of the
    /// session with its position, in the session's order.
    pub fn begin_incremental(
        &self,
        id: i32,
        epoch: i32,
        principal: &str,
        changed: Vec<(PartitionKey, Position)>,
        forgotten: &[PartitionKey],
        now: Instant,
    ) -> Result<Vec<(PartitionKey, Position)>, KafkaError> {
        let mut guard = self.cache.lock();
        let cache = &mut *guard;
        let session = match cache.sessions.get_mut(&id) {
            Some(s) if s.principal == principal => s,
            _ => return Err(KafkaError::FetchSessionIdNotFound),
        };
        if epoch != session.next_epoch {
            return Err(KafkaError::InvalidFetchSessionEpoch);
        }
        session.next_epoch = after(epoch);
        session.last_used = now;
        let before = session.partitions.len();
        if !forgotten.is_empty() {
            let forgotten: std::collections::HashSet<&PartitionKey> = forgotten.iter().collect();
            session.partitions.retain(|p| !forgotten.contains(&p.key));
            session.reindex();
        }
        for (key, position) in changed {
            match session.index.get(&key) {
                Some(&at) => session.partitions[at].position = position,
                None => {
                    session.index.insert(key.clone(), session.partitions.len());
                    session.partitions.push(CachedPartition {
                        key,
                        position,
                        sent: None,
                    });
                }
            }
        }
        let listed: Vec<_> = session
            .partitions
            .iter()
            .map(|p| (p.key.clone(), p.position))
            .collect();
        let after_len = listed.len();
        cache.cached_partitions = cache.cached_partitions + after_len - before;
        if cache.cached_partitions > MAX_CACHED_PARTITIONS {
            // Too large to keep: the consumer starts over with a full fetch.
            cache.remove(id);
            return Err(KafkaError::FetchSessionIdNotFound);
        }
        Ok(listed)
    }

    /// Records what an incremental answer found for each partition of session `id` (in the
    /// order `begin_incremental` listed them) and returns which of them the answer carries:
    /// those with records, an error or moved offsets. Partitions that returned records move
    /// to the end of the session, so the next fetches serve the others first.
    pub fn answered(&self, id: i32, found: &[(PartitionKey, Told)]) -> Vec<bool> {
        let mut cache = self.cache.lock();
        let Some(session) = cache.sessions.get_mut(&id) else {
            return vec![true; found.len()];
        };
        let mut with_records = Vec::new();
        let include = found
            .iter()
            .map(|(key, told)| {
                let Some(&at) = session.index.get(key) else {
                    return true;
                };
                let cached = &mut session.partitions[at];
                let now_sent = sent_state(told);
                let news = told.has_records || told.error || cached.sent != now_sent;
                cached.sent = now_sent;
                if told.has_records {
                    with_records.push(at);
                }
                news
            })
            .collect();
        // Move those that had records to the end, keeping their order.
        if !with_records.is_empty() {
            let mut moved = Vec::with_capacity(with_records.len());
            for &at in with_records.iter().rev() {
                moved.push(session.partitions.remove(at));
            }
            moved.reverse();
            session.partitions.extend(moved);
            session.reindex();
        }
        include
    }
}

fn sent_state(told: &Told) -> Option<(i64, i64, i64)> {
    (!told.error).then_some((
        told.high_watermark,
        told.last_stable_offset,
        told.log_start_offset,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Name("t".into()),
            partition: p,
        }
    }

    fn pos(offset: i64) -> Position {
        Position {
            fetch_offset: offset,
            max_bytes: 1 << 20,
        }
    }

    fn told(records: bool, hw: i64) -> Told {
        Told {
            has_records: records,
            error: false,
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: 0,
        }
    }

    #[test]
    fn incremental_fetches_carry_only_news_and_check_the_epoch() {
        let s = FetchSessions::default();
        let now = Instant::now();
        let id = s
            .open(
                "User:a",
                vec![
                    (key(0), pos(0), told(false, 5)),
                    (key(1), pos(0), told(false, 0)),
                ],
                now,
            )
            .unwrap();
        // Another principal cannot use it; a wrong epoch is refused.
        assert_eq!(
            s.begin_incremental(id, 1, "User:b", vec![], &[], now),
            Err(KafkaError::FetchSessionIdNotFound)
        );
        assert_eq!(
            s.begin_incremental(id, 2, "User:a", vec![], &[], now),
            Err(KafkaError::InvalidFetchSessionEpoch)
        );
        let listed = s
            .begin_incremental(id, 1, "User:a", vec![(key(0), pos(3))], &[], now)
            .unwrap();
        assert_eq!(listed, vec![(key(0), pos(3)), (key(1), pos(0))]);
        // p0 returned records; p1 said the same as before.
        let include = s.answered(id, &[(key(0), told(true, 5)), (key(1), told(false, 0))]);
        assert_eq!(include, vec![true, false]);
        // p0 moved to the end; p1's high watermark moved, so it is news now.
        let listed = s
            .begin_incremental(id, 2, "User:a", vec![], &[], now)
            .unwrap();
        assert_eq!(listed, vec![(key(1), pos(0)), (key(0), pos(3))]);
        assert_eq!(
            s.answered(id, &[(key(1), told(false, 2)), (key(0), told(false, 5))]),
            vec![true, false]
        );
        // The same epoch again is refused.
        assert_eq!(
            s.begin_incremental(id, 2, "User:a", vec![], &[], now),
            Err(KafkaError::InvalidFetchSessionEpoch)
        );
        let listed = s
            .begin_incremental(id, 3, "User:a", vec![(key(2), pos(0))], &[key(1)], now)
            .unwrap();
        assert_eq!(listed, vec![(key(0), pos(3)), (key(2), pos(0))]);
        // A new partition is always sent the first time; errors always.
        let mut err = told(false, 5);
        err.error = true;
        assert_eq!(
            s.answered(id, &[(key(0), err), (key(2), told(false, 0))]),
            vec![true, true]
        );
        s.close(id);
        assert!(s.is_empty());
    }

    #[test]
    fn zero_slots_means_no_sessions_and_a_small_cache_fills() {
        let off = FetchSessions::with_slots(0);
        let now = Instant::now();
        assert!(off
            .open("User:a", vec![(key(0), pos(0), told(false, 0))], now)
            .is_none());
        assert!(off.is_empty());
        let two = FetchSessions::with_slots(2);
        for _ in 0..2 {
            assert!(two
                .open("User:a", vec![(key(0), pos(0), told(false, 0))], now)
                .is_some());
        }
        // Full, and nobody idle long enough: the third consumer goes without a session.
        assert!(two
            .open("User:a", vec![(key(0), pos(0), told(false, 0))], now)
            .is_none());
        assert!(two
            .open(
                "User:a",
                vec![(key(0), pos(0), told(false, 0))],
                now + EVICTABLE_AFTER
            )
            .is_some());
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn a_full_cache_evicts_only_idle_sessions() {
        let s = FetchSessions::default();
        let start = Instant::now();
        for _ in 0..MAX_SESSIONS {
            assert!(s
                .open("User:a", vec![(key(0), pos(0), told(false, 0))], start)
                .is_some());
        }
        assert_eq!(
            s.open("User:a", vec![], start + Duration::from_secs(1)),
            None
        );
        let later = start + EVICTABLE_AFTER;
        assert!(s.open("User:a", vec![], later).is_some());
        assert_eq!(s.len(), MAX_SESSIONS);
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(after(1), 2);
        assert_eq!(after(i32::MAX), 1);
    }
}
