//! One partition: its log, producer state and high watermark.
//!
//! kop has one replica, so the high watermark is the log end offset. Appends hold the write
//! lock while they assign offsets and write, which is what keeps offsets dense and in order.

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::watch;

use super::producer_state::{ProducerStates, SequenceCheck};
use super::topic_config::EffectiveTopicConfig;
use crate::error::KafkaError;
use crate::records::batch::{self, BatchHeader};
use crate::records::decode::{record_points, RecordPoint};
use crate::storage::PartitionLog;

/// Leader epoch of every partition: one broker, never re-elected.
pub const LEADER_EPOCH: i32 = 0;

pub struct Partition {
    pub index: i32,
    inner: RwLock<Inner>,
    high_watermark: watch::Sender<i64>,
}

struct Inner {
    log: Box<dyn PartitionLog>,
    producers: ProducerStates,
    config: EffectiveTopicConfig,
}

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker time stamped on LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// What a fetch of one partition found.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl Partition {
    pub fn new(
        index: i32,
        log: Box<dyn PartitionLog>,
        producers: ProducerStates,
        config: EffectiveTopicConfig,
    ) -> Partition {
        let (high_watermark, _) = watch::channel(log.next_offset());
        Partition {
            index,
            inner: RwLock::new(Inner {
                log,
                producers,
                config,
            }),
            high_watermark,
        }
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.read().log.log_start_offset()
    }

    /// A receiver that changes whenever data is appended (for waiting fetches).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn set_config(&self, config: EffectiveTopicConfig) {
        let mut inner = self.inner.write();
        inner.log.set_settings(config.log);
        inner.config = config;
    }

    /// Validates and appends the client's record batches (raw bytes), assigning offsets.
    pub fn append(&self, records: &[u8], now_ms: i64, sync: bool) -> Result<Appended, KafkaError> {
        let batches = batch::split_batches(records)?;
        if batches.is_empty() {
            return Err(KafkaError::InvalidRecord);
        }
        let mut headers = Vec::with_capacity(batches.len());
        {
            let inner = self.inner.read();
            for b in &batches {
                if b.len() > inner.config.max_message_bytes as usize {
                    return Err(KafkaError::MessageTooLarge);
                }
                headers.push(batch::validate(b)?);
            }
        }
        let mut inner = self.inner.write();
        let log_append = inner.config.log_append_time;
        let mut first: Option<Appended> = None;
        for (raw, header) in batches.iter().zip(&headers) {
            if let SequenceCheck::Duplicate { base_offset } = inner.producers.check(header)? {
                first.get_or_insert(Appended {
                    base_offset,
                    log_append_time: -1,
                    log_start_offset: inner.log.log_start_offset(),
                });
                continue;
            }
            let base_offset = inner.log.next_offset();
            let mut owned = raw.to_vec();
            batch::patch_offset_and_epoch(&mut owned, base_offset, LEADER_EPOCH);
            if log_append {
                batch::stamp_log_append_time(&mut owned, now_ms);
            }
            let stored = BatchHeader {
                base_offset,
                ..*header
            };
            inner.log.append(&stored, &owned, now_ms)?;
            inner.producers.record(&stored);
            first.get_or_insert(Appended {
                base_offset,
                log_append_time: if log_append { now_ms } else { -1 },
                log_start_offset: inner.log.log_start_offset(),
            });
        }
        if sync {
            inner.log.flush()?;
        }
        let end = inner.log.next_offset();
        drop(inner);
        self.high_watermark.send_replace(end);
        Ok(first.expect("at least one batch"))
    }

    /// Whole batches from `offset` (inclusive), about `max_bytes` of them; with `max_bytes` 0
    /// only the positions (after the range check).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, KafkaError> {
        let inner = self.inner.read();
        let start = inner.log.log_start_offset();
        let end = inner.log.next_offset();
        if offset < start || offset > end {
            return Err(KafkaError::OffsetOutOfRange);
        }
        let records = if offset == end || max_bytes == 0 {
            Bytes::new()
        } else {
            inner.log.read(offset, max_bytes, end)?
        };
        Ok(ReadResult {
            records,
            high_watermark: end,
            log_start_offset: start,
        })
    }

    /// Kafka's ListOffsets by timestamp: the first record with timestamp >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<RecordPoint>, KafkaError> {
        let inner = self.inner.read();
        let Some(found) = inner.log.batch_at_timestamp(ts)? else {
            return Ok(None);
        };
        let start = inner.log.log_start_offset();
        Ok(record_points(&found)?
            .into_iter()
            .find(|p| p.timestamp >= ts && p.offset >= start))
    }

    /// The record with the largest timestamp (ListOffsets `-3`).
    pub fn max_timestamp_record(&self) -> Result<Option<RecordPoint>, KafkaError> {
        let inner = self.inner.read();
        let Some(found) = inner.log.batch_with_max_timestamp()? else {
            return Ok(None);
        };
        let points = record_points(&found)?;
        let max = points.iter().map(|p| p.timestamp).max();
        Ok(points.into_iter().find(|p| Some(p.timestamp) == max))
    }

    pub fn flush(&self) -> Result<(), KafkaError> {
        Ok(self.inner.write().log.flush()?)
    }

    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, KafkaError> {
        Ok(self.inner.write().log.enforce_retention(now_ms)?)
    }
}
