//! The one in-memory `RemoteBackend` of the tests: kop-core's unit tests, its integration tests
//! (feature `test-fakes`) and the `pulsar_bridge` fuzz target. It stores documents (with
//! compare-and-set), batches per partition and group records per shard as Pulsar would, and
//! lets a test make it misbehave: fail or hold receipts, refuse large batches, or answer with
//! scripted (fuzzer-chosen) bytes instead of what it stores.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{OpenedPartition, RemoteBackend};
use crate::records::batch::BatchHeader;
use crate::storage::members::{ClusterState, Member};
use crate::storage::partition_log::{AppendFailure, Receipt};

/// Answers that replace what the fake stores (the fuzz target's bridge output).
#[derive(Debug, Default)]
pub struct Scripted {
    pub opened: Option<OpenedPartition>,
    pub reads: Option<Vec<Bytes>>,
    pub at_timestamp: Option<Option<Bytes>>,
    pub max_timestamp: Option<Option<Bytes>>,
}

#[derive(Default)]
pub struct FakeBackend {
    docs: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Moves on every document change (`cluster_state`).
    docs_version: AtomicU64,
    batches: Mutex<HashMap<(String, i32), Vec<Bytes>>>,
    group_records: Mutex<HashMap<i32, Vec<Vec<u8>>>>,
    held: Mutex<Vec<oneshot::Sender<Result<(), AppendFailure>>>>,
    /// The live members `join` and `cluster_state` report.
    pub members: Mutex<Vec<Member>>,
    /// Receipts wait for `release_receipts` (a slow backend); appends are stored meanwhile.
    pub hold_receipts: AtomicBool,
    /// Receipts fail as after fencing; nothing is stored.
    pub fail: AtomicBool,
    /// What `max_batch_bytes` answers.
    pub max_batch: Mutex<Option<usize>>,
    /// Receipts of batches larger than this fail with `TooLarge` (as Pulsar's client does).
    pub refuse_above: Mutex<Option<usize>>,
    /// Takeovers (`open_partition` calls) so far; each one's epoch is this count.
    pub opens: AtomicUsize,
    /// Batches handed to `append`, stored or not.
    pub appends: AtomicUsize,
    /// What `apply_retention` answers (the log start after a deletion); None: 0.
    pub retained_from: Mutex<Option<i64>>,
    /// The retention last applied: (ms, bytes).
    pub retention: Mutex<Option<(i64, i64)>>,
    pub scripted: Mutex<Scripted>,
    /// Compacted ends per partition (`write_compacted` replaced the batches below them).
    pub compacted: Mutex<HashMap<(String, i32), i64>>,
    /// A read waits (up to a second) until this many reads have started.
    pub reads_together: AtomicUsize,
    /// The most reads seen in flight at once.
    pub reads_in_flight_max: AtomicUsize,
    reads_in_flight: AtomicUsize,
    reads_started: AtomicUsize,
}

impl FakeBackend {
    /// Counts this read in flight and waits for `reads_together` reads to start (bounded).
    fn wait_for_other_reads(&self) {
        let together = self.reads_together.load(Ordering::SeqCst);
        let in_flight = self.reads_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.reads_in_flight_max
            .fetch_max(in_flight, Ordering::SeqCst);
        self.reads_started.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.reads_started.load(Ordering::SeqCst) < together && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.reads_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// The batches stored for a partition, oldest first.
    pub fn stored(&self, topic: &str, partition: i32) -> Vec<Bytes> {
        let batches = self.batches.lock();
        batches
            .get(&(topic.to_string(), partition))
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_group_records(&self, shard: i32, records: Vec<Vec<u8>>) {
        self.group_records.lock().insert(shard, records);
    }

    /// Completes the held receipts and stops holding new ones.
    pub fn release_receipts(&self) {
        self.hold_receipts.store(false, Ordering::SeqCst);
        for tx in self.held.lock().drain(..) {
            let _ = tx.send(Ok(()));
        }
    }

    fn write_doc(docs: &mut BTreeMap<String, Vec<u8>>, name: &str, data: Option<&[u8]>) {
        match data {
            Some(d) => docs.insert(name.to_string(), d.to_vec()),
            None => docs.remove(name),
        };
    }
}

fn max_timestamp(batch: &Bytes) -> i64 {
    BatchHeader::parse(batch).map_or(i64::MIN, |h| h.max_timestamp)
}

impl RemoteBackend for FakeBackend {
    fn load_doc(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.docs.lock().get(name).cloned())
    }

    fn save_doc(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        Self::write_doc(&mut self.docs.lock(), name, data);
        self.docs_version.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn save_doc_if(
        &self,
        name: &str,
        data: Option<&[u8]>,
        expected: Option<&[u8]>,
    ) -> io::Result<bool> {
        let mut docs = self.docs.lock();
        if docs.get(name).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        Self::write_doc(&mut docs, name, data);
        self.docs_version.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    fn doc_names(&self, prefix: &str) -> io::Result<Vec<String>> {
        let docs = self.docs.lock();
        Ok(docs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn create_topic(&self, _topic: &str, _partitions: i32) -> io::Result<()> {
        Ok(())
    }

    fn delete_topic(&self, topic: &str) -> io::Result<()> {
        self.batches.lock().retain(|(t, _), _| t != topic);
        Ok(())
    }

    fn apply_retention(&self, _: &str, _: i32, ms: i64, bytes: i64) -> io::Result<i64> {
        *self.retention.lock() = Some((ms, bytes));
        Ok(self.retained_from.lock().unwrap_or(0))
    }

    fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        _tail_bytes: usize,
    ) -> io::Result<OpenedPartition> {
        let epoch = self.opens.fetch_add(1, Ordering::SeqCst) as i32 + 1;
        if let Some(opened) = &self.scripted.lock().opened {
            return Ok(opened.clone());
        }
        let stored = self.stored(topic, partition);
        let next_offset = stored.last().map_or(0, |b| {
            BatchHeader::parse(b).map_or(0, |h| h.last_offset() + 1)
        });
        Ok(OpenedPartition {
            epoch,
            log_start: 0,
            next_offset,
            headers: stored.clone(),
            tail: stored,
        })
    }

    fn close_partition(&self, _: &str, _: i32) -> io::Result<()> {
        Ok(())
    }

    fn join(&self, _me: &Member) -> io::Result<Vec<Member>> {
        Ok(self.members.lock().clone())
    }

    fn cluster_state(&self) -> io::Result<ClusterState> {
        Ok(ClusterState {
            members: self.members.lock().clone(),
            metadata_version: self.docs_version.load(Ordering::SeqCst),
        })
    }

    fn max_batch_bytes(&self) -> Option<usize> {
        *self.max_batch.lock()
    }

    fn append(
        &self,
        topic: &str,
        partition: i32,
        _epoch: i32,
        _header: &BatchHeader,
        payload: Bytes,
    ) -> Receipt {
        let (tx, rx) = oneshot::channel();
        self.appends.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            let _ = tx.send(Err(AppendFailure::Lost("fenced".into())));
        } else if self
            .refuse_above
            .lock()
            .is_some_and(|max| payload.len() > max)
        {
            let _ = tx.send(Err(AppendFailure::TooLarge("refused".into())));
        } else {
            self.batches
                .lock()
                .entry((topic.to_string(), partition))
                .or_default()
                .push(payload);
            if self.hold_receipts.load(Ordering::SeqCst) {
                self.held.lock().push(tx);
            } else {
                let _ = tx.send(Ok(()));
            }
        }
        rx
    }

    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        upper: i64,
    ) -> io::Result<Vec<Bytes>> {
        if let Some(reads) = &self.scripted.lock().reads {
            return Ok(reads.clone());
        }
        self.wait_for_other_reads();
        let mut out = Vec::new();
        let mut total = 0;
        for b in self.stored(topic, partition) {
            let Ok(h) = BatchHeader::parse(&b) else {
                continue;
            };
            if h.last_offset() < offset || h.base_offset >= upper {
                continue;
            }
            if !out.is_empty() && total + b.len() > max_bytes {
                break;
            }
            total += b.len();
            out.push(b);
        }
        Ok(out)
    }

    fn batch_at_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> io::Result<Option<Bytes>> {
        if let Some(answer) = &self.scripted.lock().at_timestamp {
            return Ok(answer.clone());
        }
        Ok(self
            .stored(topic, partition)
            .into_iter()
            .find(|b| max_timestamp(b) >= timestamp))
    }

    fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> io::Result<Option<Bytes>> {
        if let Some(answer) = &self.scripted.lock().max_timestamp {
            return Ok(answer.clone());
        }
        Ok(self
            .stored(topic, partition)
            .into_iter()
            .rev()
            .max_by_key(max_timestamp))
    }

    fn compacted_end(&self, topic: &str, partition: i32) -> io::Result<i64> {
        let ends = self.compacted.lock();
        Ok(ends
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0))
    }

    /// Replaces the stored batches below `end` with `batches`, as a switch to a new generation
    /// looks to readers.
    fn write_compacted(
        &self,
        topic: &str,
        partition: i32,
        _epoch: i32,
        end: i64,
        batches: Vec<Bytes>,
        _delete_delay_ms: i64,
    ) -> io::Result<bool> {
        let key = (topic.to_string(), partition);
        let mut stored = self.batches.lock();
        let all = stored.entry(key.clone()).or_default();
        let rest: Vec<Bytes> = all
            .iter()
            .filter(|b| BatchHeader::parse(b).is_ok_and(|h| h.base_offset >= end))
            .cloned()
            .collect();
        *all = batches.into_iter().chain(rest).collect();
        self.compacted.lock().insert(key, end);
        Ok(true)
    }

    fn load_group_records(&self, shard: i32) -> io::Result<Vec<Vec<u8>>> {
        Ok(self
            .group_records
            .lock()
            .get(&shard)
            .cloned()
            .unwrap_or_default())
    }

    fn append_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()> {
        self.group_records
            .lock()
            .entry(shard)
            .or_default()
            .extend(records);
        Ok(())
    }

    fn rewrite_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()> {
        self.group_records.lock().insert(shard, records);
        Ok(())
    }

    fn release_group_records(&self, _shard: i32) -> io::Result<()> {
        Ok(())
    }
}
