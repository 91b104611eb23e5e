//! Idempotent-producer state of one partition: per producer id, its epoch and the sequence
//! ranges of its last five batches (Kafka's `max.in.flight.requests.per.connection` bound).

use std::collections::{HashMap, VecDeque};

use crate::error::KafkaError;
use crate::records::batch::BatchHeader;

const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy)]
struct BatchSeq {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchSeq>,
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

#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Kafka's sequence rules for an idempotent batch (not yet appended).
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
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(KafkaError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            });
        }
        match entry.batches.back() {
            Some(last) if h.base_sequence != next_seq(last.last_seq) => {
                Err(KafkaError::OutOfOrderSequenceNumber)
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended batch (also used when rebuilding state from the log).
    pub fn record(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() || h.is_control() {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSeq {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
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
