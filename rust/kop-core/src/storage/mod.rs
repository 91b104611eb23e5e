//! Storage: narrow traits and their backends.
//!
//! The broker keeps every Kafka rule (offsets, producer state, waiting fetches); a backend only
//! stores topic metadata and batch bytes durably and answers positions. `SegmentedLog` is the
//! log structure shared by the file and memory backends; `RemoteStorage` puts the same traits
//! over a `RemoteBackend` (Pulsar, implemented in Python).

mod file;
mod log;
mod memory;
pub mod remote;
mod segment;

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use file::FileStorage;
pub use log::SegmentedLog;
pub use memory::MemoryStorage;
pub use remote::{RemoteBackend, RemoteStorage};

use crate::broker::cluster::Member;
use crate::records::batch::BatchHeader;

/// What a backend persists about a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (`retention.ms`, ...); defaults are not stored.
    pub configs: BTreeMap<String, String>,
}

/// The log settings a partition needs from its topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// Whether old data is deleted by retention (`cleanup.policy` contains `delete`).
    pub delete_retention: bool,
}

/// What `Storage::cluster_state` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    pub members: Vec<Member>,
    pub metadata_version: u64,
}

/// A backend: topic metadata, broker identity and one log per partition.
pub trait Storage: Send + Sync {
    /// The stored security state (ACLs, SCRAM credentials) as an opaque JSON document the
    /// auth module owns; None before the first save.
    fn load_security(&self) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the stored security state durably (atomically on the file backend).
    fn save_security(&self, data: &[u8]) -> io::Result<()>;
    fn load_cluster_id(&self) -> io::Result<Option<String>>;
    fn save_cluster_id(&self, id: &str) -> io::Result<()>;
    fn load_topics(&self) -> io::Result<Vec<TopicMeta>>;
    /// Stores a topic's metadata if what is stored is still `previous` (None: no such topic);
    /// false if another kop instance changed it first (storage shared by several instances).
    fn save_topic(&self, meta: &TopicMeta, previous: Option<&TopicMeta>) -> io::Result<bool>;
    /// Removes the topic's metadata and all its partitions' data.
    fn delete_topic(&self, meta: &TopicMeta) -> io::Result<()>;
    /// Opens (recovering if needed) a partition's log. `on_batch` sees the header of every
    /// batch found, oldest first, so the broker can rebuild producer state.
    fn open_log(
        &self,
        topic: &str,
        partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> io::Result<Box<dyn PartitionLog>>;
    /// Lets go of a partition's log that another kop instance leads now.
    fn close_log(&self, _topic: &str, _partition: i32) {}
    /// Announces this instance to the others sharing the storage and returns the live members
    /// (none on storage only this process uses).
    fn join_cluster(&self, _me: &Member) -> io::Result<Vec<Member>> {
        Ok(Vec::new())
    }
    /// The live members and a counter that moves whenever stored metadata (topics, security)
    /// changed; None on storage only this process uses.
    fn cluster_state(&self) -> io::Result<Option<ClusterState>> {
        Ok(None)
    }
    /// Reserves `count` producer ids durably and returns the first one.
    fn reserve_producer_ids(&self, count: i64) -> io::Result<i64>;
    /// The durable stores of committed offsets and group metadata, one per group shard (see
    /// `group::shard_of`): one on storage only this process uses, 50 on shared storage, where
    /// each shard is coordinated by the instance leading it. `sync_each_append`: fsync every
    /// append (`fsync = "always"`).
    fn open_group_stores(
        &self,
        sync_each_append: bool,
    ) -> io::Result<Vec<std::sync::Arc<dyn crate::group::GroupStore>>>;
}

/// Completes when a remote backend has stored an appended batch (`Err`: it did not, or may not
/// have; the partition must be taken over again before it appends more).
pub type Receipt = tokio::sync::oneshot::Receiver<Result<(), AppendFailure>>;

/// Why a remote append was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendFailure {
    /// The backend refuses a message this large: permanent for this batch, which was not
    /// stored; the partition is still held. The producer gets MESSAGE_TOO_LARGE.
    TooLarge(String),
    /// The append may or may not be stored and the partition may be lost (fenced, timed out,
    /// disconnected). The producer gets NOT_LEADER_OR_FOLLOWER and retries.
    Lost(String),
}

impl std::fmt::Display for AppendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendFailure::TooLarge(why) => write!(f, "batch too large for the storage: {why}"),
            AppendFailure::Lost(why) => f.write_str(why),
        }
    }
}

/// One partition's log. Offsets are assigned by the broker; the log stores batches whose
/// `baseOffset` is already patched, in offset order.
pub trait PartitionLog: Send + Sync {
    fn log_start_offset(&self) -> i64;
    /// The offset the next batch gets (the log end offset).
    fn next_offset(&self) -> i64;
    fn size_bytes(&self) -> u64;
    /// Appends one patched batch. A local log has written it when this returns (`flush` makes
    /// it durable) and returns None; a remote log returns the receipt of the backend's store.
    fn append(
        &mut self,
        header: &BatchHeader,
        batch: Bytes,
        now_ms: i64,
    ) -> io::Result<Option<Receipt>>;
    /// Whole batches starting with the one that contains `offset`, about `max_bytes` of them
    /// (always at least one batch if any exists), never past `upper` (exclusive). None: not
    /// held locally; read through `remote_reads` (outside the partition lock).
    fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Option<Bytes>>;
    /// Reads that go to a remote backend and may block, for a caller that does not hold the
    /// partition lock. None for local logs. When Some, the timestamp look-ups below are asked
    /// there instead.
    fn remote_reads(&self) -> Option<std::sync::Arc<dyn RemoteReads>> {
        None
    }
    /// The largest batch the storage can hold, when it is smaller than any topic may ask for
    /// (Pulsar's maximum message size); None: no limit of its own.
    fn max_batch_bytes(&self) -> Option<usize> {
        None
    }
    /// The first batch whose max timestamp is >= `timestamp`.
    fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>>;
    /// The batch holding the largest timestamp in the log.
    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>>;
    /// Makes appended data durable (fsync).
    fn flush(&mut self) -> io::Result<()>;
    fn set_settings(&mut self, settings: LogSettings);
    /// Applies retention; returns the number of segments deleted.
    fn enforce_retention(&mut self, now_ms: i64) -> io::Result<usize>;
}

/// The blocking reads of a remote partition log (see `PartitionLog::remote_reads`).
pub trait RemoteReads: Send + Sync {
    fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Bytes>;
    fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>>;
    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>>;
}
