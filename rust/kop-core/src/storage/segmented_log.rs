//! A partition log made of segments; shared by the file and memory backends.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;

use super::partition_log::{LogSettings, PartitionLog, Receipt};
use super::segment::{BatchCheck, Segment, SegmentStore};
use crate::records::batch::BatchHeader;
use crate::records::control::Marker;

/// Creates the byte store of a new segment starting at the given base offset.
pub type SegmentFactory = Box<dyn Fn(i64) -> io::Result<Box<dyn SegmentStore>> + Send + Sync>;

pub struct SegmentedLog {
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    settings: LogSettings,
    new_store: SegmentFactory,
    unsynced: bool,
}

impl SegmentedLog {
    /// Builds a log from existing segment stores (oldest first), recovering each one.
    /// Only the newest segment has its CRCs checked: older ones were complete when rolled.
    pub fn open(
        existing: Vec<(i64, Box<dyn SegmentStore>)>,
        settings: LogSettings,
        new_store: SegmentFactory,
        now_ms: i64,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<SegmentedLog> {
        let mut segments = BTreeMap::new();
        let count = existing.len();
        let mut expected_next: Option<i64> = None;
        for (i, (base, store)) in existing.into_iter().enumerate() {
            if expected_next.is_some_and(|n| base != n) {
                // A gap or overlap after a torn earlier segment: everything later is suspect.
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
            seg.recover(newest.then_some(&check as &BatchCheck), on_batch)?;
            expected_next = Some(seg.next_offset);
            segments.insert(base, seg);
        }
        let mut log = SegmentedLog {
            log_start_offset: segments.keys().next().copied().unwrap_or(0),
            segments,
            settings,
            new_store,
            unsynced: false,
        };
        if log.segments.is_empty() {
            log.roll(0, now_ms)?;
        }
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
        let store = (self.new_store)(base_offset)?;
        self.segments
            .insert(base_offset, Segment::new(base_offset, store, now_ms));
        Ok(())
    }

    fn segment_for(&self, offset: i64) -> Option<&Segment> {
        self.segments.range(..=offset).next_back().map(|(_, s)| s)
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
        let active = self.active();
        let too_big = active.size() + batch.len() as u64 > settings.segment_bytes as u64;
        let too_old = now_ms - active.created_ms > settings.segment_ms;
        if !active.is_empty() && (too_big || too_old) {
            self.roll(header.base_offset, now_ms)?;
        }
        self.active().append(header, &batch)?;
        self.unsynced = true;
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
        // The offset is past this segment's data (e.g. an empty active segment): try the next.
        match self.segments.range(offset + 1..).next() {
            Some((_, next)) => next.read(offset, max_bytes, upper).map(Some),
            None => Ok(Some(data)),
        }
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
        }
        Ok(())
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
            let by_time = self.settings.retention_ms >= 0
                && oldest.max_timestamp >= 0
                && now_ms - oldest.max_timestamp > self.settings.retention_ms;
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
            self.log_start_offset = *self.segments.keys().next().expect("active remains");
        }
        Ok(deleted)
    }
}
