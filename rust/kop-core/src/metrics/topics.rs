//! Bytes and messages in and out of one topic. The counters live on the topic itself
//! (`broker::Topic::traffic`): produce and fetch already hold it, so recording is a few
//! atomic adds per partition per request, with no lookup.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::records::batch::{BatchHeader, LOG_OVERHEAD};

#[derive(Default)]
pub struct TopicTraffic {
    pub bytes_in: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_out: AtomicU64,
}

impl TopicTraffic {
    pub fn produced(&self, bytes: usize, messages: u64) {
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
        self.messages_in.fetch_add(messages, Relaxed);
    }

    /// Records fetched: counts the records from each batch's header (one header read per
    /// batch, never per record).
    pub fn fetched(&self, records: &[u8]) {
        if records.is_empty() {
            return;
        }
        self.bytes_out.fetch_add(records.len() as u64, Relaxed);
        self.messages_out.fetch_add(records_in(records), Relaxed);
    }

    pub fn load(&self) -> [u64; 4] {
        [
            self.bytes_in.load(Relaxed),
            self.messages_in.load(Relaxed),
            self.bytes_out.load(Relaxed),
            self.messages_out.load(Relaxed),
        ]
    }
}

/// The records of the whole data batches in `records` (control batches are not messages).
pub fn records_in(mut records: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Ok(h) = BatchHeader::parse(records) {
        if h.size > records.len() {
            break; // a partial batch at the end is not handed to the client as records
        }
        if !h.is_control() {
            n += u64::try_from(h.records_count).unwrap_or(0);
        }
        match records.get(h.size.max(LOG_OVERHEAD)..) {
            Some(rest) => records = rest,
            None => break,
        }
    }
    n
}
