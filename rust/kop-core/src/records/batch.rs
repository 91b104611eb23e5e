//! A read-only view of one Kafka RecordBatch (magic 2) over raw bytes.
//!
//! Produced batches stay the client's bytes end to end: kop validates them, reads the few header
//! fields it needs, and patches `baseOffset` and `partitionLeaderEpoch` in place. Neither field is
//! covered by the CRC-32C, so nothing is re-encoded.

use crate::error::KafkaError;

/// Size of the v2 batch header up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before the CRC-covered region: baseOffset(8) + batchLength(4).
pub const LOG_OVERHEAD: usize = 12;

const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
pub(crate) const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
pub(crate) const BASE_TIMESTAMP: usize = 27;
pub(crate) const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
pub(crate) const RECORDS_COUNT: usize = 57;

/// Attribute bits of a v2 batch.
pub const COMPRESSION_MASK: i16 = 0x07;
pub const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
pub const TRANSACTIONAL: i16 = 0x10;
pub const CONTROL: i16 = 0x20;
/// KIP-534: the batch's base timestamp is the delete horizon the log cleaner set (tombstones
/// and transaction markers in it may be removed once the horizon has passed).
pub const DELETE_HORIZON: i16 = 0x40;

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header fields of a batch that the broker needs, copied out of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total size of the batch in bytes, including the 12-byte log overhead.
    pub size: usize,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `bytes`. Needs `HEADER_LEN` bytes for magic 2; checks
    /// only that the declared length is plausible, not that the whole batch is present.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, KafkaError> {
        if bytes.len() < LOG_OVERHEAD + 5 {
            return Err(KafkaError::CorruptMessage);
        }
        let batch_length = be_i32(bytes, 8);
        let magic = bytes[MAGIC] as i8;
        if magic != 2 {
            // Kafka 4 accepts only v2 batches on produce; older formats are not stored.
            return Err(KafkaError::InvalidRecord);
        }
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 || bytes.len() < HEADER_LEN {
            return Err(KafkaError::CorruptMessage);
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, 0),
            size: LOG_OVERHEAD + batch_length as usize,
            partition_leader_epoch: be_i32(bytes, PARTITION_LEADER_EPOCH),
            magic,
            crc: be_i32(bytes, CRC) as u32,
            attributes: be_i16(bytes, ATTRIBUTES),
            last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA),
            base_timestamp: be_i64(bytes, BASE_TIMESTAMP),
            max_timestamp: be_i64(bytes, MAX_TIMESTAMP),
            producer_id: be_i64(bytes, PRODUCER_ID),
            producer_epoch: be_i16(bytes, PRODUCER_EPOCH),
            base_sequence: be_i32(bytes, BASE_SEQUENCE),
            records_count: be_i32(bytes, RECORDS_COUNT),
        })
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }

    /// The delete horizon a log cleaner set on this batch (KIP-534), if any.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record in the batch (sequences wrap at i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// CRC-32C of the region the v2 CRC covers (attributes to the end of the batch).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// Structural check of one stored batch: header, length, CRC and a record count consistent with
/// the offsets. A batch rewritten by the log cleaner keeps its offset range with fewer records
/// (none, for an idempotent producer's last batch), as on Kafka. Client batches get the full
/// check of `records::validate::validate_batch`.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, KafkaError> {
    let header = BatchHeader::parse(batch)?;
    if header.size != batch.len() {
        return Err(KafkaError::CorruptMessage);
    }
    if compute_crc(batch) != header.crc {
        return Err(KafkaError::CorruptMessage);
    }
    if header.records_count < 0
        || header.last_offset_delta < 0
        || header.last_offset_delta < header.records_count - 1
    {
        return Err(KafkaError::InvalidRecord);
    }
    if header.compression() > 4 {
        return Err(KafkaError::CorruptMessage);
    }
    Ok(header)
}

/// Writes the broker-assigned base offset and leader epoch into a batch (not CRC-covered).
pub fn patch_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// For topics with `message.timestamp.type=LogAppendTime`: stamp the batch with the broker's
/// time and recompute the CRC (the attributes and max timestamp are CRC-covered).
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    set_max_timestamp(batch, true, now_ms);
}

/// Kafka's `setMaxTimestamp`: writes the timestamp type and max timestamp, recomputing the CRC
/// only if either changes.
pub fn set_max_timestamp(batch: &mut [u8], log_append: bool, max_timestamp: i64) {
    let old = be_i16(batch, ATTRIBUTES);
    let attrs = if log_append {
        old | TIMESTAMP_TYPE_LOG_APPEND
    } else {
        old & !TIMESTAMP_TYPE_LOG_APPEND
    };
    if attrs == old && be_i64(batch, MAX_TIMESTAMP) == max_timestamp {
        return;
    }
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Splits a records blob into whole batches; a truncated tail is reported as an error.
pub fn split_batches(mut records: &[u8]) -> Result<Vec<&[u8]>, KafkaError> {
    let mut out = Vec::new();
    while !records.is_empty() {
        if records.len() < LOG_OVERHEAD {
            return Err(KafkaError::CorruptMessage);
        }
        let len = be_i32(records, 8);
        if len < 0 {
            return Err(KafkaError::CorruptMessage);
        }
        let size = LOG_OVERHEAD + len as usize;
        if records.len() < size {
            return Err(KafkaError::CorruptMessage);
        }
        out.push(&records[..size]);
        records = &records[size..];
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid uncompressed v2 batch with `n` records of `value` (test helper).
    pub fn sample_batch(n: i32, base_ts: i64, value: &[u8], producer: (i64, i16, i32)) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..n {
            let mut body = Vec::new();
            body.push(0u8); // attributes
            put_varlong(&mut body, i64::from(i)); // timestamp delta
            put_varlong(&mut body, i64::from(i)); // offset delta
            put_varlong(&mut body, -1); // null key
            put_varlong(&mut body, value.len() as i64);
            body.extend_from_slice(value);
            put_varlong(&mut body, 0); // headers
            put_varlong(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // length, patched below
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
        b.extend_from_slice(&(base_ts + i64::from(n) - 1).to_be_bytes());
        b.extend_from_slice(&producer.0.to_be_bytes());
        b.extend_from_slice(&producer.1.to_be_bytes());
        b.extend_from_slice(&producer.2.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = compute_crc(&b);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn put_varlong(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    #[test]
    fn validates_and_patches_without_breaking_crc() {
        let mut b = sample_batch(3, 1000, b"hello", (-1, -1, -1));
        let h = validate(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.max_timestamp, 1002);
        patch_offset_and_epoch(&mut b, 42, 7);
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 44);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn rejects_bad_crc_and_truncation() {
        let mut b = sample_batch(1, 0, b"x", (-1, -1, -1));
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert_eq!(validate(&b), Err(KafkaError::CorruptMessage));
        let b = sample_batch(1, 0, b"x", (-1, -1, -1));
        assert_eq!(validate(&b[..b.len() - 1]), Err(KafkaError::CorruptMessage));
        assert_eq!(
            split_batches(&b[..b.len() - 1]),
            Err(KafkaError::CorruptMessage)
        );
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut b = sample_batch(2, 5, b"v", (-1, -1, -1));
        stamp_log_append_time(&mut b, 99_999);
        let h = validate(&b).unwrap();
        assert_eq!(h.max_timestamp, 99_999);
        assert_ne!(h.attributes & TIMESTAMP_TYPE_LOG_APPEND, 0);
    }

    #[test]
    fn sequence_wraps() {
        let mut b = sample_batch(3, 0, b"v", (1, 0, i32::MAX - 1));
        patch_offset_and_epoch(&mut b, 0, 0);
        let h = validate(&b).unwrap();
        assert_eq!(h.last_sequence(), 0);
    }
}
