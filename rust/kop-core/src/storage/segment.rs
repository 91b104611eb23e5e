//! One segment of a partition log: raw batches back to back, plus in-memory sparse indexes.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::records::batch::{BatchHeader, HEADER_LEN};
use crate::records::control::{parse_marker, Marker, MARKER_PREFIX};

/// A predicate over one whole stored batch (e.g. CRC validation during recovery).
pub type BatchCheck = dyn Fn(&[u8]) -> bool;

/// Positional reads of a rolled segment's bytes, shared with the log cleaner, which reads them
/// outside the partition lock (a rolled segment is never written again).
pub trait SegmentRead: Send + Sync {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// The fsync of a segment's bytes, usable without the store: the periodic fsync runs it outside
/// the partition lock.
pub trait SegmentSync: Send + Sync {
    fn sync_data(&self) -> io::Result<()>;
    /// Starts writing the bytes stored so far to the disk and returns without waiting: the
    /// next `sync_data` then finds little left to write. Nothing to do without a file.
    fn start_writeback(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes of a segment: a file or a memory buffer.
pub trait SegmentStore: Send + Sync {
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
    /// `len` bytes from `pos` (a file store reads into a pooled buffer without zero-filling it).
    fn read_bytes(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.read_at(pos, &mut buf)?;
        Ok(buf.into())
    }
    fn len(&self) -> u64;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Makes the bytes stored so far durable.
    fn sync(&self) -> io::Result<()> {
        self.syncer().sync_data()
    }
    /// Deletes the backing file, if any.
    fn remove(self: Box<Self>) -> io::Result<()>;
    /// A reader of the bytes stored so far, usable without the store (for the log cleaner).
    fn reader(&self) -> io::Result<Arc<dyn SegmentRead>>;
    /// The fsync of this store, usable without it (`sync` is this, at once).
    fn syncer(&self) -> Arc<dyn SegmentSync>;
}

/// A sparse index entry: a batch's base offset, its position and the largest timestamp seen in
/// the segment up to and including it.
#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    base_offset: i64,
    position: u64,
    max_timestamp_so_far: i64,
}

/// Add an index entry after this many bytes (Kafka's `index.interval.bytes` default).
const INDEX_INTERVAL_BYTES: u64 = 4096;

pub struct Segment {
    pub base_offset: i64,
    /// Offset after the last batch in this segment.
    pub next_offset: i64,
    pub max_timestamp: i64,
    /// Wall-clock time of the first append, for `segment.ms` rolling.
    pub created_ms: i64,
    /// The first batch's max timestamp (-1: none), for `max.compaction.lag.ms` as on Kafka.
    pub first_batch_timestamp: i64,
    store: Box<dyn SegmentStore>,
    index: Vec<IndexEntry>,
    bytes_since_index: u64,
}

impl Segment {
    pub fn new(base_offset: i64, store: Box<dyn SegmentStore>, now_ms: i64) -> Segment {
        Segment {
            base_offset,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
            first_batch_timestamp: -1,
            store,
            index: Vec::new(),
            bytes_since_index: u64::MAX,
        }
    }

    pub fn size(&self) -> u64 {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// Records a batch that is at `position` in the store (on append or during recovery).
    fn note_batch(&mut self, header: &BatchHeader, position: u64) {
        if position == 0 {
            self.first_batch_timestamp = header.max_timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if self.bytes_since_index >= INDEX_INTERVAL_BYTES {
            self.index.push(IndexEntry {
                base_offset: header.base_offset,
                position,
                max_timestamp_so_far: self.max_timestamp,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.size as u64;
        self.next_offset = header.last_offset() + 1;
    }

    pub fn append(&mut self, header: &BatchHeader, batch: &[u8]) -> io::Result<()> {
        let position = self.store.len();
        self.store.append(batch)?;
        self.note_batch(header, position);
        Ok(())
    }

    /// Scans the stored bytes, rebuilding the indexes; stops at (and cuts off) the first batch
    /// that is torn or fails `check` (if given: reading whole batches costs I/O). Reports every
    /// header kept to `on_batch` (with its marker, for a transaction marker), oldest first.
    /// True if a tail was cut off.
    pub fn recover(
        &mut self,
        check: Option<&BatchCheck>,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<bool> {
        let len = self.store.len();
        let mut pos = 0u64;
        let mut head = [0u8; HEADER_LEN];
        let mut last_ts = -1;
        while pos + HEADER_LEN as u64 <= len {
            self.store.read_at(pos, &mut head)?;
            let Ok(header) = BatchHeader::parse(&head) else {
                break;
            };
            if pos + header.size as u64 > len || header.base_offset < self.next_offset {
                break;
            }
            if let Some(check) = check {
                let mut whole = vec![0u8; header.size];
                self.store.read_at(pos, &mut whole)?;
                if !check(&whole) {
                    break;
                }
            }
            // A transaction marker's kind is in its record, just after the header.
            let marker = if header.is_control() {
                let mut prefix = vec![0u8; header.size.min(MARKER_PREFIX)];
                self.store.read_at(pos, &mut prefix)?;
                parse_marker(&prefix).ok().flatten()
            } else {
                None
            };
            self.note_batch(&header, pos);
            last_ts = header.max_timestamp;
            on_batch(&header, marker);
            pos += header.size as u64;
        }
        if pos < len {
            tracing::warn!(
                segment = self.base_offset,
                kept = pos,
                dropped = len - pos,
                "truncating a torn or corrupt tail found during recovery"
            );
            self.store.truncate(pos)?;
        }
        if last_ts >= 0 {
            self.created_ms = self.created_ms.min(last_ts.max(0));
        }
        Ok(pos < len)
    }

    /// Position of the batch containing `offset`, by the sparse index and a header scan.
    fn position_of(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let start = match self.index.partition_point(|e| e.base_offset <= offset) {
            0 => 0,
            i => self.index[i - 1].position,
        };
        self.scan_from(start, |h| h.last_offset() >= offset)
    }

    /// Walks batch headers from `pos` and returns the first that satisfies `stop`.
    fn scan_from(
        &self,
        mut pos: u64,
        stop: impl Fn(&BatchHeader) -> bool,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        let len = self.store.len();
        let mut head = [0u8; HEADER_LEN];
        while pos + HEADER_LEN as u64 <= len {
            self.store.read_at(pos, &mut head)?;
            let header = BatchHeader::parse(&head)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "corrupt batch in log"))?;
            if stop(&header) {
                return Ok(Some((pos, header)));
            }
            pos += header.size as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset` up to ~`max_bytes`, none reaching `upper`.
    pub fn read(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<Bytes> {
        let Some((start, first)) = self.position_of(offset)? else {
            return Ok(Bytes::new());
        };
        if first.base_offset >= upper {
            return Ok(Bytes::new());
        }
        // One read of all the answer may hold, then cut to the whole batches that fit, in
        // memory: reading each batch's header first cost a system call per batch (64 per MiB
        // of the Java producer's 16 KiB batches). The first batch is returned whole even if
        // it is larger than `max_bytes` (KIP-74); one cut short by the end of the store is an
        // error, as before.
        let available = self.store.len().saturating_sub(start);
        let want = (max_bytes as u64).min(available).max(first.size as u64) as usize;
        let buf = self.store.read_bytes(start, want)?;
        Ok(buf.slice(..whole_batches_below(&buf, first.size, max_bytes, upper)))
    }

    /// The first batch whose max timestamp is >= `timestamp`.
    pub fn batch_at_timestamp(&self, timestamp: i64) -> io::Result<Option<Bytes>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let i = self
            .index
            .partition_point(|e| e.max_timestamp_so_far < timestamp);
        let start = if i == 0 {
            0
        } else {
            self.index[i - 1].position
        };
        self.batch_where(start, |h| h.max_timestamp >= timestamp)
    }

    /// The batch that holds this segment's max timestamp.
    pub fn batch_with_max_timestamp(&self) -> io::Result<Option<Bytes>> {
        let ts = self.max_timestamp;
        self.batch_where(0, |h| h.max_timestamp == ts)
    }

    fn batch_where(
        &self,
        start: u64,
        stop: impl Fn(&BatchHeader) -> bool,
    ) -> io::Result<Option<Bytes>> {
        let Some((pos, header)) = self.scan_from(start, stop)? else {
            return Ok(None);
        };
        let mut buf = vec![0u8; header.size];
        self.store.read_at(pos, &mut buf)?;
        Ok(Some(Bytes::from(buf)))
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.store.sync()
    }

    pub fn remove(self) -> io::Result<()> {
        self.store.remove()
    }

    pub fn reader(&self) -> io::Result<Arc<dyn SegmentRead>> {
        self.store.reader()
    }

    pub fn syncer(&self) -> Arc<dyn SegmentSync> {
        self.store.syncer()
    }

    /// The same segment over another store holding the same bytes (a cleaned segment moved to
    /// its final name).
    pub fn map_store(
        self,
        f: impl FnOnce(Box<dyn SegmentStore>) -> io::Result<Box<dyn SegmentStore>>,
    ) -> io::Result<Segment> {
        let Segment {
            base_offset,
            next_offset,
            max_timestamp,
            created_ms,
            first_batch_timestamp,
            store,
            index,
            bytes_since_index,
        } = self;
        Ok(Segment {
            base_offset,
            next_offset,
            max_timestamp,
            created_ms,
            first_batch_timestamp,
            store: f(store)?,
            index,
            bytes_since_index,
        })
    }

    /// Gives the store back (for a segment that replaces nothing after all).
    pub fn into_store(self) -> Box<dyn SegmentStore> {
        self.store
    }
}

/// The length of the longest run of whole batches at the start of `buf` that begins with its
/// first batch (`first_size` bytes, always kept), stays within `max_bytes` after it, and holds
/// no offset at or above `upper`.
fn whole_batches_below(buf: &[u8], first_size: usize, max_bytes: usize, upper: i64) -> usize {
    let mut end = first_size.min(buf.len());
    while let Some(head) = buf.get(end..end + HEADER_LEN) {
        let Ok(h) = BatchHeader::parse(head) else {
            break;
        };
        if h.last_offset() >= upper || end + h.size > max_bytes || end + h.size > buf.len() {
            break;
        }
        end += h.size;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::tests::sample_batch;

    /// Three batches of two records each (offsets 0-1, 2-3, 4-5), back to back.
    fn three_batches() -> (Vec<u8>, usize) {
        let mut all = Vec::new();
        for base in [0i64, 2, 4] {
            let mut b = sample_batch(2, 0, &[7u8; 100], (-1, -1, -1));
            b[..8].copy_from_slice(&base.to_be_bytes());
            all.extend_from_slice(&b);
        }
        let size = all.len() / 3;
        (all, size)
    }

    #[test]
    fn a_read_is_cut_to_whole_batches_within_the_limit_and_below_upper() {
        let (all, size) = three_batches();
        assert_eq!(whole_batches_below(&all, size, usize::MAX, 6), 3 * size);
        assert_eq!(whole_batches_below(&all, size, 3 * size - 1, 6), 2 * size);
        // the first batch whole even over the limit (KIP-74)
        assert_eq!(whole_batches_below(&all, size, 1, 6), size);
        // nothing at or above `upper` (the high watermark or the LSO)
        assert_eq!(whole_batches_below(&all, size, usize::MAX, 4), 2 * size);
        // a batch the read did not hold whole is left out
        assert_eq!(
            whole_batches_below(&all[..3 * size - 1], size, usize::MAX, 6),
            2 * size
        );
    }

    #[test]
    fn a_segment_read_returns_the_batches_from_the_offset_on() {
        let (all, size) = three_batches();
        let mut seg = Segment::new(
            0,
            Box::new(super::super::memory::MemorySegment::default()),
            0,
        );
        for i in 0..3 {
            let batch = &all[i * size..(i + 1) * size];
            seg.append(&BatchHeader::parse(batch).unwrap(), batch)
                .unwrap();
        }
        assert_eq!(&seg.read(3, 2 * size, 6).unwrap()[..], &all[size..]);
        assert_eq!(&seg.read(0, 2 * size, 6).unwrap()[..], &all[..2 * size]);
        assert_eq!(&seg.read(0, 10, 2).unwrap()[..], &all[..size]);
        assert!(seg.read(6, 10, 6).unwrap().is_empty());
    }
}
