//! Building v2 record batches, for tests, benchmarks and fuzz seeds, and for the log cleaner
//! (the only place kop re-encodes records: produced batches are stored as the client sent them).

use std::io::Write;

use super::batch::{self, HEADER_LEN, LOG_OVERHEAD};
use super::compression;

/// One record to encode (its offset delta is its index in the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub timestamp_delta: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The batch header fields a producer chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    pub base_timestamp: i64,
    /// Codec id (`compression::NONE` .. `compression::ZSTD`).
    pub codec: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

impl BatchSpec {
    /// A plain (not idempotent) batch.
    pub fn plain(base_timestamp: i64, codec: i16) -> BatchSpec {
        BatchSpec {
            base_timestamp,
            codec,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
        }
    }
}

/// Appends a zig-zag varint (Kafka's varint and varlong share the encoding).
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Appends one record whose key, value and headers are already encoded (`from_key`, as
/// `decode::RawRecord` gives them), with new deltas.
pub fn put_raw_record(out: &mut Vec<u8>, timestamp_delta: i64, offset_delta: i32, from_key: &[u8]) {
    let mut head = Vec::with_capacity(12);
    head.push(0); // attributes
    put_varlong(&mut head, timestamp_delta);
    put_varlong(&mut head, i64::from(offset_delta));
    put_varlong(out, (head.len() + from_key.len()) as i64);
    out.extend_from_slice(&head);
    out.extend_from_slice(from_key);
}

/// The records section of a batch, uncompressed.
pub fn encode_records(records: &[NewRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        body.clear();
        body.push(0); // attributes
        put_varlong(&mut body, r.timestamp_delta);
        put_varlong(&mut body, i as i64);
        put_bytes(&mut body, r.key.as_deref());
        put_bytes(&mut body, r.value.as_deref());
        put_varlong(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_bytes(&mut body, Some(k));
            put_bytes(&mut body, v.as_deref());
        }
        put_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// Compresses a records section as Kafka clients do (snappy in the xerial framing of the
/// Java client).
pub fn compress(codec: i16, data: &[u8]) -> Vec<u8> {
    match codec {
        compression::GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("in memory");
            e.finish().expect("in memory")
        }
        compression::SNAPPY => {
            let mut out = b"\x82SNAPPY\x00".to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(32 * 1024) {
                let c = enc.compress_vec(chunk).expect("in memory");
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            out
        }
        compression::LZ4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).expect("in memory");
            e.finish().expect("in memory")
        }
        compression::ZSTD => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => data.to_vec(),
    }
}

/// A whole batch (base offset 0, as a producer sends it) with a valid CRC.
pub fn encode_batch(spec: &BatchSpec, records: &[NewRecord]) -> Vec<u8> {
    let payload = compress(spec.codec, &encode_records(records));
    let n = records.len() as i32;
    let max_ts = records
        .iter()
        .map(|r| spec.base_timestamp.wrapping_add(r.timestamp_delta))
        .max()
        .unwrap_or(spec.base_timestamp);
    let mut attributes = spec.codec & batch::COMPRESSION_MASK;
    if spec.transactional {
        attributes |= batch::TRANSACTIONAL;
    }
    let mut b = Vec::with_capacity(HEADER_LEN + payload.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // length, set by `seal`
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, set by `seal`
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&payload);
    seal(&mut b);
    b
}

/// Sets a batch's length from its size and recomputes its CRC (after editing its bytes).
pub fn seal(batch: &mut [u8]) {
    let len = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = batch::compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A batch with `original`'s header (offsets, producer fields, leader epoch) and new
/// attributes, timestamps, record count and records section (already compressed); length and
/// CRC set. The log cleaner's rewrite: the offset range and last offset delta stay.
pub fn rebuild_batch(
    original: &[u8],
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    records_count: i32,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + payload.len());
    b.extend_from_slice(&original[..HEADER_LEN]);
    b[batch::ATTRIBUTES..batch::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    b[batch::BASE_TIMESTAMP..batch::BASE_TIMESTAMP + 8]
        .copy_from_slice(&base_timestamp.to_be_bytes());
    b[batch::MAX_TIMESTAMP..batch::MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    b[batch::RECORDS_COUNT..batch::RECORDS_COUNT + 4].copy_from_slice(&records_count.to_be_bytes());
    b.extend_from_slice(payload);
    seal(&mut b);
    b
}
