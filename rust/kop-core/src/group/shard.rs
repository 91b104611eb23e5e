//! One group shard (a `__consumer_offsets` partition): its groups, its store and the ordered
//! writes to it, and taking it over (replaying the store) or letting it go.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

use super::classic::ClassicGroup;
use super::consumer::ConsumerGroup;
use super::state::{Group, GroupKind, OffsetEntry};
use super::store::{GroupRecord, GroupStore};
use super::write_queue::{Ticket, Write, WriteQueue};
pub(super) use crate::storage::remote::blocking as off_the_runtime;

pub(super) struct Shard {
    pub store: Arc<dyn GroupStore>,
    /// The shard's groups by id; empty while the shard is not coordinated here.
    pub groups: Mutex<HashMap<String, Group>>,
    /// Whether this instance coordinates the shard's groups (changed under `groups`).
    pub active: AtomicBool,
    pub writes: WriteQueue,
    /// Takes turns between taking the shard over and letting it go.
    turnover: Mutex<()>,
}

impl Shard {
    pub fn new(store: Arc<dyn GroupStore>) -> Shard {
        Shard {
            store,
            groups: Mutex::new(HashMap::new()),
            active: AtomicBool::new(false),
            writes: WriteQueue::default(),
            turnover: Mutex::new(()),
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The shard's groups, if it is coordinated here.
    pub fn lock_active(&self) -> Option<MutexGuard<'_, HashMap<String, Group>>> {
        let groups = self.groups.lock();
        self.is_active().then_some(groups)
    }

    /// Queues records (under the shard's lock, which orders them); None if there are none.
    pub fn enqueue(&self, records: Vec<GroupRecord>) -> Option<Ticket> {
        (!records.is_empty()).then(|| self.writes.enqueue(Write::Append(records)))
    }

    /// A ticket after every write queued so far (under the shard's lock): waiting for it waits
    /// for them.
    pub fn barrier(&self) -> Ticket {
        self.writes.enqueue(Write::Append(Vec::new()))
    }

    /// Waits for a write to be stored; call it holding no lock. Blocks: on a tokio worker the
    /// worker hands its other tasks off first.
    pub fn wait(&self, ticket: Ticket) -> io::Result<()> {
        off_the_runtime(|| self.writes.wait(&*self.store, ticket))
    }

    /// Starts coordinating the shard: replays its store and compacts it. Blocks.
    pub fn activate(&self) -> io::Result<usize> {
        let _turn = self.turnover.lock();
        if self.is_active() {
            return Ok(0);
        }
        // Writes of an earlier term go out first, so the replay sees them.
        self.writes.drain(&*self.store);
        let groups = replay(self.store.load()?, Instant::now(), crate::now_ms());
        self.store.rewrite(&live_records(groups.values()))?;
        let count = groups.len();
        let mut current = self.groups.lock();
        *current = groups;
        self.active.store(true, Ordering::Release);
        Ok(count)
    }

    /// Stops coordinating the shard: forgets its groups (their parked JoinGroup/SyncGroup
    /// requests fail), lets queued writes finish and lets go of the store. Blocks. False if the
    /// shard was not coordinated here.
    pub fn deactivate(&self) -> bool {
        let _turn = self.turnover.lock();
        let forgotten = {
            let mut groups = self.groups.lock();
            if !self.active.swap(false, Ordering::AcqRel) {
                return false;
            }
            std::mem::take(&mut *groups)
        };
        drop(forgotten);
        self.writes.drain(&*self.store);
        if let Err(e) = self.store.release() {
            tracing::warn!(error = %e, "releasing a group store failed");
        }
        true
    }

    /// Queues a rewrite of the store with what is live, unless writes are under way (then the
    /// next pass compacts).
    pub fn compact(&self) -> io::Result<()> {
        let ticket = {
            let Some(groups) = self.lock_active() else {
                return Ok(()); // the store is another instance's
            };
            if !self.writes.is_idle() {
                return Ok(());
            }
            let live = live_records(groups.values());
            self.writes.enqueue(Write::Rewrite(live))
        };
        self.wait(ticket)
    }
}

/// The records that rebuild `groups` (a compacted log): offsets pending in transactions stay
/// pending, completed transactions leave only their committed offsets.
fn live_records<'a>(groups: impl Iterator<Item = &'a Group>) -> Vec<GroupRecord> {
    let mut live = Vec::new();
    for g in groups {
        match &g.kind {
            GroupKind::Consumer(m) => live.push(GroupRecord::Consumer(m.snapshot(&g.id))),
            GroupKind::Streams(s) => live.push(GroupRecord::Streams {
                group: g.id.clone(),
                state: Box::new(s.clone()),
            }),
            GroupKind::Share(s) => live.push(GroupRecord::Share {
                group: g.id.clone(),
                state: Box::new(s.clone()),
            }),
            GroupKind::Classic(c) if c.has_membership() => {
                live.push(GroupRecord::Group(c.snapshot()))
            }
            GroupKind::Classic(_) => {}
        }
        live.extend(g.offset_records());
    }
    live
}

/// The groups a shard's records describe, oldest record first. A record's place in the log is
/// its group's write order (a transactional offset replaces a committed one only if newer).
fn replay(records: Vec<GroupRecord>, now: Instant, now_ms: i64) -> HashMap<String, Group> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    for (seq, r) in records.into_iter().enumerate() {
        let seq = seq as u64;
        match r {
            GroupRecord::Offset(o) => {
                let g = group_at(&mut groups, &o.group, seq, now_ms);
                let entry = OffsetEntry {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata,
                    commit_ms: o.commit_ms,
                };
                g.apply_commit(&o.topic, o.partition, entry);
            }
            GroupRecord::TxnOffset(t) => {
                let g = group_at(&mut groups, &t.group, seq, now_ms);
                let entry = OffsetEntry {
                    offset: t.offset,
                    leader_epoch: t.leader_epoch,
                    metadata: t.metadata,
                    commit_ms: t.commit_ms,
                };
                g.apply_txn_offset(
                    t.producer_id,
                    t.producer_epoch,
                    &t.topic,
                    t.partition,
                    entry,
                );
            }
            GroupRecord::TxnEnd {
                group,
                producer_id,
                commit,
            } => {
                if let Some(g) = groups.get_mut(&group) {
                    g.apply_txn_end(producer_id, commit);
                }
            }
            GroupRecord::OffsetRemoved {
                group,
                topic,
                partition,
            } => {
                if let Some(g) = groups.get_mut(&group) {
                    let key = (topic, partition);
                    g.offsets.remove(&key);
                    g.txn.committed_seq.remove(&key);
                    g.txn.drop_partition(&key.0, key.1);
                }
            }
            GroupRecord::Group(s) => {
                let g = group_at(&mut groups, &s.group, seq, now_ms);
                g.kind = GroupKind::Classic(ClassicGroup::restore(s, now));
            }
            GroupRecord::Consumer(c) => {
                let g = group_at(&mut groups, &c.group, seq, now_ms);
                let since = g.state_since_ms();
                g.kind = GroupKind::Consumer(ConsumerGroup::restore(c, now, since));
            }
            GroupRecord::Streams { group, state } => {
                let g = group_at(&mut groups, &group, seq, now_ms);
                g.kind = GroupKind::Streams(*state);
            }
            GroupRecord::Share { group, state } => {
                let g = group_at(&mut groups, &group, seq, now_ms);
                g.kind = GroupKind::Share(*state);
            }
            GroupRecord::GroupRemoved { group } => {
                groups.remove(&group);
            }
        }
    }
    groups.retain(|_, g| !g.is_unused());
    groups
}

/// The group a record at `seq` is about (created if new), its next offset write placed after it.
fn group_at<'a>(
    groups: &'a mut HashMap<String, Group>,
    id: &str,
    seq: u64,
    now_ms: i64,
) -> &'a mut Group {
    let g = groups
        .entry(id.to_string())
        .or_insert_with(|| Group::new(id, now_ms));
    g.txn.next_seq = seq;
    g
}
