//! Record-level reading of a v2 batch, including decompression.
//!
//! The produce and fetch paths never need this: they move whole batches. It is used only where
//! Kafka's answer depends on individual records (ListOffsets by timestamp and max timestamp).

use std::io::Read;

use super::batch::{BatchHeader, HEADER_LEN};
use crate::error::KafkaError;

/// Offset and timestamp of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPoint {
    pub offset: i64,
    pub timestamp: i64,
}

/// Upper bound on a decompressed batch, so a hostile batch cannot exhaust memory.
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

fn decompress(codec: i16, data: &[u8]) -> Result<Vec<u8>, KafkaError> {
    let mut out = Vec::new();
    let result = match codec {
        0 => return Ok(data.to_vec()),
        1 => flate2::read::GzDecoder::new(data)
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut out)
            .map(|_| ()),
        2 => return snappy(data),
        3 => lz4_flex::frame::FrameDecoder::new(data)
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut out)
            .map(|_| ()),
        4 => ruzstd::decoding::StreamingDecoder::new(data)
            .map_err(|_| std::io::Error::other("zstd"))
            .and_then(|d| d.take(MAX_DECOMPRESSED).read_to_end(&mut out).map(|_| ())),
        _ => return Err(KafkaError::CorruptMessage),
    };
    result.map_err(|_| KafkaError::CorruptMessage)?;
    Ok(out)
}

/// Java clients frame snappy the "xerial" way; librdkafka may send raw snappy. Accept both.
fn snappy(data: &[u8]) -> Result<Vec<u8>, KafkaError> {
    const XERIAL: &[u8] = b"\x82SNAPPY\x00";
    let raw = |d: &[u8]| {
        snap::raw::Decoder::new()
            .decompress_vec(d)
            .map_err(|_| KafkaError::CorruptMessage)
    };
    if !data.starts_with(XERIAL) {
        return raw(data);
    }
    let mut rest = data.get(16..).ok_or(KafkaError::CorruptMessage)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len_bytes = rest.get(..4).ok_or(KafkaError::CorruptMessage)?;
        let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let chunk = rest.get(4..4 + len).ok_or(KafkaError::CorruptMessage)?;
        out.extend_from_slice(&raw(chunk)?);
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(KafkaError::CorruptMessage);
        }
        rest = &rest[4 + len..];
    }
    Ok(out)
}

fn varlong(buf: &mut &[u8]) -> Result<i64, KafkaError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(KafkaError::CorruptMessage)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(KafkaError::CorruptMessage)
}

fn skip(buf: &mut &[u8], n: i64) -> Result<(), KafkaError> {
    if n < 0 {
        return Ok(()); // null key/value
    }
    let n = usize::try_from(n).map_err(|_| KafkaError::CorruptMessage)?;
    *buf = buf.get(n..).ok_or(KafkaError::CorruptMessage)?;
    Ok(())
}

/// Offsets and timestamps of every record in a batch (log-append-time batches report the
/// batch's max timestamp for each record, as Kafka does).
pub fn record_points(batch: &[u8]) -> Result<Vec<RecordPoint>, KafkaError> {
    let header = BatchHeader::parse(batch)?;
    let body = batch
        .get(HEADER_LEN..header.size)
        .ok_or(KafkaError::CorruptMessage)?;
    let data = decompress(header.compression(), body)?;
    let log_append = header.attributes & super::batch::TIMESTAMP_TYPE_LOG_APPEND != 0;
    let mut buf = data.as_slice();
    // The count comes from the client: never reserve more than the bytes could hold.
    let mut points = Vec::with_capacity((header.records_count.max(0) as usize).min(data.len()));
    for _ in 0..header.records_count {
        let len = varlong(&mut buf)?;
        let len = usize::try_from(len).map_err(|_| KafkaError::CorruptMessage)?;
        let mut rec = buf.get(..len).ok_or(KafkaError::CorruptMessage)?;
        buf = &buf[len..];
        rec = rec.get(1..).ok_or(KafkaError::CorruptMessage)?; // attributes
        let ts_delta = varlong(&mut rec)?;
        let offset_delta = varlong(&mut rec)?;
        let timestamp = if log_append {
            header.max_timestamp
        } else {
            header.base_timestamp + ts_delta
        };
        points.push(RecordPoint {
            offset: header.base_offset + offset_delta,
            timestamp,
        });
        let key_len = varlong(&mut rec)?;
        skip(&mut rec, key_len)?;
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::tests::sample_batch;

    #[test]
    fn reads_points_of_uncompressed_batch() {
        let b = sample_batch(3, 100, b"abc", (-1, -1, -1));
        let pts = record_points(&b).unwrap();
        assert_eq!(pts.len(), 3);
        assert_eq!(
            pts[2],
            RecordPoint {
                offset: 2,
                timestamp: 102
            }
        );
    }

    #[test]
    fn varlong_roundtrip_negative() {
        let mut data: &[u8] = &[0x01];
        assert_eq!(varlong(&mut data).unwrap(), -1);
    }
}
