//! Durable group state: committed offsets and group metadata as a log of records, replayed on
//! start (the role Kafka's compacted `__consumer_offsets` topic plays).
//!
//! The coordinator only appends records and, now and then, replaces the whole log with a
//! snapshot of what is live (compaction). This file owns the records and their encoding (JSON,
//! member metadata in hex); `LogGroupStore` keeps them in a storage `GroupLog` (the group-log
//! seam: a file, nothing in memory, or Pulsar).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::storage::GroupLog;

/// One durable fact about a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupRecord {
    Offset(OffsetRecord),
    OffsetRemoved {
        group: String,
        topic: String,
        partition: i32,
    },
    Group(GroupSnapshot),
    /// A KIP-848 consumer group's membership and assignments.
    Consumer(ConsumerSnapshot),
    /// A KIP-1071 Streams group: topology, members, assignments.
    Streams {
        group: String,
        state: Box<super::streams::StreamsGroup>,
    },
    /// A KIP-932 share group: members, epochs, assignments.
    Share {
        group: String,
        state: Box<crate::share::groups::ShareGroup>,
    },
    GroupRemoved {
        group: String,
    },
    /// An offset committed in a producer's transaction (TxnOffsetCommit): pending until a
    /// `TxnEnd` of that producer for the group.
    TxnOffset(TxnOffsetRecord),
    /// The end of a producer's transaction for a group: its pending offsets become the
    /// committed ones (`commit`) or are dropped.
    TxnEnd {
        group: String,
        producer_id: i64,
        commit: bool,
    },
}

impl GroupRecord {
    /// The group the record is about.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset(o) => &o.group,
            GroupRecord::OffsetRemoved { group, .. }
            | GroupRecord::GroupRemoved { group }
            | GroupRecord::Streams { group, .. }
            | GroupRecord::Share { group, .. }
            | GroupRecord::TxnEnd { group, .. } => group,
            GroupRecord::TxnOffset(t) => &t.group,
            GroupRecord::Group(g) => &g.group,
            GroupRecord::Consumer(c) => &c.group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRecord {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

/// An offset pending in a transaction; the fields of `OffsetRecord` and the producer's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOffsetRecord {
    pub group: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

/// A classic group's membership as of its last stable generation (or its becoming empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub group: String,
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_since_ms: i64,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    /// The member's metadata for the group's selected protocol, hex.
    pub metadata: String,
    /// The member's assignment, hex.
    pub assignment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerSnapshot {
    pub group: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    /// Subscribed topics as last seen: (name, id, partitions).
    pub topics: Vec<(String, uuid::Uuid, i32)>,
    pub members: Vec<ConsumerMemberSnapshot>,
}

/// Partitions per topic id.
pub type AssignmentSnapshot = Vec<(uuid::Uuid, Vec<i32>)>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberSnapshot {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub rebalance_timeout_ms: i64,
    pub subscribed: Vec<String>,
    /// Absent in records written before regex subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regex_matched: Vec<String>,
    pub assignor: Option<String>,
    pub assigned: AssignmentSnapshot,
    pub pending_revocation: AssignmentSnapshot,
    pub target: AssignmentSnapshot,
}

/// Where group records live. Appends must be durable against a process crash when they return.
pub trait GroupStore: Send + Sync {
    /// Every record, oldest first.
    fn load(&self) -> io::Result<Vec<GroupRecord>>;
    fn append(&self, records: &[GroupRecord]) -> io::Result<()>;
    /// Replaces the whole log with `live` (atomically: a crash leaves the old or the new log).
    fn rewrite(&self, live: &[GroupRecord]) -> io::Result<()>;
    /// Bytes appended since the last rewrite (or load), to decide when to compact.
    fn garbage_hint(&self) -> u64;
    fn flush(&self) -> io::Result<()>;
    /// Stops writing: another kop instance coordinates the groups now (`load` takes over again).
    fn release(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A `GroupStore` over a storage `GroupLog`: each record is its JSON.
pub struct LogGroupStore {
    log: Arc<dyn GroupLog>,
    /// Bytes loaded or appended since the last rewrite.
    garbage: AtomicU64,
}

impl LogGroupStore {
    pub fn new(log: Arc<dyn GroupLog>) -> LogGroupStore {
        LogGroupStore {
            log,
            garbage: AtomicU64::new(0),
        }
    }
}

fn encode(records: &[GroupRecord]) -> io::Result<Vec<Vec<u8>>> {
    records
        .iter()
        .map(|r| serde_json::to_vec(r).map_err(io::Error::other))
        .collect()
}

fn byte_count(records: &[Vec<u8>]) -> u64 {
    records.iter().map(|r| r.len() as u64).sum()
}

impl GroupStore for LogGroupStore {
    fn load(&self) -> io::Result<Vec<GroupRecord>> {
        let raw = self.log.load()?;
        self.garbage.store(byte_count(&raw), Ordering::Relaxed);
        let mut records = Vec::with_capacity(raw.len());
        for r in raw {
            match serde_json::from_slice(&r) {
                Ok(rec) => records.push(rec),
                // A record this version can't read is skipped, not fatal (as a torn file tail).
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable group record"),
            }
        }
        Ok(records)
    }

    fn append(&self, records: &[GroupRecord]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let encoded = encode(records)?;
        let bytes = byte_count(&encoded);
        self.log.append(encoded)?;
        self.garbage.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn rewrite(&self, live: &[GroupRecord]) -> io::Result<()> {
        self.log.rewrite(encode(live)?)?;
        self.garbage.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn garbage_hint(&self) -> u64 {
        self.garbage.load(Ordering::Relaxed)
    }

    fn flush(&self) -> io::Result<()> {
        self.log.flush()
    }

    fn release(&self) -> io::Result<()> {
        self.log.release()
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Bytes from lowercase or uppercase hex; None if malformed.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(group: &str, offset: i64) -> GroupRecord {
        GroupRecord::Offset(OffsetRecord {
            group: group.into(),
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: 1,
        })
    }

    #[test]
    fn records_survive_a_reload_and_unreadable_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(crate::storage::FileGroupLog::open(dir.path(), false).unwrap());
        let store = LogGroupStore::new(log.clone());
        assert!(store.load().unwrap().is_empty());
        store.append(&[offset("g", 1), offset("g", 2)]).unwrap();
        log.append(vec![b"{not a record".to_vec()]).unwrap();
        store.append(&[offset("h", 3)]).unwrap();
        assert!(store.garbage_hint() > 0);
        let store = LogGroupStore::new(log);
        let all = vec![offset("g", 1), offset("g", 2), offset("h", 3)];
        assert_eq!(store.load().unwrap(), all);
        store.rewrite(&all[2..]).unwrap();
        assert_eq!(store.garbage_hint(), 0);
        assert_eq!(store.load().unwrap(), &all[2..]);
    }

    #[test]
    fn hex_roundtrip() {
        assert_eq!(to_hex(&[0, 255, 16]), "00ff10");
        assert_eq!(from_hex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(from_hex("0").is_none());
        assert!(from_hex("zz").is_none());
    }
}
