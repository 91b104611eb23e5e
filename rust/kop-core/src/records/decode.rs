//! Record-level reading of a v2 batch, including decompression.
//!
//! The produce and fetch paths never need this: they move whole batches. It is used only where
//! Kafka's answer depends on individual records (ListOffsets by timestamp and max timestamp),
//! and by readers outside Kafka (`decode_records`, for Pulsar consumers of Kafka topics).

use super::batch::{BatchHeader, HEADER_LEN};
use super::compression;
use crate::error::KafkaError;

/// Offset and timestamp of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPoint {
    pub offset: i64,
    pub timestamp: i64,
}

/// The batch's records, decompressed (bounded, so a hostile batch cannot exhaust memory).
fn decompress(codec: i16, data: &[u8]) -> Result<Vec<u8>, KafkaError> {
    compression::decompress(codec, data, compression::MAX_UNCOMPRESSED)
        .map_err(|_| KafkaError::CorruptMessage)
}

pub(crate) fn varlong(buf: &mut &[u8]) -> Result<i64, KafkaError> {
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

/// Kafka's int32 varint (sizes, offset deltas, lengths, counts): at most 5 bytes, excess high
/// bits of the last one dropped, exactly as `records::validate` reads it.
pub(crate) fn varint(buf: &mut &[u8]) -> Result<i32, KafkaError> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(KafkaError::CorruptMessage)?;
        *buf = rest;
        if byte & 0x80 == 0 {
            value |= u32::from(byte) << shift;
            return Ok(((value >> 1) as i32) ^ -((value & 1) as i32));
        }
        value |= u32::from(byte & 0x7f) << shift;
    }
    Err(KafkaError::CorruptMessage)
}

/// A varint-length-prefixed byte field; None when the length is negative (null).
fn bytes_field<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, KafkaError> {
    let n = varint(buf)?;
    if n < 0 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| KafkaError::CorruptMessage)?;
    let field = buf.get(..n).ok_or(KafkaError::CorruptMessage)?;
    *buf = &buf[n..];
    Ok(Some(field))
}

/// Calls `each` with the offset/timestamp of every record in a batch and the rest of the record
/// (from its key on). Log-append-time batches report the batch's max timestamp for each
/// record, as Kafka does.
fn walk_records(
    batch: &[u8],
    mut each: impl FnMut(RecordPoint, &[u8]) -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let header = BatchHeader::parse(batch)?;
    let body = batch
        .get(HEADER_LEN..header.size)
        .ok_or(KafkaError::CorruptMessage)?;
    let data = decompress(header.compression(), body)?;
    let log_append = header.attributes & super::batch::TIMESTAMP_TYPE_LOG_APPEND != 0;
    let mut buf = data.as_slice();
    for _ in 0..header.records_count {
        let mut rec = bytes_field(&mut buf)?.ok_or(KafkaError::CorruptMessage)?;
        rec = rec.get(1..).ok_or(KafkaError::CorruptMessage)?; // attributes
        let ts_delta = varlong(&mut rec)?;
        let offset_delta = varint(&mut rec)?;
        let timestamp = if log_append {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(ts_delta)
        };
        let point = RecordPoint {
            offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp,
        };
        each(point, rec)?;
    }
    Ok(())
}

/// One record of a batch as the log cleaner sees it: where it is, its key, whether it has a
/// value, and its bytes from the key on (key, value, headers), to be copied as they are.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub point: RecordPoint,
    pub key: Option<&'a [u8]>,
    /// False for a tombstone (a null value).
    pub has_value: bool,
    pub from_key: &'a [u8],
}

/// Calls `each` with every record of a batch (any compression), for the log cleaner.
pub fn for_each_raw_record(
    batch: &[u8],
    mut each: impl FnMut(RawRecord<'_>),
) -> Result<(), KafkaError> {
    walk_records(batch, |point, from_key| {
        let mut rest = from_key;
        let key = bytes_field(&mut rest)?;
        let has_value = bytes_field(&mut rest)?.is_some();
        each(RawRecord {
            point,
            key,
            has_value,
            from_key,
        });
        Ok(())
    })
}

/// Offsets and timestamps of every record in a batch.
pub fn record_points(batch: &[u8]) -> Result<Vec<RecordPoint>, KafkaError> {
    let mut points = Vec::new();
    walk_records(batch, |p, _| {
        points.push(p);
        Ok(())
    })?;
    Ok(points)
}

/// One record of a batch, decoded (for readers outside Kafka, e.g. the Pulsar interop helper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Every record of a v2 batch (any compression).
pub fn decode_records(batch: &[u8]) -> Result<Vec<DecodedRecord>, KafkaError> {
    let mut records = Vec::new();
    walk_records(batch, |point, mut rec| {
        let key = bytes_field(&mut rec)?.map(<[u8]>::to_vec);
        let value = bytes_field(&mut rec)?.map(<[u8]>::to_vec);
        let count = varint(&mut rec)?;
        let mut headers = Vec::new();
        for _ in 0..count.max(0) {
            let name = bytes_field(&mut rec)?.ok_or(KafkaError::CorruptMessage)?;
            // Kafka reads header keys as UTF-8 with replacement characters, never failing.
            let name = String::from_utf8_lossy(name).into_owned();
            headers.push((name, bytes_field(&mut rec)?.map(<[u8]>::to_vec)));
        }
        records.push(DecodedRecord {
            offset: point.offset,
            timestamp: point.timestamp,
            key,
            value,
            headers,
        });
        Ok(())
    })?;
    Ok(records)
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
    fn decodes_keys_values_and_offsets() {
        let mut b = sample_batch(2, 100, b"abc", (-1, -1, -1));
        b[..8].copy_from_slice(&40i64.to_be_bytes());
        let records = decode_records(&b).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].offset, 41);
        assert_eq!(records[1].timestamp, 101);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value.as_deref(), Some(&b"abc"[..]));
        assert!(records[1].headers.is_empty());
        assert_eq!(
            decode_records(&b[..b.len() - 2]),
            Err(KafkaError::CorruptMessage)
        );
    }

    #[test]
    fn varlong_roundtrip_negative() {
        let mut data: &[u8] = &[0x01];
        assert_eq!(varlong(&mut data).unwrap(), -1);
    }
}
