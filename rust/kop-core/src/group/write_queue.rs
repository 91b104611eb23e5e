//! The ordered writes of one group shard to its store, made off the coordinator's locks.
//!
//! An operation takes a ticket for its records while it still holds the shard's lock (so the
//! tickets follow the order of the changes in memory), releases the lock, then waits for its
//! ticket. The first waiter that finds no write under way becomes the writer: it takes every
//! queued write, appends consecutive appends as one store call (group commit: on Pulsar one
//! round trip for all the commits that queued up meanwhile), and wakes the others. Writes reach
//! the store in ticket order; a ticket is answered only once its records are stored.

use std::collections::{HashMap, VecDeque};
use std::io;

use parking_lot::{Condvar, Mutex};

use super::store::{GroupRecord, GroupStore};

/// What a ticket stands for.
pub enum Write {
    Append(Vec<GroupRecord>),
    /// Compaction: the whole log replaced with what is live.
    Rewrite(Vec<GroupRecord>),
}

/// A place in the shard's write order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "wait for the ticket: the write is durable only then"]
pub struct Ticket(u64);

#[derive(Default)]
struct State {
    /// The next ticket to hand out.
    next: u64,
    queued: VecDeque<(u64, Write)>,
    /// Whether a waiter is writing (outside the lock).
    writing: bool,
    /// Every ticket below this one is finished.
    done_below: u64,
    /// Finished tickets whose write failed, until their waiter collects the error.
    failed: HashMap<u64, String>,
}

#[derive(Default)]
pub struct WriteQueue {
    state: Mutex<State>,
    finished: Condvar,
}

impl WriteQueue {
    /// Queues a write; the caller holds the shard's lock, which orders the tickets.
    pub fn enqueue(&self, write: Write) -> Ticket {
        let mut s = self.state.lock();
        let t = s.next;
        s.next += 1;
        s.queued.push_back((t, write));
        Ticket(t)
    }

    /// Nothing queued and nothing being written.
    pub fn is_idle(&self) -> bool {
        let s = self.state.lock();
        s.done_below == s.next
    }

    /// Waits until every write queued so far is finished (their waiters see the outcomes).
    pub fn drain(&self, store: &dyn GroupStore) {
        let last = {
            let s = self.state.lock();
            if s.done_below == s.next {
                return;
            }
            s.next - 1
        };
        self.run_until(store, last);
    }

    /// Blocks until the ticket's write is stored (or failed), writing queued writes itself when
    /// no other thread is. Call it holding no coordinator lock.
    pub fn wait(&self, store: &dyn GroupStore, ticket: Ticket) -> io::Result<()> {
        self.run_until(store, ticket.0);
        match self.state.lock().failed.remove(&ticket.0) {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(()),
        }
    }

    fn run_until(&self, store: &dyn GroupStore, ticket: u64) {
        let mut s = self.state.lock();
        while s.done_below <= ticket {
            if s.writing {
                self.finished.wait(&mut s);
                continue;
            }
            if s.queued.is_empty() {
                break; // not reached: an unfinished ticket is queued or being written
            }
            s.writing = true;
            let batch: Vec<(u64, Write)> = s.queued.drain(..).collect();
            drop(s);
            let failures = write_in_order(store, &batch);
            s = self.state.lock();
            if let Some((last, _)) = batch.last() {
                s.done_below = last + 1;
            }
            s.failed.extend(failures);
            s.writing = false;
            self.finished.notify_all();
        }
    }
}

/// Writes `batch` in order, consecutive appends as one store call; the failed tickets.
fn write_in_order(store: &dyn GroupStore, batch: &[(u64, Write)]) -> Vec<(u64, String)> {
    let mut failed = Vec::new();
    let mut i = 0;
    while i < batch.len() {
        match &batch[i].1 {
            Write::Rewrite(live) => {
                if let Err(e) = store.rewrite(live) {
                    tracing::error!(error = %e, "group store compaction failed");
                    failed.push((batch[i].0, e.to_string()));
                }
                i += 1;
            }
            Write::Append(_) => {
                let mut j = i;
                let mut records = Vec::new();
                while let Some((_, Write::Append(r))) = batch.get(j) {
                    records.extend(r.iter().cloned());
                    j += 1;
                }
                if let Err(e) = store.append(&records) {
                    tracing::error!(error = %e, "group store append failed");
                    failed.extend(batch[i..j].iter().map(|(t, _)| (*t, e.to_string())));
                }
                i = j;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::group::store::OffsetRecord;

    #[derive(Default)]
    struct Recording {
        calls: Mutex<Vec<Vec<i64>>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl GroupStore for Recording {
        fn load(&self) -> io::Result<Vec<GroupRecord>> {
            Ok(Vec::new())
        }
        fn append(&self, records: &[GroupRecord]) -> io::Result<()> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(io::Error::other("bookie away"));
            }
            let offsets = records
                .iter()
                .map(|r| match r {
                    GroupRecord::Offset(o) => o.offset,
                    _ => -1,
                })
                .collect();
            self.calls.lock().push(offsets);
            Ok(())
        }
        fn rewrite(&self, _: &[GroupRecord]) -> io::Result<()> {
            self.calls.lock().push(vec![]);
            Ok(())
        }
        fn garbage_hint(&self) -> u64 {
            0
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn offset(n: i64) -> Vec<GroupRecord> {
        vec![GroupRecord::Offset(OffsetRecord {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            offset: n,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: 0,
        })]
    }

    #[test]
    fn queued_appends_go_out_together_in_ticket_order() {
        let store = Arc::new(Recording::default());
        let q = WriteQueue::default();
        let a = q.enqueue(Write::Append(offset(1)));
        let b = q.enqueue(Write::Append(offset(2)));
        let c = q.enqueue(Write::Rewrite(vec![]));
        let d = q.enqueue(Write::Append(offset(3)));
        assert!(!q.is_idle());
        q.wait(&*store, b).unwrap();
        for t in [a, c, d] {
            q.wait(&*store, t).unwrap();
        }
        assert!(q.is_idle());
        assert_eq!(*store.calls.lock(), vec![vec![1, 2], vec![], vec![3]]);
    }

    #[test]
    fn a_failed_append_fails_exactly_its_tickets() {
        let store = Arc::new(Recording::default());
        let q = WriteQueue::default();
        q.wait(&*store, q.enqueue(Write::Append(offset(1))))
            .unwrap();
        store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let bad = q.enqueue(Write::Append(offset(2)));
        q.drain(&*store);
        store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        let good = q.enqueue(Write::Append(offset(3)));
        q.wait(&*store, good).unwrap();
        assert!(q.wait(&*store, bad).is_err());
        assert_eq!(*store.calls.lock(), vec![vec![1], vec![3]]);
    }
}
