//! The transaction coordinator: the state of every transactional id, durable in per-shard
//! state logs, and the completion of transactions (markers on their partitions, their offsets
//! committed or dropped in their groups).
//!
//! Transactional ids are sharded like groups (`group::shard_of`: one shard on local storage, 50
//! on Pulsar) and each shard is coordinated by the instance coordinating the group shard of the
//! same number. A change to an id is decided under the shard's lock (`state.rs` has Kafka's
//! rules), made durable with no lock held — meanwhile the id is *pending* and other requests
//! for it get CONCURRENT_TRANSACTIONS — and then applied. EndTxn stores PrepareCommit /
//! PrepareAbort first (the decision), then writes the markers (`completion.rs`) and stores the
//! Complete state. A coordinator that takes a shard over completes the prepared transactions it
//! finds; `tick` aborts transactions past their timeout and forgets ids past their expiry.

mod completion;
pub mod state;
pub mod store;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

pub use completion::TxnParticipants;
pub use state::{InitStep, TopicPartition, TxnMeta, TxnStatus};
use store::{TxnRecord, TxnStore};

use crate::config::ServerConfig;
use crate::error::KafkaError;
use crate::group::{shard_of, GROUPS_TOPIC};
use crate::storage::remote::blocking as off_the_runtime;
use crate::storage::GroupLog;

/// An EndTxn request.
#[derive(Debug, Clone, Copy)]
pub struct EndRequest<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// EndTxn v5+: transaction version 2, an epoch bump at every end (KIP-890).
    pub tv2: bool,
    /// What a stale epoch is answered (PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for old clients).
    pub fenced: KafkaError,
}

/// What a transactional write or offset commit is about (KIP-890 verification).
#[derive(Debug, Clone, Copy)]
pub enum TxnTarget<'a> {
    Partition { topic: &'a str, partition: i32 },
    Group(&'a str),
}

/// The coordinator's settings (Kafka's broker properties of the same names).
#[derive(Debug, Clone, Copy)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an idle id is forgotten after this long.
    pub id_expiration_ms: i64,
}

impl TxnConfig {
    pub fn from_server(c: &ServerConfig) -> TxnConfig {
        TxnConfig {
            max_timeout_ms: c.transaction_max_timeout_ms,
            id_expiration_ms: c.transactional_id_expiration_ms,
        }
    }
}

/// One transactional id held in memory.
struct Entry {
    meta: TxnMeta,
    /// A change is being stored: other requests wait (CONCURRENT_TRANSACTIONS).
    pending: bool,
    /// Its markers are being written by someone (the EndTxn request or `tick`).
    completing: bool,
    /// Completions of this transaction that failed in a row (the log line is rate-limited).
    failed_completions: u32,
}

impl Entry {
    fn new(meta: TxnMeta, pending: bool) -> Entry {
        Entry {
            meta,
            pending,
            completing: false,
            failed_completions: 0,
        }
    }
}

struct Shard {
    store: TxnStore,
    ids: Mutex<HashMap<String, Entry>>,
    active: AtomicBool,
    /// Takes turns between taking the shard over and letting it go.
    turnover: Mutex<()>,
    /// Held across every store call: appends and compaction never interleave.
    writing: Mutex<()>,
    /// Records appended since the log was last compacted.
    appended: AtomicUsize,
}

impl Shard {
    fn append(&self, record: &TxnRecord) -> io::Result<()> {
        let _writing = self.writing.lock();
        self.store.append(record)?;
        self.appended.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}

/// What DescribeTransactions reports about one id.
pub type TxnDescription = TxnMeta;

pub struct TransactionCoordinator {
    shards: Vec<Shard>,
    pub config: TxnConfig,
}

impl TransactionCoordinator {
    /// One shard per state log, none coordinated until `activate`.
    pub fn inactive(logs: &[Arc<dyn GroupLog>], config: TxnConfig) -> TransactionCoordinator {
        TransactionCoordinator {
            shards: logs
                .iter()
                .map(|log| Shard {
                    store: TxnStore::new(log.clone()),
                    ids: Mutex::new(HashMap::new()),
                    active: AtomicBool::new(false),
                    turnover: Mutex::new(()),
                    writing: Mutex::new(()),
                    appended: AtomicUsize::new(0),
                })
                .collect(),
            config,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard (`__transaction_state` partition) of a transactional id.
    pub fn shard_of(&self, transactional_id: &str) -> usize {
        shard_of(transactional_id, self.shards.len())
    }

    pub fn is_active(&self, shard: usize) -> bool {
        self.shards.get(shard).is_some_and(Shard::is_active)
    }

    /// Starts coordinating a shard: loads its state log and compacts it. Prepared
    /// transactions found there are completed by the next `tick`. Blocks.
    pub fn activate(&self, shard: usize) -> io::Result<()> {
        let Some(s) = self.shards.get(shard) else {
            return Ok(());
        };
        let _turn = s.turnover.lock();
        if s.is_active() {
            return Ok(());
        }
        let loaded = s.store.load()?;
        s.store.rewrite(loaded.values())?;
        let prepared = loaded.values().filter(|m| m.status.is_preparing()).count();
        let count = loaded.len();
        *s.ids.lock() = loaded
            .into_iter()
            .map(|(id, meta)| (id, Entry::new(meta, false)))
            .collect();
        s.active.store(true, Ordering::Release);
        tracing::debug!(shard, ids = count, prepared, "transaction shard loaded");
        Ok(())
    }

    /// Stops coordinating a shard (another instance leads it now). Blocks.
    pub fn deactivate(&self, shard: usize) {
        let Some(s) = self.shards.get(shard) else {
            return;
        };
        let _turn = s.turnover.lock();
        let was_active = {
            let mut ids = s.ids.lock();
            ids.clear();
            s.active.swap(false, Ordering::AcqRel)
        };
        if was_active {
            if let Err(e) = s.store.release() {
                tracing::warn!(shard, error = %e, "releasing a transaction state log failed");
            }
            tracing::info!(shard, "no longer the coordinator of this transaction shard");
        }
    }

    /// Err(NOT_COORDINATOR) unless this instance coordinates the id's shard.
    fn shard_for(&self, transactional_id: &str) -> Result<(usize, &Shard), KafkaError> {
        if transactional_id.is_empty() {
            return Err(KafkaError::InvalidRequest);
        }
        let shard = self.shard_of(transactional_id);
        let s = &self.shards[shard];
        if s.is_active() {
            Ok((shard, s))
        } else {
            Err(KafkaError::NotCoordinator)
        }
    }

    /// The id's state, if known here.
    pub fn describe(&self, transactional_id: &str) -> Result<Option<TxnDescription>, KafkaError> {
        let (_, s) = self.shard_for(transactional_id)?;
        Ok(s.ids.lock().get(transactional_id).map(|e| e.meta.clone()))
    }

    /// Every id of the shards coordinated here that `keep` selects.
    pub fn list(&self, mut keep: impl FnMut(&TxnMeta) -> bool) -> Vec<TxnMeta> {
        let mut out = Vec::new();
        for s in self.shards.iter().filter(|s| s.is_active()) {
            out.extend(
                s.ids
                    .lock()
                    .values()
                    .filter(|e| keep(&e.meta))
                    .map(|e| e.meta.clone()),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// Decides a change of one id under its shard's lock (`decide` sees its current state and
    /// returns the next one, None to store nothing, and the answer), stores it with no lock
    /// held, then applies it.
    fn change<T>(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(Option<&TxnMeta>) -> Result<(Option<TxnMeta>, T), KafkaError>,
    ) -> Result<T, KafkaError> {
        let (shard, s) = self.shard_for(transactional_id)?;
        let next = {
            let mut ids = s.ids.lock();
            if !s.is_active() {
                return Err(KafkaError::NotCoordinator);
            }
            let current = ids.get(transactional_id);
            if current.is_some_and(|e| e.pending) {
                return Err(KafkaError::ConcurrentTransactions);
            }
            let (next, answer) = decide(current.map(|e| &e.meta))?;
            let Some(next) = next else {
                return Ok(answer);
            };
            match ids.get_mut(transactional_id) {
                Some(e) => e.pending = true,
                None => {
                    // A placeholder until the first state is stored: only this request sees it.
                    ids.insert(transactional_id.to_string(), Entry::new(next.clone(), true));
                }
            }
            (next, answer)
        };
        let (meta, answer) = next;
        let stored = off_the_runtime(|| s.append(&TxnRecord::Txn(meta.clone())));
        let mut ids = s.ids.lock();
        match stored {
            Ok(()) => {
                if let Some(e) = ids.get_mut(transactional_id) {
                    e.meta = meta;
                    e.pending = false;
                }
                Ok(answer)
            }
            Err(e) => {
                // Memory and the log may now disagree: let the shard go; the next leadership
                // pass loads it again from the log.
                tracing::error!(shard, error = %e, "transaction state write failed; reloading the shard");
                drop(ids);
                off_the_runtime(|| self.deactivate(shard));
                Err(KafkaError::CoordinatorNotAvailable)
            }
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use. An open
    /// transaction of an older producer is aborted first (the caller answers
    /// CONCURRENT_TRANSACTIONS and the producer retries, as with Kafka).
    pub async fn init_producer<P: TxnParticipants>(
        &self,
        participants: &P,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fenced: KafkaError,
    ) -> Result<(i64, i16), KafkaError> {
        self.shard_for(transactional_id)?;
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(KafkaError::InvalidTransactionTimeout);
        }
        let now = crate::now_ms();
        let step = self.change(transactional_id, |current| {
            let Some(meta) = current else {
                if expected.is_some_and(|(id, _)| id >= 0) {
                    // The producer thinks it has an id for this transactional id: it expired.
                    return Err(KafkaError::InvalidProducerIdMapping);
                }
                let id = participants.next_producer_id()?;
                let meta = TxnMeta::new(transactional_id, id, timeout_ms, now);
                return Ok((Some(meta.clone()), InitStep::Ready(meta)));
            };
            let step = meta.with_init(timeout_ms, expected, fenced, now, || {
                participants.next_producer_id()
            })?;
            let next = match &step {
                InitStep::Ready(m) | InitStep::Fence(m) => m.clone(),
            };
            Ok((Some(next), step))
        })?;
        match step {
            InitStep::Ready(m) => Ok((m.producer_id, m.producer_epoch)),
            InitStep::Fence(_) => {
                tracing::info!(
                    transactional_id,
                    "a new producer fences the open transaction of the old one: aborting it"
                );
                self.complete(participants, transactional_id).await;
                Err(KafkaError::ConcurrentTransactions)
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: adds partitions and/or a group to the producer's
    /// transaction (starting one).
    pub fn add(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        fenced: KafkaError,
        partitions: &[TopicPartition],
        group: Option<&str>,
    ) -> Result<(), KafkaError> {
        let now = crate::now_ms();
        self.change(transactional_id, |current| {
            let meta = current.ok_or(KafkaError::InvalidProducerIdMapping)?;
            meta.check_producer(producer_id, epoch, fenced)?;
            Ok((meta.with_added(partitions, group, now)?, ()))
        })
    }

    /// AddPartitionsToTxn v4+ `verify_only`: per partition, whether the producer's open
    /// transaction holds it (else INVALID_TXN_STATE, as Kafka answers a partition leader); a
    /// `__consumer_offsets` partition stands for the groups of that shard, as in Kafka.
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Result<(), KafkaError>>, KafkaError> {
        let (_, s) = self.shard_for(transactional_id)?;
        let ids = s.ids.lock();
        let meta = &ids
            .get(transactional_id)
            .ok_or(KafkaError::InvalidProducerIdMapping)?
            .meta;
        meta.check_producer(producer_id, epoch, KafkaError::ProducerFenced)?;
        let shards = self.shards.len();
        Ok(partitions
            .iter()
            .map(|p| {
                // A group coordinator on another instance asks about its group's shard
                // (`broker/txn_admission.rs`): held if a group of that shard is.
                let held = if p.0 == GROUPS_TOPIC {
                    meta.status == TxnStatus::Ongoing
                        && meta
                            .groups
                            .iter()
                            .any(|g| shard_of(g, shards) as i32 == p.1)
                } else {
                    meta.holds(p)
                };
                if held {
                    Ok(())
                } else {
                    Err(KafkaError::InvalidTxnState)
                }
            })
            .collect())
    }

    /// KIP-890 verification before a producer's first transactional write to a partition
    /// (Produce) or first transactional offset commit in a group (TxnOffsetCommit). With `add`
    /// (transaction version 2: Produce v12+, TxnOffsetCommit v5+) the target joins the
    /// transaction, starting one if none is open.
    pub async fn admit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        target: TxnTarget<'_>,
        add: bool,
    ) -> Result<(), KafkaError> {
        let (partitions, group) = match target {
            TxnTarget::Partition { topic, partition } => {
                (vec![(topic.to_string(), partition)], None)
            }
            TxnTarget::Group(g) => (Vec::new(), Some(g)),
        };
        if add {
            return self.add(
                transactional_id,
                producer_id,
                producer_epoch,
                KafkaError::InvalidProducerEpoch,
                &partitions,
                group,
            );
        }
        let (_, s) = self.shard_for(transactional_id)?;
        let ids = s.ids.lock();
        let entry = ids
            .get(transactional_id)
            .ok_or(KafkaError::InvalidProducerIdMapping)?;
        if entry.pending {
            return Err(KafkaError::ConcurrentTransactions);
        }
        let meta = &entry.meta;
        meta.check_producer(
            producer_id,
            producer_epoch,
            KafkaError::InvalidProducerEpoch,
        )?;
        let held = match group {
            Some(g) => meta.status == TxnStatus::Ongoing && meta.groups.contains(g),
            None => partitions.iter().all(|p| meta.holds(p)),
        };
        if held {
            Ok(())
        } else {
            Err(KafkaError::InvalidTxnState)
        }
    }

    /// EndTxn: decides the producer's open transaction, writes its markers and answers the
    /// producer id and epoch to continue with (bumped with transaction version 2).
    pub async fn end<P: TxnParticipants>(
        &self,
        participants: &P,
        req: &EndRequest<'_>,
    ) -> Result<(i64, i16), KafkaError> {
        let &EndRequest {
            transactional_id,
            producer_id,
            epoch,
            commit,
            tv2,
            fenced,
        } = req;
        let now = crate::now_ms();
        let outcome = self.change(transactional_id, |current| {
            let meta = current.ok_or(KafkaError::InvalidProducerIdMapping)?;
            // A TV2 producer retrying an end that already bumped its epoch.
            let retried = tv2
                && producer_id == meta.producer_id
                && epoch.checked_add(1) == Some(meta.producer_epoch);
            if retried {
                let done = if commit {
                    TxnStatus::CompleteCommit
                } else {
                    TxnStatus::CompleteAbort
                };
                return match meta.status {
                    s if s == done => Ok((None, (meta.producer_id, meta.producer_epoch))),
                    s if s.is_preparing() => Err(KafkaError::ConcurrentTransactions),
                    _ => Err(fenced),
                };
            }
            meta.check_producer(producer_id, epoch, fenced)?;
            let next = meta.with_end(commit, tv2, now)?;
            let answer = next
                .as_ref()
                .map_or((meta.producer_id, meta.producer_epoch), |m| {
                    (m.producer_id, m.producer_epoch)
                });
            Ok((next, answer))
        })?;
        // Markers are written before the answer, so the producer's next transaction does not
        // meet CONCURRENT_TRANSACTIONS; a failure is retried by `tick` (the decision is stored).
        self.complete(participants, transactional_id).await;
        // An exhausted epoch continues under a new producer id, known once completed.
        let (_, s) = self.shard_for(transactional_id)?;
        let ids = s.ids.lock();
        Ok(match ids.get(transactional_id) {
            Some(e) if tv2 && e.meta.status.is_idle() => {
                (e.meta.producer_id, e.meta.producer_epoch)
            }
            _ => outcome,
        })
    }

    /// Writes the markers of a prepared transaction and stores its completion; a no-op if it
    /// is not prepared or someone else is completing it. Failures are logged and left for the
    /// next `tick`.
    async fn complete<P: TxnParticipants>(&self, participants: &P, transactional_id: &str) {
        let Ok((_, s)) = self.shard_for(transactional_id) else {
            return;
        };
        let meta = {
            let mut ids = s.ids.lock();
            match ids.get_mut(transactional_id) {
                Some(e) if e.meta.status.is_preparing() && !e.pending && !e.completing => {
                    e.completing = true;
                    e.meta.clone()
                }
                _ => return,
            }
        };
        let written = completion::write_markers(participants, &meta).await;
        let stored = match written {
            Ok(()) => {
                let now = crate::now_ms();
                self.change(transactional_id, |current| match current {
                    Some(m)
                        if m.status == meta.status && m.producer_epoch == meta.producer_epoch =>
                    {
                        Ok((
                            Some(m.completed(now, || participants.next_producer_id().ok())),
                            (),
                        ))
                    }
                    _ => Ok((None, ())),
                })
            }
            Err(e) => Err(e),
        };
        let failures = match s.ids.lock().get_mut(transactional_id) {
            Some(e) => {
                e.completing = false;
                e.failed_completions = if stored.is_ok() {
                    0
                } else {
                    e.failed_completions.saturating_add(1)
                };
                e.failed_completions
            }
            None => 0,
        };
        // Retried every `TICK`: logged the first time and then about every 30 s.
        if let Err(e) = stored {
            if failures % 150 == 1 {
                tracing::warn!(
                    transactional_id,
                    error = %e,
                    attempts = failures,
                    "completing a transaction failed; retrying"
                );
            }
        }
    }

    /// Completes prepared transactions, aborts those past their timeout and forgets ids idle
    /// past `transactional_id_expiration_ms` (run every `TICK`).
    pub async fn tick<P: TxnParticipants>(&self, participants: &P) {
        let now = crate::now_ms();
        let mut prepared = Vec::new();
        let mut expired = Vec::new();
        let mut idle = Vec::new();
        for s in self.shards.iter().filter(|s| s.is_active()) {
            for (id, e) in s.ids.lock().iter() {
                if e.pending || e.completing {
                    continue;
                }
                if e.meta.status.is_preparing() {
                    prepared.push(id.clone());
                } else if e.meta.expired(now) {
                    expired.push(id.clone());
                } else if e.meta.status.is_idle()
                    && now.saturating_sub(e.meta.update_ms) > self.config.id_expiration_ms
                {
                    idle.push(id.clone());
                }
            }
        }
        for id in expired {
            let aborted = self.change(&id, |current| match current {
                Some(m) if m.expired(now) => Ok((Some(m.with_forced_abort(now)), true)),
                _ => Ok((None, false)),
            });
            if aborted == Ok(true) {
                tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
                prepared.push(id);
            }
        }
        for id in prepared {
            self.complete(participants, &id).await;
        }
        for id in idle {
            self.forget_idle(&id, now);
        }
    }

    /// Removes an id idle past its expiry (a `Removed` record first).
    fn forget_idle(&self, transactional_id: &str, now: i64) {
        let Ok((_, s)) = self.shard_for(transactional_id) else {
            return;
        };
        {
            let mut ids = s.ids.lock();
            match ids.get_mut(transactional_id) {
                Some(e)
                    if !e.pending
                        && e.meta.status.is_idle()
                        && now.saturating_sub(e.meta.update_ms) > self.config.id_expiration_ms =>
                {
                    e.pending = true;
                }
                _ => return,
            }
        }
        let record = TxnRecord::Removed {
            transactional_id: transactional_id.to_string(),
        };
        let stored = off_the_runtime(|| s.append(&record));
        let mut ids = s.ids.lock();
        match stored {
            Ok(()) => {
                ids.remove(transactional_id);
                tracing::debug!(transactional_id, "transactional id expired");
            }
            Err(e) => {
                if let Some(entry) = ids.get_mut(transactional_id) {
                    entry.pending = false;
                }
                tracing::warn!(transactional_id, error = %e, "expiring a transactional id failed");
            }
        }
    }

    /// Rewrites the state log of each shard coordinated here that has grown well past what is
    /// live (compaction; every record is a whole state, so one per id is enough).
    pub fn compact(&self) -> io::Result<()> {
        for s in self.shards.iter().filter(|s| s.is_active()) {
            let _writing = s.writing.lock();
            let live: Vec<TxnMeta> = {
                let ids = s.ids.lock();
                let appended = s.appended.load(Ordering::Relaxed);
                if appended < COMPACT_AFTER_RECORDS.max(2 * ids.len())
                    || ids.values().any(|e| e.pending)
                {
                    continue; // not worth it yet, or the next pass compacts
                }
                ids.values().map(|e| e.meta.clone()).collect()
            };
            s.store.rewrite(live.iter())?;
            s.appended.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn flush(&self) -> io::Result<()> {
        for s in self.shards.iter().filter(|s| s.is_active()) {
            s.store.flush()?;
        }
        Ok(())
    }
}

/// A state log is compacted once this many records were appended (and twice the live ids).
const COMPACT_AFTER_RECORDS: usize = 10_000;

/// How often `tick` runs.
pub const TICK: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests;
