//! Validation of a client's produced records, as Apache Kafka does it before appending.
//!
//! One partition's records of a Produce request (v3+) pass the checks of Kafka's
//! `ProduceRequest.validateRecords` (exactly one v2 batch), `UnifiedLog.analyzeAndValidateRecords`
//! (base offset 0, size, CRC) and `LogValidator` (offset range and record count, no control
//! batch from a client, sequence with a producer id, then every record: it parses, keys on
//! compacted topics, timestamps). Each check answers Kafka's error code, and record-level
//! failures carry Kafka's per-record errors (`batch_index` + message) and `error_message`.
//!
//! Two checks are stricter than Kafka: record offset deltas must be 0, 1, 2, ... (Kafka stores
//! other deltas of an uncompressed batch as they are, and rewrites a compressed batch; kop never
//! rewrites), and a compressed record's fields must fill exactly its declared size (Kafka's
//! in-place path skips that check). Both would otherwise store batches consumers cannot read.
//!
//! Uncompressed records are checked in place, without allocating; compressed ones are streamed
//! through `compression::reader` and never held whole.

use std::io::BufRead;

use super::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::compression::{self, DecompressError};
use crate::error::KafkaError;

/// Smallest `batchLength` Kafka reads as a batch (`LegacyRecord.RECORD_OVERHEAD_V0`).
const MIN_BATCH_LENGTH: i32 = 14;
/// Bytes up to and including the magic byte.
const HEADER_UP_TO_MAGIC: usize = 17;
/// `RecordBatch.NO_TIMESTAMP`.
const NO_TIMESTAMP: i64 = -1;

/// What a batch is checked against: the topic's configs and the request.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Topic and partition, for the messages Kafka puts in record errors.
    pub topic: &'a str,
    pub partition: i32,
    /// The broker's clock, for timestamp bounds.
    pub now_ms: i64,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` (KIP-937).
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains `compact`: every record needs a key.
    pub compacted: bool,
    /// `max.message.bytes`.
    pub max_message_bytes: i32,
    /// Produce v7+ (zstd needs v7).
    pub zstd_allowed: bool,
    /// Bound on the decompressed records of one batch.
    pub max_uncompressed_bytes: u64,
}

impl<'a> Rules<'a> {
    /// The rules of a topic with Kafka's default configs.
    pub fn kafka_defaults(topic: &'a str, partition: i32, now_ms: i64) -> Rules<'a> {
        Rules {
            topic,
            partition,
            now_ms,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compacted: false,
            max_message_bytes: 1_048_588,
            zstd_allowed: true,
            max_uncompressed_bytes: compression::MAX_UNCOMPRESSED,
        }
    }
}

/// A batch that passed: its header and what Kafka derives from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    pub header: BatchHeader,
    /// Size of the batch; bytes after it in the partition's records (an incomplete second
    /// batch) are dropped, as Kafka trims them.
    pub size: usize,
    /// The largest record timestamp (-1 if none), which Kafka writes as the batch's max
    /// timestamp on CreateTime topics.
    pub max_timestamp: i64,
}

/// One record's error: its index in the batch and Kafka's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchIndexError {
    pub batch_index: i32,
    pub message: String,
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The partition's error code.
    pub error: KafkaError,
    /// What was wrong, for logs.
    pub reason: String,
    /// Per-record errors; Kafka sends them (and `error_message`) only for record-level checks.
    pub record_errors: Vec<BatchIndexError>,
    /// The ProduceResponse's `error_message` (Kafka's is null for batch-level errors).
    pub error_message: Option<String>,
}

impl RecordError {
    /// A batch-level refusal (no per-record errors, no error message on the wire).
    pub fn batch(error: KafkaError, reason: impl Into<String>) -> RecordError {
        RecordError {
            error,
            reason: reason.into(),
            record_errors: Vec::new(),
            error_message: None,
        }
    }
}

/// A failure outside validation (not leader, storage, ...): kop's message for the code.
impl From<KafkaError> for RecordError {
    fn from(error: KafkaError) -> RecordError {
        RecordError {
            error_message: Some(error.to_string()),
            ..RecordError::batch(error, error.to_string())
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error, self.reason)
    }
}

fn invalid(reason: impl Into<String>) -> RecordError {
    RecordError::batch(KafkaError::InvalidRecord, reason)
}

fn corrupt(reason: impl Into<String>) -> RecordError {
    RecordError::batch(KafkaError::CorruptMessage, reason)
}

/// Size of the next batch in `buf`, as Kafka's `ByteBufferLogInputStream` reads it: None when
/// the bytes end before a whole batch.
fn next_batch_size(buf: &[u8]) -> Result<Option<usize>, RecordError> {
    if buf.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let length = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    if length < MIN_BATCH_LENGTH {
        return Err(corrupt(format!(
            "Record size {length} is less than the minimum record overhead ({MIN_BATCH_LENGTH})"
        )));
    }
    if buf.len() < HEADER_UP_TO_MAGIC {
        return Ok(None);
    }
    let magic = buf[HEADER_UP_TO_MAGIC - 1] as i8;
    if !(0..=2).contains(&magic) {
        return Err(corrupt(format!("Invalid magic found in record: {magic}")));
    }
    let size = LOG_OVERHEAD + length as usize;
    Ok((buf.len() >= size).then_some(size))
}

/// Validates one partition's records of a Produce request (the whole check, in Kafka's order).
pub fn validate_batch(records: &[u8], rules: &Rules) -> Result<ValidatedBatch, RecordError> {
    // ProduceRequest.validateRecords: exactly one v2 batch.
    let size = next_batch_size(records)?.ok_or_else(|| {
        invalid("Produce requests with version 3 and above must have at least one record batch per partition")
    })?;
    let batch = &records[..size];
    if batch[HEADER_UP_TO_MAGIC - 1] != 2 {
        return Err(invalid(
            "Produce requests with version 3 and above are only allowed to contain record batches with magic version 2",
        ));
    }
    let attributes = i16::from_be_bytes([batch[21], batch[22]]);
    let codec = attributes & batch::COMPRESSION_MASK;
    if codec == compression::ZSTD && !rules.zstd_allowed {
        return Err(RecordError::batch(
            KafkaError::UnsupportedCompressionType,
            "Produce requests with version below 7 are not allowed to use ZStandard compression",
        ));
    }
    if next_batch_size(&records[size..])?.is_some() {
        return Err(invalid(
            "Produce requests are only allowed to contain exactly one record batch per partition",
        ));
    }
    // UnifiedLog.analyzeAndValidateRecords: base offset, size, CRC.
    let base_offset = i64::from_be_bytes(batch[..8].try_into().expect("8 bytes"));
    if base_offset != 0 {
        return Err(invalid(format!(
            "The baseOffset of the record batch should be 0, but it is {base_offset}"
        )));
    }
    if size > rules.max_message_bytes.max(0) as usize {
        return Err(RecordError::batch(
            KafkaError::MessageTooLarge,
            format!(
                "The record batch size is {size} bytes which exceeds the maximum configured value of {}",
                rules.max_message_bytes
            ),
        ));
    }
    if size < HEADER_LEN {
        return Err(corrupt(format!(
            "Record batch is corrupt (the size {size} is smaller than the minimum allowed overhead {HEADER_LEN})"
        )));
    }
    let header = BatchHeader::parse(batch).map_err(|e| corrupt(e.to_string()))?;
    let computed = batch::compute_crc(batch);
    if computed != header.crc {
        return Err(corrupt(format!(
            "Record is corrupt (stored crc = {}, computed crc = {computed})",
            header.crc
        )));
    }
    if codec > compression::ZSTD {
        return Err(RecordError::batch(
            KafkaError::UnknownServerError,
            format!("Unknown compression type id: {codec}"),
        ));
    }
    // LogValidator.validateBatch.
    let count_from_offsets = i64::from(header.last_offset_delta) + 1;
    if count_from_offsets <= 0 {
        return Err(invalid(format!(
            "Batch has an invalid offset range: [0, {}]",
            header.last_offset_delta
        )));
    }
    if header.records_count <= 0 {
        return Err(invalid(format!(
            "Invalid reported count for record batch: {}",
            header.records_count
        )));
    }
    if count_from_offsets != i64::from(header.records_count) {
        return Err(invalid(format!(
            "Inconsistent batch offset range [0, {}] and count of records {}",
            header.last_offset_delta, header.records_count
        )));
    }
    if header.is_control() {
        return Err(invalid("Clients are not allowed to write control records"));
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(invalid(format!(
            "Invalid sequence number {} in record batch with producerId {}",
            header.base_sequence, header.producer_id
        )));
    }
    // Every record.
    let body = &batch[HEADER_LEN..];
    let max_timestamp = if codec == compression::NONE {
        check_records(&mut SliceSource { data: body, pos: 0 }, &header, rules)?
    } else {
        let reader = compression::reader(codec, body, rules.max_uncompressed_bytes)
            .map_err(decompress_error)?;
        check_records(&mut StreamSource { reader }, &header, rules)?
    };
    Ok(ValidatedBatch {
        header,
        size,
        max_timestamp,
    })
}

/// Kafka 4.4 answers UNKNOWN_SERVER_ERROR when a payload does not decompress (its
/// KafkaException escapes the validator); kop's bound on the decompressed size is its own
/// check, answered INVALID_RECORD.
fn decompress_error(err: DecompressError) -> RecordError {
    match err {
        DecompressError::UnknownCodec(c) => RecordError::batch(
            KafkaError::UnknownServerError,
            format!("Unknown compression type id: {c}"),
        ),
        DecompressError::Corrupt(why) => RecordError::batch(
            KafkaError::UnknownServerError,
            format!("Failed to decompress record stream: {why}"),
        ),
        DecompressError::Exhausted => {
            invalid("The records decompress to more than kop accepts in one batch")
        }
    }
}

/// Why reading records stopped.
enum Stop {
    /// The records do not parse (Kafka: InvalidRecordException).
    Malformed(&'static str),
    /// The compressed payload does not decompress, or exceeds the bound.
    Decompress(DecompressError),
}

impl From<Stop> for RecordError {
    fn from(stop: Stop) -> RecordError {
        match stop {
            Stop::Malformed(why) => invalid(why),
            Stop::Decompress(e) => decompress_error(e),
        }
    }
}

/// The bytes records are read from: the batch itself, or a decompressing reader.
trait Source {
    /// The next byte, or None at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, Stop>;
    /// Skips `n` bytes; false if the records end first.
    fn skip(&mut self, n: usize) -> Result<bool, Stop>;
}

struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, Stop> {
        let b = self.data.get(self.pos).copied();
        self.pos += usize::from(b.is_some());
        Ok(b)
    }

    #[inline]
    fn skip(&mut self, n: usize) -> Result<bool, Stop> {
        if self.data.len() - self.pos < n {
            return Ok(false);
        }
        self.pos += n;
        Ok(true)
    }
}

struct StreamSource<R> {
    reader: R,
}

impl<R: BufRead> StreamSource<R> {
    fn fill(&mut self) -> Result<&[u8], Stop> {
        self.reader
            .fill_buf()
            .map_err(|e| Stop::Decompress(compression::classify(&e)))
    }
}

impl<R: BufRead> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<Option<u8>, Stop> {
        let b = self.fill()?.first().copied();
        if b.is_some() {
            self.reader.consume(1);
        }
        Ok(b)
    }

    fn skip(&mut self, mut n: usize) -> Result<bool, Stop> {
        while n > 0 {
            let available = self.fill()?.len();
            if available == 0 {
                return Ok(false);
            }
            let step = available.min(n);
            self.reader.consume(step);
            n -= step;
        }
        Ok(true)
    }
}

/// Reads one record's fields, never past its declared size.
struct Body<'s, S> {
    src: &'s mut S,
    left: i64,
}

const EOF: Stop = Stop::Malformed("Incorrect declared batch size, premature EOF reached");
const OVERRUN: Stop =
    Stop::Malformed("Invalid record size: the record's fields do not fit its declared size");

impl<S: Source> Body<'_, S> {
    #[inline]
    fn byte(&mut self) -> Result<u8, Stop> {
        if self.left <= 0 {
            return Err(OVERRUN);
        }
        self.left -= 1;
        self.src.byte()?.ok_or(EOF)
    }

    #[inline]
    fn skip(&mut self, n: i32) -> Result<(), Stop> {
        if n <= 0 {
            return Ok(());
        }
        if i64::from(n) > self.left {
            return Err(OVERRUN);
        }
        self.left -= i64::from(n);
        if self.src.skip(n as usize)? {
            Ok(())
        } else {
            Err(EOF)
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<i32, Stop> {
        read_varint(|| self.byte())
    }

    #[inline]
    fn varlong(&mut self) -> Result<i64, Stop> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if b & 0x80 == 0 {
                value |= u64::from(b) << shift;
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
            value |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if shift > 63 {
                return Err(Stop::Malformed("Varlong is too long"));
            }
        }
    }
}

/// Kafka's zig-zag int32 varint: at most 5 bytes, excess high bits of the last one dropped.
#[inline]
fn read_varint(mut next: impl FnMut() -> Result<u8, Stop>) -> Result<i32, Stop> {
    let mut value: u32 = 0;
    let mut shift = 0u32;
    loop {
        let b = next()?;
        if b & 0x80 == 0 {
            value |= u32::from(b) << shift;
            return Ok(((value >> 1) as i32) ^ -((value & 1) as i32));
        }
        value |= u32::from(b & 0x7f) << shift;
        shift += 7;
        if shift > 28 {
            return Err(Stop::Malformed("Varint is too long"));
        }
    }
}

/// The fields of one record that validation needs.
struct RecordFields {
    timestamp_delta: i64,
    offset_delta: i32,
    has_key: bool,
    key_len: i32,
    value_len: i32,
}

fn read_record<S: Source>(src: &mut S) -> Result<RecordFields, Stop> {
    let size = read_varint(|| src.byte()?.ok_or(EOF))?;
    if size < 0 {
        return Err(Stop::Malformed("Invalid record size: negative"));
    }
    let mut body = Body {
        src,
        left: i64::from(size),
    };
    body.byte()?; // attributes (unused in v2)
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key_len = body.varint()?;
    body.skip(key_len)?;
    let value_len = body.varint()?;
    body.skip(value_len)?;
    let headers = body.varint()?;
    if headers < 0 {
        return Err(Stop::Malformed("Found invalid number of record headers"));
    }
    if i64::from(headers) > body.left {
        return Err(Stop::Malformed(
            "Found invalid number of record headers: larger than the remaining size",
        ));
    }
    for _ in 0..headers {
        let key = body.varint()?;
        if key < 0 {
            return Err(Stop::Malformed("Invalid negative header key size"));
        }
        body.skip(key)?;
        let value = body.varint()?;
        body.skip(value)?;
    }
    if body.left != 0 {
        return Err(Stop::Malformed(
            "Invalid record size: the record's fields do not fill its declared size",
        ));
    }
    Ok(RecordFields {
        timestamp_delta,
        offset_delta,
        has_key: key_len >= 0,
        key_len,
        value_len,
    })
}

/// Reads every record (exactly `records_count`, nothing after), applies the record-level
/// checks and returns the largest record timestamp.
fn check_records<S: Source>(
    src: &mut S,
    header: &BatchHeader,
    rules: &Rules,
) -> Result<i64, RecordError> {
    let log_append_bit = header.attributes & batch::TIMESTAMP_TYPE_LOG_APPEND != 0;
    let mut errors: Vec<(KafkaError, BatchIndexError)> = Vec::new();
    let mut max_timestamp = NO_TIMESTAMP;
    for index in 0..header.records_count {
        let rec = read_record(src)?;
        if index == header.records_count - 1 && src.byte()?.is_some() {
            return Err(invalid(
                "Incorrect declared batch size, records still remaining in file",
            ));
        }
        if rec.offset_delta != index {
            return Err(invalid(format!(
                "Record {index} has offset delta {}; a batch's records must have offset deltas 0, 1, 2, ...",
                rec.offset_delta
            )));
        }
        let timestamp = if log_append_bit {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(rec.timestamp_delta)
        };
        if let Some(e) = record_error(&rec, timestamp, index, log_append_bit, rules) {
            errors.push(e);
        }
        max_timestamp = max_timestamp.max(timestamp);
    }
    if errors.is_empty() {
        return Ok(max_timestamp);
    }
    Err(records_refused(errors))
}

/// Kafka's `validateKey` then `validateTimestamp` for one record.
fn record_error(
    rec: &RecordFields,
    timestamp: i64,
    index: i32,
    log_append_bit: bool,
    rules: &Rules,
) -> Option<(KafkaError, BatchIndexError)> {
    let error = |code, message: String| {
        Some((
            code,
            BatchIndexError {
                batch_index: index,
                message,
            },
        ))
    };
    if rules.compacted && !rec.has_key {
        return error(
            KafkaError::InvalidRecord,
            format!(
                "Compacted topic cannot accept message without key in topic partition {}-{}",
                rules.topic, rules.partition
            ),
        );
    }
    if !rules.log_append_time && timestamp != NO_TIMESTAMP {
        // Java long arithmetic: wraps.
        let diff = rules.now_ms.wrapping_sub(timestamp);
        if diff > rules.timestamp_before_max_ms
            || diff.wrapping_neg() > rules.timestamp_after_max_ms
        {
            return error(
                KafkaError::InvalidTimestamp,
                format!(
                    "Timestamp {timestamp} of message with offset {index} is out of range. The timestamp should be within [{}, {}]",
                    rules.now_ms.wrapping_sub(rules.timestamp_before_max_ms),
                    rules.now_ms.wrapping_add(rules.timestamp_after_max_ms)
                ),
            );
        }
    } else if log_append_bit {
        return error(
            KafkaError::InvalidTimestamp,
            format!(
                "Invalid timestamp type in message DefaultRecord(offset={index}, timestamp={timestamp}, key={} bytes, value={} bytes). Producer should not set timestamp type to LogAppendTime.",
                rec.key_len.max(0),
                rec.value_len.max(0)
            ),
        );
    }
    None
}

/// Kafka's `processRecordErrors`: INVALID_TIMESTAMP if any record's timestamp failed, else
/// INVALID_RECORD, with every record's error and a summary as the error message.
fn records_refused(errors: Vec<(KafkaError, BatchIndexError)>) -> RecordError {
    let timestamp = errors
        .iter()
        .any(|(code, _)| *code == KafkaError::InvalidTimestamp);
    let record_errors: Vec<BatchIndexError> = errors.into_iter().map(|(_, e)| e).collect();
    let (error, message) = if timestamp {
        (
            KafkaError::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp".to_string(),
        )
    } else {
        let shown: Vec<String> = record_errors
            .iter()
            .take(3)
            .map(|e| {
                format!(
                    "RecordError(batchIndex={}, message='{}')",
                    e.batch_index, e.message
                )
            })
            .collect();
        (
            KafkaError::InvalidRecord,
            format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                record_errors.len(),
                shown.join(", ")
            ),
        )
    };
    RecordError {
        error,
        reason: message.clone(),
        record_errors,
        error_message: Some(message),
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
