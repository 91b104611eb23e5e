//! Producer state of one partition (Kafka's `ProducerStateManager` and `ProducerAppendInfo`):
//! per producer id its epoch, the sequence ranges of its last five batches (Kafka's
//! `max.in.flight.requests.per.connection` bound), its coordinator epoch and its open
//! transaction; for the partition, the open transactions by first offset (the last stable
//! offset is the first of them) and the aborted-transaction index.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::aborted_txns::{AbortedTxn, AbortedTxns};
use crate::error::KafkaError;
use crate::records::batch::BatchHeader;
use crate::records::control::{ControlKind, Marker};

const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy)]
struct BatchSeq {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchSeq>,
    /// The epoch of the coordinator that wrote this producer's last marker (-1: none yet).
    coordinator_epoch: i32,
    /// The first offset of the producer's open transaction on this partition.
    txn_first_offset: Option<i64>,
    last_timestamp: i64,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            txn_first_offset: None,
            last_timestamp: -1,
        }
    }

    /// A new epoch forgets the previous epoch's batches (their sequences start over).
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// A retry of a batch already in the log, at this base offset: acknowledge, don't append.
    Duplicate {
        base_offset: i64,
    },
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSnapshot {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// -1 when no transaction is open.
    pub current_txn_start_offset: i64,
}

#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    pub aborted: AbortedTxns,
    /// Kafka's verification guards (KIP-890): producer id → the guard of its verification in
    /// flight with the transaction coordinator. A marker for the producer removes it, so a
    /// batch verified before the transaction ended cannot open a new one after (memory only).
    verifications: HashMap<i64, u64>,
    next_guard: u64,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Kafka's rules for an idempotent or transactional batch (not yet appended): epoch,
    /// sequence, and no plain batch while the producer's transaction is open.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, KafkaError> {
        if !h.has_producer_id() {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // A new producer (or one whose state expired) must start at sequence 0.
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(KafkaError::OutOfOrderSequenceNumber)
            };
        };
        if h.producer_epoch < entry.epoch {
            return Err(KafkaError::InvalidProducerEpoch);
        }
        if h.producer_epoch == entry.epoch {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
            {
                return Ok(SequenceCheck::Duplicate {
                    base_offset: dup.base_offset,
                });
            }
        }
        // A new epoch, or an epoch a marker started (KIP-890 bumps it with every marker),
        // begins at sequence 0; otherwise the batch follows the last one.
        let in_sequence = match entry.batches.back() {
            Some(last) if h.producer_epoch == entry.epoch => {
                h.base_sequence == next_seq(last.last_seq)
            }
            _ => h.base_sequence == 0,
        };
        if !in_sequence {
            return Err(KafkaError::OutOfOrderSequenceNumber);
        }
        if entry.txn_first_offset.is_some() && !h.is_transactional() {
            return Err(KafkaError::InvalidTxnState);
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended data batch (also when rebuilding state from the log); a
    /// transactional batch opens its producer's transaction if none is open.
    pub fn record(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() || h.is_control() {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        entry.set_epoch(h.producer_epoch);
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSeq {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        entry.last_timestamp = h.max_timestamp;
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
    }

    /// Rebuilding from the log: every batch in offset order, with the marker of a control
    /// batch (None for other control batches, which change nothing).
    pub fn replay(&mut self, h: &BatchHeader, marker: Option<Marker>) {
        match (h.is_control(), marker) {
            (false, _) => self.record(h),
            (true, Some(marker)) => self.record_marker(h, marker),
            (true, None) => {}
        }
    }

    /// Kafka's checks of a marker about to be written: not for an older producer epoch, nor
    /// from an older coordinator than the producer's last marker.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), KafkaError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if producer_epoch < entry.epoch {
            return Err(KafkaError::InvalidProducerEpoch);
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(KafkaError::TransactionCoordinatorFenced);
        }
        Ok(())
    }

    /// Records an appended marker: it ends the producer's open transaction (an ABORT enters
    /// the aborted index) and sets the producer's epoch to the marker's.
    /// Starts verifying a producer's first transactional batch here: the guard its append
    /// must present (`verified`).
    pub fn begin_verification(&mut self, producer_id: i64) -> u64 {
        self.next_guard += 1;
        self.verifications.insert(producer_id, self.next_guard);
        self.next_guard
    }

    /// Whether `guard` is still the producer's verification (no marker came since); consumes
    /// it when it is.
    pub fn verified(&mut self, producer_id: i64, guard: u64) -> bool {
        let current = self.verifications.get(&producer_id) == Some(&guard);
        if current {
            self.verifications.remove(&producer_id);
        }
        current
    }

    /// Drops a verification that failed at the coordinator.
    pub fn end_verification(&mut self, producer_id: i64, guard: u64) {
        if self.verifications.get(&producer_id) == Some(&guard) {
            self.verifications.remove(&producer_id);
        }
    }

    pub fn record_marker(&mut self, h: &BatchHeader, marker: Marker) {
        self.verifications.remove(&h.producer_id);
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        if let Some(first_offset) = entry.txn_first_offset.take() {
            self.ongoing.remove(&first_offset);
            if marker.kind == ControlKind::Abort {
                self.aborted.push(AbortedTxn {
                    producer_id: h.producer_id,
                    first_offset,
                    last_offset: h.base_offset,
                });
            }
        }
        entry.set_epoch(h.producer_epoch);
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = h.max_timestamp;
    }

    /// Whether `producer_id` has a transaction open here at `producer_epoch` (its later batches
    /// need no new verification by the coordinator).
    pub fn in_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.epoch == producer_epoch && e.txn_first_offset.is_some())
    }

    /// The first offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.first_key_value().map(|(&offset, _)| offset)
    }

    /// Every producer, by id.
    pub fn snapshot(&self) -> Vec<ProducerSnapshot> {
        let mut all: Vec<_> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerSnapshot {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        all.sort_by_key(|p| p.producer_id);
        all
    }

    /// The producers with no data batch at their current epoch (their last batch is a marker),
    /// with that epoch: the log cleaner keeps that marker (Kafka keeps it for fencing).
    pub fn marker_epochs(&self) -> std::collections::HashMap<i64, i16> {
        self.producers
            .iter()
            .filter(|(_, e)| e.batches.is_empty())
            .map(|(&pid, e)| (pid, e.epoch))
            .collect()
    }

    /// The last offset of every producer id's last batch: the log cleaner keeps that batch
    /// (even emptied) so producer state rebuilt from the log stays right.
    pub fn last_offsets(&self) -> std::collections::HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(&pid, e)| Some((pid, e.batches.back()?.last_offset)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::tests::sample_batch;

    fn header(pid: i64, epoch: i16, seq: i32, n: i32, base: i64) -> BatchHeader {
        let mut b = sample_batch(n, 0, b"v", (pid, epoch, seq));
        crate::records::batch::patch_offset_and_epoch(&mut b, base, 0);
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn accepts_in_order_and_detects_duplicates_and_gaps() {
        let mut s = ProducerStates::default();
        let a = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&a), Ok(SequenceCheck::Append));
        s.record(&a);
        assert_eq!(s.check(&a), Ok(SequenceCheck::Duplicate { base_offset: 0 }));
        let gap = header(7, 0, 5, 1, 3);
        assert_eq!(s.check(&gap), Err(KafkaError::OutOfOrderSequenceNumber));
        let next = header(7, 0, 3, 1, 3);
        assert_eq!(s.check(&next), Ok(SequenceCheck::Append));
        let stale = header(7, -1, 4, 1, 4);
        assert_eq!(s.check(&stale), Err(KafkaError::InvalidProducerEpoch));
        assert_eq!(
            s.check(&header(8, 0, 1, 1, 4)),
            Err(KafkaError::OutOfOrderSequenceNumber)
        );
    }
}
