//! One transactional id's state and Kafka's rules for moving it (the transaction coordinator's
//! `TransactionMetadata`): pure functions over `TxnMeta`, no locks and no I/O, so every rule is
//! unit-tested on its own.
//!
//! A change is computed here, made durable by the coordinator, and only then applied: until
//! then the id is `pending` and other requests for it get CONCURRENT_TRANSACTIONS.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::KafkaError;

/// Kafka's transaction states (their names are what DescribeTransactions/ListTransactions show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
}

impl TxnStatus {
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
        }
    }

    /// The state a ListTransactions filter names, case as Kafka spells it.
    pub fn from_name(name: &str) -> Option<TxnStatus> {
        [
            TxnStatus::Empty,
            TxnStatus::Ongoing,
            TxnStatus::PrepareCommit,
            TxnStatus::PrepareAbort,
            TxnStatus::CompleteCommit,
            TxnStatus::CompleteAbort,
            TxnStatus::Dead,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// A decision is made and its markers are being written.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }

    /// No transaction is open: a new one may start.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
        )
    }
}

/// A partition of a transaction.
pub type TopicPartition = (String, i32);

/// The durable state of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last one (KIP-360 recovery; TV2 epoch exhaustion), else -1.
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump by the coordinator (a timed-out transaction's abort), else
    /// -1: a producer still on it may recover with InitProducerId (KIP-360).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    pub partitions: BTreeSet<TopicPartition>,
    /// Consumer groups whose offsets are in the transaction (AddOffsetsToTxn, TxnOffsetCommit).
    pub groups: BTreeSet<String>,
    /// When the open transaction started; -1 when none is open.
    pub start_ms: i64,
    pub update_ms: i64,
    /// The transaction being ended uses transaction version 2 (KIP-890): its markers carry the
    /// bumped epoch, which the producer continues with.
    #[serde(default)]
    pub tv2: bool,
}

/// What a request asked of a transaction that cannot be done.
pub type Refusal = KafkaError;

impl TxnMeta {
    pub fn new(id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMeta {
        TxnMeta {
            transactional_id: id.to_string(),
            producer_id,
            last_producer_id: -1,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            status: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            start_ms: -1,
            update_ms: now_ms,
            tv2: false,
        }
    }

    /// The producer's id and epoch match this transactional id's, or the error Kafka answers:
    /// INVALID_PRODUCER_ID_MAPPING for another id, PRODUCER_FENCED (or INVALID_PRODUCER_EPOCH
    /// for clients too old to know it) for an older epoch.
    pub fn check_producer(
        &self,
        producer_id: i64,
        epoch: i16,
        fenced: KafkaError,
    ) -> Result<(), Refusal> {
        if producer_id != self.producer_id {
            return Err(KafkaError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(fenced);
        }
        Ok(())
    }

    /// The state after adding partitions and/or groups to the open transaction (starting one
    /// if none is open). Ok(None): nothing to change (all already in it).
    pub fn with_added(
        &self,
        partitions: &[TopicPartition],
        group: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<TxnMeta>, Refusal> {
        match self.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                return Err(KafkaError::ConcurrentTransactions)
            }
            TxnStatus::Dead => return Err(KafkaError::InvalidTxnState),
            _ => {}
        }
        let ongoing = self.status == TxnStatus::Ongoing;
        let known = partitions.iter().all(|p| self.partitions.contains(p))
            && group.is_none_or(|g| self.groups.contains(g));
        if ongoing && known {
            return Ok(None);
        }
        let mut next = self.clone();
        if !ongoing {
            next.partitions.clear();
            next.groups.clear();
            next.start_ms = now_ms;
            next.tv2 = false;
        }
        next.status = TxnStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            next.groups.insert(g.to_string());
        }
        next.update_ms = now_ms;
        Ok(Some(next))
    }

    /// Whether the open transaction holds the partition (KIP-890 verification).
    pub fn holds(&self, partition: &TopicPartition) -> bool {
        self.status == TxnStatus::Ongoing && self.partitions.contains(partition)
    }

    /// The state after the producer's EndTxn, or Ok(None) for a retry of an end already made
    /// (answered with success, nothing written). `tv2`: EndTxn v5+, which bumps the epoch.
    pub fn with_end(
        &self,
        commit: bool,
        tv2: bool,
        now_ms: i64,
    ) -> Result<Option<TxnMeta>, Refusal> {
        let (preparing, complete) = if commit {
            (TxnStatus::PrepareCommit, TxnStatus::CompleteCommit)
        } else {
            (TxnStatus::PrepareAbort, TxnStatus::CompleteAbort)
        };
        match self.status {
            TxnStatus::Ongoing => Ok(Some(self.prepared(preparing, tv2, now_ms))),
            // TV2 producers may abort a transaction that never started (it bumps the epoch).
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
                if tv2 && !commit =>
            {
                Ok(Some(self.prepared(preparing, tv2, now_ms)))
            }
            s if s == complete => Ok(None),
            s if s == preparing => Err(KafkaError::ConcurrentTransactions),
            _ => Err(KafkaError::InvalidTxnState),
        }
    }

    /// The state after the coordinator aborts the open transaction itself (timeout, or a new
    /// producer fencing the old one): the epoch is bumped so the old producer is fenced.
    pub fn with_forced_abort(&self, now_ms: i64) -> TxnMeta {
        let mut next = self.prepared(TxnStatus::PrepareAbort, true, now_ms);
        next.last_producer_epoch = self.producer_epoch;
        next
    }

    fn prepared(&self, status: TxnStatus, bump: bool, now_ms: i64) -> TxnMeta {
        let mut next = self.clone();
        next.status = status;
        next.tv2 = bump;
        if bump {
            next.producer_epoch = self.producer_epoch.saturating_add(1);
        }
        next.update_ms = now_ms;
        next
    }

    /// The state once the markers of a prepared end are written. A TV2 producer whose epoch is
    /// now exhausted continues under `fresh_producer_id` (Kafka's rule: a new id, epoch 0).
    pub fn completed(
        &self,
        now_ms: i64,
        fresh_producer_id: impl FnOnce() -> Option<i64>,
    ) -> TxnMeta {
        let mut next = self.clone();
        next.status = match self.status {
            TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
            _ => TxnStatus::CompleteAbort,
        };
        next.partitions.clear();
        next.groups.clear();
        next.start_ms = -1;
        next.update_ms = now_ms;
        if self.producer_epoch >= i16::MAX - 1 {
            if let Some(id) = fresh_producer_id() {
                next.last_producer_id = self.producer_id;
                next.producer_id = id;
                next.producer_epoch = 0;
                next.last_producer_epoch = -1;
            }
        }
        next
    }

    /// InitProducerId for this transactional id. `expected`: the producer's current id and
    /// epoch (v3+, KIP-360), if it sent them. Returns the next state, or `Fence` when an open
    /// transaction must be aborted first (the producer retries after CONCURRENT_TRANSACTIONS).
    pub fn with_init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fenced: KafkaError,
        now_ms: i64,
        fresh_producer_id: impl FnOnce() -> Result<i64, KafkaError>,
    ) -> Result<InitStep, Refusal> {
        if let Some((id, epoch)) = expected {
            let current = id == self.producer_id
                && (epoch == self.producer_epoch || epoch == self.last_producer_epoch);
            let before_exhaustion = id == self.last_producer_id && self.producer_epoch == 0;
            if !current && !before_exhaustion {
                return Err(fenced);
            }
        }
        match self.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                Err(KafkaError::ConcurrentTransactions)
            }
            TxnStatus::Ongoing => Ok(InitStep::Fence(self.with_forced_abort(now_ms))),
            TxnStatus::Dead => Err(KafkaError::ConcurrentTransactions),
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {
                let mut next = self.clone();
                // A producer recovering from a coordinator-side bump (KIP-360) already holds
                // the right id: it gets the next epoch like everyone else.
                if self.producer_epoch >= i16::MAX - 1 {
                    next.last_producer_id = self.producer_id;
                    next.producer_id = fresh_producer_id()?;
                    next.producer_epoch = 0;
                } else {
                    next.producer_epoch = self.producer_epoch + 1;
                }
                next.last_producer_epoch = -1;
                next.timeout_ms = timeout_ms;
                next.status = TxnStatus::Empty;
                next.partitions.clear();
                next.groups.clear();
                next.start_ms = -1;
                next.tv2 = false;
                next.update_ms = now_ms;
                Ok(InitStep::Ready(next))
            }
        }
    }

    /// The open transaction has run past its timeout.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.status == TxnStatus::Ongoing
            && self.start_ms >= 0
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }
}

/// What InitProducerId does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Store this state and answer with its producer id and epoch.
    Ready(TxnMeta),
    /// Abort the open transaction with this (bumped) state first; answer
    /// CONCURRENT_TRANSACTIONS so the producer retries.
    Fence(TxnMeta),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    fn ongoing() -> TxnMeta {
        TxnMeta::new("tx", 7, 60_000, 0)
            .with_added(&[tp("a", 0)], None, 10)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn adding_starts_a_transaction_once_and_is_idempotent() {
        let t = ongoing();
        assert_eq!((t.status, t.start_ms), (TxnStatus::Ongoing, 10));
        assert_eq!(t.with_added(&[tp("a", 0)], None, 20), Ok(None));
        let more = t.with_added(&[tp("b", 1)], Some("g"), 20).unwrap().unwrap();
        assert_eq!(more.start_ms, 10);
        assert_eq!(more.partitions.len(), 2);
        assert!(more.groups.contains("g"));
        assert!(more.holds(&tp("b", 1)) && !more.holds(&tp("c", 0)));
    }

    #[test]
    fn ending_prepares_then_completes_and_retries_are_answered() {
        let t = ongoing();
        let prepared = t.with_end(true, false, 30).unwrap().unwrap();
        assert_eq!(prepared.status, TxnStatus::PrepareCommit);
        assert_eq!(prepared.producer_epoch, t.producer_epoch);
        assert_eq!(
            prepared.with_end(true, false, 31),
            Err(KafkaError::ConcurrentTransactions)
        );
        assert_eq!(
            prepared.with_end(false, false, 31),
            Err(KafkaError::InvalidTxnState)
        );
        assert_eq!(
            prepared.with_added(&[tp("a", 0)], None, 31),
            Err(KafkaError::ConcurrentTransactions)
        );
        let done = prepared.completed(40, || None);
        assert_eq!(done.status, TxnStatus::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(done.with_end(true, false, 41), Ok(None));
        assert_eq!(
            done.with_end(false, false, 41),
            Err(KafkaError::InvalidTxnState)
        );
        assert_eq!(
            TxnMeta::new("tx", 7, 1, 0).with_end(true, false, 1),
            Err(KafkaError::InvalidTxnState)
        );
    }

    #[test]
    fn transaction_version_2_bumps_the_epoch_at_every_end() {
        let t = ongoing();
        let prepared = t.with_end(false, true, 30).unwrap().unwrap();
        assert_eq!(prepared.producer_epoch, t.producer_epoch + 1);
        assert!(prepared.tv2);
        // An empty abort is allowed with TV2 (it bumps the epoch).
        let empty = TxnMeta::new("tx", 7, 1, 0);
        assert_eq!(
            empty
                .with_end(false, true, 1)
                .unwrap()
                .unwrap()
                .producer_epoch,
            1
        );
        // An exhausted epoch continues under a fresh producer id.
        let mut last = t.with_end(true, true, 30).unwrap().unwrap();
        last.producer_epoch = i16::MAX - 1;
        let done = last.completed(40, || Some(99));
        assert_eq!(
            (done.producer_id, done.producer_epoch, done.last_producer_id),
            (99, 0, 7)
        );
    }

    #[test]
    fn init_bumps_the_epoch_and_fences_an_open_transaction() {
        let t = ongoing();
        let fresh = || -> Result<i64, KafkaError> { Ok(100) };
        let step = t
            .with_init(5_000, None, KafkaError::ProducerFenced, 50, fresh)
            .unwrap();
        let InitStep::Fence(aborting) = step else {
            panic!("an open transaction is aborted first: {step:?}")
        };
        assert_eq!(aborting.status, TxnStatus::PrepareAbort);
        assert_eq!(aborting.producer_epoch, 1);
        let done = aborting.completed(60, || None);
        let InitStep::Ready(ready) = done
            .with_init(5_000, None, KafkaError::ProducerFenced, 70, fresh)
            .unwrap()
        else {
            panic!("ready after the abort")
        };
        assert_eq!(
            (ready.producer_id, ready.producer_epoch, ready.timeout_ms),
            (7, 2, 5_000)
        );
        assert_eq!(ready.status, TxnStatus::Empty);
    }

    #[test]
    fn init_with_the_producers_id_and_epoch_recovers_only_the_current_or_bumped_one() {
        let t = ongoing();
        let aborted = t.with_forced_abort(50).completed(60, || None);
        assert_eq!(aborted.producer_epoch, 1);
        let fresh = || -> Result<i64, KafkaError> { Ok(100) };
        // The producer whose transaction timed out still holds epoch 0: KIP-360 lets it in.
        let step = aborted.with_init(1, Some((7, 0)), KafkaError::ProducerFenced, 70, fresh);
        assert!(matches!(step, Ok(InitStep::Ready(ref m)) if m.producer_epoch == 2));
        assert_eq!(
            aborted.with_init(1, Some((8, 1)), KafkaError::ProducerFenced, 70, fresh),
            Err(KafkaError::ProducerFenced)
        );
        // An exhausted epoch gives a fresh producer id.
        let mut old = aborted.clone();
        old.producer_epoch = i16::MAX - 1;
        let Ok(InitStep::Ready(m)) = old.with_init(1, None, KafkaError::ProducerFenced, 70, fresh)
        else {
            panic!()
        };
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.last_producer_id),
            (100, 0, 7)
        );
    }

    #[test]
    fn producers_are_checked_against_the_current_id_and_epoch() {
        let t = ongoing();
        assert_eq!(t.check_producer(7, 0, KafkaError::ProducerFenced), Ok(()));
        assert_eq!(
            t.check_producer(8, 0, KafkaError::ProducerFenced),
            Err(KafkaError::InvalidProducerIdMapping)
        );
        assert_eq!(
            t.check_producer(7, 1, KafkaError::InvalidProducerEpoch),
            Err(KafkaError::InvalidProducerEpoch)
        );
    }

    #[test]
    fn only_an_open_transaction_expires() {
        let t = ongoing();
        assert!(!t.expired(60_010));
        assert!(t.expired(60_011));
        assert!(!TxnMeta::new("tx", 1, 1, 0).expired(1_000_000));
    }
}
