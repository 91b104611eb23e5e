//! One clean of one partition: which range to clean (Kafka's `LogCleanerManager`), and the
//! clean itself (Kafka's `Cleaner`), run outside the partition lock.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::batch_filter::{filter_batch, AbortedTxn, Counts, FilterContext, Filtered};
use super::offset_map::OffsetMap;
use super::txn_rules::{Rule, TxnTracker};
use super::{CleanRequest, CleanStats, CompactionSettings, Throttle};
use crate::records::batch::{BatchHeader, HEADER_LEN};
use crate::records::decode::for_each_raw_record;
use crate::storage::segment::{Segment, SegmentRead};
use crate::storage::segmented_log::SegmentFiles;

/// What the planner needs to know of a rolled segment.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSummary {
    pub base: i64,
    /// Base offset of the segment after it (its offsets end before that, maybe with a gap).
    pub next_base: i64,
    pub size: u64,
    pub max_timestamp: i64,
    pub first_batch_timestamp: i64,
}

/// The dirty range of a log worth cleaning now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub first_dirty: i64,
    /// The first offset that may not be cleaned (exclusive end of the key map's range).
    pub first_uncleanable: i64,
    pub dirty_ratio: f64,
}

/// Kafka's choice: the dirty range runs from the last clean's end to the first uncleanable
/// offset (the upper bound, the active segment, the first segment younger than
/// `min.compaction.lag.ms`); the log is cleaned when the dirty segments are more than
/// `min.cleanable.dirty.ratio` of the log's bytes, or when a dirty segment's first batch is
/// older than `max.compaction.lag.ms`. `rolled`: the segments before the active one.
pub fn plan(
    rolled: &[SegmentSummary],
    log_start: i64,
    log_end: i64,
    cleaner_offset: i64,
    settings: &CompactionSettings,
    req: &CleanRequest,
) -> Option<Plan> {
    let last = rolled.last()?;
    let first_dirty = if cleaner_offset < log_start || cleaner_offset > log_end {
        log_start
    } else {
        cleaner_offset
    };
    let mut first_uncleanable = req.upper_bound.min(last.next_base);
    let dirty = || rolled.iter().filter(move |s| s.next_base > first_dirty);
    if settings.min_compaction_lag_ms > 0 {
        let young = req.now_ms.saturating_sub(settings.min_compaction_lag_ms);
        if let Some(s) = dirty().find(|s| s.max_timestamp > young) {
            first_uncleanable = first_uncleanable.min(s.base);
        }
    }
    if first_uncleanable <= first_dirty {
        return None;
    }
    // Bytes by whole segments, as Kafka counts them: dirty = segments from the one holding
    // the first dirty offset up to the one holding the first uncleanable offset.
    let uncleanable_base = rolled
        .iter()
        .rev()
        .find(|s| s.base <= first_uncleanable)
        .filter(|s| s.next_base > first_uncleanable)
        .map_or(first_uncleanable, |s| s.base);
    let clean_bytes: u64 = rolled
        .iter()
        .filter(|s| s.next_base <= first_dirty)
        .map(|s| s.size)
        .sum();
    let dirty_bytes: u64 = dirty()
        .filter(|s| s.base < uncleanable_base)
        .map(|s| s.size)
        .sum();
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total as f64
    };
    let max_lag = settings.max_compaction_lag_ms.max(0);
    let overdue = dirty()
        .filter(|s| s.base < first_uncleanable)
        .map(|s| s.first_batch_timestamp)
        .filter(|&t| t > 0)
        .min()
        .is_some_and(|t| t < req.now_ms.saturating_sub(max_lag));
    let worth = (overdue && dirty_bytes > 0) || dirty_ratio > settings.min_cleanable_dirty_ratio;
    worth.then_some(Plan {
        first_dirty,
        first_uncleanable,
        dirty_ratio,
    })
}

/// A rolled segment as the cleaner reads it, outside the partition lock.
pub struct SegmentView {
    pub(crate) summary: SegmentSummary,
    pub(crate) reader: Arc<dyn SegmentRead>,
}

/// The cleaned replacement of consecutive segments `[base, end)`.
pub struct CleanedGroup {
    pub base: i64,
    /// Base offset of the segment after the group.
    pub end: i64,
    /// (base offset, size) of the segments replaced, to check nothing changed meanwhile.
    pub replaced: Vec<(i64, u64)>,
    /// Written and synced under a temporary name (`SegmentFiles::create_cleaned`).
    pub(crate) segment: Segment,
}

/// What `CleanJob::run` made, for `PartitionLog::finish_clean`.
pub struct Cleaned {
    pub groups: Vec<CleanedGroup>,
    /// The first offset not in the key map: where the next clean starts.
    pub dirty_offset: i64,
    pub stats: CleanStats,
}

/// A clean to run outside the partition lock (`PartitionLog::begin_clean` makes it).
pub struct CleanJob {
    pub(crate) views: Vec<SegmentView>,
    pub(crate) plan: Plan,
    pub(crate) settings: CompactionSettings,
    /// Cleaned segments are grouped up to this many bytes (`segment.bytes`).
    pub(crate) segment_bytes: u64,
    pub(crate) now_ms: i64,
    pub(crate) producer_last_offsets: HashMap<i64, i64>,
    pub(crate) producer_marker_epochs: HashMap<i64, i16>,
    pub(crate) aborted: Vec<AbortedTxn>,
    pub(crate) map_budget_bytes: usize,
    pub(crate) files: Arc<dyn SegmentFiles>,
}

/// Reads the batches of a view one after the other.
struct Batches<'a> {
    view: &'a SegmentView,
    pos: u64,
}

impl Batches<'_> {
    fn next_batch(&mut self) -> io::Result<Option<(BatchHeader, Vec<u8>)>> {
        let len = self.view.summary.size;
        if self.pos + HEADER_LEN as u64 > len {
            return Ok(None);
        }
        let mut head = [0u8; HEADER_LEN];
        self.view.reader.read_at(self.pos, &mut head)?;
        let header = BatchHeader::parse(&head).map_err(corrupt)?;
        if self.pos + header.size as u64 > len {
            return Err(corrupt("a batch runs past the end of its segment"));
        }
        let mut bytes = vec![0u8; header.size];
        self.view.reader.read_at(self.pos, &mut bytes)?;
        self.pos += header.size as u64;
        Ok(Some((header, bytes)))
    }
}

fn corrupt(e: impl std::fmt::Debug) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("log cleaner: {e:?}"))
}

impl CleanJob {
    /// Builds the key map, then writes every cleaned group of segments (all segments from the
    /// log start up to the end of the key map's range). Stops early, leaving nothing behind,
    /// when `stop` is set (shutdown).
    pub fn run(self, throttle: &Throttle, stop: &AtomicBool) -> io::Result<Cleaned> {
        let mut stats = CleanStats::default();
        let (map, mapped_to) = self.build_map(throttle, stop, &mut stats)?;
        if mapped_to <= self.plan.first_dirty {
            stats.dirty_offset = self.plan.first_dirty;
            return Ok(Cleaned {
                groups: Vec::new(),
                dirty_offset: self.plan.first_dirty,
                stats,
            });
        }
        let ctx = FilterContext {
            map: &map,
            map_last_offset: mapped_to - 1,
            now_ms: self.now_ms,
            delete_retention_ms: self.settings.delete_retention_ms,
            producer_last_offsets: &self.producer_last_offsets,
            producer_marker_epochs: &self.producer_marker_epochs,
        };
        let mut groups = Vec::new();
        let mut counts = Counts::default();
        // One transaction state for the whole pass (from the log start, in offset order).
        let mut txns = TxnTracker::new(&self.aborted);
        for group in self.groups(mapped_to) {
            let cleaned = self.clean_group(
                group,
                (&ctx, &mut txns),
                throttle,
                stop,
                &mut counts,
                &mut stats,
            );
            match cleaned {
                Ok(Some(cleaned)) => groups.push(cleaned),
                Ok(None) => {}
                Err(e) => {
                    for g in groups {
                        let _ = g.segment.remove();
                    }
                    return Err(e);
                }
            }
        }
        stats.records_kept = counts.kept;
        stats.records_removed = counts.removed;
        stats.dirty_offset = mapped_to;
        Ok(Cleaned {
            groups,
            dirty_offset: mapped_to,
            stats,
        })
    }

    /// The latest offset of every key in the dirty range, as far as the budget allows; and
    /// the end of the range mapped.
    fn build_map(
        &self,
        throttle: &Throttle,
        stop: &AtomicBool,
        stats: &mut CleanStats,
    ) -> io::Result<(OffsetMap, i64)> {
        let (first_dirty, upto) = (self.plan.first_dirty, self.plan.first_uncleanable);
        let mut map = OffsetMap::new(self.map_budget_bytes);
        let mut mapped_to = first_dirty;
        let mut keys: Vec<(Vec<u8>, i64)> = Vec::new();
        // Only whether a batch is aborted matters here (aborted records stay out of the map).
        let mut txns = TxnTracker::new(&self.aborted);
        for view in &self.views {
            if view.summary.next_base <= first_dirty {
                continue;
            }
            if view.summary.base >= upto {
                break;
            }
            let mut batches = Batches { view, pos: 0 };
            while let Some((header, bytes)) = batches.next_batch()? {
                if stop.load(Ordering::Relaxed) {
                    return Err(stopped());
                }
                throttle.acquire(header.size as u64);
                stats.bytes_read += header.size as u64;
                if header.last_offset() < first_dirty {
                    continue;
                }
                if header.base_offset >= upto {
                    return Ok((map, mapped_to));
                }
                if txns.rule(&header, &bytes).map_err(corrupt)? == Rule::ByKey {
                    keys.clear();
                    for_each_raw_record(&bytes, |r| {
                        if let Some(key) = r.key {
                            keys.push((key.to_vec(), r.point.offset));
                        }
                    })
                    .map_err(corrupt)?;
                    let key_bytes = keys.iter().map(|k| k.0.len()).sum();
                    if map.would_overflow(keys.len(), key_bytes) {
                        return Ok((map, mapped_to));
                    }
                    for (key, offset) in &keys {
                        map.put(key, *offset);
                    }
                }
                mapped_to = (header.last_offset() + 1).min(upto);
            }
        }
        Ok((map, mapped_to))
    }

    /// Consecutive segments from the log start whose base is before `mapped_to`, grouped so
    /// that each group's original size fits in one segment (Kafka's `groupSegmentsBySize`).
    fn groups(&self, mapped_to: i64) -> Vec<&[SegmentView]> {
        let cleanable = self
            .views
            .iter()
            .take_while(|v| v.summary.base < mapped_to)
            .count();
        let mut groups = Vec::new();
        let mut rest = &self.views[..cleanable];
        while !rest.is_empty() {
            let mut size = rest[0].summary.size;
            let mut n = 1;
            while n < rest.len() && size + rest[n].summary.size <= self.segment_bytes {
                size += rest[n].summary.size;
                n += 1;
            }
            groups.push(&rest[..n]);
            rest = &rest[n..];
        }
        groups
    }

    /// Writes one group's cleaned segment; None when it would be the segment as it is.
    fn clean_group(
        &self,
        group: &[SegmentView],
        (ctx, txns): (&FilterContext<'_>, &mut TxnTracker),
        throttle: &Throttle,
        stop: &AtomicBool,
        counts: &mut Counts,
        stats: &mut CleanStats,
    ) -> io::Result<Option<CleanedGroup>> {
        let base = group[0].summary.base;
        let size_before: u64 = group.iter().map(|v| v.summary.size).sum();
        stats.bytes_before += size_before;
        stats.segments_before += group.len();
        stats.segments_after += 1;
        let store = self.files.create_cleaned(base)?;
        let mut segment = Segment::new(base, store, self.now_ms);
        let mut changed = group.len() > 1;
        let written = (|| -> io::Result<()> {
            for view in group {
                let mut batches = Batches { view, pos: 0 };
                while let Some((header, bytes)) = batches.next_batch()? {
                    if stop.load(Ordering::Relaxed) {
                        return Err(stopped());
                    }
                    stats.bytes_read += header.size as u64;
                    // Charged as read plus written.
                    let rule = txns.rule(&header, &bytes).map_err(corrupt)?;
                    let written =
                        match filter_batch(&bytes, &header, rule, ctx, counts).map_err(corrupt)? {
                            Filtered::Keep => {
                                segment.append(&header, &bytes)?;
                                bytes.len()
                            }
                            Filtered::Rewritten(new) => {
                                changed = true;
                                let h = BatchHeader::parse(&new).map_err(corrupt)?;
                                segment.append(&h, &new)?;
                                new.len()
                            }
                            Filtered::Drop => {
                                changed = true;
                                0
                            }
                        };
                    throttle.acquire((header.size + written) as u64);
                }
            }
            segment.sync()
        })();
        if let Err(e) = written {
            let _ = segment.remove();
            return Err(e);
        }
        if !changed {
            stats.bytes_after += size_before;
            segment.remove()?;
            return Ok(None);
        }
        stats.bytes_after += segment.size();
        Ok(Some(CleanedGroup {
            base,
            end: group[group.len() - 1].summary.next_base,
            replaced: group
                .iter()
                .map(|v| (v.summary.base, v.summary.size))
                .collect(),
            segment,
        }))
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "log cleaning stopped")
}
