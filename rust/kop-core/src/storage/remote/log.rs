//! Partition logs in the remote backend. Rust keeps what it keeps for the local log (offsets,
//! producer state); the backend stores the batches. Each partition keeps a tail cache of its
//! newest batches; older data is read through `RemoteReads`, outside the partition lock.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use bytes::{Bytes, BytesMut};

use super::tail_cache::TailCache;
use super::{blocking, invalid, OpenedPartition, RemoteBackend};
use crate::records::batch::BatchHeader;
use crate::records::control::{parse_marker, Marker};
use crate::storage::compaction::{CleanRequest, RemoteCleanJob, RemoteCleaned};
use crate::storage::partition_log::{
    ExternalEnd, LogSettings, LogStore, PartitionLog, Receipt, RemoteReads,
};

/// The document holding a partition's DeleteRecords log start. A document, not the index
/// checkpoint: a checkpoint is a hint a takeover may ignore, a document is durable when saved
/// and read by every instance's takeover (docs/pulsar-storage.md, "Deleting records").
fn log_start_doc(topic: &str, partition: i32) -> String {
    format!("log-start/{topic}/{partition}")
}

fn saved_log_start(backend: &dyn RemoteBackend, topic: &str, partition: i32) -> io::Result<i64> {
    let doc = blocking(|| backend.load_doc(&log_start_doc(topic, partition)))?;
    Ok(doc
        .and_then(|d| std::str::from_utf8(&d).ok()?.trim().parse::<i64>().ok())
        .unwrap_or(0))
}

pub struct RemoteLogs {
    pub(super) backend: Arc<dyn RemoteBackend>,
    /// Bytes of newest batches each partition keeps in memory.
    pub(super) tail_bytes: usize,
}

impl LogStore for RemoteLogs {
    fn create(&self, topic: &str, partitions: i32) -> io::Result<()> {
        blocking(|| self.backend.create_topic(topic, partitions))
    }

    fn open(
        &self,
        topic: &str,
        partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<Box<dyn PartitionLog>> {
        let end = Arc::new(ExternalEnd::new(0));
        let (mut opened, followed) = blocking(|| {
            // A new topic's partitions must exist before they can be taken over.
            self.backend.create_topic(topic, partition + 1)?;
            let opened = self
                .backend
                .open_partition(topic, partition, self.tail_bytes)?;
            let followed = self
                .backend
                .follow_partition(topic, partition, end.clone())?;
            io::Result::Ok((opened, followed))
        })
        .inspect_err(|_| {
            crate::metrics::events::count(&crate::metrics::events::TAKEOVER_FAILURES)
        })?;
        crate::metrics::events::count(&crate::metrics::events::TAKEOVERS);
        // Records a DeleteRecords removed may still be stored until Pulsar trims their ledger.
        let deleted_before = saved_log_start(&*self.backend, topic, partition)?;
        opened.log_start = opened.log_start.max(deleted_before.min(opened.next_offset));
        // Headers (or whole marker batches) in offset order; one batch may be named twice
        // (as a producer's recent batch and as its transaction's first).
        let mut last = None;
        for h in &opened.headers {
            let header = BatchHeader::parse(h).map_err(invalid)?;
            if last.is_some_and(|l| header.base_offset <= l) {
                continue;
            }
            last = Some(header.base_offset);
            // A marker whose record is cut short is skipped, as a full scan of a file log does.
            let marker = if header.is_control() {
                parse_marker(h).ok().flatten()
            } else {
                None
            };
            on_batch(&header, marker);
        }
        tracing::info!(
            topic,
            partition,
            epoch = opened.epoch,
            log_start = opened.log_start,
            next_offset = opened.next_offset,
            "took over partition"
        );
        let mut log = RemoteLog::new(
            self.backend.clone(),
            topic,
            partition,
            settings,
            self.tail_bytes,
            opened,
        )?;
        if followed {
            end.advance(log.next_offset);
            log.external_end = Some(end);
        }
        Ok(Box::new(log))
    }

    fn close(&self, topic: &str, partition: i32) {
        if let Err(e) = blocking(|| self.backend.close_partition(topic, partition)) {
            tracing::warn!(topic, partition, error = %e, "closing a partition another instance leads failed");
        }
    }

    fn delete(&self, topic: &str, partitions: i32) -> io::Result<()> {
        // The log starts go first: a topic created again under this name starts at 0.
        for p in 0..partitions {
            blocking(|| self.backend.save_doc(&log_start_doc(topic, p), None))?;
        }
        blocking(|| self.backend.delete_topic(topic))
    }
}

/// How long a partition's stored size from the backend is used before it is asked again.
const STORED_SIZE_TTL: Duration = Duration::from_secs(10);

/// The backend's size of a partition, asked for off the request path (one thread at a time
/// per partition) and answered from here.
#[derive(Default)]
struct StoredSize {
    /// Bytes; -1 while unknown.
    bytes: AtomicI64,
    asking: AtomicBool,
    asked_at: Mutex<Option<Instant>>,
}

pub struct RemoteLog {
    stored_size: Arc<StoredSize>,
    backend: Arc<dyn RemoteBackend>,
    topic: Arc<str>,
    partition: i32,
    epoch: i32,
    log_start: i64,
    next_offset: i64,
    tail: TailCache,
    settings: LogSettings,
    reads: Arc<PartitionReads>,
    /// Bytes appended since opened, and the count from which the next clean is worth trying
    /// (the last one found too few dirty bytes; 0: try at the next pass).
    appended_bytes: u64,
    clean_after_bytes: u64,
    /// Some when Pulsar producers write the partition (kop only reads it): its end as the
    /// backend's follower reports it.
    external_end: Option<Arc<ExternalEnd>>,
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
            stored_size: Arc::new(StoredSize {
                bytes: AtomicI64::new(-1),
                ..StoredSize::default()
            }),
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
            tail: TailCache::new(tail_limit),
            settings,
            appended_bytes: 0,
            clean_after_bytes: 0,
            external_end: None,
        };
        for bytes in opened.tail {
            let header = BatchHeader::parse(&bytes).map_err(invalid)?;
            log.tail.push(&header, bytes);
        }
        Ok(log)
    }
}

impl PartitionLog for RemoteLog {
    fn log_start_offset(&self) -> i64 {
        self.log_start
    }

    fn next_offset(&self) -> i64 {
        match &self.external_end {
            Some(end) => end.get().max(self.next_offset),
            None => self.next_offset,
        }
    }

    fn external_end(&self) -> Option<Arc<ExternalEnd>> {
        self.external_end.clone()
    }

    /// Only what is cached: the backend's sizes are its own business (its retention applies).
    fn size_bytes(&self) -> u64 {
        self.tail.size() as u64
    }

    /// Pulsar's size of the partition, from a cache refreshed in the background.
    fn stored_size(&self) -> Option<u64> {
        let s = &self.stored_size;
        let stale = s
            .asked_at
            .lock()
            .is_none_or(|at| at.elapsed() >= STORED_SIZE_TTL);
        if stale && !s.asking.swap(true, Ordering::AcqRel) {
            *s.asked_at.lock() = Some(Instant::now());
            let (size, backend) = (s.clone(), self.backend.clone());
            let (topic, partition) = (self.topic.clone(), self.partition);
            let spawned = std::thread::Builder::new()
                .name("kop-stored-size".into())
                .spawn(move || {
                    match backend.storage_size(&topic, partition) {
                        Ok(Some(n)) => size.bytes.store(n as i64, Ordering::Release),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(%topic, partition, error = %e, "stored size unknown")
                        }
                    }
                    size.asking.store(false, Ordering::Release);
                });
            if spawned.is_err() {
                s.asking.store(false, Ordering::Release);
            }
        }
        u64::try_from(s.bytes.load(Ordering::Acquire)).ok()
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
        self.appended_bytes += batch.len() as u64;
        self.tail.push(header, batch);
        Ok(Some(receipt))
    }

    fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Option<Bytes>> {
        Ok(self.tail.read(offset, max_bytes, upper, self.next_offset()))
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
        let start = start.min(self.next_offset());
        if start <= self.log_start {
            return Ok(0);
        }
        self.log_start = start;
        self.tail.drop_before(start);
        Ok(1)
    }

    fn begin_remote_clean(&mut self, req: CleanRequest) -> Option<RemoteCleanJob> {
        let compaction = self.settings.compaction;
        // With a compaction lag, time alone can make a clean worth it.
        let no_lag =
            compaction.max_compaction_lag_ms == i64::MAX && compaction.min_compaction_lag_ms <= 0;
        if !compaction.compact || (no_lag && self.appended_bytes < self.clean_after_bytes) {
            return None;
        }
        Some(RemoteCleanJob {
            backend: self.backend.clone(),
            reads: self.reads.clone(),
            topic: self.topic.clone(),
            partition: self.partition,
            epoch: self.epoch,
            log_start: self.log_start,
            settings: compaction,
            segment_bytes: self.settings.segment_bytes.max(1) as u64,
            segment_ms: self.settings.segment_ms.max(1),
            req,
        })
    }

    fn finish_remote_clean(&mut self, outcome: &RemoteCleaned) {
        match outcome {
            // Cached batches below the end are the uncleaned ones: reads go to the copy.
            RemoteCleaned::Switched { end, .. } => {
                self.tail.drop_before(*end);
                self.clean_after_bytes = 0;
            }
            // Tried again once anything was appended (`needed_bytes` is only an estimate: the
            // active part turns dirty when batches come after it, which it cannot foresee).
            RemoteCleaned::NotWorth { .. } => {
                self.clean_after_bytes = self.appended_bytes + 1;
            }
            RemoteCleaned::Lost => {}
        }
    }

    fn advance_log_start(&mut self, offset: i64) -> io::Result<()> {
        if offset <= self.log_start {
            return Ok(());
        }
        let doc = log_start_doc(&self.topic, self.partition);
        let value = offset.to_string();
        blocking(|| self.backend.save_doc(&doc, Some(value.as_bytes())))?;
        self.log_start = offset;
        self.tail.drop_before(offset);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::tests::sample_batch;
    use crate::storage::remote::fake::FakeBackend;

    fn settings() -> LogSettings {
        LogSettings {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            retention_ms: -1,
            retention_bytes: -1,
            delete_retention: true,
            compaction: Default::default(),
        }
    }

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
        let backend = Arc::new(FakeBackend::default());
        RemoteLog::new(backend, "t", 0, settings(), limit, opened).unwrap()
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
        let mut settings = settings();
        settings.retention_ms = 60_000;
        settings.retention_bytes = 1 << 20;
        let backend = Arc::new(FakeBackend::default());
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

/// Compaction of a remote log (storage/compaction/remote.rs) against the in-memory backend.
#[cfg(test)]
mod compaction_tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::records::batch::split_batches;
    use crate::records::compression;
    use crate::records::decode::decode_records;
    use crate::records::encode::{encode_batch, BatchSpec, NewRecord};
    use crate::storage::compaction::Throttle;
    use crate::storage::remote::fake::FakeBackend;

    fn compacted_log(backend: Arc<FakeBackend>, segment_bytes: i64) -> RemoteLog {
        let settings = crate::storage::compaction::tests::settings(segment_bytes);
        RemoteLog::new(
            backend,
            "t",
            0,
            settings,
            1 << 20,
            OpenedPartition::default(),
        )
        .unwrap()
    }

    fn append(log: &mut RemoteLog, records: &[(&str, Option<&str>)], ts: i64) {
        let recs: Vec<NewRecord> = records
            .iter()
            .map(|(k, v)| NewRecord {
                key: Some(k.as_bytes().to_vec()),
                value: v.map(|v| v.as_bytes().to_vec()),
                ..Default::default()
            })
            .collect();
        let mut raw = encode_batch(&BatchSpec::plain(ts, compression::NONE), &recs);
        crate::records::batch::patch_offset_and_epoch(&mut raw, log.next_offset(), 0);
        let header = BatchHeader::parse(&raw).unwrap();
        log.append(&header, Bytes::from(raw), ts).unwrap();
    }

    fn clean(log: &mut RemoteLog, now_ms: i64) -> Option<i64> {
        let req = CleanRequest {
            now_ms,
            upper_bound: log.next_offset(),
            producer_last_offsets: HashMap::new(),
            producer_marker_epochs: HashMap::new(),
            aborted: Vec::new(),
            map_budget_bytes: 1 << 20,
        };
        let job = log.begin_remote_clean(req)?;
        let outcome = job
            .run(&Throttle::new(0.0), &AtomicBool::new(false))
            .unwrap();
        log.finish_remote_clean(&outcome);
        match outcome {
            RemoteCleaned::Switched { end, .. } => Some(end),
            _ => None,
        }
    }

    /// offset -> (key, value) of every record stored, read through the log.
    fn visible(log: &RemoteLog) -> BTreeMap<i64, (String, Option<String>)> {
        let mut out = BTreeMap::new();
        let mut offset = 0;
        while offset < log.next_offset() {
            let bytes = match log.read(offset, 1 << 20, i64::MAX).unwrap() {
                Some(b) => b,
                None => log.reads.read(offset, 1 << 20, i64::MAX).unwrap(),
            };
            if bytes.is_empty() {
                break;
            }
            for batch in split_batches(&bytes).unwrap() {
                let header = BatchHeader::parse(batch).unwrap();
                for r in decode_records(batch).unwrap() {
                    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8(b).unwrap());
                    out.insert(r.offset, (text(r.key).unwrap(), text(r.value)));
                }
                offset = header.last_offset() + 1;
            }
        }
        out
    }

    #[test]
    fn keeps_the_latest_of_each_key_below_the_active_part_with_offsets() {
        let backend = Arc::new(FakeBackend::default());
        let mut log = compacted_log(backend.clone(), 300);
        for round in 0..10 {
            let v = format!("v{round}");
            append(&mut log, &[("a", Some(&v)), ("b", Some(&v))], 1_000 + round);
        }
        append(&mut log, &[("b", None)], 2_000); // a tombstone
        append(&mut log, &[("c", Some("c1"))], 2_001);
        let before = visible(&log);
        let end = clean(&mut log, 10_000).expect("cleaned");
        assert!(end > 0 && end < log.next_offset(), "{end}");
        let after = visible(&log);
        // Below the end: the latest of each key only (b's tombstone kept, with its horizon),
        // at the offsets they were written at; from the end on everything as it was.
        for (offset, record) in &before {
            let latest = !before
                .iter()
                .any(|(o, r)| o > offset && r.0 == record.0 && *o < end)
                && !before.iter().any(|(o, r)| o > offset && r.0 == record.0);
            if *offset >= end || latest {
                assert_eq!(after.get(offset), Some(record), "offset {offset}");
            } else {
                assert_eq!(after.get(offset), None, "offset {offset}");
            }
        }
        assert!(backend.stored("t", 0).len() < 12);
        // Nothing new: not worth a clean, the copy stays.
        assert_eq!(clean(&mut log, 10_000), None);
        // After delete.retention.ms the tombstone goes with the next clean (new dirty data).
        for round in 0..6 {
            append(
                &mut log,
                &[("c", Some(&format!("c{round}")))],
                3_000 + round,
            );
        }
        clean(&mut log, 20_000).expect("cleaned again");
        // The tombstone may have been in the active part at the first clean: the clean that
        // first keeps it sets its horizon, a clean after that removes it.
        for round in 0..6 {
            append(
                &mut log,
                &[("c", Some(&format!("d{round}")))],
                4_000 + round,
            );
        }
        clean(&mut log, 40_000).expect("cleaned a third time");
        let last = visible(&log);
        assert!(!last.values().any(|r| r.0 == "b"), "{last:?}");
        assert!(last
            .values()
            .any(|r| r.0 == "a" && r.1.as_deref() == Some("v9")));
    }
}
