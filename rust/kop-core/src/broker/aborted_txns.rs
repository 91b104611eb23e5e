//! The aborted-transaction index of one partition (Kafka's `TransactionIndex`): per aborted
//! transaction its producer id, its first offset and the offset of its ABORT marker. A
//! read_committed fetch returns the entries that overlap the data it returns, so the consumer
//! drops that producer's records from the first offset until it meets the marker.

use std::collections::VecDeque;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The ABORT marker's offset.
    pub last_offset: i64,
}

/// Entries in marker order (ascending `last_offset`: markers are appended in offset order).
#[derive(Debug, Default, Clone)]
pub struct AbortedTxns {
    entries: VecDeque<AbortedTxn>,
}

impl AbortedTxns {
    pub fn push(&mut self, entry: AbortedTxn) {
        self.entries.push_back(entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AbortedTxn> {
        self.entries.iter()
    }

    /// The transactions that overlap offsets `[from, to)`: aborted at or after `from`, begun
    /// before `to`. No allocation when there are none.
    pub fn overlapping(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        self.entries
            .range(start..)
            .filter(|e| e.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets the transactions wholly before the log start (retention deleted them).
    pub fn trim(&mut self, log_start: i64) {
        let gone = self.entries.partition_point(|e| e.last_offset < log_start);
        self.entries.drain(..gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
        }
    }

    #[test]
    fn overlapping_and_trimmed() {
        let mut idx = AbortedTxns::default();
        idx.push(entry(1, 0, 5));
        idx.push(entry(2, 3, 9));
        idx.push(entry(1, 10, 12));
        assert_eq!(idx.overlapping(0, 3), vec![entry(1, 0, 5)]);
        assert_eq!(idx.overlapping(6, 10), vec![entry(2, 3, 9)]);
        assert_eq!(idx.overlapping(6, 11).len(), 2);
        assert!(idx.overlapping(13, 20).is_empty());
        idx.trim(6);
        assert_eq!(idx.len(), 2);
        idx.trim(13);
        assert!(idx.is_empty());
    }
}
