//! The in-memory backend (`memory://`): the same log structure, nothing survives a restart.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::documents::DocumentStore;
use super::group_log::GroupLog;
use super::members::SoleMember;
use super::metadata::Metadata;
use super::partition_log::{LogSettings, LogStore, PartitionLog};
use super::segment::{SegmentRead, SegmentStore, SegmentSync};
use super::segmented_log::{SegmentFiles, SegmentedLog};
use super::Storage;
use crate::records::batch::BatchHeader;
use crate::records::control::Marker;

pub(super) fn open() -> Storage {
    Storage {
        metadata: Arc::new(Metadata::new(Arc::new(MemoryDocuments::default()))),
        logs: Arc::new(MemoryLogs),
        group_logs: vec![Arc::new(MemoryGroupLog)],
        txn_logs: vec![Arc::new(MemoryGroupLog)],
        members: Arc::new(SoleMember),
        _lock: None,
    }
}

#[derive(Default)]
pub struct MemoryDocuments {
    docs: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl DocumentStore for MemoryDocuments {
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.docs.lock().get(name).cloned())
    }

    fn put(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        let mut docs = self.docs.lock();
        match data {
            Some(d) => docs.insert(name.to_string(), d.to_vec()),
            None => docs.remove(name),
        };
        Ok(())
    }

    fn put_if(&self, name: &str, data: Option<&[u8]>, expected: Option<&[u8]>) -> io::Result<bool> {
        let mut docs = self.docs.lock();
        if docs.get(name).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        match data {
            Some(d) => docs.insert(name.to_string(), d.to_vec()),
            None => docs.remove(name),
        };
        Ok(true)
    }

    fn names(&self, prefix: &str) -> io::Result<Vec<String>> {
        Ok(self
            .docs
            .lock()
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

/// Logs live in their partitions: dropping one (topic deleted) frees it.
struct MemoryLogs;

impl LogStore for MemoryLogs {
    fn open(
        &self,
        _topic: &str,
        _partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<Box<dyn PartitionLog>> {
        let log = SegmentedLog::open(
            Vec::new(),
            settings,
            Arc::new(MemorySegments),
            crate::now_ms(),
            0,
            0,
            on_batch,
        )?;
        Ok(Box::new(log))
    }

    fn delete(&self, _topic: &str, _partitions: i32) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps nothing: the groups in memory are all there is, and nothing is replayed.
pub struct MemoryGroupLog;

impl GroupLog for MemoryGroupLog {
    fn load(&self) -> io::Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    fn append(&self, _records: Vec<Vec<u8>>) -> io::Result<()> {
        Ok(())
    }

    fn rewrite(&self, _live: Vec<Vec<u8>>) -> io::Result<()> {
        Ok(())
    }
}

/// Segments in memory: a swap is just the new buffer taking the old ones' place.
pub(super) struct MemorySegments;

impl SegmentFiles for MemorySegments {
    fn create(&self, _base: i64) -> io::Result<Box<dyn SegmentStore>> {
        Ok(Box::new(MemorySegment::default()))
    }

    fn create_cleaned(&self, _base: i64) -> io::Result<Box<dyn SegmentStore>> {
        Ok(Box::new(MemorySegment::default()))
    }

    fn swap_in(
        &self,
        _base: i64,
        _end: i64,
        cleaned: Box<dyn SegmentStore>,
        _old: Vec<Box<dyn SegmentStore>>,
    ) -> io::Result<Box<dyn SegmentStore>> {
        Ok(cleaned)
    }
}

/// A segment's bytes, shared with the log cleaner's reader once rolled (an append to the
/// active segment, which the cleaner never reads, does not copy).
#[derive(Default)]
pub(super) struct MemorySegment {
    data: Arc<Vec<u8>>,
}

impl SegmentRead for Vec<u8> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = pos as usize;
        let src = self
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Memory keeps nothing across a restart: there is nothing to make durable.
impl SegmentSync for Vec<u8> {
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
}

impl SegmentStore for MemorySegment {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        Arc::make_mut(&mut self.data).extend_from_slice(data);
        Ok(())
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        self.data.read_at(pos, buf)
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        Arc::make_mut(&mut self.data).truncate(len as usize);
        Ok(())
    }

    fn remove(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }

    fn reader(&self) -> io::Result<Arc<dyn SegmentRead>> {
        Ok(self.data.clone())
    }

    fn syncer(&self) -> Arc<dyn SegmentSync> {
        self.data.clone()
    }
}
