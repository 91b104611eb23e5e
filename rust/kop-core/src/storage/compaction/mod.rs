//! Log compaction of local logs (`cleanup.policy` compact or `compact,delete`), with Kafka's
//! semantics (docs/compaction.md):
//! - the latest record of every key is kept, older ones are removed; offsets never change
//!   (a cleaned log has gaps); records without a key are removed;
//! - a tombstone (null value) is kept for `delete.retention.ms` after the clean that first
//!   kept it (KIP-534: that clean sets the batch's delete horizon), then removed;
//! - a log is cleaned when its dirty part (written since the last clean) is more than
//!   `min.cleanable.dirty.ratio` of it, or when a dirty segment is older than
//!   `max.compaction.lag.ms`; segments newer than `min.compaction.lag.ms`, the active segment
//!   and anything at or past the broker's upper bound are never cleaned;
//! - batches are rewritten as Kafka's `MemoryRecords.filterTo` does: same base offset, last
//!   offset, producer id/epoch/base sequence, leader epoch and codec; an idempotent
//!   producer's last batch is kept even when no record of it is left (an empty batch), so
//!   producer state rebuilt from the log stays right;
//! - aborted transactions' records are removed, and COMMIT/ABORT markers once no batch of
//!   their transaction is left, after `delete.retention.ms` (`txn_rules`, `batch_filter`).
//!
//! Cleaning a partition has three steps so the partition lock is held only briefly:
//! `PartitionLog::begin_clean` (lock held: picks the range, snapshots readers of rolled
//! segments), `CleanJob::run` (no lock: builds the key map and writes cleaned segments under
//! temporary names, throttled), `PartitionLog::finish_clean` (lock held: swaps the cleaned
//! segments in, crash-safe, unless retention changed those segments meanwhile).
//!
//! Remote (Pulsar) logs are cleaned by `remote::RemoteCleanJob` with the same record rules; the
//! backend stores the cleaned copy and switches readers to it (docs/compaction.md, "Pulsar").

mod batch_filter;
mod job;
mod offset_map;
mod remote;
mod throttle;
mod txn_rules;

#[cfg(test)]
pub(crate) mod tests;

pub use batch_filter::AbortedTxn;
pub use job::{plan, CleanJob, Cleaned, CleanedGroup, Plan, SegmentSummary, SegmentView};
pub use remote::{RemoteCleanJob, RemoteCleaned};
pub use throttle::Throttle;

use std::collections::HashMap;

/// The compaction settings of a partition, from its topic config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionSettings {
    /// `cleanup.policy` contains `compact`.
    pub compact: bool,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    /// `file.delete.delay.ms`: on Pulsar, how long the previous compacted generation outlives
    /// a switch to the next (readers of other instances may still be on it).
    pub file_delete_delay_ms: i64,
}

impl Default for CompactionSettings {
    /// Kafka's topic defaults, compaction off.
    fn default() -> Self {
        CompactionSettings {
            compact: false,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
        }
    }
}

/// What the broker tells a log about one clean.
#[derive(Debug, Clone, Default)]
pub struct CleanRequest {
    pub now_ms: i64,
    /// Nothing at or past this offset is cleaned: the partition's last stable offset (so
    /// every transaction below it is decided), never past the active segment either.
    pub upper_bound: i64,
    /// The last offset of the last batch of every producer id known to the partition
    /// (Kafka's producer state): that batch is kept, even empty.
    pub producer_last_offsets: HashMap<i64, i64>,
    /// Producers whose last batch is a marker, with their epoch: that marker is kept.
    pub producer_marker_epochs: HashMap<i64, i16>,
    /// The aborted transactions of the log (the partition's aborted-transaction index).
    /// See `txn_rules`.
    pub aborted: Vec<AbortedTxn>,
    /// Bytes the key map of one clean may take (`log_cleaner_dedupe_buffer_size`).
    pub map_budget_bytes: usize,
}

/// What one clean did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    pub segments_before: usize,
    pub segments_after: usize,
    /// Segments whose swap was skipped (retention removed them while they were cleaned).
    pub groups_skipped: usize,
    /// The first dirty offset after this clean (the next clean's key map starts there).
    pub dirty_offset: i64,
}
