//! The boundary to a remote backend (Pulsar, implemented in Python: kop-py implements
//! `RemoteBackend` over `kop.pulsar.PulsarBackend`; docs/pulsar-storage.md is the contract).
//! Each method serves one seam: documents, logs, group logs or members.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::records::batch::BatchHeader;
use crate::storage::members::{ClusterState, Member};
use crate::storage::partition_log::{ExternalEnd, Receipt};

/// What a takeover of a partition found (see the contract's `open_partition`).
#[derive(Debug, Clone, Default)]
pub struct OpenedPartition {
    pub epoch: i32,
    pub log_start: i64,
    pub next_offset: i64,
    /// The batches producer and transaction state is rebuilt from, oldest first: the 61 header
    /// bytes of each, whole batches for transaction markers (their kind is in their record).
    /// Every live batch, or the ones a checkpoint kept for that (docs/pulsar-storage.md).
    pub headers: Vec<Bytes>,
    /// The newest live batches, whole, oldest first.
    pub tail: Vec<Bytes>,
}

/// A remote store of bytes. Every method but `append` may block; callers on tokio workers go
/// through `blocking`.
pub trait RemoteBackend: Send + Sync {
    // Documents (`storage::documents`).
    fn load_doc(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Stores (or with None deletes) a document, durably when it returns.
    fn save_doc(&self, name: &str, data: Option<&[u8]>) -> io::Result<()>;
    /// `save_doc` if the document still holds `expected` (None: absent) — also when another
    /// kop instance wrote it meanwhile; false (nothing stored) if it does not.
    fn save_doc_if(
        &self,
        name: &str,
        data: Option<&[u8]>,
        expected: Option<&[u8]>,
    ) -> io::Result<bool>;
    fn doc_names(&self, prefix: &str) -> io::Result<Vec<String>>;

    // Logs (`storage::partition_log`).
    /// Creates the topic's partitions, or grows their count.
    fn create_topic(&self, topic: &str, partitions: i32) -> io::Result<()>;
    fn delete_topic(&self, topic: &str) -> io::Result<()>;
    /// Sets the topic's retention in the backend (-1: unlimited) and returns the partition's
    /// log start offset after what the backend deleted, or -1 when it stores no batch.
    fn apply_retention(
        &self,
        topic: &str,
        partition: i32,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> io::Result<i64>;
    /// Takes the partition over: from now on only this process can append to it.
    fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        tail_bytes: usize,
    ) -> io::Result<OpenedPartition>;
    /// Whether other writers append to the partition just opened (Pulsar producers writing a
    /// Pulsar-format topic, which kop serves read-only). If so, the backend calls
    /// `end.advance(next_offset)` whenever the partition grows, until it is closed or opened
    /// again. Asked once per `open_partition`, never on the append or fetch path.
    fn follow_partition(
        &self,
        _topic: &str,
        _partition: i32,
        _end: Arc<ExternalEnd>,
    ) -> io::Result<bool> {
        Ok(false)
    }
    /// Lets go of a partition another instance leads now (no-op if not open).
    fn close_partition(&self, topic: &str, partition: i32) -> io::Result<()>;

    // Members (`storage::members`).
    /// Announces this instance (and keeps announcing it until closed); returns the members
    /// that are live now, this one included or not.
    fn join(&self, me: &Member) -> io::Result<Vec<Member>>;
    /// The live members, and a counter that moves whenever a document changed.
    fn cluster_state(&self) -> io::Result<ClusterState>;

    // Logs, continued: appends and reads.
    /// The largest batch `append` can store (Pulsar: the broker's maximum message size, less
    /// room for the message metadata); None: no limit. Asked on every append: keep it cheap.
    fn max_batch_bytes(&self) -> Option<usize> {
        None
    }
    /// Sends one batch; never blocks. Receipts of one partition report a prefix: after a
    /// failure every later one fails too, until the partition is opened again.
    fn append(
        &self,
        topic: &str,
        partition: i32,
        epoch: i32,
        header: &BatchHeader,
        payload: Bytes,
    ) -> Receipt;
    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        upper: i64,
    ) -> io::Result<Vec<Bytes>>;
    fn batch_at_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> io::Result<Option<Bytes>>;
    fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> io::Result<Option<Bytes>>;
    /// The bytes the backend stores of a partition (Pulsar's topic stats `storageSize`); None
    /// if it cannot tell.
    fn storage_size(&self, _topic: &str, _partition: i32) -> io::Result<Option<u64>> {
        Ok(None)
    }

    // Compaction (`storage::compaction::RemoteCleanJob`, docs/compaction.md "Pulsar").
    /// The end of the partition's compacted copy: offsets below it are read from the copy;
    /// 0 when it has none.
    fn compacted_end(&self, _topic: &str, _partition: i32) -> io::Result<i64> {
        Ok(0)
    }
    /// Stores `batches` (every batch below `end` after a clean, oldest first) as the
    /// partition's next compacted copy and switches readers to it, unless another owner
    /// switched since `compacted_end` was asked (false). Then trims what is below `end`, and
    /// deletes the previous copy `delete_delay_ms` later.
    fn write_compacted(
        &self,
        _topic: &str,
        _partition: i32,
        _epoch: i32,
        _end: i64,
        _batches: Vec<Bytes>,
        _delete_delay_ms: i64,
    ) -> io::Result<bool> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this backend does not compact",
        ))
    }

    // Group logs (`storage::group_log`).
    /// The group records of one shard (`group::shard_of`); from now on only this process can
    /// write them.
    fn load_group_records(&self, shard: i32) -> io::Result<Vec<Vec<u8>>>;
    fn append_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()>;
    fn rewrite_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()>;
    /// Stops writing a shard's group records (another instance coordinates it now).
    fn release_group_records(&self, shard: i32) -> io::Result<()>;
}
