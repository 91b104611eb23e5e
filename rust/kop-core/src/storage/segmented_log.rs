//! A partition log made of segments; shared by the file and memory backends.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::compaction::{self, CleanJob, CleanRequest, CleanStats, Cleaned, SegmentView};
use super::partition_log::{LogSettings, PartitionLog, Receipt};
use super::segment::{BatchCheck, Segment, SegmentStore, SegmentSync};
use crate::records::batch::BatchHeader;
use crate::records::control::Marker;

/// Where a log's segments are kept: creating them, and swapping cleaned ones in.
pub trait SegmentFiles: Send + Sync {
    /// The store of a new (active) segment starting at `base`.
    fn create(&self, base: i64) -> io::Result<Box<dyn SegmentStore>>;
    /// A store for the cleaned copy of segments starting at `base`, under a temporary name a
    /// recovery deletes.
    fn create_cleaned(&self, base: i64) -> io::Result<Box<dyn SegmentStore>>;
    /// Makes the synced `cleaned` store the segment at `base` in place of `old` (the segments
    /// whose base offsets are in `[base, end)`), atomically across a crash: a recovery sees
    /// either the old segments or the cleaned one. Returns the cleaned store under its final
    /// name.
    fn swap_in(
        &self,
        base: i64,
        end: i64,
        cleaned: Box<dyn SegmentStore>,
        old: Vec<Box<dyn SegmentStore>>,
    ) -> io::Result<Box<dyn SegmentStore>>;
    /// Remembers where the next clean starts (Kafka's cleaner-offset-checkpoint); losing it
    /// only makes the next clean read more.
    fn save_cleaner_offset(&self, _offset: i64) -> io::Result<()> {
        Ok(())
    }
    /// Remembers the log start a DeleteRecords set, durably when it returns (Kafka's
    /// log-start-offset-checkpoint): it may be inside the first segment.
    fn save_log_start(&self, _offset: i64) -> io::Result<()> {
        Ok(())
    }
}

pub struct SegmentedLog {
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    settings: LogSettings,
    files: Arc<dyn SegmentFiles>,
    unsynced: bool,
    /// Appended since the last writeback start or fsync (`take_unwritten`).
    unwritten: bool,
    /// The first offset not cleaned yet (the start of the dirty part of the log).
    cleaner_offset: i64,
}

impl SegmentedLog {
    /// Builds a log from existing segment stores (oldest first), recovering each one.
    /// Only the newest segment has its CRCs checked: older ones were complete when rolled.
    /// `cleaner_offset`: where the last clean ended (0 when unknown); `saved_log_start`: the
    /// last log start `save_log_start` kept (0 when none).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        existing: Vec<(i64, Box<dyn SegmentStore>)>,
        settings: LogSettings,
        files: Arc<dyn SegmentFiles>,
        now_ms: i64,
        cleaner_offset: i64,
        saved_log_start: i64,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<SegmentedLog> {
        let mut segments = BTreeMap::new();
        let count = existing.len();
        let mut expected_next: Option<i64> = None;
        let mut torn = false;
        for (i, (base, store)) in existing.into_iter().enumerate() {
            // A cleaned segment may end before the next one starts (compaction leaves gaps),
            // but segments never overlap, and nothing after a torn segment can be trusted.
            if torn || expected_next.is_some_and(|n| base < n) {
                tracing::warn!(
                    segment = base,
                    "dropping a segment that does not follow the log"
                );
                store.remove()?;
                continue;
            }
            let mut seg = Segment::new(base, store, now_ms);
            let check = |b: &[u8]| crate::records::batch::validate(b).is_ok();
            let newest = i + 1 == count;
            torn = seg.recover(newest.then_some(&check as &BatchCheck), on_batch)?;
            expected_next = Some(seg.next_offset);
            segments.insert(base, seg);
        }
        let mut log = SegmentedLog {
            log_start_offset: segments.keys().next().copied().unwrap_or(0),
            segments,
            settings,
            files,
            unsynced: false,
            unwritten: false,
            cleaner_offset,
        };
        if log.segments.is_empty() {
            log.roll(0, now_ms)?;
        }
        // A DeleteRecords start inside the first segment (never past the end: a log whose
        // newest data was lost starts no later than its end).
        log.log_start_offset = log
            .log_start_offset
            .max(saved_log_start.min(log.next_offset()));
        Ok(log)
    }

    fn active(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    fn roll(&mut self, base_offset: i64, now_ms: i64) -> io::Result<()> {
        if let Some(seg) = self.segments.values_mut().next_back() {
            seg.sync()?; // a rolled segment is never written again: make it durable once
        }
        let store = self.files.create(base_offset)?;
        self.segments
            .insert(base_offset, Segment::new(base_offset, store, now_ms));
        Ok(())
    }

    fn segment_for(&self, offset: i64) -> Option<&Segment> {
        self.segments.range(..=offset).next_back().map(|(_, s)| s)
    }

    /// The roll age: `segment.ms`, or `max.compaction.lag.ms` when shorter on a compacted
    /// topic (Kafka's `maxSegmentMs`), so an idle key's old value is not kept forever in the
    /// active segment, which is never cleaned.
    fn roll_after_ms(&self) -> i64 {
        let c = &self.settings.compaction;
        if c.compact && c.max_compaction_lag_ms > 0 {
            self.settings.segment_ms.min(c.max_compaction_lag_ms)
        } else {
            self.settings.segment_ms
        }
    }
}

impl PartitionLog for SegmentedLog {
    fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    fn next_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map_or(0, |s| s.next_offset)
    }

    fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    fn append(
        &mut self,
        header: &BatchHeader,
        batch: Bytes,
        now_ms: i64,
    ) -> io::Result<Option<Receipt>> {
        let settings = self.settings;
        let roll_after_ms = self.roll_after_ms();
        let active = self.active();
        let too_big = active.size() + batch.len() as u64 > settings.segment_bytes as u64;
        let too_old = now_ms - active.created_ms > roll_after_ms;
        if !active.is_empty() && (too_big || too_old) {
            self.roll(header.base_offset, now_ms)?;
        }
        self.active().append(header, &batch)?;
        self.unsynced = true;
        self.unwritten = true;
        Ok(None)
    }

    fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Option<Bytes>> {
        let Some(seg) = self.segment_for(offset.max(self.log_start_offset)) else {
            return Ok(Some(Bytes::new()));
        };
        let data = seg.read(offset, max_bytes, upper)?;
        if !data.is_empty() || offset < seg.base_offset {
            return Ok(Some(data));
        }
        // The offset is past this segment's data (an empty active segment, or a gap a clean
        // left at a segment's end, or a segment cleaned empty): the next segment with data.
        for (_, next) in self.segments.range(offset + 1..) {
            if next.base_offset >= upper {
                break;
            }
            let data = next.read(offset, max_bytes, upper)?;
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
        Ok(Some(Bytes::new()))
    }

    fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>> {
        for seg in self.segments.values() {
            if let Some(b) = seg.batch_at_timestamp(timestamp)? {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>> {
        // Earliest segment wins ties, as Kafka reports the first occurrence.
        let best =
            self.segments
                .values()
                .filter(|s| !s.is_empty())
                .fold(None::<&Segment>, |best, s| match best {
                    Some(b) if b.max_timestamp >= s.max_timestamp => Some(b),
                    _ => Some(s),
                });
        match best {
            Some(seg) => seg.batch_with_max_timestamp(),
            None => Ok(None),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.active().sync()?;
            self.unsynced = false;
            self.unwritten = false;
        }
        Ok(())
    }

    /// Only the active segment can hold unsynced bytes: a roll syncs the segment it closes.
    fn take_unsynced(&mut self) -> io::Result<Option<Arc<dyn SegmentSync>>> {
        self.unwritten = false;
        if !std::mem::take(&mut self.unsynced) {
            return Ok(None);
        }
        Ok(Some(self.active().syncer()))
    }

    /// Only the active segment: a roll syncs the segment it closes.
    fn take_unwritten(&mut self) -> Option<Arc<dyn SegmentSync>> {
        std::mem::take(&mut self.unwritten).then(|| self.active().syncer())
    }

    fn sync_failed(&mut self) {
        self.unsynced = true;
    }

    fn set_settings(&mut self, settings: LogSettings) {
        self.settings = settings;
    }

    fn enforce_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        if !self.settings.delete_retention {
            return Ok(0);
        }
        let mut deleted = 0;
        let mut total = self.size_bytes() as i64;
        // Never delete the active segment; delete oldest-first while a limit is exceeded.
        while self.segments.len() > 1 {
            let (&base, oldest) = self.segments.iter().next().expect("non-empty");
            // A segment the cleaner left empty has no timestamp: it goes with the first check.
            let by_time = self.settings.retention_ms >= 0
                && (oldest.is_empty()
                    || oldest.max_timestamp >= 0
                        && now_ms - oldest.max_timestamp > self.settings.retention_ms);
            let by_size = self.settings.retention_bytes >= 0
                && total - oldest.size() as i64 >= self.settings.retention_bytes;
            if !(by_time || by_size) {
                break;
            }
            let seg = self.segments.remove(&base).expect("present");
            total -= seg.size() as i64;
            seg.remove()?;
            deleted += 1;
        }
        if deleted > 0 {
            let first = *self.segments.keys().next().expect("active remains");
            self.log_start_offset = self.log_start_offset.max(first);
        }
        Ok(deleted)
    }

    fn advance_log_start(&mut self, offset: i64) -> io::Result<()> {
        if offset <= self.log_start_offset {
            return Ok(());
        }
        // Saved before any segment goes: a crash in between leaves the new start in force.
        self.files.save_log_start(offset)?;
        self.log_start_offset = offset;
        // Segments wholly below the new start go (Kafka: the next segment starts at or
        // before it); the active segment stays.
        while self.segments.len() > 1 {
            let mut bases = self.segments.keys();
            let (first, next) = (*bases.next().expect("two"), *bases.next().expect("two"));
            if next > offset {
                break;
            }
            self.segments.remove(&first).expect("present").remove()?;
        }
        Ok(())
    }

    fn begin_clean(&mut self, req: &CleanRequest) -> io::Result<Option<CleanJob>> {
        let settings = self.settings.compaction;
        if !settings.compact {
            return Ok(None);
        }
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let rolled: Vec<compaction::SegmentSummary> = self
            .segments
            .values()
            .zip(bases.iter().skip(1))
            .map(|(s, &next_base)| compaction::SegmentSummary {
                base: s.base_offset,
                next_base,
                size: s.size(),
                max_timestamp: s.max_timestamp,
                first_batch_timestamp: s.first_batch_timestamp,
            })
            .collect();
        let Some(plan) = compaction::plan(
            &rolled,
            self.log_start_offset,
            self.next_offset(),
            self.cleaner_offset,
            &settings,
            req,
        ) else {
            return Ok(None);
        };
        let mut views = Vec::new();
        for (summary, seg) in rolled.iter().zip(self.segments.values()) {
            if summary.base >= plan.first_uncleanable {
                break;
            }
            views.push(SegmentView {
                summary: *summary,
                reader: seg.reader()?,
            });
        }
        Ok(Some(CleanJob {
            views,
            plan,
            settings,
            segment_bytes: self.settings.segment_bytes.max(1) as u64,
            now_ms: req.now_ms,
            producer_last_offsets: req.producer_last_offsets.clone(),
            producer_marker_epochs: req.producer_marker_epochs.clone(),
            aborted: req.aborted.clone(),
            map_budget_bytes: req.map_budget_bytes,
            files: self.files.clone(),
        }))
    }

    fn finish_clean(&mut self, cleaned: Cleaned) -> io::Result<CleanStats> {
        let mut stats = cleaned.stats;
        let active_base = *self
            .segments
            .keys()
            .next_back()
            .expect("a log has a segment");
        for group in cleaned.groups {
            let current: Vec<(i64, u64)> = self
                .segments
                .range(group.base..group.end)
                .map(|(&b, s)| (b, s.size()))
                .collect();
            if current != group.replaced || group.end > active_base {
                // Retention deleted some of them meanwhile: this group waits for another clean.
                stats.groups_skipped += 1;
                group.segment.remove()?;
                continue;
            }
            let old: Vec<Box<dyn SegmentStore>> = group
                .replaced
                .iter()
                .map(|(b, _)| self.segments.remove(b).expect("checked").into_store())
                .collect();
            let files = self.files.clone();
            let (base, end) = (group.base, group.end);
            let segment = group
                .segment
                .map_store(|cleaned| files.swap_in(base, end, cleaned, old))?;
            self.segments.insert(base, segment);
        }
        if cleaned.dirty_offset > self.cleaner_offset || self.cleaner_offset < self.log_start_offset
        {
            self.cleaner_offset = cleaned.dirty_offset;
            self.files.save_cleaner_offset(self.cleaner_offset)?;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::records::batch::{self, tests::sample_batch};

    fn file_log(dir: &std::path::Path) -> Box<dyn PartitionLog> {
        let storage = crate::storage::file::open(dir, false).unwrap();
        let settings = LogSettings {
            segment_bytes: 1 << 30,
            segment_ms: 1 << 40,
            retention_ms: -1,
            retention_bytes: -1,
            delete_retention: true,
            compaction: Default::default(),
        };
        storage.logs.open("t", 0, settings, &mut |_, _| {}).unwrap()
    }

    fn append_one(log: &mut dyn PartitionLog, offset: i64) {
        let mut raw = sample_batch(3, 1_000, b"v", (-1, -1, -1));
        batch::patch_offset_and_epoch(&mut raw, offset, 0);
        let header = BatchHeader::parse(&raw).unwrap();
        log.append(&header, Bytes::from(raw), 1_000).unwrap();
    }

    #[test]
    fn the_periodic_fsync_takes_what_is_unsynced_once_and_again_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = file_log(dir.path());
        assert!(
            log.take_unsynced().unwrap().is_none(),
            "nothing appended yet"
        );
        append_one(&mut *log, 0);
        let unsynced = log.take_unsynced().unwrap().expect("an append to sync");
        assert!(log.take_unsynced().unwrap().is_none(), "handed out once");
        unsynced.sync_data().unwrap();
        log.sync_failed();
        assert!(
            log.take_unsynced().unwrap().is_some(),
            "a failed sync is tried again"
        );
    }

    #[test]
    fn writeback_is_started_once_per_append_run_and_not_after_an_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = file_log(dir.path());
        assert!(log.take_unwritten().is_none(), "nothing appended yet");
        append_one(&mut *log, 0);
        let unwritten = log.take_unwritten().expect("an append to write back");
        unwritten.start_writeback().unwrap();
        assert!(log.take_unwritten().is_none(), "handed out once");
        append_one(&mut *log, 3);
        assert!(log.take_unsynced().unwrap().is_some());
        assert!(
            log.take_unwritten().is_none(),
            "the fsync writes what was appended before it"
        );
        // The fsync still covers bytes whose writeback was started.
        append_one(&mut *log, 6);
        log.take_unwritten().unwrap().start_writeback().unwrap();
        let unsynced = log.take_unsynced().unwrap().expect("started is not synced");
        unsynced.sync_data().unwrap();
    }
}
