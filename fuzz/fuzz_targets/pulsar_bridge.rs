//! The Rust side of the Pulsar storage boundary. Pulsar messages and their properties are
//! parsed in Python (`python/kop/pulsar/format.py`, `decode.py`); what crosses into Rust is
//! what the bridge returns: documents (cluster id, topic metadata JSON, the producer-id
//! counter), a taken-over partition (epoch, offsets, batch headers, tail batches), batches read
//! back, group records (JSON) and member announcements (JSON). The tests' fake `RemoteBackend`
//! (`storage::remote::fake`) answers with fuzzer-chosen values, and the storage over it
//! consumes them as on a takeover, reads, ListOffsets by timestamp and group loading.
#![no_main]

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use kop_core::group::{GroupStore, LogGroupStore};
use kop_core::records::decode::record_points;
use kop_core::storage::remote::fake::{FakeBackend, Scripted};
use kop_core::storage::remote::{self, OpenedPartition, RemoteBackend};
use kop_core::storage::{LogSettings, Member};
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
    let bridge = Arc::new(FakeBackend::default());
    if let Some(id) = &answers.cluster_id {
        bridge.save_doc("cluster-id", Some(id.as_slice())).unwrap();
    }
    if let Some(ids) = &answers.producer_ids {
        bridge.save_doc("producer-ids", Some(ids.as_slice())).unwrap();
    }
    for (i, doc) in answers.topic_docs.iter().enumerate() {
        bridge.save_doc(&format!("topic/t{i}"), Some(doc.as_slice())).unwrap();
    }
    let bytes = |all: &[Vec<u8>]| all.iter().cloned().map(Bytes::from).collect::<Vec<_>>();
    *bridge.scripted.lock() = Scripted {
        opened: Some(OpenedPartition {
            epoch: answers.epoch,
            log_start: answers.log_start,
            next_offset: answers.next_offset,
            headers: bytes(&answers.headers),
            tail: bytes(&answers.tail),
        }),
        reads: Some(bytes(&answers.reads)),
        at_timestamp: Some(answers.at_timestamp.clone().map(Bytes::from)),
        max_timestamp: Some(answers.max_timestamp.clone().map(Bytes::from)),
    };
    *bridge.retained_from.lock() = Some(answers.retention_start);
    bridge.set_group_records(0, answers.group_records.clone());
    *bridge.members.lock() = parse_members(&answers.members);
    let storage = remote::open(bridge.clone(), usize::from(answers.tail_bytes));
    let _ = storage.metadata.cluster_id();
    let _ = storage.metadata.topics();
    let _ = storage.members.cluster_state();
    let _ = LogGroupStore::new(storage.group_logs[0].clone()).load();
    let settings = LogSettings {
        segment_bytes: 1 << 20,
        segment_ms: 1 << 30,
        retention_ms: -1,
        retention_bytes: -1,
        delete_retention: true,
        compaction: Default::default(),
    };
    let Ok(mut log) = storage.logs.open("t", 0, settings, &mut |_, _| {}) else {
        return;
    };
    for op in &answers.ops {
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
                let _ = storage.metadata.reserve_producer_ids(i64::from(*n));
            }
        }
    }
});
