//! The coordinator over a real state log and fake participants that record the markers.

use std::sync::atomic::AtomicI64;

use super::*;
use crate::records::control::ControlKind;
use crate::storage::{FileGroupLog, MemoryGroupLog};

/// A marker written: topic, partition, producer id, epoch, kind.
type Marker = (String, i32, i64, i16, ControlKind);

#[derive(Default)]
struct Recorder {
    next_id: AtomicI64,
    markers: Mutex<Vec<Marker>>,
    groups: Mutex<Vec<(String, i64, bool)>>,
    /// Marker writes fail while set (a partition that stepped down).
    failing: AtomicBool,
}

impl TxnParticipants for Recorder {
    fn next_producer_id(&self) -> Result<i64, KafkaError> {
        Ok(1000 + self.next_id.fetch_add(1, Ordering::SeqCst))
    }

    async fn write_markers(
        &self,
        partitions: &[TopicPartition],
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlKind,
    ) -> Vec<Result<(), KafkaError>> {
        partitions
            .iter()
            .map(|(topic, partition)| {
                if self.failing.load(Ordering::SeqCst) {
                    return Err(KafkaError::NotLeaderOrFollower);
                }
                if topic == "deleted" {
                    return Err(KafkaError::UnknownTopicOrPartition);
                }
                self.markers.lock().push((
                    topic.to_string(),
                    *partition,
                    producer_id,
                    producer_epoch,
                    kind,
                ));
                Ok(())
            })
            .collect()
    }

    async fn complete_group(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), KafkaError> {
        self.groups
            .lock()
            .push((group.to_string(), producer_id, commit));
        Ok(())
    }
}

const CONFIG: TxnConfig = TxnConfig {
    max_timeout_ms: 900_000,
    id_expiration_ms: 604_800_000,
};

fn coordinator(log: Arc<dyn GroupLog>, config: TxnConfig) -> TransactionCoordinator {
    let c = TransactionCoordinator::inactive(&[log], config);
    c.activate(0).unwrap();
    c
}

fn memory() -> TransactionCoordinator {
    coordinator(Arc::new(MemoryGroupLog), CONFIG)
}

fn end_req(producer_id: i64, epoch: i16, commit: bool, tv2: bool) -> EndRequest<'static> {
    EndRequest {
        transactional_id: "tx",
        producer_id,
        epoch,
        commit,
        tv2,
        fenced: KafkaError::ProducerFenced,
    }
}

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

async fn init(c: &TransactionCoordinator, r: &Recorder, id: &str, timeout_ms: i32) -> (i64, i16) {
    c.init_producer(r, id, timeout_ms, None, KafkaError::ProducerFenced)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_writes_commit_markers_and_completes_its_groups() {
    let (c, r) = (memory(), Recorder::default());
    let (pid, epoch) = init(&c, &r, "tx", 60_000).await;
    let parts = [tp("a", 0), tp("b", 1), tp("deleted", 0)];
    c.add("tx", pid, epoch, KafkaError::ProducerFenced, &parts, None)
        .unwrap();
    c.add("tx", pid, epoch, KafkaError::ProducerFenced, &[], Some("g"))
        .unwrap();
    let described = c.describe("tx").unwrap().unwrap();
    assert_eq!(described.status, TxnStatus::Ongoing);
    assert_eq!(described.partitions.len(), 3);

    let ended = c.end(&r, &end_req(pid, epoch, true, false)).await;
    assert_eq!(ended, Ok((pid, epoch)));
    let mut markers = r.markers.lock().clone();
    markers.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        markers,
        vec![
            ("a".into(), 0, pid, epoch, ControlKind::Commit),
            ("b".into(), 1, pid, epoch, ControlKind::Commit),
        ]
    );
    assert_eq!(*r.groups.lock(), vec![("g".to_string(), pid, true)]);
    let done = c.describe("tx").unwrap().unwrap();
    assert_eq!(done.status, TxnStatus::CompleteCommit);
    assert!(done.partitions.is_empty());
    // A retried EndTxn is answered; the opposite decision is not.
    assert!(c.end(&r, &end_req(pid, epoch, true, false)).await.is_ok());
    assert_eq!(
        c.end(&r, &end_req(pid, epoch, false, false)).await,
        Err(KafkaError::InvalidTxnState)
    );
    assert_eq!(r.markers.lock().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_fences_the_old_and_aborts_its_open_transaction() {
    let (c, r) = (memory(), Recorder::default());
    let (pid, epoch) = init(&c, &r, "tx", 60_000).await;
    c.add(
        "tx",
        pid,
        epoch,
        KafkaError::ProducerFenced,
        &[tp("a", 0)],
        None,
    )
    .unwrap();
    let retry = c
        .init_producer(&r, "tx", 60_000, None, KafkaError::ProducerFenced)
        .await;
    assert_eq!(retry, Err(KafkaError::ConcurrentTransactions));
    assert_eq!(
        *r.markers.lock(),
        vec![("a".into(), 0, pid, epoch + 1, ControlKind::Abort)]
    );
    let (pid2, epoch2) = init(&c, &r, "tx", 60_000).await;
    assert_eq!((pid2, epoch2), (pid, epoch + 2));
    // The old producer is fenced.
    assert_eq!(
        c.add(
            "tx",
            pid,
            epoch,
            KafkaError::ProducerFenced,
            &[tp("a", 0)],
            None
        ),
        Err(KafkaError::ProducerFenced)
    );
    assert_eq!(
        c.end(&r, &end_req(pid, epoch, true, false)).await,
        Err(KafkaError::ProducerFenced)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_with_a_bumped_epoch() {
    let (c, r) = (memory(), Recorder::default());
    let (pid, epoch) = init(&c, &r, "tx", 1).await;
    c.add(
        "tx",
        pid,
        epoch,
        KafkaError::ProducerFenced,
        &[tp("a", 0)],
        None,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.tick(&r).await;
    assert_eq!(
        *r.markers.lock(),
        vec![("a".into(), 0, pid, epoch + 1, ControlKind::Abort)]
    );
    assert_eq!(
        c.describe("tx").unwrap().unwrap().status,
        TxnStatus::CompleteAbort
    );
    assert_eq!(
        c.end(&r, &end_req(pid, epoch, true, false)).await,
        Err(KafkaError::ProducerFenced)
    );
    // KIP-360: the timed-out producer recovers with its id and old epoch.
    let recovered = c
        .init_producer(&r, "tx", 1, Some((pid, epoch)), KafkaError::ProducerFenced)
        .await;
    assert_eq!(recovered, Ok((pid, epoch + 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_transaction_is_completed_by_the_next_coordinator_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn GroupLog> =
        Arc::new(FileGroupLog::open_named(dir.path(), "txn.log", false).unwrap());
    let (c, r) = (coordinator(log.clone(), CONFIG), Recorder::default());
    let (pid, epoch) = init(&c, &r, "tx", 60_000).await;
    c.add(
        "tx",
        pid,
        epoch,
        KafkaError::ProducerFenced,
        &[tp("a", 0)],
        None,
    )
    .unwrap();
    // The markers cannot be written: the decision is stored all the same.
    r.failing.store(true, Ordering::SeqCst);
    let ended = c.end(&r, &end_req(pid, epoch, true, false)).await;
    assert_eq!(ended, Ok((pid, epoch)));
    assert_eq!(
        c.describe("tx").unwrap().unwrap().status,
        TxnStatus::PrepareCommit
    );
    drop(c);

    // Another coordinator (a restart, a takeover) loads the log and completes it.
    let (next, r2) = (coordinator(log, CONFIG), Recorder::default());
    assert_eq!(
        next.describe("tx").unwrap().unwrap().status,
        TxnStatus::PrepareCommit
    );
    next.tick(&r2).await;
    assert_eq!(
        *r2.markers.lock(),
        vec![("a".into(), 0, pid, epoch, ControlKind::Commit)]
    );
    assert_eq!(
        next.describe("tx").unwrap().unwrap().status,
        TxnStatus::CompleteCommit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_admits_only_what_the_open_transaction_holds_and_tv2_adds_it() {
    let (c, r) = (memory(), Recorder::default());
    let (pid, epoch) = init(&c, &r, "tx", 60_000).await;
    let a0 = TxnTarget::Partition {
        topic: "a",
        partition: 0,
    };
    assert_eq!(
        c.admit("tx", pid, epoch, a0, false).await,
        Err(KafkaError::InvalidTxnState)
    );
    c.add(
        "tx",
        pid,
        epoch,
        KafkaError::ProducerFenced,
        &[tp("a", 0)],
        None,
    )
    .unwrap();
    assert_eq!(c.admit("tx", pid, epoch, a0, false).await, Ok(()));
    assert_eq!(
        c.admit("tx", pid, epoch + 1, a0, false).await,
        Err(KafkaError::InvalidProducerEpoch)
    );
    assert_eq!(
        c.admit("other", pid, epoch, a0, false).await,
        Err(KafkaError::InvalidProducerIdMapping)
    );
    assert_eq!(
        c.verify("tx", pid, epoch, &[tp("a", 0), tp("b", 0)]),
        Ok(vec![Ok(()), Err(KafkaError::InvalidTxnState)])
    );
    // Transaction version 2: the first write adds its partition (and group).
    let b0 = TxnTarget::Partition {
        topic: "b",
        partition: 0,
    };
    assert_eq!(c.admit("tx", pid, epoch, b0, true).await, Ok(()));
    assert_eq!(
        c.admit("tx", pid, epoch, TxnTarget::Group("g"), true).await,
        Ok(())
    );
    let meta = c.describe("tx").unwrap().unwrap();
    assert!(meta.partitions.contains(&tp("b", 0)) && meta.groups.contains("g"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_version_2_ends_with_the_next_epoch_and_answers_a_retry() {
    let (c, r) = (memory(), Recorder::default());
    let (pid, epoch) = init(&c, &r, "tx", 60_000).await;
    let a0 = TxnTarget::Partition {
        topic: "a",
        partition: 0,
    };
    c.admit("tx", pid, epoch, a0, true).await.unwrap();
    let ended = c.end(&r, &end_req(pid, epoch, true, true)).await;
    assert_eq!(ended, Ok((pid, epoch + 1)));
    assert_eq!(
        *r.markers.lock(),
        vec![("a".into(), 0, pid, epoch + 1, ControlKind::Commit)]
    );
    // The producer's retry of the same EndTxn (it never saw the answer) still succeeds.
    let retried = c.end(&r, &end_req(pid, epoch, true, true)).await;
    assert_eq!(retried, Ok((pid, epoch + 1)));
    // The next transaction runs at the new epoch; the old one is fenced.
    assert_eq!(
        c.admit("tx", pid, epoch, a0, true).await,
        Err(KafkaError::InvalidProducerEpoch)
    );
    assert_eq!(c.admit("tx", pid, epoch + 1, a0, true).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transactional_ids_expire_and_others_are_listed() {
    let log: Arc<dyn GroupLog> = Arc::new(MemoryGroupLog);
    let short = TxnConfig {
        max_timeout_ms: 900_000,
        id_expiration_ms: 1,
    };
    let (c, r) = (coordinator(log, short), Recorder::default());
    init(&c, &r, "idle", 60_000).await;
    let (pid, epoch) = init(&c, &r, "busy", 60_000).await;
    c.add(
        "busy",
        pid,
        epoch,
        KafkaError::ProducerFenced,
        &[tp("a", 0)],
        None,
    )
    .unwrap();
    assert_eq!(c.list(|_| true).len(), 2);
    tokio::time::sleep(Duration::from_millis(10)).await;
    c.tick(&r).await;
    let listed: Vec<_> = c
        .list(|_| true)
        .into_iter()
        .map(|m| m.transactional_id)
        .collect();
    assert_eq!(listed, vec!["busy".to_string()]);
    assert_eq!(c.describe("idle"), Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_above_the_maximum_and_ids_elsewhere_are_refused() {
    let (c, r) = (memory(), Recorder::default());
    let too_long = c
        .init_producer(&r, "tx", 900_001, None, KafkaError::ProducerFenced)
        .await;
    assert_eq!(too_long, Err(KafkaError::InvalidTransactionTimeout));
    c.deactivate(0);
    let elsewhere = c
        .init_producer(&r, "tx", 1_000, None, KafkaError::ProducerFenced)
        .await;
    assert_eq!(elsewhere, Err(KafkaError::NotCoordinator));
}
