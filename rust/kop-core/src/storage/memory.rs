//! The in-memory backend (`memory://`): the same log structure, nothing survives a restart.

use std::collections::HashMap;
use std::io;

use parking_lot::Mutex;

use super::log::SegmentedLog;
use super::segment::SegmentStore;
use super::{LogSettings, PartitionLog, Storage, TopicMeta};
use crate::records::batch::BatchHeader;

#[derive(Default)]
pub struct MemoryStorage {
    topics: Mutex<HashMap<String, TopicMeta>>,
    cluster_id: Mutex<Option<String>>,
    next_producer_id: Mutex<i64>,
    security: Mutex<Option<Vec<u8>>>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }
}

impl Storage for MemoryStorage {
    fn load_security(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.security.lock().clone())
    }

    fn save_security(&self, data: &[u8]) -> io::Result<()> {
        *self.security.lock() = Some(data.to_vec());
        Ok(())
    }

    fn load_cluster_id(&self) -> io::Result<Option<String>> {
        Ok(self.cluster_id.lock().clone())
    }

    fn save_cluster_id(&self, id: &str) -> io::Result<()> {
        *self.cluster_id.lock() = Some(id.to_string());
        Ok(())
    }

    fn load_topics(&self) -> io::Result<Vec<TopicMeta>> {
        Ok(self.topics.lock().values().cloned().collect())
    }

    fn save_topic(&self, meta: &TopicMeta, _previous: Option<&TopicMeta>) -> io::Result<bool> {
        self.topics.lock().insert(meta.name.clone(), meta.clone());
        Ok(true)
    }

    fn delete_topic(&self, meta: &TopicMeta) -> io::Result<()> {
        self.topics.lock().remove(&meta.name);
        Ok(())
    }

    fn open_log(
        &self,
        _topic: &str,
        _partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> io::Result<Box<dyn PartitionLog>> {
        let factory = Box::new(|_base: i64| -> io::Result<Box<dyn SegmentStore>> {
            Ok(Box::new(MemorySegment::default()))
        });
        let log = SegmentedLog::open(Vec::new(), settings, factory, crate::now_ms(), on_batch)?;
        Ok(Box::new(log))
    }

    fn reserve_producer_ids(&self, count: i64) -> io::Result<i64> {
        let mut next = self.next_producer_id.lock();
        let first = *next;
        *next += count;
        Ok(first)
    }

    fn open_group_stores(
        &self,
        _sync_each_append: bool,
    ) -> io::Result<Vec<std::sync::Arc<dyn crate::group::GroupStore>>> {
        Ok(vec![std::sync::Arc::new(crate::group::MemoryGroupStore)])
    }
}

#[derive(Default)]
struct MemorySegment {
    data: Vec<u8>,
}

impl SegmentStore for MemorySegment {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = pos as usize;
        let src = self
            .data
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.data.truncate(len as usize);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn remove(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}
