//! The newest batches of a remote partition, kept in memory so that consumers at the head
//! never wait for a backend read.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::records::batch::BatchHeader;

/// A batch held in the cache.
struct CachedBatch {
    base_offset: i64,
    next_offset: i64,
    bytes: Bytes,
}

pub struct TailCache {
    batches: VecDeque<CachedBatch>,
    size: usize,
    /// Bytes kept at most (the newest batch is kept whatever its size).
    limit: usize,
}

impl TailCache {
    pub fn new(limit: usize) -> TailCache {
        TailCache {
            batches: VecDeque::new(),
            size: 0,
            limit,
        }
    }

    /// Bytes cached.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Adds the newest batch, evicting the oldest ones over the limit.
    pub fn push(&mut self, header: &BatchHeader, bytes: Bytes) {
        self.size += bytes.len();
        self.batches.push_back(CachedBatch {
            base_offset: header.base_offset,
            next_offset: header.last_offset() + 1,
            bytes,
        });
        while self.size > self.limit && self.batches.len() > 1 {
            self.pop_front();
        }
    }

    /// Drops the batches that end before `offset` (retention moved the log start).
    pub fn drop_before(&mut self, offset: i64) {
        while self
            .batches
            .front()
            .is_some_and(|b| b.next_offset <= offset)
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(old) = self.batches.pop_front() {
            self.size -= old.bytes.len();
        }
    }

    /// Whole batches from the one holding `offset`, about `max_bytes` of them (at least one),
    /// before `upper`; empty at the end of the log (`next_offset`). None: `offset` is older
    /// than the cache.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper: i64,
        next_offset: i64,
    ) -> Option<Bytes> {
        let cached_from = self.batches.front().map_or(next_offset, |b| b.base_offset);
        if offset < cached_from {
            return None;
        }
        let mut found = self
            .batches
            .iter()
            .skip_while(|b| b.next_offset <= offset)
            .take_while(|b| b.base_offset < upper);
        let Some(first) = found.next() else {
            return Some(Bytes::new());
        };
        let mut total = first.bytes.len();
        let mut more = Vec::new();
        for b in found {
            if total + b.bytes.len() > max_bytes {
                break;
            }
            total += b.bytes.len();
            more.push(&b.bytes);
        }
        if more.is_empty() {
            return Some(first.bytes.clone());
        }
        let mut out = BytesMut::with_capacity(total);
        out.extend_from_slice(&first.bytes);
        for b in more {
            out.extend_from_slice(b);
        }
        Some(out.freeze())
    }
}
