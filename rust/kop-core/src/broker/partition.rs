//! One partition: its log, producer state, high watermark and last stable offset.
//!
//! kop has one replica. On a local log the high watermark is the log end offset. On a remote
//! log (Pulsar) an append is acknowledged by the backend later: offsets are still assigned here,
//! under the write lock (which keeps them dense and in order), but the high watermark advances
//! only on receipts, so consumers never see data that might not be stored. A failed receipt
//! means the partition may have lost its exclusive hold on the backend: it steps down (appends
//! get NOT_LEADER_OR_FOLLOWER) until the broker's cluster check (`acquire`, every 500 ms) takes
//! it over again in the background — or lets it go, when another kop instance leads it now
//! (`release`). Taking over, stepping down and letting go are in `broker::leadership`;
//! transaction markers are written by `broker::txn_markers`.
//!
//! The last stable offset (LSO) is the first offset of the oldest open transaction, or the high
//! watermark when that is lower (Kafka's rule; never below the log start): read_committed
//! fetches stop there, and get the aborted transactions overlapping what they return.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::aborted_txns::AbortedTxn;
use super::producer_state::{ProducerSnapshot, ProducerStates, SequenceCheck};
use super::topic_config::EffectiveTopicConfig;
use crate::error::KafkaError;
use crate::records::batch::{self, BatchHeader, LOG_OVERHEAD};
use crate::records::compression::MAX_UNCOMPRESSED;
use crate::records::decode::{record_points, RecordPoint};
use crate::records::validate::{validate_batch, RecordError, Rules};
use crate::storage::compaction::{CleanRequest, CleanStats, RemoteCleaned, Throttle};
use crate::storage::{AppendFailure, LogSettings, PartitionLog, Receipt, RemoteReads};

/// Leader epoch of every partition: one broker, never re-elected.
pub const LEADER_EPOCH: i32 = 0;

/// Opens the partition's log (a takeover, on Pulsar) and closes it when another instance
/// leads the partition.
pub trait LogOpener: Send + Sync {
    /// The log, with the producer state found in it.
    fn open(&self, settings: LogSettings) -> io::Result<(Box<dyn PartitionLog>, ProducerStates)>;
    /// Lets go of the partition's log (another instance leads it now).
    fn close(&self);
}

/// The high watermark and the generation of the log it belongs to (bumped on every step-down,
/// so waiters never mistake offsets re-assigned after a takeover for their own data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogMark {
    pub generation: u64,
    pub high_watermark: i64,
}

pub struct Partition {
    pub index: i32,
    pub(super) inner: RwLock<Inner>,
    pub(super) mark: watch::Sender<LogMark>,
    pub(super) opener: Option<Arc<dyn LogOpener>>,
    /// Whether this instance should lead the partition (several kop instances on Pulsar).
    pub(super) led_here: AtomicBool,
    pub(super) reopening: AtomicBool,
    pub(super) last_reopen: Mutex<Option<Instant>>,
}

pub(super) struct Inner {
    pub log: Box<dyn PartitionLog>,
    pub producers: ProducerStates,
    pub config: EffectiveTopicConfig,
    /// Whether `log` is the partition's log (else a placeholder: another instance leads it, or
    /// its takeover has not finished).
    pub opened: bool,
    /// Why the partition stepped down, until a takeover succeeds.
    pub stepped_down: Option<String>,
}

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker time stamped on LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Where produced records come from (the request's side of validation).
#[derive(Debug, Clone, Copy)]
pub struct Produced<'a> {
    pub topic: &'a str,
    pub now_ms: i64,
    /// fsync before acknowledging (the broker's setting).
    pub sync: bool,
    /// Produce v7+: zstd batches allowed.
    pub zstd_allowed: bool,
    /// The transaction coordinator admitted this (transactional) batch's partition into its
    /// producer's transaction (`handlers::produce_txn`): the verification's guard.
    pub txn_verified: Option<u64>,
}

/// An append the backend has yet to acknowledge; `wait` completes when it has.
pub struct Durability {
    pub(super) partition: Arc<Partition>,
    pub(super) generation: u64,
    pub(super) end_offset: i64,
    /// Set, before the step-down, when the backend refused one of this append's batches for
    /// its size.
    pub(super) too_large: Arc<AtomicBool>,
}

impl Durability {
    /// Ok once the high watermark covers the append; NOT_LEADER_OR_FOLLOWER if the partition
    /// stepped down first (the data may or may not be stored; the client retries), or
    /// MESSAGE_TOO_LARGE if the backend refused this append's batch for its size (not stored).
    pub async fn wait(self) -> Result<(), KafkaError> {
        let mut rx = self.partition.mark.subscribe();
        loop {
            let mark = *rx.borrow_and_update();
            if mark.generation != self.generation {
                if self.too_large.load(Ordering::Acquire) {
                    return Err(KafkaError::MessageTooLarge);
                }
                return Err(KafkaError::NotLeaderOrFollower);
            }
            if mark.high_watermark >= self.end_offset {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(KafkaError::NotLeaderOrFollower);
            }
        }
    }
}

/// Which records a fetch may see (Kafka's `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Everything up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset, with the aborted transactions in that range.
    ReadCommitted,
}

/// What a fetch of one partition found.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// ReadCommitted: the aborted transactions overlapping `records` (else empty).
    pub aborted: Vec<AbortedTxn>,
}

impl ReadResult {
    /// These positions with `records`, keeping only the aborted transactions they overlap.
    fn with_records(mut self, records: Bytes) -> Self {
        if !self.aborted.is_empty() {
            match end_of(&records) {
                Some(to) => self.aborted.retain(|a| a.first_offset < to),
                None => self.aborted.clear(),
            }
        }
        self.records = records;
        self
    }
}

/// A read begun by `Partition::start_read`.
pub enum StartedRead {
    /// Answered from the partition's own log.
    Done(ReadResult),
    /// Waits for the partition's remote storage: `RemoteRead::finish` blocks.
    Remote(RemoteRead),
}

/// The remote part of a read: the partition's positions are taken, its bytes not yet read.
pub struct RemoteRead {
    remote: Arc<dyn RemoteReads>,
    offset: i64,
    max_bytes: usize,
    upper: i64,
    largest_batch: usize,
    positions: ReadResult,
}

impl RemoteRead {
    /// The most this read may return: what it asks for, or one batch if that is larger (a read
    /// returns at least one whole batch; batches are at most the topic's max.message.bytes).
    pub fn most_bytes(&self) -> usize {
        self.max_bytes.max(self.largest_batch)
    }

    /// Reads the bytes from remote storage (blocking) and completes the answer.
    pub fn finish(self) -> Result<ReadResult, KafkaError> {
        let records = self.remote.read(self.offset, self.max_bytes, self.upper)?;
        Ok(self.positions.with_records(records))
    }
}

/// The offset after the last batch of `records` (whole batches), None when there are none.
fn end_of(records: &[u8]) -> Option<i64> {
    let mut rest = records;
    let mut end = None;
    while let Ok(h) = BatchHeader::parse(rest) {
        end = Some(h.last_offset() + 1);
        rest = rest.get(h.size.max(LOG_OVERHEAD)..)?;
    }
    end
}

impl Partition {
    pub fn new(
        index: i32,
        log: Box<dyn PartitionLog>,
        producers: ProducerStates,
        config: EffectiveTopicConfig,
        opener: Option<Arc<dyn LogOpener>>,
    ) -> Partition {
        let (mark, _) = watch::channel(LogMark {
            generation: 0,
            high_watermark: log.next_offset(),
        });
        Partition {
            index,
            inner: RwLock::new(Inner {
                log,
                producers,
                config,
                opened: true,
                stepped_down: None,
            }),
            mark,
            opener,
            led_here: AtomicBool::new(true),
            reopening: AtomicBool::new(false),
            last_reopen: Mutex::new(None),
        }
    }

    /// Err(NOT_LEADER_OR_FOLLOWER) unless this instance serves the partition's log.
    pub fn ensure_served(&self) -> Result<(), KafkaError> {
        if self.inner.read().opened {
            Ok(())
        } else {
            Err(KafkaError::NotLeaderOrFollower)
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.mark.borrow().high_watermark
    }

    /// The LSO given the high watermark (see the module comment).
    fn stable_offset(inner: &Inner, high_watermark: i64) -> i64 {
        match inner.producers.first_unstable_offset() {
            Some(first) => first.max(inner.log.log_start_offset()).min(high_watermark),
            None => high_watermark,
        }
    }

    /// The last stable offset; Err(NOT_LEADER_OR_FOLLOWER) unless served here.
    pub fn last_stable_offset(&self) -> Result<i64, KafkaError> {
        let inner = self.inner.read();
        if !inner.opened {
            return Err(KafkaError::NotLeaderOrFollower);
        }
        Ok(Self::stable_offset(&inner, self.high_watermark()))
    }

    /// The producers with state here (DescribeProducers); Err(NOT_LEADER_OR_FOLLOWER) unless
    /// served here.
    pub fn producers(&self) -> Result<Vec<ProducerSnapshot>, KafkaError> {
        let inner = self.inner.read();
        if !inner.opened {
            return Err(KafkaError::NotLeaderOrFollower);
        }
        Ok(inner.producers.snapshot())
    }

    /// Whether `producer_id` has a transaction open here at `producer_epoch`.
    /// See `ProducerStates::begin_verification`.
    pub fn begin_verification(&self, producer_id: i64) -> u64 {
        self.inner.write().producers.begin_verification(producer_id)
    }

    pub fn end_verification(&self, producer_id: i64, guard: u64) {
        self.inner
            .write()
            .producers
            .end_verification(producer_id, guard);
    }

    pub fn in_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.inner
            .read()
            .producers
            .in_transaction(producer_id, producer_epoch)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.read().log.log_start_offset()
    }

    /// The offset the next batch gets; Err(NOT_LEADER_OR_FOLLOWER) unless served here.
    pub fn log_end_offset(&self) -> Result<i64, KafkaError> {
        let inner = self.inner.read();
        if inner.opened {
            Ok(inner.log.next_offset())
        } else {
            Err(KafkaError::NotLeaderOrFollower)
        }
    }

    /// The bytes of the partition's log held by this instance's storage; None unless served here.
    pub fn size_bytes(&self) -> Option<u64> {
        let inner = self.inner.read();
        inner.opened.then(|| inner.log.size_bytes())
    }

    /// The bytes the storage keeps of the partition (on Pulsar: its topic stats, cached and
    /// asked for in the background); None unless served here or not known yet.
    pub fn stored_size(&self) -> Option<u64> {
        let inner = self.inner.read();
        if inner.opened {
            inner.log.stored_size()
        } else {
            None
        }
    }

    /// A receiver that changes whenever the high watermark moves (for waiting fetches).
    pub fn subscribe(&self) -> watch::Receiver<LogMark> {
        self.mark.subscribe()
    }

    /// The topic config in force (tests, and what a dynamic broker config changed).
    pub fn effective_config(&self) -> EffectiveTopicConfig {
        self.inner.read().config
    }

    pub fn set_config(&self, config: EffectiveTopicConfig) {
        let mut inner = self.inner.write();
        inner.log.set_settings(config.log);
        inner.config = config;
    }

    /// Validates the client's records of one Produce partition (`records::validate`: one
    /// batch, checked as Kafka does) and appends the batch, assigning its offsets. With a remote
    /// log the append is acknowledged once the returned `Durability` completes. The batch is
    /// patched in place and stored without a copy; nothing of a refused batch is stored.
    pub fn append(
        self: &Arc<Self>,
        mut records: BytesMut,
        produced: &Produced,
    ) -> Result<(Appended, Option<Durability>), RecordError> {
        let (config, storage_max, written_elsewhere) = {
            let inner = self.inner.read();
            let external = inner.log.external_end();
            (inner.config, inner.log.max_batch_bytes(), external)
        };
        if let Some(end) = written_elsewhere {
            return Err(super::external_writers::refused_produce(
                produced.topic,
                self.index,
                end.first_refusal(),
            ));
        }
        let rules = Rules {
            topic: produced.topic,
            partition: self.index,
            now_ms: produced.now_ms,
            log_append_time: config.log_append_time,
            timestamp_before_max_ms: config.timestamp_before_max_ms,
            timestamp_after_max_ms: config.timestamp_after_max_ms,
            compacted: config.compacted,
            max_message_bytes: config.max_message_bytes,
            zstd_allowed: produced.zstd_allowed,
            max_uncompressed_bytes: MAX_UNCOMPRESSED,
        };
        // Outside the partition's lock: decompressing a batch takes time.
        let validated = validate_batch(&records, &rules)?;
        records.truncate(validated.size);
        // Pulsar stores a batch as one message, whatever the topic's max.message.bytes:
        // a larger batch is refused here, before it gets offsets (docs/pulsar-storage.md).
        if let Some(max) = storage_max.filter(|&max| validated.size > max) {
            tracing::debug!(
                partition = self.index,
                size = validated.size,
                max,
                "batch larger than the storage holds: MESSAGE_TOO_LARGE"
            );
            return Err(KafkaError::MessageTooLarge.into());
        }
        let header = validated.header;
        let now_ms = produced.now_ms;
        let mut inner = self.inner.write();
        if let Some(why) = &inner.stepped_down {
            tracing::debug!(partition = self.index, reason = %why, "append refused: stepped down");
            return Err(KafkaError::NotLeaderOrFollower.into());
        }
        let generation = self.mark.borrow().generation;
        let log_append = inner.config.log_append_time;
        let mut receipt = None;
        // The end offset the append is durable at. A duplicate may still be in flight: it is
        // durable when the watermark covers it.
        let wait_until;
        let check = inner.producers.check(&header)?;
        // A transaction begins only once the coordinator verified it (KIP-890): a batch that
        // would open one unverified (its transaction ended since the check) is retried.
        // The guard makes sure no marker ended the producer's transaction between the
        // verification and this append (Kafka's VerificationGuard).
        if check == SequenceCheck::Append
            && header.is_transactional()
            && !inner
                .producers
                .in_transaction(header.producer_id, header.producer_epoch)
            && !produced
                .txn_verified
                .is_some_and(|guard| inner.producers.verified(header.producer_id, guard))
        {
            return Err(KafkaError::ConcurrentTransactions.into());
        }
        let first = if let SequenceCheck::Duplicate { base_offset } = check {
            wait_until = base_offset + i64::from(header.last_offset_delta) + 1;
            Appended {
                base_offset,
                log_append_time: -1,
                log_start_offset: inner.log.log_start_offset(),
            }
        } else {
            let base_offset = inner.log.next_offset();
            let mut owned = records;
            batch::patch_offset_and_epoch(&mut owned, base_offset, LEADER_EPOCH);
            // As Kafka: the broker's time on LogAppendTime topics, else the type CreateTime and
            // the records' real max timestamp (a no-op for every well-behaved client).
            if log_append {
                batch::stamp_log_append_time(&mut owned, now_ms);
            } else {
                batch::set_max_timestamp(&mut owned, false, validated.max_timestamp);
            }
            let stored = BatchHeader::parse(&owned)?;
            wait_until = stored.last_offset() + 1;
            receipt = inner
                .log
                .append(&stored, owned.freeze(), now_ms)
                .map_err(KafkaError::from)?
                .map(|r| (r, wait_until));
            inner.producers.record(&stored);
            Appended {
                base_offset,
                log_append_time: if log_append { now_ms } else { -1 },
                log_start_offset: inner.log.log_start_offset(),
            }
        };
        if produced.sync {
            inner.log.flush().map_err(KafkaError::from)?;
        }
        let remote = inner.log.remote_reads().is_some();
        if !remote {
            let end = inner.log.next_offset();
            drop(inner);
            self.mark.send_modify(|m| m.high_watermark = end);
            return Ok((first, None));
        }
        drop(inner);
        let too_large = Arc::new(AtomicBool::new(false));
        if let Some(receipt) = receipt {
            self.await_receipts(generation, vec![receipt], too_large.clone());
        }
        let durability = (wait_until > self.high_watermark()).then(|| Durability {
            partition: self.clone(),
            generation,
            end_offset: wait_until,
            too_large,
        });
        Ok((first, durability))
    }

    /// Advances the high watermark as receipts arrive (they complete in order); the first
    /// failure steps the partition down. A batch refused for its size is not a lost partition,
    /// but it holds offsets already given out (and later batches may be queued behind it): the
    /// step-down and the takeover that follows re-sync offsets and producer state with what is
    /// stored, once. Its producer gets MESSAGE_TOO_LARGE (`too_large`) and does not retry.
    pub(super) fn await_receipts(
        self: &Arc<Self>,
        generation: u64,
        receipts: Vec<(Receipt, i64)>,
        too_large: Arc<AtomicBool>,
    ) {
        let partition = self.clone();
        // Called right after the append: the receipts' latency counts from here.
        let sent = Instant::now();
        let task = async move {
            for (receipt, end) in receipts {
                let failure = match receipt.await {
                    Ok(Ok(())) => {
                        crate::metrics::events::send_latency(sent.elapsed());
                        None
                    }
                    Ok(Err(AppendFailure::TooLarge(why))) => {
                        too_large.store(true, Ordering::Release);
                        Some(format!(
                            "the storage refused a batch as too large ({why}); not a lost \
                             partition: re-syncing it with one takeover"
                        ))
                    }
                    Ok(Err(AppendFailure::Lost(why))) => Some(why),
                    Err(_) => Some("the storage bridge dropped the append".to_string()),
                };
                match failure {
                    None => partition.mark.send_if_modified(|m| {
                        let advance = m.generation == generation && end > m.high_watermark;
                        if advance {
                            m.high_watermark = end;
                        }
                        advance
                    }),
                    Some(why) => {
                        partition.step_down(generation, why);
                        return;
                    }
                };
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(task);
            }
            Err(_) => self.step_down(generation, "append outside the runtime".into()),
        }
    }

    /// Whole batches from `offset` (inclusive), about `max_bytes` of them, up to the high
    /// watermark (ReadCommitted: the last stable offset); with `max_bytes` 0 only the positions
    /// (after the range check).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult, KafkaError> {
        match self.start_read(offset, max_bytes, isolation)? {
            StartedRead::Done(read) => Ok(read),
            StartedRead::Remote(read) => read.finish(),
        }
    }

    /// `read` up to the point where it would wait for remote storage: the answer when the
    /// partition's own log holds the bytes, else the remote read left to do (without the
    /// partition's lock), so that a fetch can run the remote reads of its partitions at once.
    pub fn start_read(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<StartedRead, KafkaError> {
        let inner = self.inner.read();
        if !inner.opened {
            return Err(KafkaError::NotLeaderOrFollower);
        }
        let start = inner.log.log_start_offset();
        let end = self.high_watermark();
        if offset < start || offset > end {
            return Err(KafkaError::OffsetOutOfRange);
        }
        let stable = Self::stable_offset(&inner, end);
        let (upper, aborted) = match isolation {
            Isolation::ReadUncommitted => (end, Vec::new()),
            Isolation::ReadCommitted => {
                (stable, inner.producers.aborted.overlapping(offset, stable))
            }
        };
        let positions = ReadResult {
            records: Bytes::new(),
            high_watermark: end,
            last_stable_offset: stable,
            log_start_offset: start,
            aborted,
        };
        if offset >= upper || max_bytes == 0 {
            return Ok(StartedRead::Done(positions.with_records(Bytes::new())));
        }
        match inner.log.read(offset, max_bytes, upper)? {
            Some(bytes) => Ok(StartedRead::Done(positions.with_records(bytes))),
            None => {
                let remote = inner
                    .log
                    .remote_reads()
                    .ok_or_else(|| io::Error::other("the log holds no data for this offset"))?;
                Ok(StartedRead::Remote(RemoteRead {
                    remote,
                    offset,
                    max_bytes,
                    upper,
                    largest_batch: inner.config.max_message_bytes.max(0) as usize,
                    positions,
                }))
            }
        }
    }

    /// Kafka's ListOffsets by timestamp: the first record with timestamp >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<RecordPoint>, KafkaError> {
        let inner = self.inner.read();
        if !inner.opened {
            return Err(KafkaError::NotLeaderOrFollower);
        }
        let start = inner.log.log_start_offset();
        let found = match inner.log.remote_reads() {
            Some(remote) => {
                drop(inner);
                remote.batch_at_timestamp(ts)?
            }
            None => inner.log.batch_at_timestamp(ts)?,
        };
        let Some(found) = found else {
            return Ok(None);
        };
        Ok(record_points(&found)?
            .into_iter()
            .find(|p| p.timestamp >= ts && p.offset >= start))
    }

    /// The record with the largest timestamp (ListOffsets `-3`).
    pub fn max_timestamp_record(&self) -> Result<Option<RecordPoint>, KafkaError> {
        let inner = self.inner.read();
        if !inner.opened {
            return Err(KafkaError::NotLeaderOrFollower);
        }
        let found = match inner.log.remote_reads() {
            Some(remote) => {
                drop(inner);
                remote.batch_with_max_timestamp()?
            }
            None => inner.log.batch_with_max_timestamp()?,
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let points = record_points(&found)?;
        let max = points.iter().map(|p| p.timestamp).max();
        Ok(points.into_iter().find(|p| Some(p.timestamp) == max))
    }

    /// The periodic fsync of this partition (`fsync = "interval"`).
    pub fn flush(&self) -> Result<(), KafkaError> {
        // The fsync itself runs without the partition lock: held, it stalled every produce and
        // fetch of the partition for as long as the disk took (librdkafka at 40k x 1 KiB/s on one
        // partition: p99 19 ms with the lock held, 8 ms without; docs/benchmarks.md).
        let Some(unsynced) = self.inner.write().log.take_unsynced()? else {
            return Ok(());
        };
        if let Err(e) = unsynced.sync_data() {
            self.inner.write().log.sync_failed();
            return Err(e.into());
        }
        Ok(())
    }

    /// Between periodic fsyncs: starts writing back what was appended since the last call,
    /// without waiting, so that the fsync does not write a whole interval's bytes in one burst
    /// (docs/benchmarks.md, "The periodic fsync in smaller steps").
    pub fn start_writeback(&self) -> io::Result<()> {
        let unwritten = self.inner.write().log.take_unwritten();
        unwritten.map_or(Ok(()), |segment| segment.start_writeback())
    }

    /// DeleteRecords (Kafka's `Partition.deleteRecordsOnLeader`): moves the log start up to
    /// `offset` (-1: the high watermark), durably, and returns the log start after it (the
    /// low watermark). Past the high watermark: OFFSET_OUT_OF_RANGE; a topic whose
    /// `cleanup.policy` lacks `delete`: POLICY_VIOLATION.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, KafkaError> {
        let mut inner = self.inner.write();
        if !inner.opened {
            return Err(KafkaError::NotLeaderOrFollower);
        }
        if !inner.config.log.delete_retention {
            return Err(KafkaError::PolicyViolation);
        }
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(KafkaError::OffsetOutOfRange);
        }
        inner.log.advance_log_start(target)?;
        let start = inner.log.log_start_offset();
        inner.producers.aborted.trim(start);
        Ok(start)
    }

    /// Applies retention; the aborted transactions it leaves wholly before the log start go.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, KafkaError> {
        let mut inner = self.inner.write();
        let deleted = inner.log.enforce_retention(now_ms)?;
        let start = inner.log.log_start_offset();
        inner.producers.aborted.trim(start);
        Ok(deleted)
    }

    /// One clean of a compacted partition's local log, if one is due (storage/compaction/):
    /// the range is chosen and swapped in under the lock, the cleaning itself runs without
    /// it, so produce and fetch go on meanwhile. None: nothing to clean.
    pub fn clean(
        &self,
        now_ms: i64,
        map_budget_bytes: usize,
        throttle: &Throttle,
        stop: &AtomicBool,
    ) -> Result<Option<CleanStats>, KafkaError> {
        let job = {
            let mut inner = self.inner.write();
            let local = inner.log.remote_reads().is_none();
            if !inner.opened || !inner.config.log.compaction.compact {
                return Ok(None);
            }
            let req = CleanRequest {
                now_ms,
                // Never past the last stable offset: an open transaction's data stays as
                // written until its marker decides it (the log never cleans its active segment).
                upper_bound: Self::stable_offset(&inner, self.high_watermark()),
                producer_last_offsets: inner.producers.last_offsets(),
                producer_marker_epochs: inner.producers.marker_epochs(),
                aborted: inner
                    .producers
                    .aborted
                    .iter()
                    .map(|a| crate::storage::compaction::AbortedTxn {
                        producer_id: a.producer_id,
                        first_offset: a.first_offset,
                        last_offset: a.last_offset,
                    })
                    .collect(),
                map_budget_bytes,
            };
            if !local {
                // Pulsar: the backend stores the cleaned copy (docs/compaction.md, "Pulsar").
                let Some(job) = inner.log.begin_remote_clean(req) else {
                    return Ok(None);
                };
                drop(inner);
                let outcome = job.run(throttle, stop)?;
                self.inner.write().log.finish_remote_clean(&outcome);
                return Ok(match outcome {
                    RemoteCleaned::Switched { stats, .. } => Some(stats),
                    RemoteCleaned::NotWorth { .. } | RemoteCleaned::Lost => None,
                });
            }
            inner.log.begin_clean(&req)?
        };
        let Some(job) = job else {
            return Ok(None);
        };
        let cleaned = job.run(throttle, stop)?;
        Ok(Some(self.inner.write().log.finish_clean(cleaned)?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::records::batch::tests::sample_batch;
    use crate::storage::remote::fake::FakeBackend;
    use std::time::Duration;

    fn remote_partition(backend: Arc<FakeBackend>) -> Arc<Partition> {
        remote_partition_of(backend, 0, 1 << 20)
    }

    /// Partition `index` of topic "t" on `backend`, with a tail cache of `tail_bytes`.
    pub(crate) fn remote_partition_of(
        backend: Arc<FakeBackend>,
        index: i32,
        tail_bytes: usize,
    ) -> Arc<Partition> {
        let storage = crate::storage::remote::open(backend, tail_bytes);
        let config = super::super::topic_config::effective(
            &Default::default(),
            &crate::config::ServerConfig::default(),
        );
        let opener: Arc<dyn LogOpener> = Arc::new(crate::broker::StorageLog {
            logs: storage.logs,
            topic: "t".into(),
            index,
        });
        let (log, producers) = opener.open(config.log).unwrap();
        Arc::new(Partition::new(index, log, producers, config, Some(opener)))
    }

    pub(crate) const PRODUCED: Produced<'static> = Produced {
        topic: "t",
        now_ms: 0,
        sync: false,
        zstd_allowed: true,
        txn_verified: None,
    };

    /// Waits for an append to be stored (None: it already was when `append` returned).
    pub(crate) async fn stored(durability: Option<Durability>) -> Result<(), KafkaError> {
        match durability {
            Some(d) => d.wait().await,
            None => Ok(()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_receipt_steps_down_and_the_partition_is_taken_over_again() {
        let backend = Arc::new(FakeBackend::default());
        let p = remote_partition(backend.clone());
        let batch = sample_batch(3, 1_000, b"v", (-1, -1, -1));

        let (done, durable) = p.append(BytesMut::from(&batch[..]), &PRODUCED).unwrap();
        assert_eq!(done.base_offset, 0);
        stored(durable).await.unwrap();
        assert_eq!(p.high_watermark(), 3);

        // The backend loses the partition: the append is never acknowledged, nor visible.
        backend.fail.store(true, Ordering::SeqCst);
        let (done, durable) = p.append(BytesMut::from(&batch[..]), &PRODUCED).unwrap();
        assert_eq!(done.base_offset, 3);
        let waited = stored(durable).await;
        assert_eq!(waited, Err(KafkaError::NotLeaderOrFollower));
        assert_eq!(p.high_watermark(), 3);
        assert_eq!(
            p.read(3, 1 << 20, Isolation::ReadUncommitted)
                .unwrap()
                .records
                .len(),
            0
        );

        // The broker's cluster check (`acquire`) takes it over again in the background; offsets
        // continue from what the backend really stored, so the lost batch's offsets are reused,
        // not skipped.
        backend.fail.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        let appended = loop {
            p.acquire();
            match p.append(BytesMut::from(&batch[..]), &PRODUCED) {
                Ok(ok) => break ok,
                Err(e)
                    if e.error == KafkaError::NotLeaderOrFollower && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("append after the takeover: {e}"),
            }
        };
        assert!(backend.opens.load(Ordering::SeqCst) >= 2);
        assert_eq!(appended.0.base_offset, 3);
        stored(appended.1).await.unwrap();
        assert_eq!(p.high_watermark(), 6);
        assert_eq!(backend.stored("t", 0).len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_above_the_storage_limit_is_refused_before_it_gets_offsets() {
        let backend = Arc::new(FakeBackend::default());
        let p = remote_partition(backend.clone());
        let big = sample_batch(3, 1_000, &[7u8; 2_000], (-1, -1, -1));
        let small = sample_batch(1, 1_000, b"v", (-1, -1, -1));
        *backend.max_batch.lock() = Some(big.len() - 1);

        let refused = p.append(BytesMut::from(&big[..]), &PRODUCED).err();
        assert_eq!(refused.map(|e| e.error), Some(KafkaError::MessageTooLarge));
        assert!(backend.stored("t", 0).is_empty());
        // Nothing stepped down: the next batch is stored at offset 0, without a takeover.
        let (done, durable) = p.append(BytesMut::from(&small[..]), &PRODUCED).unwrap();
        assert_eq!(done.base_offset, 0);
        stored(durable).await.unwrap();
        assert_eq!(p.high_watermark(), 1);
        assert_eq!(backend.opens.load(Ordering::SeqCst), 1);
        // A batch of exactly the limit is stored.
        *backend.max_batch.lock() = Some(big.len());
        let (done, durable) = p.append(BytesMut::from(&big[..]), &PRODUCED).unwrap();
        assert_eq!(done.base_offset, 1);
        stored(durable).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_the_backend_refuses_as_too_large_is_message_too_large_and_resyncs_once() {
        let backend = Arc::new(FakeBackend::default());
        let p = remote_partition(backend.clone());
        let big = sample_batch(3, 1_000, &[7u8; 2_000], (-1, -1, -1));
        let small = sample_batch(1, 1_000, b"v", (-1, -1, -1));
        // The backend's limit is lower than it said: the batch gets offsets, then is refused.
        *backend.refuse_above.lock() = Some(big.len() - 1);
        let (done, durable) = p.append(BytesMut::from(&big[..]), &PRODUCED).unwrap();
        assert_eq!(done.base_offset, 0);
        assert_eq!(stored(durable).await, Err(KafkaError::MessageTooLarge));
        assert_eq!(p.high_watermark(), 0);

        // One takeover re-syncs offsets with what is stored: the refused batch leaves no hole.
        let deadline = Instant::now() + Duration::from_secs(10);
        let appended = loop {
            p.acquire();
            match p.append(BytesMut::from(&small[..]), &PRODUCED) {
                Ok(ok) => break ok,
                Err(e)
                    if e.error == KafkaError::NotLeaderOrFollower && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("append after the re-sync: {e:?}"),
            }
        };
        assert_eq!(appended.0.base_offset, 0);
        stored(appended.1).await.unwrap();
        assert_eq!(backend.opens.load(Ordering::SeqCst), 2);
        // Serving again: no further takeover.
        for _ in 0..5 {
            p.acquire();
            let (_, durable) = p.append(BytesMut::from(&small[..]), &PRODUCED).unwrap();
            stored(durable).await.unwrap();
        }
        assert_eq!(p.high_watermark(), 6);
        assert_eq!(backend.opens.load(Ordering::SeqCst), 2);
    }
}
