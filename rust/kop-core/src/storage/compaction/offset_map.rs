//! The cleaner's key map: for every key in the dirty part of a log, the offset of its latest
//! record. Kafka keeps a fixed-size map of key hashes (`log.cleaner.dedupe.buffer.size`); kop
//! keeps the keys themselves (no collisions), bounded by a byte budget: when the budget is used
//! up the clean covers only the dirty records mapped so far, the rest waits for the next clean.

use std::collections::HashMap;

/// Bookkeeping bytes counted per entry on top of the key (hash table slot, box, offset).
const ENTRY_OVERHEAD: usize = 48;

pub struct OffsetMap {
    offsets: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    budget: usize,
}

impl OffsetMap {
    pub fn new(budget: usize) -> OffsetMap {
        OffsetMap {
            offsets: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// Records `offset` as the latest of `key` (offsets arrive in increasing order).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        if let Some(latest) = self.offsets.get_mut(key) {
            *latest = offset;
            return;
        }
        self.bytes += key.len() + ENTRY_OVERHEAD;
        self.offsets.insert(key.into(), offset);
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(key).copied()
    }

    /// Whether `more` new keys of about `key_bytes` bytes in total would exceed the budget.
    pub fn would_overflow(&self, more: usize, key_bytes: usize) -> bool {
        !self.offsets.is_empty() && self.bytes + key_bytes + more * ENTRY_OVERHEAD > self.budget
    }
}
