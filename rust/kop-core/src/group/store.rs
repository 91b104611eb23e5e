//! Durable group state: committed offsets and group metadata as a log of records, replayed on
//! start (the role Kafka's compacted `__consumer_offsets` topic plays).
//!
//! The coordinator only appends records and, now and then, replaces the whole log with a
//! snapshot of what is live (compaction). A backend implements `GroupStore`; the file backend
//! keeps `groups/groups.log` in the data directory, the memory backend keeps nothing, and the
//! Pulsar backend can map the same records onto a compacted topic keyed by group.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

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
    GroupRemoved {
        group: String,
    },
}

impl GroupRecord {
    /// The group the record is about.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset(o) => &o.group,
            GroupRecord::OffsetRemoved { group, .. } | GroupRecord::GroupRemoved { group } => group,
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

/// Keeps nothing (`memory://`).
#[derive(Default)]
pub struct MemoryGroupStore;

impl GroupStore for MemoryGroupStore {
    fn load(&self) -> io::Result<Vec<GroupRecord>> {
        Ok(Vec::new())
    }
    fn append(&self, _records: &[GroupRecord]) -> io::Result<()> {
        Ok(())
    }
    fn rewrite(&self, _live: &[GroupRecord]) -> io::Result<()> {
        Ok(())
    }
    fn garbage_hint(&self) -> u64 {
        0
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Frames: `len: u32 BE`, `crc32c(json): u32 BE`, `json`. A torn or corrupt tail is cut off on load.
pub struct FileGroupStore {
    path: PathBuf,
    file: Mutex<(File, u64)>,
    sync_each_append: bool,
}

const MAX_RECORD: usize = 64 << 20;

fn encode(records: &[GroupRecord]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in records {
        let json = serde_json::to_vec(r).map_err(io::Error::other)?;
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
        out.extend_from_slice(&json);
    }
    Ok(out)
}

/// The records in `data` and the length of its valid prefix.
fn decode(data: &[u8]) -> (Vec<GroupRecord>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= 8 {
        let len = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let crc = u32::from_be_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let len = len as usize;
        if len > MAX_RECORD || data.len() - pos - 8 < len {
            break;
        }
        let json = &data[pos + 8..pos + 8 + len];
        if crc32c::crc32c(json) != crc {
            break;
        }
        match serde_json::from_slice(json) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        pos += 8 + len;
    }
    (out, pos)
}

impl FileGroupStore {
    pub fn open(dir: &Path, sync_each_append: bool) -> io::Result<FileGroupStore> {
        fs::create_dir_all(dir)?;
        let path = dir.join("groups.log");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        Ok(FileGroupStore {
            path,
            file: Mutex::new((file, 0)),
            sync_each_append,
        })
    }
}

impl GroupStore for FileGroupStore {
    fn load(&self) -> io::Result<Vec<GroupRecord>> {
        let mut guard = self.file.lock();
        let file = &mut guard.0;
        let mut data = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut data)?;
        let (records, valid) = decode(&data);
        if valid < data.len() {
            tracing::warn!(
                path = %self.path.display(),
                dropped_bytes = data.len() - valid,
                "group log: cut a torn or corrupt tail"
            );
            file.set_len(valid as u64)?;
        }
        file.seek(SeekFrom::End(0))?;
        guard.1 = valid as u64;
        Ok(records)
    }

    fn append(&self, records: &[GroupRecord]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let bytes = encode(records)?;
        let mut guard = self.file.lock();
        guard.0.write_all(&bytes)?;
        if self.sync_each_append {
            guard.0.sync_data()?;
        }
        guard.1 += bytes.len() as u64;
        Ok(())
    }

    fn rewrite(&self, live: &[GroupRecord]) -> io::Result<()> {
        let bytes = encode(live)?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        let mut guard = self.file.lock();
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            #[cfg(unix)]
            File::open(dir)?.sync_all()?;
            #[cfg(not(unix))]
            let _ = dir;
        }
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(SeekFrom::End(0))?;
        *guard = (file, 0);
        Ok(())
    }

    fn garbage_hint(&self) -> u64 {
        self.file.lock().1
    }

    fn flush(&self) -> io::Result<()> {
        self.file.lock().0.sync_data()
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
    fn appends_survive_reopen_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = FileGroupStore::open(dir.path(), false).unwrap();
            assert!(s.load().unwrap().is_empty());
            s.append(&[offset("g", 1), offset("g", 2)]).unwrap();
        }
        let path = dir.path().join("groups.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
        drop(f);
        let s = FileGroupStore::open(dir.path(), false).unwrap();
        assert_eq!(s.load().unwrap(), vec![offset("g", 1), offset("g", 2)]);
        s.append(&[offset("g", 3)]).unwrap();
        s.rewrite(&[offset("g", 3)]).unwrap();
        s.append(&[offset("h", 4)]).unwrap();
        let s = FileGroupStore::open(dir.path(), false).unwrap();
        assert_eq!(s.load().unwrap(), vec![offset("g", 3), offset("h", 4)]);
    }

    #[test]
    fn hex_roundtrip() {
        assert_eq!(to_hex(&[0, 255, 16]), "00ff10");
        assert_eq!(from_hex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(from_hex("0").is_none());
        assert!(from_hex("zz").is_none());
    }
}
