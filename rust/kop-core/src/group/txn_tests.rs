//! Transactional offset commits: staged offsets are invisible until the transaction ends,
//! commit/abort, the write order against plain commits, and the group log (replay and
//! compaction) — checked against Kafka's `OffsetMetadataManager`.

use std::sync::Arc;
use std::time::Duration;

use super::classic::{GroupState, Member};
use super::consumer::HeartbeatParams;
use super::state::Group;
use super::store::GroupRecord;
use super::{GroupConfig, GroupCoordinator, GroupStore, LogGroupStore, OffsetEntry, TxnCommitter};
use crate::error::KafkaError;
use crate::storage::FileGroupLog;

const PID: i64 = 1000;

fn entry(offset: i64) -> OffsetEntry {
    OffsetEntry {
        offset,
        leader_epoch: 2,
        metadata: format!("m{offset}"),
        commit_ms: crate::now_ms(),
    }
}

fn producer(producer_id: i64) -> TxnCommitter<'static> {
    TxnCommitter {
        producer_id,
        producer_epoch: 0,
        member_id: "",
        instance_id: None,
        generation: -1,
    }
}

/// A coordinator over a file group log in `dir` (reopened: replayed and compacted).
fn open(dir: &std::path::Path) -> (GroupCoordinator, Arc<LogGroupStore>) {
    let store = Arc::new(LogGroupStore::new(Arc::new(
        FileGroupLog::open(dir, false).unwrap(),
    )));
    let co = GroupCoordinator::open(store.clone(), GroupConfig::default()).unwrap();
    (co, store)
}

fn stage(co: &GroupCoordinator, group: &str, pid: i64, partition: i32, offset: i64) {
    let r = co
        .txn_offset_commit(
            group,
            producer(pid),
            vec![("t".into(), partition, Ok(entry(offset)))],
        )
        .unwrap();
    assert_eq!(r[0].2, Ok(()));
}

fn plain(co: &GroupCoordinator, group: &str, partition: i32, offset: i64) {
    let r = co
        .commit(
            group,
            "",
            None,
            -1,
            vec![("t".into(), partition, Ok(entry(offset)))],
        )
        .unwrap();
    assert_eq!(r[0].2, Ok(()));
}

/// (committed offset, or the error) of t-`partition`, as OffsetFetch sees it.
fn fetched(
    co: &GroupCoordinator,
    group: &str,
    partition: i32,
    stable: bool,
) -> Result<Option<i64>, KafkaError> {
    let got = co.fetch_offsets(group, Some(vec![("t".into(), vec![partition])]), stable);
    got[0].1[0].1.clone().map(|e| e.map(|e| e.offset))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn pending_offsets_are_invisible_until_commit_and_dropped_by_abort() {
    let dir = tempfile::tempdir().unwrap();
    let (co, _) = open(dir.path());
    plain(&co, "g", 0, 5);
    stage(&co, "g", PID, 0, 10);
    stage(&co, "g", PID, 1, 20);
    assert_eq!(fetched(&co, "g", 0, false), Ok(Some(5)), "last committed");
    assert_eq!(fetched(&co, "g", 1, false), Ok(None));
    assert_eq!(
        fetched(&co, "g", 0, true),
        Err(KafkaError::UnstableOffsetCommit)
    );
    assert_eq!(
        fetched(&co, "g", 1, true),
        Err(KafkaError::UnstableOffsetCommit)
    );
    assert_eq!(
        fetched(&co, "g", 2, true),
        Ok(None),
        "nothing pending there"
    );
    // Every committed partition, require_stable: pending-only partitions are not listed.
    let all = co.fetch_offsets("g", None, true);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1, vec![(0, Err(KafkaError::UnstableOffsetCommit))]);
    assert!(co.txn_open("g", PID, 0).unwrap());
    assert!(
        !co.txn_open("g", PID, 1).unwrap(),
        "another epoch is verified again"
    );

    block_on(co.complete_txn("g", PID, true)).unwrap();
    assert_eq!(fetched(&co, "g", 0, true), Ok(Some(10)));
    assert_eq!(fetched(&co, "g", 1, true), Ok(Some(20)));
    let e = co.fetch("g", Some(vec![("t".into(), vec![1])]))[0].1[0]
        .1
        .clone()
        .unwrap();
    assert_eq!((e.leader_epoch, e.metadata.as_str()), (2, "m20"));
    assert!(!co.txn_open("g", PID, 0).unwrap());
    block_on(co.complete_txn("g", PID, true)).unwrap();
    block_on(co.complete_txn("g", PID, false)).unwrap();
    assert_eq!(
        fetched(&co, "g", 0, true),
        Ok(Some(10)),
        "completion is idempotent"
    );

    stage(&co, "g", PID, 0, 30);
    block_on(co.complete_txn("g", PID, false)).unwrap();
    assert_eq!(fetched(&co, "g", 0, true), Ok(Some(10)), "aborted");
    // Unknown groups and producers: nothing to do.
    block_on(co.complete_txn("nope", PID, true)).unwrap();
    block_on(co.complete_txn("", PID, true)).unwrap();
}

#[test]
fn a_newer_producer_epoch_drops_what_an_older_one_staged() {
    let dir = tempfile::tempdir().unwrap();
    let (co, _) = open(dir.path());
    let at = |epoch: i16, partition: i32, offset: i64| {
        let who = TxnCommitter {
            producer_epoch: epoch,
            ..producer(PID)
        };
        co.txn_offset_commit("g", who, vec![("t".into(), partition, Ok(entry(offset)))])
            .map(|r| r[0].2)
    };
    assert_eq!(at(3, 0, 10), Ok(Ok(())), "a zombie's late offsets");
    assert_eq!(at(4, 1, 20), Ok(Ok(())), "its successor's");
    assert_eq!(at(3, 0, 11), Err(KafkaError::InvalidProducerEpoch));
    block_on(co.complete_txn("g", PID, true)).unwrap();
    assert_eq!(fetched(&co, "g", 0, true), Ok(None), "not committed");
    assert_eq!(fetched(&co, "g", 1, true), Ok(Some(20)));
    drop(co);
    let (co, _) = open(dir.path());
    assert_eq!(fetched(&co, "g", 0, true), Ok(None));
    assert_eq!(fetched(&co, "g", 1, true), Ok(Some(20)));
}

#[test]
fn a_plain_commit_after_the_transactional_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (co, _) = open(dir.path());
    stage(&co, "g", PID, 0, 10);
    plain(&co, "g", 0, 15);
    plain(&co, "g", 1, 1);
    stage(&co, "g", PID, 1, 2);
    block_on(co.complete_txn("g", PID, true)).unwrap();
    assert_eq!(
        fetched(&co, "g", 0, true),
        Ok(Some(15)),
        "the plain commit is newer"
    );
    assert_eq!(
        fetched(&co, "g", 1, true),
        Ok(Some(2)),
        "the staged offset is newer"
    );
}

#[test]
fn producers_are_separate_and_a_group_with_only_pending_offsets_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (co, _) = open(dir.path());
    stage(&co, "g", PID, 0, 10);
    stage(&co, "g", PID + 1, 1, 20);
    assert_eq!(co.list().len(), 1, "a group holding pending offsets exists");
    co.expire(i64::MAX / 2);
    assert_eq!(
        co.list().len(),
        1,
        "not expired while a transaction is open"
    );
    block_on(co.complete_txn("g", PID + 1, false)).unwrap();
    assert_eq!(
        fetched(&co, "g", 0, true),
        Err(KafkaError::UnstableOffsetCommit)
    );
    block_on(co.complete_txn("g", PID, false)).unwrap();
    assert!(co.list().is_empty(), "nothing left: the group is gone");
}

#[test]
fn replay_keeps_pending_offsets_pending_and_completed_ones_completed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (co, _) = open(dir.path());
        plain(&co, "g", 0, 5);
        stage(&co, "g", PID, 0, 10); // committed below
        stage(&co, "g", PID + 1, 1, 20); // aborted below
        stage(&co, "g", PID + 2, 2, 30); // left pending
        stage(&co, "g", PID + 3, 3, 40); // committed, then overtaken by a plain commit
        plain(&co, "g", 3, 45);
        block_on(co.complete_txn("g", PID, true)).unwrap();
        block_on(co.complete_txn("g", PID + 1, false)).unwrap();
        block_on(co.complete_txn("g", PID + 3, true)).unwrap();
    }
    // Reopening replays the log, then compacts it; the second reopen replays the compaction.
    for round in 0..2 {
        let (co, store) = open(dir.path());
        assert_eq!(fetched(&co, "g", 0, true), Ok(Some(10)), "round {round}");
        assert_eq!(fetched(&co, "g", 1, true), Ok(None));
        assert_eq!(
            fetched(&co, "g", 2, true),
            Err(KafkaError::UnstableOffsetCommit)
        );
        assert_eq!(fetched(&co, "g", 3, true), Ok(Some(45)));
        assert!(co.txn_open("g", PID + 2, 0).unwrap());
        let kinds: Vec<&str> = store
            .load()
            .unwrap()
            .iter()
            .map(|r| match r {
                GroupRecord::Offset(_) => "offset",
                GroupRecord::TxnOffset(_) => "txn_offset",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["offset", "txn_offset", "offset"],
            "compacted: t-0, the pending t-2, t-3"
        );
    }
    let (co, _) = open(dir.path());
    block_on(co.complete_txn("g", PID + 2, true)).unwrap();
    drop(co);
    let (co, _) = open(dir.path());
    assert_eq!(fetched(&co, "g", 2, true), Ok(Some(30)));
}

#[test]
fn compaction_keeps_the_write_order_of_pending_and_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (co, _) = open(dir.path());
        stage(&co, "g", PID, 0, 10);
        plain(&co, "g", 0, 15); // newer than the staged offset
        stage(&co, "g", PID, 1, 20);
        plain(&co, "g", 1, 1);
        stage(&co, "g", PID, 1, 21); // restaged: newer than the plain commit again
        co.compact().unwrap();
    }
    let (co, _) = open(dir.path());
    block_on(co.complete_txn("g", PID, true)).unwrap();
    assert_eq!(fetched(&co, "g", 0, true), Ok(Some(15)));
    assert_eq!(fetched(&co, "g", 1, true), Ok(Some(21)));
}

#[test]
fn offset_delete_group_delete_and_topic_delete_drop_pending_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (co, _) = open(dir.path());
    stage(&co, "g", PID, 0, 10);
    stage(&co, "g", PID, 1, 20);
    let r = co.delete_offsets("g", &[("t".into(), vec![0])]).unwrap();
    assert_eq!(r, vec![vec![Ok(())]]);
    assert_eq!(
        fetched(&co, "g", 0, true),
        Ok(None),
        "a tombstone drops pending offsets"
    );
    co.remove_topic("t");
    assert!(co.list().is_empty(), "nothing left pending");
    block_on(co.complete_txn("g", PID, true)).unwrap();
    assert_eq!(fetched(&co, "g", 1, true), Ok(None));

    stage(&co, "h", PID, 0, 10);
    co.delete_group("h").unwrap();
    block_on(co.complete_txn("h", PID, true)).unwrap();
    assert_eq!(fetched(&co, "h", 0, true), Ok(None));
    drop(co);
    let (co, _) = open(dir.path());
    assert!(co.list().is_empty());
}

#[test]
fn generation_checks_of_transactional_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (co, _) = open(dir.path());
    let with = |generation: i32, member: &'static str| TxnCommitter {
        generation,
        member_id: member,
        ..producer(PID)
    };
    let one = |group: &str, who| {
        co.txn_offset_commit(group, who, vec![("t".into(), 0, Ok(entry(1)))])
            .map(|r| r[0].2)
    };
    assert_eq!(
        one("g", with(3, "m")),
        Err(KafkaError::IllegalGeneration),
        "no group and a generation"
    );
    assert!(co.list().is_empty(), "not created");

    // A classic group at generation 3 with a static member (its state is not checked).
    let mut g = Group::new("g", 0);
    assert_eq!(g.validate_txn_commit("", None, -1), Ok(()), "simple group");
    let c = g.classic_mut().unwrap();
    c.generation = 3;
    c.state = GroupState::CompletingRebalance;
    c.static_members.insert("i".into(), "m".into());
    c.members.insert(
        "m".into(),
        Member {
            id: "m".into(),
            instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocols: Vec::new(),
            assignment: bytes::Bytes::new(),
            last_heartbeat: std::time::Instant::now(),
            join_waiter: None,
            sync_waiter: None,
        },
    );
    assert_eq!(g.validate_txn_commit("m", Some("i"), 3), Ok(()));
    assert_eq!(
        g.validate_txn_commit("m", Some("i"), 2),
        Err(KafkaError::IllegalGeneration)
    );
    assert_eq!(
        g.validate_txn_commit("x", None, 3),
        Err(KafkaError::UnknownMemberId)
    );
    assert_eq!(
        g.validate_txn_commit("x", Some("i"), 3),
        Err(KafkaError::FencedInstanceId)
    );
    assert_eq!(
        g.validate_txn_commit("m", Some("j"), 3),
        Err(KafkaError::UnknownMemberId)
    );
    assert_eq!(
        g.validate_txn_commit("", None, -1),
        Ok(()),
        "no member (v0-2): accepted in a non-empty group"
    );
    g.classic_mut().unwrap().state = GroupState::Dead;
    assert_eq!(
        g.validate_txn_commit("m", Some("i"), 3),
        Err(KafkaError::CoordinatorNotAvailable)
    );

    // A KIP-848 consumer group: the member epoch is the generation.
    let topics = |_: &str| Some((uuid::Uuid::from_u128(7), 1));
    let out = co
        .consumer_heartbeat(
            "c",
            HeartbeatParams {
                member_id: "cm".into(),
                member_epoch: 0,
                instance_id: None,
                rack_id: None,
                rebalance_timeout_ms: 30_000,
                subscribed: Some(vec!["t".into()]),
                regex: None,
                regex_matched: None,
                assignor: None,
                owned: None,
                client_id: "c".into(),
                client_host: "/h".into(),
            },
            &topics,
        )
        .unwrap();
    assert_eq!(one("c", with(out.epoch, "cm")), Ok(Ok(())));
    assert_eq!(
        one("c", with(out.epoch + 1, "cm")),
        Err(KafkaError::IllegalGeneration)
    );
    assert_eq!(
        one("c", with(out.epoch, "x")),
        Err(KafkaError::UnknownMemberId)
    );
    assert_eq!(
        one("c", with(-1, "")),
        Err(KafkaError::UnknownMemberId),
        "a group with members needs one"
    );
}
