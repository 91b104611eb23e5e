//! Compaction of a remote (Pulsar) partition (docs/compaction.md, "Pulsar"): the same record
//! rules as the local cleaner (`filter_batch`, `TxnTracker`, the key map, the throttle) over
//! batches read through the backend, written by the backend as a new compacted generation
//! that readers switch to atomically.
//!
//! `RemoteCleanJob::run` (no partition lock) reads the log twice, throttled: pass 1 maps every
//! key below the upper bound to its latest offset and sums batch sizes, to decide whether the
//! clean is worth doing (dirty ratio, `max.compaction.lag.ms`) and where it ends (never into
//! the active part, what Kafka's active segment would hold, nor into batches younger than
//! `min.compaction.lag.ms`); pass 2 filters every batch below that end. The cleaned batches
//! are held in memory (one partition's live set) and handed to the backend in one call.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::batch_filter::{filter_batch, Counts, FilterContext, Filtered};
use super::offset_map::OffsetMap;
use super::txn_rules::{Rule, TxnTracker};
use super::{CleanRequest, CleanStats, CompactionSettings, Throttle};
use crate::records::batch::BatchHeader;
use crate::records::decode::for_each_raw_record;
use crate::storage::partition_log::RemoteReads;
use crate::storage::remote::RemoteBackend;

/// Bytes asked for per read of the cleaner.
const READ_BYTES: usize = 1 << 20;

/// A clean of one remote partition, made under the partition lock by
/// `PartitionLog::begin_remote_clean`, run without it.
pub struct RemoteCleanJob {
    pub backend: Arc<dyn RemoteBackend>,
    pub reads: Arc<dyn RemoteReads>,
    pub topic: Arc<str>,
    pub partition: i32,
    pub epoch: i32,
    pub log_start: i64,
    pub settings: CompactionSettings,
    /// The topic's `segment.bytes` and `segment.ms`: where Kafka would roll segments (the last
    /// one, the active segment, is never cleaned).
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub req: CleanRequest,
}

/// What a remote clean did (`end`: the new compacted end, readers below it use the copy), or
/// why it did nothing (`needed`: dirty bytes still to come before a clean is worth it).
pub enum RemoteCleaned {
    Switched {
        end: i64,
        stats: CleanStats,
    },
    NotWorth {
        needed_bytes: u64,
    },
    /// Another writer switched first (a takeover): nothing changed here.
    Lost,
}

/// A batch seen by pass 1.
struct Summary {
    base: i64,
    size: u64,
    max_timestamp: i64,
}

impl RemoteCleanJob {
    pub fn run(self, throttle: &Throttle, stop: &AtomicBool) -> io::Result<RemoteCleaned> {
        let (topic, partition) = (&*self.topic, self.partition);
        let compacted_end = self.backend.compacted_end(topic, partition)?;
        let upto = self.req.upper_bound;
        if upto <= compacted_end.max(self.log_start) {
            return Ok(RemoteCleaned::NotWorth { needed_bytes: 1 });
        }
        // Pass 1: summaries and the key map.
        let mut stats = CleanStats::default();
        let mut summaries = Vec::new();
        let mut map = OffsetMap::new(self.req.map_budget_bytes);
        let mut mapped_to = self.log_start;
        let mut map_full = false;
        let mut txns = TxnTracker::new(&self.req.aborted);
        let mut keys: Vec<(Vec<u8>, i64)> = Vec::new();
        self.each_batch(upto, throttle, stop, &mut stats, |header, bytes| {
            summaries.push(Summary {
                base: header.base_offset,
                size: header.size as u64,
                max_timestamp: header.max_timestamp,
            });
            if map_full {
                return Ok(());
            }
            if txns.rule(header, bytes).map_err(corrupt)? == Rule::ByKey {
                keys.clear();
                for_each_raw_record(bytes, |r| {
                    if let Some(key) = r.key {
                        keys.push((key.to_vec(), r.point.offset));
                    }
                })
                .map_err(corrupt)?;
                let key_bytes = keys.iter().map(|k| k.0.len()).sum();
                if map.would_overflow(keys.len(), key_bytes) {
                    map_full = true;
                    return Ok(());
                }
                for (key, offset) in &keys {
                    map.put(key, *offset);
                }
            }
            mapped_to = header.last_offset() + 1;
            Ok(())
        })?;
        let clean_end = self.clean_end(&summaries, upto).min(mapped_to);
        let clean_bytes: u64 = summaries
            .iter()
            .filter(|s| s.base < compacted_end)
            .map(|s| s.size)
            .sum();
        let dirty: Vec<&Summary> = summaries
            .iter()
            .filter(|s| s.base >= compacted_end && s.base < clean_end)
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
        let total = clean_bytes + dirty_bytes;
        let ratio = self.settings.min_cleanable_dirty_ratio;
        let worth_by_ratio = total > 0 && dirty_bytes as f64 / total as f64 > ratio;
        let overdue = dirty
            .iter()
            .map(|s| s.max_timestamp)
            .filter(|&t| t > 0)
            .min()
            .is_some_and(|t| {
                t < self
                    .req
                    .now_ms
                    .saturating_sub(self.settings.max_compaction_lag_ms.max(0))
            });
        if clean_end <= compacted_end || dirty_bytes == 0 || !(worth_by_ratio || overdue) {
            // Dirty bytes that would make it worth it: d / (c + d) > r  <=>  d > r c / (1 - r).
            // The active part becomes dirty once more batches come, so it counts as dirty
            // here: the clean is tried again after that many new bytes.
            let wanted = (ratio * clean_bytes as f64 / (1.0 - ratio).max(0.01)) as u64;
            let active_bytes: u64 = summaries
                .iter()
                .filter(|s| s.base >= clean_end)
                .map(|s| s.size)
                .sum();
            return Ok(RemoteCleaned::NotWorth {
                needed_bytes: wanted.saturating_sub(dirty_bytes + active_bytes).max(1),
            });
        }
        // Pass 2: filter every batch below the end into the new generation.
        let ctx = FilterContext {
            map: &map,
            map_last_offset: clean_end - 1,
            now_ms: self.req.now_ms,
            delete_retention_ms: self.settings.delete_retention_ms,
            producer_last_offsets: &self.req.producer_last_offsets,
            producer_marker_epochs: &self.req.producer_marker_epochs,
        };
        let mut txns = TxnTracker::new(&self.req.aborted);
        let mut counts = Counts::default();
        let mut cleaned: Vec<Bytes> = Vec::new();
        let mut pass2 = CleanStats::default();
        self.each_batch(clean_end, throttle, stop, &mut pass2, |header, bytes| {
            let rule = txns.rule(header, bytes).map_err(corrupt)?;
            match filter_batch(bytes, header, rule, &ctx, &mut counts).map_err(corrupt)? {
                Filtered::Keep => cleaned.push(Bytes::copy_from_slice(bytes)),
                Filtered::Rewritten(new) => cleaned.push(Bytes::from(new)),
                Filtered::Drop => {}
            }
            Ok(())
        })?;
        stats.bytes_read += pass2.bytes_read;
        stats.bytes_before = pass2.bytes_read;
        stats.bytes_after = cleaned.iter().map(|b| b.len() as u64).sum();
        throttle.acquire(stats.bytes_after);
        stats.records_kept = counts.kept;
        stats.records_removed = counts.removed;
        stats.dirty_offset = clean_end;
        if stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        let switched = self.backend.write_compacted(
            topic,
            partition,
            self.epoch,
            clean_end,
            cleaned,
            self.settings.file_delete_delay_ms,
        )?;
        Ok(if switched {
            RemoteCleaned::Switched {
                end: clean_end,
                stats,
            }
        } else {
            RemoteCleaned::Lost
        })
    }

    /// The first offset not cleaned: before the active part and before the first batch
    /// younger than `min.compaction.lag.ms`. The active part is what Kafka's active segment
    /// would hold: segments are laid out over the batches as Kafka rolls them (a new one when
    /// the next batch would pass `segment.bytes`, or when its timestamp is more than
    /// `segment.ms` after the segment's first batch), and the last one is active.
    fn clean_end(&self, summaries: &[Summary], upto: i64) -> i64 {
        let mut end = upto;
        let (mut size, mut first_ts) = (0u64, -1i64);
        for s in summaries {
            let full = size > 0 && size + s.size > self.segment_bytes;
            let old = first_ts > 0 && s.max_timestamp.saturating_sub(first_ts) > self.segment_ms;
            if size == 0 || full || old {
                end = s.base;
                size = 0;
                first_ts = s.max_timestamp;
            }
            size += s.size;
        }
        if self.settings.min_compaction_lag_ms > 0 {
            let young = self
                .req
                .now_ms
                .saturating_sub(self.settings.min_compaction_lag_ms);
            if let Some(s) = summaries.iter().find(|s| s.max_timestamp > young) {
                end = end.min(s.base);
            }
        }
        end
    }

    /// Every stored batch from the log start up to (not including) `upto`, in offset order;
    /// reads are charged to the throttle.
    fn each_batch(
        &self,
        upto: i64,
        throttle: &Throttle,
        stop: &AtomicBool,
        stats: &mut CleanStats,
        mut f: impl FnMut(&BatchHeader, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut offset = self.log_start;
        while offset < upto {
            if stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            let chunk = self.reads.read(offset, READ_BYTES, upto)?;
            if chunk.is_empty() {
                return Ok(());
            }
            throttle.acquire(chunk.len() as u64);
            stats.bytes_read += chunk.len() as u64;
            let mut pos = 0;
            let before = offset;
            while pos < chunk.len() {
                let header = BatchHeader::parse(&chunk[pos..]).map_err(corrupt)?;
                let bytes = chunk
                    .get(pos..pos + header.size)
                    .ok_or_else(|| corrupt("a batch cut short"))?;
                pos += header.size;
                if header.last_offset() < offset || header.base_offset >= upto {
                    continue;
                }
                f(&header, bytes)?;
                offset = header.last_offset() + 1;
            }
            if offset == before {
                return Err(corrupt(format!("no progress reading at offset {offset}")));
            }
        }
        Ok(())
    }
}

fn corrupt(e: impl std::fmt::Debug) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("log cleaner: {e:?}"))
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "log cleaning stopped")
}
