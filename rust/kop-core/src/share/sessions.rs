//! Share sessions (KIP-932): per (group, member), the share partitions a member fetches from and
//! the epoch its next request must carry. Epoch 0 opens a session (listing every partition),
//! each later request carries the next epoch (after `i32::MAX` comes 1) and adds or forgets
//! partitions, -1 closes it. kop keeps them in memory, as Kafka does: a session ends with the
//! broker, and the client opens a new one on SHARE_SESSION_NOT_FOUND.
//!
//! A session belongs to the connection that opened it (Kafka 4.4's ShareSessionCache): when
//! that connection closes, the session ends and the member's acquired records are released
//! (`close_connection`). A session reopened on another connection belongs to that one.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::KafkaError;

/// A share partition of a session: (topic id, partition).
pub type SessionPartition = (Uuid, i32);

pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

struct Session {
    /// The connection that opened the session (`RequestContext::connection_id`).
    connection: u64,
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<SessionPartition>,
    last_used: Instant,
}

pub struct ShareSessions {
    sessions: Mutex<HashMap<(String, String), Session>>,
    /// `group.share.max.share.sessions`.
    max_sessions: usize,
    /// Sessions unused this long are dropped when room is needed (their member left or died).
    idle_after: Duration,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl ShareSessions {
    pub fn new(max_sessions: usize, idle_after: Duration) -> ShareSessions {
        ShareSessions {
            sessions: Mutex::new(HashMap::new()),
            max_sessions: max_sessions.max(1),
            idle_after,
        }
    }

    /// Opens (or reopens) the member's session with these partitions. Returns the partitions
    /// of the session it replaces (empty if none).
    pub fn open(
        &self,
        group: &str,
        member: &str,
        connection: u64,
        partitions: impl IntoIterator<Item = SessionPartition>,
        now: Instant,
    ) -> Result<Vec<SessionPartition>, KafkaError> {
        let mut sessions = self.sessions.lock();
        let key = (group.to_string(), member.to_string());
        if !sessions.contains_key(&key) && sessions.len() >= self.max_sessions {
            let idle = self.idle_after;
            sessions.retain(|_, s| now.saturating_duration_since(s.last_used) < idle);
            if sessions.len() >= self.max_sessions {
                return Err(KafkaError::ShareSessionLimitReached);
            }
        }
        let old = sessions.insert(
            key,
            Session {
                connection,
                next_epoch: next(INITIAL_EPOCH),
                partitions: partitions.into_iter().collect(),
                last_used: now,
            },
        );
        Ok(old.map_or_else(Vec::new, |s| s.partitions.into_iter().collect()))
    }

    /// A request at `epoch` (> 0) of an open session: adds and forgets partitions and returns
    /// the session's partitions after that.
    pub fn advance(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        add: impl IntoIterator<Item = SessionPartition>,
        forget: &[SessionPartition],
        now: Instant,
    ) -> Result<Vec<SessionPartition>, KafkaError> {
        let mut sessions = self.sessions.lock();
        let s = sessions
            .get_mut(&(group.to_string(), member.to_string()))
            .ok_or(KafkaError::ShareSessionNotFound)?;
        if s.next_epoch != epoch {
            return Err(KafkaError::InvalidShareSessionEpoch);
        }
        s.next_epoch = next(epoch);
        s.last_used = now;
        s.partitions.extend(add);
        for p in forget {
            s.partitions.remove(p);
        }
        Ok(s.partitions.iter().copied().collect())
    }

    /// Checks that the session exists (for a request at the final epoch, which closes it).
    pub fn exists(&self, group: &str, member: &str) -> bool {
        self.sessions
            .lock()
            .contains_key(&(group.to_string(), member.to_string()))
    }

    /// Closes the member's session; returns its partitions (their records the member holds
    /// are released by the caller).
    pub fn close(&self, group: &str, member: &str) -> Vec<SessionPartition> {
        self.sessions
            .lock()
            .remove(&(group.to_string(), member.to_string()))
            .map_or_else(Vec::new, |s| s.partitions.into_iter().collect())
    }

    /// A connection closed: the sessions it opened end. Returns their (group, member).
    pub fn close_connection(&self, connection: u64) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        self.sessions.lock().retain(|key, s| {
            let keep = s.connection != connection;
            if !keep {
                gone.push(key.clone());
            }
            keep
        });
        gone
    }

    /// How many sessions are open (tests, metrics).
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_advance_and_are_checked() {
        let s = ShareSessions::new(2, Duration::from_secs(60));
        let now = Instant::now();
        let t = Uuid::new_v4();
        s.open("g", "m", 7, [(t, 0)], now).unwrap();
        assert_eq!(
            s.advance("g", "m", 2, [], &[], now),
            Err(KafkaError::InvalidShareSessionEpoch)
        );
        assert_eq!(s.advance("g", "m", 1, [(t, 1)], &[], now).unwrap().len(), 2);
        assert_eq!(
            s.advance("g", "m", 2, [], &[(t, 0)], now).unwrap(),
            vec![(t, 1)]
        );
        assert_eq!(
            s.advance("g", "x", 1, [], &[], now),
            Err(KafkaError::ShareSessionNotFound)
        );
        s.open("g", "m2", 8, [], now).unwrap();
        assert_eq!(
            s.open("g", "m3", 8, [], now),
            Err(KafkaError::ShareSessionLimitReached)
        );
        // Idle sessions make room.
        assert!(s
            .open("g", "m3", 8, [], now + Duration::from_secs(61))
            .is_ok());
        assert_eq!(s.close("g", "m3").len(), 0);
        // A closed connection ends the sessions it opened, only those.
        s.open("g", "m3", 9, [], now).unwrap();
        s.open("g", "m", 9, [(t, 0)], now).unwrap();
        assert_eq!(s.close_connection(9).len(), 2);
        assert_eq!(s.close_connection(9).len(), 0);
        assert!(s.is_empty());
        assert_eq!(next(i32::MAX), 1);
    }
}
