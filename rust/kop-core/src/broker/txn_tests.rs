//! Tests of a partition's transaction state: the last stable offset, the aborted-transaction
//! index, read_committed reads, producer-state rules for transactional batches and markers, and
//! the state rebuilt when a file log is reopened and after retention.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;

use super::partition::{Isolation, Partition, Produced};
use super::Broker;
use crate::config::ServerConfig;
use crate::error::KafkaError;
use crate::records::control::ControlKind;
use crate::records::encode::{encode_batch, BatchSpec, NewRecord};
use crate::storage::{Endpoint, Member};

/// A batch of `n` records of producer `pid`/`epoch` from sequence `seq`.
pub(crate) fn batch(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
    let spec = BatchSpec {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional,
        ..BatchSpec::plain(0, 0)
    };
    let records = vec![
        NewRecord {
            value: Some(b"v".to_vec()),
            ..Default::default()
        };
        n
    ];
    encode_batch(&spec, &records)
}

fn produced(txn_verified: Option<u64>) -> Produced<'static> {
    Produced {
        topic: "t",
        now_ms: crate::now_ms(),
        sync: false,
        zstd_allowed: true,
        txn_verified,
    }
}

/// Appends a verified transactional batch; its base offset.
pub(crate) fn append_txn(p: &Arc<Partition>, pid: i64, epoch: i16, seq: i32, n: usize) -> i64 {
    let b = batch(pid, epoch, seq, n, true);
    let guard = p.begin_verification(pid);
    let (done, _) = p
        .append(BytesMut::from(&b[..]), &produced(Some(guard)))
        .expect("transactional append");
    done.base_offset
}

fn append(p: &Arc<Partition>, b: Vec<u8>) -> Result<i64, KafkaError> {
    p.append(BytesMut::from(&b[..]), &produced(None))
        .map(|(done, _)| done.base_offset)
        .map_err(|e| e.error)
}

fn file_broker(dir: &std::path::Path) -> Arc<Broker> {
    let json = format!(
        r#"{{"listeners": ["PLAINTEXT://127.0.0.1:9092"], "storage": "file://{}"}}"#,
        dir.display()
    );
    let config = ServerConfig::from_json(&json).expect("config");
    let me = Member {
        node_id: config.node_id,
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }],
    };
    Arc::new(Broker::open(config, None, me).expect("file broker"))
}

fn memory_broker() -> Arc<Broker> {
    let config = ServerConfig::from_json(
        r#"{"listeners": ["PLAINTEXT://127.0.0.1:9092"], "storage": "memory://"}"#,
    )
    .expect("config");
    let me = Member {
        node_id: config.node_id,
        endpoints: Vec::new(),
    };
    Arc::new(Broker::open(config, None, me).expect("memory broker"))
}

/// (producer id, first offset, last offset) of every aborted transaction read_committed sees
/// from `offset`.
fn aborted_from(p: &Partition, offset: i64) -> Vec<(i64, i64, i64)> {
    p.read(offset, 1 << 20, Isolation::ReadCommitted)
        .unwrap()
        .aborted
        .iter()
        .map(|a| (a.producer_id, a.first_offset, a.last_offset))
        .collect()
}

/// Three transactions: pid 1 aborted (0-1, marker 2), pid 2 committed (3, marker 4), pid 3
/// open from 5; one plain record at 6.
async fn three_transactions(broker: &Broker, p: &Arc<Partition>) {
    assert_eq!(append_txn(p, 1, 0, 0, 2), 0);
    broker
        .write_txn_marker("t", 0, 1, 0, ControlKind::Abort, 0)
        .await
        .unwrap();
    assert_eq!(append_txn(p, 2, 0, 0, 1), 3);
    broker
        .write_txn_marker("t", 0, 2, 0, ControlKind::Commit, 0)
        .await
        .unwrap();
    assert_eq!(append_txn(p, 3, 0, 0, 1), 5);
    assert_eq!(append(p, batch(-1, -1, -1, 1, false)), Ok(6));
}

fn assert_three_transactions(p: &Partition) {
    assert_eq!(p.high_watermark(), 7);
    assert_eq!(p.last_stable_offset().unwrap(), 5);
    assert_eq!(aborted_from(p, 0), vec![(1, 0, 2)]);
    // Only the transactions overlapping what is returned.
    assert!(aborted_from(p, 3).is_empty());
    let committed = p.read(0, 1 << 20, Isolation::ReadCommitted).unwrap();
    assert_eq!(committed.last_stable_offset, 5);
    let uncommitted = p.read(0, 1 << 20, Isolation::ReadUncommitted).unwrap();
    assert!(uncommitted.records.len() > committed.records.len());
    assert_eq!(uncommitted.last_stable_offset, 5);
    assert!(uncommitted.aborted.is_empty());
    // Past the LSO read_committed gets nothing (yet).
    let past = p.read(5, 1 << 20, Isolation::ReadCommitted).unwrap();
    assert!(past.records.is_empty());
    let producers: Vec<_> = p
        .producers()
        .unwrap()
        .iter()
        .map(|s| (s.producer_id, s.current_txn_start_offset))
        .collect();
    assert_eq!(producers, vec![(1, -1), (2, -1), (3, 5)]);
}

#[tokio::test]
async fn the_lso_and_aborted_index_follow_transactions_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = file_broker(dir.path());
        let p = broker
            .create_topic("t", 1, BTreeMap::new())
            .unwrap()
            .partition(0)
            .unwrap();
        three_transactions(&broker, &p).await;
        assert_three_transactions(&p);
    }
    // Rebuilt from the log: every batch is scanned on open, markers with their kind.
    let broker = file_broker(dir.path());
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_three_transactions(&p);
    // Ending the open transaction makes everything stable.
    broker
        .write_txn_marker("t", 0, 3, 0, ControlKind::Commit, 0)
        .await
        .unwrap();
    assert_eq!(p.last_stable_offset().unwrap(), 8);
}

#[tokio::test]
async fn retention_trims_the_aborted_index_and_a_reopen_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let configs: BTreeMap<String, String> = [
        ("segment.bytes".to_string(), "100".to_string()),
        ("retention.ms".to_string(), "1000".to_string()),
    ]
    .into();
    {
        let broker = file_broker(dir.path());
        let p = broker
            .create_topic("t", 1, configs)
            .unwrap()
            .partition(0)
            .unwrap();
        append_txn(&p, 1, 0, 0, 1);
        broker
            .write_txn_marker("t", 0, 1, 0, ControlKind::Abort, 0)
            .await
            .unwrap();
        append_txn(&p, 2, 0, 0, 1);
        append_txn(&p, 2, 0, 1, 1);
        assert_eq!(p.log_start_offset(), 0);
        assert_eq!(aborted_from(&p, 0), vec![(1, 0, 1)]);
        assert_eq!(p.last_stable_offset().unwrap(), 2);
        // Every segment but the active one (offset 3) is past retention.
        assert!(p.enforce_retention(crate::now_ms() + 60_000).unwrap() > 0);
        assert_eq!(p.log_start_offset(), 3);
        assert!(aborted_from(&p, 3).is_empty());
        // The open transaction began before the log start: the LSO is the log start.
        assert_eq!(p.last_stable_offset().unwrap(), 3);
    }
    let broker = file_broker(dir.path());
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_start_offset(), 3);
    assert!(aborted_from(&p, 3).is_empty());
    assert_eq!(p.last_stable_offset().unwrap(), 3);
}

#[tokio::test]
async fn transactional_rules_as_kafka() {
    let broker = memory_broker();
    let p = broker
        .create_topic("t", 1, BTreeMap::new())
        .unwrap()
        .partition(0)
        .unwrap();
    // An unverified batch that would open a transaction is refused (retriable).
    let unverified = p.append(
        BytesMut::from(&batch(1, 0, 0, 1, true)[..]),
        &produced(None),
    );
    assert_eq!(
        unverified.err().map(|e| e.error),
        Some(KafkaError::ConcurrentTransactions)
    );
    append_txn(&p, 1, 0, 0, 1);
    // Within the open transaction, later batches need no verification; a plain batch of the
    // same producer is refused.
    assert_eq!(append(&p, batch(1, 0, 1, 1, true)), Ok(1));
    assert_eq!(
        append(&p, batch(1, 0, 2, 1, false)),
        Err(KafkaError::InvalidTxnState)
    );
    // A marker of an older epoch, or from an older coordinator, is refused.
    broker
        .write_txn_marker("t", 0, 1, 0, ControlKind::Commit, 5)
        .await
        .unwrap();
    assert_eq!(
        broker
            .write_txn_marker("t", 0, 1, 0, ControlKind::Commit, 4)
            .await,
        Err(KafkaError::TransactionCoordinatorFenced)
    );
    // KIP-890: the marker bumps the epoch; the next transaction starts at sequence 0 of it,
    // and the old epoch is fenced.
    broker
        .write_txn_marker("t", 0, 1, 1, ControlKind::Abort, 5)
        .await
        .unwrap();
    assert_eq!(
        broker
            .write_txn_marker("t", 0, 1, 0, ControlKind::Abort, 5)
            .await,
        Err(KafkaError::InvalidProducerEpoch)
    );
    let stale = p.append(
        BytesMut::from(&batch(1, 0, 2, 1, true)[..]),
        &produced(Some(0)),
    );
    assert_eq!(
        stale.err().map(|e| e.error),
        Some(KafkaError::InvalidProducerEpoch)
    );
    let gap = p.append(
        BytesMut::from(&batch(1, 1, 3, 1, true)[..]),
        &produced(Some(0)),
    );
    assert_eq!(
        gap.err().map(|e| e.error),
        Some(KafkaError::OutOfOrderSequenceNumber)
    );
    assert_eq!(append_txn(&p, 1, 1, 0, 1), 4);
    // Markers for unknown partitions, and for a producer with nothing open (still written).
    assert_eq!(
        broker
            .write_txn_marker("t", 1, 1, 1, ControlKind::Commit, 5)
            .await,
        Err(KafkaError::UnknownTopicOrPartition)
    );
    broker
        .write_txn_marker("t", 0, 77, 0, ControlKind::Abort, 0)
        .await
        .unwrap();
    assert_eq!(p.last_stable_offset().unwrap(), 4);
    assert_eq!(p.high_watermark(), 6);
    // A marker for the producer between its verification and its append (its transaction
    // ended meanwhile) voids the verification: the batch cannot open a new transaction.
    let guard = p.begin_verification(9);
    broker
        .write_txn_marker("t", 0, 9, 0, ControlKind::Abort, 0)
        .await
        .unwrap();
    let late = p.append(
        BytesMut::from(&batch(9, 0, 0, 1, true)[..]),
        &produced(Some(guard)),
    );
    assert_eq!(
        late.err().map(|e| e.error),
        Some(KafkaError::ConcurrentTransactions)
    );
}

/// The heads a Pulsar takeover from a checkpoint hands Rust (docs/pulsar-storage.md,
/// "Transactions"): 61-byte headers, markers whole, one batch possibly named twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_takeover_rebuilds_transactions_from_the_heads_it_is_given() {
    use crate::records::batch::patch_offset_and_epoch;
    use crate::records::control::{encode_marker, MarkerSpec};
    use crate::storage::remote::fake::FakeBackend;
    use crate::storage::remote::OpenedPartition;

    let at = |mut b: Vec<u8>, offset: i64| {
        patch_offset_and_epoch(&mut b, offset, 0);
        bytes::Bytes::from(b)
    };
    let head = |b: &bytes::Bytes| b.slice(..crate::records::batch::HEADER_LEN);
    let first = at(batch(1, 0, 0, 2, true), 0);
    let abort = bytes::Bytes::from(encode_marker(
        &MarkerSpec {
            producer_id: 1,
            producer_epoch: 0,
            kind: ControlKind::Abort,
            coordinator_epoch: 2,
            timestamp: 0,
        },
        2,
        0,
    ));
    let open = at(batch(2, 0, 0, 1, true), 3);
    let plain = at(batch(-1, -1, -1, 1, false), 4);
    let backend = Arc::new(FakeBackend::default());
    backend.scripted.lock().opened = Some(OpenedPartition {
        epoch: 1,
        log_start: 0,
        next_offset: 5,
        headers: vec![head(&first), abort.clone(), head(&open), head(&open)],
        tail: vec![first, abort, open, plain],
    });
    let storage = crate::storage::remote::open(backend, 1 << 20);
    let opener = super::StorageLog {
        logs: storage.logs,
        topic: "t".into(),
        index: 0,
    };
    let (_, producers) = super::partition::LogOpener::open(
        &opener,
        super::topic_config::effective(&Default::default(), &ServerConfig::default()).log,
    )
    .unwrap();
    assert_eq!(producers.first_unstable_offset(), Some(3));
    let aborted: Vec<_> = producers
        .aborted
        .iter()
        .map(|a| (a.producer_id, a.first_offset, a.last_offset))
        .collect();
    assert_eq!(aborted, vec![(1, 0, 2)]);
    assert!(producers.in_transaction(2, 0));
    // The marker's coordinator epoch came back too: an older coordinator is fenced.
    assert_eq!(
        producers.check_marker(1, 0, 1),
        Err(KafkaError::TransactionCoordinatorFenced)
    );
}
