//! The Rust side of the Pulsar storage boundary. Pulsar messages and their properties are
//! parsed in Python (`python/kop/pulsar/format.py`, `decode.py`); what crosses into Rust is
//! what the bridge returns: documents (cluster id, topic metadata JSON, the producer-id
//! counter), a taken-over partition (epoch, offsets, batch headers, tail batches), batches read
//! back, group records (JSON) and member announcements (JSON). A fake `RemoteBackend` answers
//! with fuzzer-chosen values, and `RemoteStorage` and its logs consume them as on a takeover,
//! reads, ListOffsets by timestamp and group loading.
#![no_main]

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use kop_core::broker::cluster::Member;
use kop_core::records::batch::BatchHeader;
use kop_core::records::decode::record_points;
use kop_core::storage::remote::{OpenedPartition, RemoteBackend, RemoteStorage};
use kop_core::storage::{ClusterState, LogSettings, Receipt, Storage};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Read {
        offset: i64,
        max_bytes: u32,
        upper: i64,
    },
    RemoteRead {
        offset: i64,
        max_bytes: u32,
        upper: i64,
    },
    Append {
        batch: Vec<u8>,
    },
    Retention {
        retention_ms: i64,
        retention_bytes: i64,
        delete: bool,
    },
    AtTimestamp(i64),
    MaxTimestamp,
    ProducerIds(u16),
}

/// What the bridge answers (all fuzzer-chosen).
#[derive(Arbitrary, Debug)]
struct Answers {
    cluster_id: Option<Vec<u8>>,
    topic_docs: Vec<Vec<u8>>,
    producer_ids: Option<Vec<u8>>,
    epoch: i32,
    log_start: i64,
    next_offset: i64,
    headers: Vec<Vec<u8>>,
    tail: Vec<Vec<u8>>,
    tail_bytes: u16,
    reads: Vec<Vec<u8>>,
    at_timestamp: Option<Vec<u8>>,
    max_timestamp: Option<Vec<u8>>,
    retention_start: i64,
    group_records: Vec<Vec<u8>>,
    members: Vec<String>,
    ops: Vec<Op>,
}

struct FakeBridge {
    answers: Answers,
    docs: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl RemoteBackend for FakeBridge {
    fn load_doc(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.docs.lock().unwrap().get(name).cloned())
    }
    fn save_doc(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        let mut docs = self.docs.lock().unwrap();
        match data {
            Some(d) => docs.insert(name.to_string(), d.to_vec()),
            None => docs.remove(name),
        };
        Ok(())
    }
    fn save_doc_if(
        &self,
        name: &str,
        data: Option<&[u8]>,
        expected: Option<&[u8]>,
    ) -> io::Result<bool> {
        if self.docs.lock().unwrap().get(name).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        self.save_doc(name, data)?;
        Ok(true)
    }
    fn doc_names(&self, prefix: &str) -> io::Result<Vec<String>> {
        let docs = self.docs.lock().unwrap();
        Ok(docs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn create_topic(&self, _topic: &str, _partitions: i32) -> io::Result<()> {
        Ok(())
    }
    fn delete_topic(&self, _topic: &str) -> io::Result<()> {
        Ok(())
    }
    fn apply_retention(&self, _: &str, _: i32, _: i64, _: i64) -> io::Result<i64> {
        Ok(self.answers.retention_start)
    }
    fn open_partition(&self, _: &str, _: i32, _: usize) -> io::Result<OpenedPartition> {
        let a = &self.answers;
        Ok(OpenedPartition {
            epoch: a.epoch,
            log_start: a.log_start,
            next_offset: a.next_offset,
            headers: a.headers.iter().cloned().map(Bytes::from).collect(),
            tail: a.tail.iter().cloned().map(Bytes::from).collect(),
        })
    }
    fn close_partition(&self, _: &str, _: i32) -> io::Result<()> {
        Ok(())
    }
    fn join(&self, _me: &Member) -> io::Result<Vec<Member>> {
        Ok(parse_members(&self.answers.members))
    }
    fn cluster_state(&self) -> io::Result<ClusterState> {
        Ok(ClusterState {
            members: parse_members(&self.answers.members),
            metadata_version: 1,
        })
    }
    fn append(&self, _: &str, _: i32, _: i32, _: &BatchHeader, _: Bytes) -> Receipt {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(Ok(()));
        rx
    }
    fn read(&self, _: &str, _: i32, _: i64, _: usize, _: i64) -> io::Result<Vec<Bytes>> {
        Ok(self
            .answers
            .reads
            .iter()
            .cloned()
            .map(Bytes::from)
            .collect())
    }
    fn batch_at_timestamp(&self, _: &str, _: i32, _: i64) -> io::Result<Option<Bytes>> {
        Ok(self.answers.at_timestamp.clone().map(Bytes::from))
    }
    fn batch_with_max_timestamp(&self, _: &str, _: i32) -> io::Result<Option<Bytes>> {
        Ok(self.answers.max_timestamp.clone().map(Bytes::from))
    }
    fn load_group_records(&self, _shard: i32) -> io::Result<Vec<Vec<u8>>> {
        Ok(self.answers.group_records.clone())
    }
    fn append_group_records(&self, _: i32, _: Vec<Vec<u8>>) -> io::Result<()> {
        Ok(())
    }
    fn rewrite_group_records(&self, _: i32, _: Vec<Vec<u8>>) -> io::Result<()> {
        Ok(())
    }
    fn release_group_records(&self, _: i32) -> io::Result<()> {
        Ok(())
    }
}

/// What kop-py's `parse_members` does with the bridge's member announcements.
fn parse_members(docs: &[String]) -> Vec<Member> {
    docs.iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

fn seeds() -> Vec<Vec<u8>> {
    // Arbitrary's format is private to the crate: seed with the sample batches as raw bytes,
    // which decode to answers holding pieces of them.
    kop_fuzz::sample_batches()
}

fuzz_target!(init: kop_fuzz::write_seeds(seeds), |data: &[u8]| {
    let Ok(answers) = Answers::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut docs = BTreeMap::new();
    if let Some(id) = &answers.cluster_id {
        docs.insert("cluster-id".to_string(), id.clone());
    }
    if let Some(ids) = &answers.producer_ids {
        docs.insert("producer-ids".to_string(), ids.clone());
    }
    for (i, doc) in answers.topic_docs.iter().enumerate() {
        docs.insert(format!("topic/t{i}"), doc.clone());
    }
    let tail_bytes = usize::from(answers.tail_bytes);
    let bridge = std::sync::Arc::new(FakeBridge {
        answers,
        docs: Mutex::new(docs),
    });
    let storage = RemoteStorage::new(bridge.clone(), tail_bytes);
    let _ = storage.load_cluster_id();
    let _ = storage.load_topics();
    let _ = storage.cluster_state();
    if let Ok(stores) = storage.open_group_stores(false) {
        let _ = stores[0].load();
    }
    let settings = LogSettings {
        segment_bytes: 1 << 20,
        segment_ms: 1 << 30,
        retention_ms: -1,
        retention_bytes: -1,
        delete_retention: true,
    };
    let Ok(mut log) = storage.open_log("t", 0, settings, &mut |_| {}) else {
        return;
    };
    for op in &bridge.answers.ops {
        match op {
            Op::Read { offset, max_bytes, upper } => {
                let _ = log.read(*offset, *max_bytes as usize, *upper);
            }
            Op::RemoteRead { offset, max_bytes, upper } => {
                if let Some(r) = log.remote_reads() {
                    let _ = r.read(*offset, *max_bytes as usize, *upper);
                }
            }
            Op::Append { batch } => {
                // Only batches the produce path would accept reach a log.
                if let Ok(header) = kop_core::records::batch::validate(batch) {
                    let _ = log.append(&header, Bytes::from(batch.clone()), 0);
                }
            }
            Op::Retention { retention_ms, retention_bytes, delete } => {
                log.set_settings(LogSettings {
                    retention_ms: *retention_ms,
                    retention_bytes: *retention_bytes,
                    delete_retention: *delete,
                    ..settings
                });
                let _ = log.enforce_retention(0);
            }
            // ListOffsets by timestamp / max timestamp: the bridge's batch, then its records.
            Op::AtTimestamp(ts) => {
                if let Ok(Some(b)) = log.batch_at_timestamp(*ts) {
                    let _ = record_points(&b);
                }
            }
            Op::MaxTimestamp => {
                if let Ok(Some(b)) = log.batch_with_max_timestamp() {
                    let _ = record_points(&b);
                }
            }
            Op::ProducerIds(n) => {
                let _ = storage.reserve_producer_ids(i64::from(*n));
            }
        }
    }
});
