//! Storage: four narrow seams, each a trait with a file, a memory and a remote (Pulsar)
//! implementation, chosen together by the storage URL (docs/architecture.md):
//! - documents (`DocumentStore`) and, written once over them, `Metadata`: cluster id, security
//!   state, topics, producer-id blocks;
//! - logs (`LogStore`, `PartitionLog`): one log of record batches per partition;
//! - group logs (`GroupLog`): opaque records per shard — the group coordinator's, and the
//!   transaction coordinator's in logs of their own;
//! - members (`Membership`): the kop instances sharing the storage.
//!
//! Storage knows nothing of Kafka's rules, groups or the broker: it stores bytes and answers
//! positions. `SegmentedLog` is the log structure shared by the file and memory backends.

pub mod compaction;
pub mod documents;
mod file;
pub mod group_log;
#[cfg(test)]
mod log_start_tests;
pub mod members;
mod memory;
pub mod metadata;
pub mod overrides;
pub mod partition_log;
pub mod remote;
mod segment;
mod segmented_log;

use std::io;
use std::sync::Arc;

pub use documents::DocumentStore;
pub use file::{FileDocuments, FileGroupLog};
pub use group_log::GroupLog;
pub use members::{ClusterState, Endpoint, Member, Membership};
pub use memory::{MemoryDocuments, MemoryGroupLog};
pub use metadata::{Metadata, TopicMeta};
pub use partition_log::{
    AppendFailure, EndListener, ExternalEnd, LogSettings, LogStore, PartitionLog, Receipt,
    RemoteReads,
};
pub use remote::RemoteBackend;
pub use segmented_log::SegmentedLog;

use crate::config::{FsyncPolicy, ServerConfig, StorageSpec};

/// One storage: its four seams.
pub struct Storage {
    pub metadata: Arc<Metadata>,
    pub logs: Arc<dyn LogStore>,
    /// One per group shard (see `group::shard_of`).
    pub group_logs: Vec<Arc<dyn GroupLog>>,
    /// The transaction coordinator's state, one per shard (the same shards as the groups').
    pub txn_logs: Vec<Arc<dyn GroupLog>>,
    pub members: Arc<dyn Membership>,
    /// Held while the storage is open (the file backend's directory lock).
    _lock: Option<std::fs::File>,
}

impl Storage {
    /// The storage the config's URL names. `remote` is the backend of `pulsar://` storage,
    /// supplied by the embedding layer (kop-py).
    pub fn open(
        config: &ServerConfig,
        remote: Option<Arc<dyn RemoteBackend>>,
    ) -> io::Result<Storage> {
        match (config.storage_spec(), remote) {
            (StorageSpec::File(path), _) => file::open(&path, config.fsync == FsyncPolicy::Always),
            (StorageSpec::Memory, _) => Ok(memory::open()),
            (StorageSpec::Pulsar(_), Some(backend)) => {
                Ok(remote::open(backend, config.tail_cache_bytes as usize))
            }
            (StorageSpec::Pulsar(url), None) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "storage {url}: Pulsar storage needs the Python package (kop serve or kop.Server)"
                ),
            )),
        }
    }

    /// Stores a new topic's (or a changed topic's) metadata if what is stored is still
    /// `previous`, then makes room for its partitions; false if another kop instance changed
    /// it first. The document first: it decides whose topic this is, and a crash before the
    /// partitions exist is harmless (they are created when first opened).
    pub fn save_topic(&self, meta: &TopicMeta, previous: Option<&TopicMeta>) -> io::Result<bool> {
        if !self.metadata.save_topic(meta, previous)? {
            return Ok(false);
        }
        self.logs.create(&meta.name, meta.partitions)?;
        Ok(true)
    }

    /// Removes a topic's metadata, then its data: a crash in between leaves orphaned data,
    /// never a topic without its data.
    pub fn delete_topic(&self, meta: &TopicMeta) -> io::Result<()> {
        self.metadata.delete_topic(&meta.name)?;
        self.logs.delete(&meta.name, meta.partitions)
    }
}
