//! The coordinator holds no lock across a store write: commits of groups on other shards, and
//! reads of the same shard, go on while one append is stuck; a failed append reloads the shard.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::store::LogGroupStore;
use super::{shard_of, GroupConfig, GroupCoordinator, GroupRecord, GroupStore, OffsetEntry};
use crate::error::KafkaError;
use crate::storage::MemoryGroupLog;

/// A store whose appends wait while `held` is set, and fail while `fail` is set; it keeps what
/// it was given.
#[derive(Default)]
struct GatedStore {
    held: Mutex<bool>,
    released: Condvar,
    entered: AtomicBool,
    fail: AtomicBool,
    records: Mutex<Vec<GroupRecord>>,
}

impl GatedStore {
    fn hold(&self) {
        *self.held.lock() = true;
    }
    fn release_appends(&self) {
        *self.held.lock() = false;
        self.released.notify_all();
    }
}

impl GroupStore for GatedStore {
    fn load(&self) -> io::Result<Vec<GroupRecord>> {
        Ok(self.records.lock().clone())
    }
    fn append(&self, records: &[GroupRecord]) -> io::Result<()> {
        self.entered.store(true, Ordering::SeqCst);
        let mut held = self.held.lock();
        while *held {
            self.released.wait(&mut held);
        }
        drop(held);
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("bookie unreachable"));
        }
        self.records.lock().extend_from_slice(records);
        Ok(())
    }
    fn rewrite(&self, live: &[GroupRecord]) -> io::Result<()> {
        *self.records.lock() = live.to_vec();
        Ok(())
    }
    fn garbage_hint(&self) -> u64 {
        0
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A group id of each of two shards.
fn groups_on_two_shards() -> (String, String) {
    let on = |shard: usize| {
        (0..)
            .map(|i| format!("g{i}"))
            .find(|g| shard_of(g, 2) == shard)
            .unwrap()
    };
    (on(0), on(1))
}

fn entry(offset: i64) -> OffsetEntry {
    OffsetEntry {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_ms: crate::now_ms(),
    }
}

fn commit(co: &GroupCoordinator, group: &str, offset: i64) -> Result<(), KafkaError> {
    let r = co.commit(
        group,
        "",
        None,
        -1,
        vec![("t".into(), 0, Ok(entry(offset)))],
    )?;
    r.into_iter().next().unwrap().2
}

fn committed(co: &GroupCoordinator, group: &str) -> Option<i64> {
    co.fetch(group, Some(vec![("t".into(), vec![0])]))[0].1[0]
        .1
        .as_ref()
        .map(|e| e.offset)
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_blocked_append_holds_up_neither_other_shards_nor_reads() {
    let (a, b) = groups_on_two_shards();
    let slow = Arc::new(GatedStore::default());
    let co = Arc::new(GroupCoordinator::inactive(
        vec![
            slow.clone(),
            Arc::new(LogGroupStore::new(Arc::new(MemoryGroupLog))),
        ],
        GroupConfig::default(),
    ));
    co.activate(0).unwrap();
    co.activate(1).unwrap();
    slow.hold();
    let (done_tx, done_rx) = mpsc::channel();
    let stuck = {
        let (co, a, done_tx) = (co.clone(), a.clone(), done_tx.clone());
        std::thread::spawn(move || done_tx.send(("a", commit(&co, &a, 7))).unwrap())
    };
    wait_until("the first append reaches the store", || {
        slow.entered.load(Ordering::SeqCst)
    });
    // Another group's commit, on the other shard, completes while the first is stuck.
    let other = {
        let (co, b) = (co.clone(), b.clone());
        std::thread::spawn(move || done_tx.send(("b", commit(&co, &b, 9))).unwrap())
    };
    let first = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first, ("b", Ok(())));
    other.join().unwrap();
    assert_eq!(committed(&co, &b), Some(9));
    // Reads of the stuck shard do not wait for its store either.
    assert_eq!(co.list().len(), 2);
    assert!(co.describe(&a).unwrap().is_some());
    assert!(
        done_rx.try_recv().is_err(),
        "the stuck commit is not answered yet"
    );
    slow.release_appends();
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        ("a", Ok(()))
    );
    stuck.join().unwrap();
    assert_eq!(slow.records.lock().len(), 1);
}

#[test]
fn commits_queued_behind_a_blocked_append_are_stored_together_in_order() {
    let slow = Arc::new(GatedStore::default());
    let co = Arc::new(GroupCoordinator::open(slow.clone(), GroupConfig::default()).unwrap());
    slow.hold();
    let first = {
        let co = co.clone();
        std::thread::spawn(move || commit(&co, "g", 1))
    };
    wait_until("the first append reaches the store", || {
        slow.entered.load(Ordering::SeqCst)
    });
    let later: Vec<_> = (2..=4)
        .map(|n| {
            let co = co.clone();
            std::thread::spawn(move || commit(&co, &format!("h{n}"), n))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    slow.release_appends();
    assert_eq!(first.join().unwrap(), Ok(()));
    for t in later {
        assert_eq!(t.join().unwrap(), Ok(()));
    }
    let stored: Vec<i64> = slow
        .records
        .lock()
        .iter()
        .map(|r| match r {
            GroupRecord::Offset(o) => o.offset,
            _ => -1,
        })
        .collect();
    assert_eq!(stored[0], 1);
    assert_eq!(stored.len(), 4);
}

#[test]
fn a_failed_append_is_an_error_and_the_shard_reloads_what_the_store_has() {
    let store = Arc::new(GatedStore::default());
    let co = GroupCoordinator::open(store.clone(), GroupConfig::default()).unwrap();
    assert_eq!(commit(&co, "g", 1), Ok(()));
    store.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        commit(&co, "g", 2),
        Err(KafkaError::CoordinatorNotAvailable)
    );
    // Nothing in memory claims offset 2: the shard is let go until it is loaded again.
    assert!(!co.is_active(0));
    assert_eq!(commit(&co, "g", 3), Err(KafkaError::NotCoordinator));
    store.fail.store(false, Ordering::SeqCst);
    co.activate(0).unwrap();
    assert_eq!(committed(&co, "g"), Some(1));
    assert_eq!(commit(&co, "g", 4), Ok(()));
    assert_eq!(committed(&co, "g"), Some(4));
}
