//! The log seam: one log of record batches per partition.
//!
//! The broker keeps every Kafka rule (offsets, producer state, waiting fetches); a log only
//! stores batches whose offsets are already assigned and answers positions. Implemented by
//! `file` and `memory` (both a `SegmentedLog`) and by `remote` (Pulsar, with a tail cache).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::compaction::{
    CleanJob, CleanRequest, CleanStats, Cleaned, CompactionSettings, RemoteCleanJob, RemoteCleaned,
};
use super::segment::SegmentSync;
use crate::records::batch::BatchHeader;
use crate::records::control::Marker;

/// Opens, closes and deletes the partition logs of one storage.
pub trait LogStore: Send + Sync {
    /// Makes room for `partitions` partitions of a new or grown topic (Pulsar: creates or grows
    /// the partitioned topic); local logs are created when first opened.
    fn create(&self, _topic: &str, _partitions: i32) -> io::Result<()> {
        Ok(())
    }
    /// Opens (recovering if needed, taking over on shared storage) a partition's log.
    /// `on_batch` sees the header of every batch found, oldest first, with the marker of a
    /// transaction marker, so the broker can rebuild producer and transaction state. (A remote
    /// log reports only the batches its takeover needs for that: see `OpenedPartition`.)
    fn open(
        &self,
        topic: &str,
        partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<Box<dyn PartitionLog>>;
    /// Lets go of a partition's log that another kop instance leads now.
    fn close(&self, _topic: &str, _partition: i32) {}
    /// Removes the data of every partition of a deleted topic.
    fn delete(&self, topic: &str, partitions: i32) -> io::Result<()>;
}

/// The log settings a partition needs from its topic config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogSettings {
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// Whether old data is deleted by retention (`cleanup.policy` contains `delete`).
    pub delete_retention: bool,
    pub compaction: CompactionSettings,
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

/// Called with each new end offset of a log others append to (see `ExternalEnd`).
pub type EndListener = Box<dyn Fn(i64) + Send + Sync>;

/// The end offset of a log that other writers append to — a Pulsar topic ordinary Pulsar
/// producers write (docs/pulsar-native-records.md), which kop serves read-only. The storage
/// learns each new end (kop-py: the Python bridge's follower calls `advance`) and the
/// partition listens, advancing its high watermark and waking waiting fetches. Logs kop writes
/// have none (`PartitionLog::external_end` is None): their appends and fetches never touch it.
#[derive(Default)]
pub struct ExternalEnd {
    state: Mutex<(i64, Option<EndListener>)>,
    refusal_logged: std::sync::atomic::AtomicBool,
}

impl ExternalEnd {
    pub fn new(next_offset: i64) -> ExternalEnd {
        ExternalEnd {
            state: Mutex::new((next_offset, None)),
            ..ExternalEnd::default()
        }
    }

    /// The offset the next record written elsewhere gets.
    pub fn get(&self) -> i64 {
        self.state.lock().0
    }

    /// The log now ends at `next_offset` (ignored unless it grew); the listener hears of it.
    pub fn advance(&self, next_offset: i64) {
        let mut state = self.state.lock();
        if next_offset > state.0 {
            state.0 = next_offset;
            if let Some(listener) = &state.1 {
                listener(next_offset);
            }
        }
    }

    /// Tells `listener` the current end now and every new end from now on (it replaces an
    /// earlier listener). It runs on the storage's thread: keep it short and non-blocking.
    pub fn listen(&self, listener: EndListener) {
        let mut state = self.state.lock();
        listener(state.0);
        state.1 = Some(listener);
    }

    /// True the first time only: a refused Kafka produce is logged once per opened log.
    pub fn first_refusal(&self) -> bool {
        !self
            .refusal_logged
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    }
}

/// One partition's log. Offsets are assigned by the broker; the log stores batches whose
/// `baseOffset` is already patched, in offset order.
pub trait PartitionLog: Send + Sync {
    fn log_start_offset(&self) -> i64;
    /// The offset the next batch gets (the log end offset).
    fn next_offset(&self) -> i64;
    fn size_bytes(&self) -> u64;
    /// The bytes the storage keeps of the partition (DescribeLogDirs); None while not known
    /// yet (a remote log asks its backend in the background and answers from a cache).
    fn stored_size(&self) -> Option<u64> {
        Some(self.size_bytes())
    }
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
    fn remote_reads(&self) -> Option<Arc<dyn RemoteReads>> {
        None
    }
    /// The largest batch the storage can hold, when it is smaller than any topic may ask for
    /// (Pulsar's maximum message size); None: no limit of its own.
    fn max_batch_bytes(&self) -> Option<usize> {
        None
    }
    /// Some for a log that other writers append to (see `ExternalEnd`): the broker refuses
    /// Kafka produces to it and follows its end. None (every log kop writes) costs nothing.
    fn external_end(&self) -> Option<Arc<ExternalEnd>> {
        None
    }
    /// The first batch whose max timestamp is >= `timestamp`.
    fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>>;
    /// The batch holding the largest timestamp in the log.
    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>>;
    /// Makes appended data durable (fsync).
    fn flush(&mut self) -> io::Result<()>;
    /// The periodic fsync in two steps, so that produces and fetches go on while the disk
    /// works: under the partition lock, what was appended and is not durable yet (None:
    /// nothing, or it is durable already); the caller syncs it without the lock and calls
    /// `sync_failed` if that fails. By default the log syncs here, under the lock.
    fn take_unsynced(&mut self) -> io::Result<Option<Arc<dyn SegmentSync>>> {
        self.flush().map(|()| None)
    }
    /// The sync `take_unsynced` handed out failed: the next one tries again.
    fn sync_failed(&mut self) {}
    /// Between periodic fsyncs: what was appended since the last call (or fsync), to start
    /// writing back without the partition lock (`SegmentSync::start_writeback`). None: nothing
    /// new, or no local file.
    fn take_unwritten(&mut self) -> Option<Arc<dyn SegmentSync>> {
        None
    }
    fn set_settings(&mut self, settings: LogSettings);
    /// Applies retention; returns the number of segments deleted.
    fn enforce_retention(&mut self, now_ms: i64) -> io::Result<usize>;
    /// Moves the log start up to `offset` (DeleteRecords; the broker checked it is at most
    /// the high watermark), durably when this returns: a restart or a takeover keeps it, and
    /// reads below it are out of range from now on. Data wholly below it may go at once
    /// (local segments) or later (Pulsar trims whole ledgers by its retention).
    fn advance_log_start(&mut self, _offset: i64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this log cannot move its start",
        ))
    }
    /// Log compaction, step 1 (under the partition lock): the clean worth doing now, if any
    /// (storage/compaction/). Logs that are not compacted locally answer None.
    fn begin_clean(&mut self, _req: &CleanRequest) -> io::Result<Option<CleanJob>> {
        Ok(None)
    }
    /// Compaction of a remote log (storage/compaction/remote.rs), under the partition lock:
    /// the clean to try now, if any. Local logs answer None.
    fn begin_remote_clean(&mut self, _req: CleanRequest) -> Option<RemoteCleanJob> {
        None
    }
    /// Under the lock again, after the `RemoteCleanJob` ran.
    fn finish_remote_clean(&mut self, _outcome: &RemoteCleaned) {}
    /// Step 3 (under the lock): swaps in what `CleanJob::run` (step 2, without the lock) wrote.
    fn finish_clean(&mut self, _cleaned: Cleaned) -> io::Result<CleanStats> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this log is not compacted locally",
        ))
    }
}

/// The blocking reads of a remote partition log (see `PartitionLog::remote_reads`).
pub trait RemoteReads: Send + Sync {
    fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Bytes>;
    fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>>;
    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>>;
}
