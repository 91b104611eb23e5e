//! Storage whose bytes live in a remote backend: Pulsar, reached through Python (kop-py
//! implements `RemoteBackend` over `kop.pulsar.PulsarBackend`; docs/pulsar-storage.md is the
//! contract).
//!
//! Rust keeps what it keeps for the local log: offsets, producer state, topic ids and configs.
//! Small state (cluster id, security, producer-id blocks, topic metadata) is stored as named
//! documents. Each partition keeps a tail cache of its newest batches, so consumers at the head
//! never wait for a backend read; older data is read through `RemoteReads`, outside the
//! partition lock.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use super::{ClusterState, LogSettings, PartitionLog, Receipt, RemoteReads, Storage, TopicMeta};
use crate::broker::cluster::Member;
use crate::group::{GroupRecord, GroupStore};
use crate::records::batch::BatchHeader;

/// What a takeover of a partition found (see the contract's `open_partition`).
pub struct OpenedPartition {
    pub epoch: i32,
    pub log_start: i64,
    pub next_offset: i64,
    /// The header bytes of every live batch, oldest first (producer state is rebuilt from them).
    pub headers: Vec<Bytes>,
    /// The newest live batches, whole, oldest first.
    pub tail: Vec<Bytes>,
}

/// A remote store of bytes. Every method but `append` may block; callers on tokio workers go
/// through `blocking`.
pub trait RemoteBackend: Send + Sync {
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
    /// Lets go of a partition another instance leads now (no-op if not open).
    fn close_partition(&self, topic: &str, partition: i32) -> io::Result<()>;
    /// Announces this instance (and keeps announcing it until closed); returns the members
    /// that are live now, this one included or not.
    fn join(&self, me: &Member) -> io::Result<Vec<Member>>;
    /// The live members, and a counter that moves whenever a document changed.
    fn cluster_state(&self) -> io::Result<ClusterState>;
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
    /// The group records of one shard (`group::shard_of`); from now on only this process can
    /// write them.
    fn load_group_records(&self, shard: i32) -> io::Result<Vec<Vec<u8>>>;
    fn append_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()>;
    fn rewrite_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()>;
    /// Stops writing a shard's group records (another instance coordinates it now).
    fn release_group_records(&self, shard: i32) -> io::Result<()>;
}

/// Runs a blocking backend call. On a tokio worker the worker hands its other tasks off first
/// (`block_in_place`), so a slow backend never stalls unrelated connections.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

const CLUSTER_ID_DOC: &str = "cluster-id";
const SECURITY_DOC: &str = "security";
const PRODUCER_IDS_DOC: &str = "producer-ids";
const TOPIC_DOC_PREFIX: &str = "topic/";

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

pub struct RemoteStorage {
    backend: Arc<dyn RemoteBackend>,
    /// Bytes of newest batches each partition keeps in memory.
    tail_bytes: usize,
    /// Serialises the read-modify-write of the producer-id counter.
    producer_ids: Mutex<()>,
}

impl RemoteStorage {
    pub fn new(backend: Arc<dyn RemoteBackend>, tail_bytes: usize) -> RemoteStorage {
        RemoteStorage {
            backend,
            tail_bytes,
            producer_ids: Mutex::new(()),
        }
    }
}

impl Storage for RemoteStorage {
    fn load_security(&self) -> io::Result<Option<Vec<u8>>> {
        blocking(|| self.backend.load_doc(SECURITY_DOC))
    }

    fn save_security(&self, data: &[u8]) -> io::Result<()> {
        blocking(|| self.backend.save_doc(SECURITY_DOC, Some(data)))
    }

    fn load_cluster_id(&self) -> io::Result<Option<String>> {
        blocking(|| self.backend.load_doc(CLUSTER_ID_DOC))?
            .map(|b| String::from_utf8(b).map_err(invalid))
            .transpose()
    }

    fn save_cluster_id(&self, id: &str) -> io::Result<()> {
        // Two instances starting on an empty namespace: the first id stored wins (the broker
        // loads the id again after saving).
        blocking(|| {
            self.backend
                .save_doc_if(CLUSTER_ID_DOC, Some(id.as_bytes()), None)
        })
        .map(drop)
    }

    fn load_topics(&self) -> io::Result<Vec<TopicMeta>> {
        blocking(|| {
            let mut topics = Vec::new();
            for name in self.backend.doc_names(TOPIC_DOC_PREFIX)? {
                if let Some(doc) = self.backend.load_doc(&name)? {
                    topics.push(serde_json::from_slice(&doc).map_err(invalid)?);
                }
            }
            Ok(topics)
        })
    }

    fn save_topic(&self, meta: &TopicMeta, previous: Option<&TopicMeta>) -> io::Result<bool> {
        let doc = serde_json::to_vec(meta).map_err(invalid)?;
        let expected = previous
            .map(serde_json::to_vec)
            .transpose()
            .map_err(invalid)?;
        blocking(|| {
            // The document first: it decides which instance's topic this is. A crash before
            // the partitions exist is harmless (they are created when first opened).
            let name = format!("{TOPIC_DOC_PREFIX}{}", meta.name);
            if !self
                .backend
                .save_doc_if(&name, Some(&doc), expected.as_deref())?
            {
                return Ok(false);
            }
            self.backend.create_topic(&meta.name, meta.partitions)?;
            Ok(true)
        })
    }

    fn delete_topic(&self, meta: &TopicMeta) -> io::Result<()> {
        blocking(|| {
            // Metadata first: a crash in between leaves orphaned data, never a topic without it.
            self.backend
                .save_doc(&format!("{TOPIC_DOC_PREFIX}{}", meta.name), None)?;
            self.backend.delete_topic(&meta.name)
        })
    }

    fn open_log(
        &self,
        topic: &str,
        partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> io::Result<Box<dyn PartitionLog>> {
        let opened = blocking(|| {
            // A new topic's partitions must exist before they can be taken over.
            self.backend.create_topic(topic, partition + 1)?;
            self.backend
                .open_partition(topic, partition, self.tail_bytes)
        })?;
        for h in &opened.headers {
            on_batch(&BatchHeader::parse(h).map_err(invalid)?);
        }
        tracing::info!(
            topic,
            partition,
            epoch = opened.epoch,
            log_start = opened.log_start,
            next_offset = opened.next_offset,
            "took over partition"
        );
        Ok(Box::new(RemoteLog::new(
            self.backend.clone(),
            topic,
            partition,
            settings,
            self.tail_bytes,
            opened,
        )?))
    }

    fn close_log(&self, topic: &str, partition: i32) {
        if let Err(e) = blocking(|| self.backend.close_partition(topic, partition)) {
            tracing::warn!(topic, partition, error = %e, "closing a partition another instance leads failed");
        }
    }

    fn join_cluster(&self, me: &Member) -> io::Result<Vec<Member>> {
        blocking(|| self.backend.join(me))
    }

    fn cluster_state(&self) -> io::Result<Option<ClusterState>> {
        blocking(|| self.backend.cluster_state()).map(Some)
    }

    fn reserve_producer_ids(&self, count: i64) -> io::Result<i64> {
        let _serial = self.producer_ids.lock();
        blocking(|| loop {
            // Compare-and-set: another instance may reserve a block at the same time.
            let stored = self.backend.load_doc(PRODUCER_IDS_DOC)?;
            let first = match &stored {
                Some(doc) => std::str::from_utf8(doc)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| invalid("the producer-ids document is not a number"))?,
                None => 0,
            };
            let next = (first + count).to_string();
            if self.backend.save_doc_if(
                PRODUCER_IDS_DOC,
                Some(next.as_bytes()),
                stored.as_deref(),
            )? {
                return Ok(first);
            }
        })
    }

    fn open_group_stores(&self, _sync_each_append: bool) -> io::Result<Vec<Arc<dyn GroupStore>>> {
        Ok((0..GROUP_SHARDS)
            .map(|shard| {
                Arc::new(RemoteGroupStore {
                    backend: self.backend.clone(),
                    shard,
                    appended_bytes: AtomicU64::new(0),
                }) as Arc<dyn GroupStore>
            })
            .collect())
    }
}

/// A batch held in the tail cache.
struct CachedBatch {
    base_offset: i64,
    next_offset: i64,
    bytes: Bytes,
}

pub struct RemoteLog {
    backend: Arc<dyn RemoteBackend>,
    topic: Arc<str>,
    partition: i32,
    epoch: i32,
    log_start: i64,
    next_offset: i64,
    tail: VecDeque<CachedBatch>,
    tail_size: usize,
    tail_limit: usize,
    settings: LogSettings,
    reads: Arc<PartitionReads>,
}

impl RemoteLog {
    fn new(
        backend: Arc<dyn RemoteBackend>,
        topic: &str,
        partition: i32,
        settings: LogSettings,
        tail_limit: usize,
        opened: OpenedPartition,
    ) -> io::Result<RemoteLog> {
        let topic: Arc<str> = topic.into();
        let mut log = RemoteLog {
            reads: Arc::new(PartitionReads {
                backend: backend.clone(),
                topic: topic.clone(),
                partition,
            }),
            backend,
            topic,
            partition,
            epoch: opened.epoch,
            log_start: opened.log_start,
            next_offset: opened.next_offset,
            tail: VecDeque::new(),
            tail_size: 0,
            tail_limit,
            settings,
        };
        for bytes in opened.tail {
            let header = BatchHeader::parse(&bytes).map_err(invalid)?;
            log.cache(&header, bytes);
        }
        Ok(log)
    }

    fn cache(&mut self, header: &BatchHeader, bytes: Bytes) {
        self.tail_size += bytes.len();
        self.tail.push_back(CachedBatch {
            base_offset: header.base_offset,
            next_offset: header.last_offset() + 1,
            bytes,
        });
        while self.tail_size > self.tail_limit && self.tail.len() > 1 {
            let old = self.tail.pop_front().expect("non-empty");
            self.tail_size -= old.bytes.len();
        }
    }
}

impl PartitionLog for RemoteLog {
    fn log_start_offset(&self) -> i64 {
        self.log_start
    }

    fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Only what is cached: the backend's sizes are its own business (its retention applies).
    fn size_bytes(&self) -> u64 {
        self.tail_size as u64
    }

    fn append(
        &mut self,
        header: &BatchHeader,
        batch: Bytes,
        _now_ms: i64,
    ) -> io::Result<Option<Receipt>> {
        let receipt = self.backend.append(
            &self.topic,
            self.partition,
            self.epoch,
            header,
            batch.clone(),
        );
        self.next_offset = header.last_offset() + 1;
        self.cache(header, batch);
        Ok(Some(receipt))
    }

    fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Option<Bytes>> {
        let cached_from = self
            .tail
            .front()
            .map_or(self.next_offset, |b| b.base_offset);
        if offset < cached_from {
            return Ok(None);
        }
        let mut found = self
            .tail
            .iter()
            .skip_while(|b| b.next_offset <= offset)
            .take_while(|b| b.base_offset < upper);
        let Some(first) = found.next() else {
            return Ok(Some(Bytes::new()));
        };
        let mut total = first.bytes.len();
        let mut more = Vec::new();
        for b in found {
            if total + b.bytes.len() > max_bytes {
                break;
            }
            total += b.bytes.len();
            more.push(&b.bytes);
        }
        if more.is_empty() {
            return Ok(Some(first.bytes.clone()));
        }
        let mut out = BytesMut::with_capacity(total);
        out.extend_from_slice(&first.bytes);
        for b in more {
            out.extend_from_slice(b);
        }
        Ok(Some(out.freeze()))
    }

    fn remote_reads(&self) -> Option<Arc<dyn RemoteReads>> {
        Some(self.reads.clone())
    }

    fn max_batch_bytes(&self) -> Option<usize> {
        self.backend.max_batch_bytes()
    }

    fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>> {
        self.reads.batch_at_timestamp(timestamp)
    }

    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>> {
        self.reads.batch_with_max_timestamp()
    }

    /// Nothing to do: an append is durable when its receipt completes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn set_settings(&mut self, settings: LogSettings) {
        self.settings = settings;
    }

    /// The backend deletes (Pulsar: whole ledgers, by the topic retention set here); the log
    /// start follows what it still stores. Returns 1 when the log start moved.
    fn enforce_retention(&mut self, _now_ms: i64) -> io::Result<usize> {
        let (ms, bytes) = if self.settings.delete_retention {
            (self.settings.retention_ms, self.settings.retention_bytes)
        } else {
            (-1, -1)
        };
        let start = blocking(|| {
            self.backend
                .apply_retention(&self.topic, self.partition, ms, bytes)
        })?;
        // -1 (no batch stored): left alone, batches in flight may still be stored.
        let start = start.min(self.next_offset);
        if start <= self.log_start {
            return Ok(0);
        }
        self.log_start = start;
        while self.tail.front().is_some_and(|b| b.next_offset <= start) {
            let old = self.tail.pop_front().expect("non-empty");
            self.tail_size -= old.bytes.len();
        }
        Ok(1)
    }
}

/// The blocking reads of one remote partition.
struct PartitionReads {
    backend: Arc<dyn RemoteBackend>,
    topic: Arc<str>,
    partition: i32,
}

impl RemoteReads for PartitionReads {
    fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Bytes> {
        let batches = blocking(|| {
            self.backend
                .read(&self.topic, self.partition, offset, max_bytes, upper)
        })?;
        Ok(match batches.len() {
            0 => Bytes::new(),
            1 => batches.into_iter().next().expect("one"),
            _ => {
                let mut out = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
                for b in &batches {
                    out.extend_from_slice(b);
                }
                out.freeze()
            }
        })
    }

    fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>> {
        blocking(|| {
            self.backend
                .batch_at_timestamp(&self.topic, self.partition, timestamp)
        })
    }

    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>> {
        blocking(|| {
            self.backend
                .batch_with_max_timestamp(&self.topic, self.partition)
        })
    }
}

/// Group shards on shared storage: Kafka's default `offsets.topic.num.partitions`.
pub const GROUP_SHARDS: i32 = 50;

/// One shard's group records as JSON documents in the backend's group-record log.
struct RemoteGroupStore {
    backend: Arc<dyn RemoteBackend>,
    shard: i32,
    appended_bytes: AtomicU64,
}

fn encode_records(records: &[GroupRecord]) -> io::Result<Vec<Vec<u8>>> {
    records
        .iter()
        .map(|r| serde_json::to_vec(r).map_err(invalid))
        .collect()
}

impl GroupStore for RemoteGroupStore {
    fn load(&self) -> io::Result<Vec<GroupRecord>> {
        let raw = blocking(|| self.backend.load_group_records(self.shard))?;
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
        let encoded = encode_records(records)?;
        let bytes: usize = encoded.iter().map(Vec::len).sum();
        blocking(|| self.backend.append_group_records(self.shard, encoded))?;
        self.appended_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    fn rewrite(&self, live: &[GroupRecord]) -> io::Result<()> {
        let encoded = encode_records(live)?;
        blocking(|| self.backend.rewrite_group_records(self.shard, encoded))?;
        self.appended_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn garbage_hint(&self) -> u64 {
        self.appended_bytes.load(Ordering::Relaxed)
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn release(&self) -> io::Result<()> {
        blocking(|| self.backend.release_group_records(self.shard))
    }
}

/// A `RemoteBackend` in memory, for unit tests of the remote log and of partitions over it.
#[cfg(test)]
pub(crate) mod test_backend {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::storage::AppendFailure;

    /// Stores batches in memory; receipts fail while `fail` is set (as after fencing), and
    /// batches above `refuse_above` bytes are refused as too large (as Pulsar's client does).
    #[derive(Default)]
    pub(crate) struct MemoryBackend {
        pub fail: AtomicBool,
        /// What `max_batch_bytes` answers.
        pub max_batch: Mutex<Option<usize>>,
        /// Receipts of batches larger than this fail with `TooLarge`.
        pub refuse_above: Mutex<Option<usize>>,
        pub opens: AtomicUsize,
        pub stored: Mutex<Vec<Bytes>>,
        /// What `apply_retention` answers (the log start after a deletion); None: 0.
        pub retained_from: Mutex<Option<i64>>,
        pub retention: Mutex<Option<(i64, i64)>>,
    }

    impl RemoteBackend for MemoryBackend {
        fn load_doc(&self, _: &str) -> io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn save_doc(&self, _: &str, _: Option<&[u8]>) -> io::Result<()> {
            Ok(())
        }
        fn save_doc_if(&self, _: &str, _: Option<&[u8]>, _: Option<&[u8]>) -> io::Result<bool> {
            Ok(true)
        }
        fn close_partition(&self, _: &str, _: i32) -> io::Result<()> {
            Ok(())
        }
        fn join(&self, _: &Member) -> io::Result<Vec<Member>> {
            Ok(Vec::new())
        }
        fn cluster_state(&self) -> io::Result<ClusterState> {
            Ok(ClusterState {
                members: Vec::new(),
                metadata_version: 0,
            })
        }
        fn doc_names(&self, _: &str) -> io::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn create_topic(&self, _: &str, _: i32) -> io::Result<()> {
            Ok(())
        }
        fn delete_topic(&self, _: &str) -> io::Result<()> {
            Ok(())
        }
        fn apply_retention(&self, _: &str, _: i32, ms: i64, bytes: i64) -> io::Result<i64> {
            *self.retention.lock() = Some((ms, bytes));
            Ok(self.retained_from.lock().unwrap_or(0))
        }
        fn open_partition(&self, _: &str, _: i32, _: usize) -> io::Result<OpenedPartition> {
            self.opens.fetch_add(1, Ordering::SeqCst);
            let stored = self.stored.lock().clone();
            let next_offset = stored.last().map_or(0, |b| {
                BatchHeader::parse(b).map_or(0, |h| h.last_offset() + 1)
            });
            Ok(OpenedPartition {
                epoch: self.opens.load(Ordering::SeqCst) as i32,
                log_start: 0,
                next_offset,
                headers: stored.clone(),
                tail: stored,
            })
        }
        fn max_batch_bytes(&self) -> Option<usize> {
            *self.max_batch.lock()
        }
        fn append(&self, _: &str, _: i32, _: i32, _: &BatchHeader, payload: Bytes) -> Receipt {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self.fail.load(Ordering::SeqCst) {
                let _ = tx.send(Err(AppendFailure::Lost("fenced".into())));
            } else if self
                .refuse_above
                .lock()
                .is_some_and(|max| payload.len() > max)
            {
                let _ = tx.send(Err(AppendFailure::TooLarge("refused".into())));
            } else {
                self.stored.lock().push(payload);
                let _ = tx.send(Ok(()));
            }
            rx
        }
        fn read(&self, _: &str, _: i32, _: i64, _: usize, _: i64) -> io::Result<Vec<Bytes>> {
            Ok(Vec::new())
        }
        fn batch_at_timestamp(&self, _: &str, _: i32, _: i64) -> io::Result<Option<Bytes>> {
            Ok(None)
        }
        fn batch_with_max_timestamp(&self, _: &str, _: i32) -> io::Result<Option<Bytes>> {
            Ok(None)
        }
        fn load_group_records(&self, _: i32) -> io::Result<Vec<Vec<u8>>> {
            Ok(Vec::new())
        }
        fn append_group_records(&self, _: i32, _: Vec<Vec<u8>>) -> io::Result<()> {
            Ok(())
        }
        fn rewrite_group_records(&self, _: i32, _: Vec<Vec<u8>>) -> io::Result<()> {
            Ok(())
        }
        fn release_group_records(&self, _: i32) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::tests::sample_batch;

    fn batch_at(base: i64, records: i32) -> (BatchHeader, Bytes) {
        let mut raw = sample_batch(records, 1_000, b"v", (-1, -1, -1));
        crate::records::batch::patch_offset_and_epoch(&mut raw, base, 0);
        let header = BatchHeader::parse(&raw).unwrap();
        (header, Bytes::from(raw))
    }

    fn log_with_tail_limit(limit: usize, next_offset: i64) -> RemoteLog {
        let opened = OpenedPartition {
            epoch: 1,
            log_start: 0,
            next_offset,
            headers: Vec::new(),
            tail: Vec::new(),
        };
        let settings = crate::broker::topic_config::effective(
            &Default::default(),
            &crate::config::ServerConfig::default(),
        )
        .log;
        let backend = Arc::new(test_backend::MemoryBackend::default());
        RemoteLog::new(backend, "t", 0, settings, limit, opened).unwrap()
    }

    #[test]
    fn tail_cache_serves_the_head_and_misses_older_offsets() {
        let mut log = log_with_tail_limit(1 << 20, 10);
        // Before anything is cached, offsets below the end are remote, the end is empty.
        assert!(log.read(3, 1000, 10).unwrap().is_none());
        assert_eq!(log.read(10, 1000, 10).unwrap(), Some(Bytes::new()));
        let (h1, b1) = batch_at(10, 3);
        let (h2, b2) = batch_at(13, 2);
        log.append(&h1, b1.clone(), 0).unwrap();
        log.append(&h2, b2.clone(), 0).unwrap();
        assert_eq!(log.next_offset(), 15);
        // From the middle of the first batch: whole batches; max_bytes and upper honoured.
        let both = log.read(11, 1 << 20, 15).unwrap().unwrap();
        assert_eq!(both.len(), b1.len() + b2.len());
        assert_eq!(log.read(11, 1, 15).unwrap().unwrap(), b1);
        assert_eq!(log.read(11, 1 << 20, 13).unwrap().unwrap(), b1);
        assert_eq!(log.read(14, 1 << 20, 15).unwrap().unwrap(), b2);
        assert!(log.read(9, 1000, 15).unwrap().is_none());
    }

    #[test]
    fn tail_cache_evicts_oldest_but_keeps_the_newest_batch() {
        let (h1, b1) = batch_at(0, 1);
        let mut log = log_with_tail_limit(b1.len(), 0);
        log.append(&h1, b1, 0).unwrap();
        let (h2, b2) = batch_at(1, 1);
        log.append(&h2, b2.clone(), 0).unwrap();
        assert!(log.read(0, 1000, 2).unwrap().is_none());
        assert_eq!(log.read(1, 1000, 2).unwrap().unwrap(), b2);
        let (h3, b3) = batch_at(2, 50);
        log.append(&h3, b3.clone(), 0).unwrap();
        assert_eq!(log.read(2, 10, 52).unwrap().unwrap(), b3);
    }

    #[test]
    fn retention_follows_what_the_backend_still_stores() {
        let opened = OpenedPartition {
            epoch: 1,
            log_start: 10,
            next_offset: 10,
            headers: Vec::new(),
            tail: Vec::new(),
        };
        let mut settings = crate::broker::topic_config::effective(
            &Default::default(),
            &crate::config::ServerConfig::default(),
        )
        .log;
        settings.retention_ms = 60_000;
        settings.retention_bytes = 1 << 20;
        let backend = Arc::new(test_backend::MemoryBackend::default());
        let mut log = RemoteLog::new(backend.clone(), "t", 0, settings, 1 << 20, opened).unwrap();
        let (h1, b1) = batch_at(10, 3);
        let (h2, b2) = batch_at(13, 2);
        log.append(&h1, b1, 0).unwrap();
        log.append(&h2, b2.clone(), 0).unwrap();

        // Nothing deleted: the log start stays; the topic's settings reach the backend.
        *backend.retained_from.lock() = Some(10);
        assert_eq!(log.enforce_retention(0).unwrap(), 0);
        assert_eq!(*backend.retention.lock(), Some((60_000, 1 << 20)));
        // The backend deleted the first batch: the log starts at the second.
        *backend.retained_from.lock() = Some(13);
        assert_eq!(log.enforce_retention(0).unwrap(), 1);
        assert_eq!(log.log_start_offset(), 13);
        assert_eq!(log.read(13, 1 << 20, 15).unwrap().unwrap(), b2);
        // "No batch stored" (-1) does not move it back or forward.
        *backend.retained_from.lock() = Some(-1);
        assert_eq!(log.enforce_retention(0).unwrap(), 0);
        assert_eq!(log.log_start_offset(), 13);
        // cleanup.policy=compact: unlimited retention in the backend.
        settings.delete_retention = false;
        log.set_settings(settings);
        log.enforce_retention(0).unwrap();
        assert_eq!(*backend.retention.lock(), Some((-1, -1)));
    }
}
