//! Control batches: the COMMIT/ABORT markers that end a producer's transaction on a partition.
//!
//! A marker is a v2 batch with the TRANSACTIONAL and CONTROL attributes, the producer's id and
//! epoch, no sequence (-1) and one uncompressed record: key {version i16 = 0, type i16: 0 =
//! ABORT, 1 = COMMIT}, value {version i16 = 0, coordinator epoch i32} (Kafka's
//! `EndTransactionMarker`). Other control types (Kafka's KRaft records) are not markers.

use super::batch::{BatchHeader, CONTROL, HEADER_LEN, TRANSACTIONAL};
use super::decode::{varint, varlong};
use super::encode::{encode_records, seal, NewRecord};
use crate::error::KafkaError;

/// A control batch's kind (the record key's type: 0 = ABORT, 1 = COMMIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    Abort,
    Commit,
}

impl ControlKind {
    fn code(self) -> i16 {
        match self {
            ControlKind::Abort => 0,
            ControlKind::Commit => 1,
        }
    }
}

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub kind: ControlKind,
    pub coordinator_epoch: i32,
}

/// What a marker batch is written with (its offsets are assigned by the partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerSpec {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub kind: ControlKind,
    pub coordinator_epoch: i32,
    pub timestamp: i64,
}

/// The marker batch, at base offset `base_offset` with `leader_epoch`, CRC set.
pub fn encode_marker(spec: &MarkerSpec, base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&spec.kind.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&spec.coordinator_epoch.to_be_bytes());
    let records = encode_records(&[NewRecord {
        timestamp_delta: 0,
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
    }]);
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // length, set by `seal`
    b.extend_from_slice(&leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, set by `seal`
    b.extend_from_slice(&(TRANSACTIONAL | CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&spec.timestamp.to_be_bytes());
    b.extend_from_slice(&spec.timestamp.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // no sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // one record
    b.extend_from_slice(&records);
    seal(&mut b);
    b
}

/// The marker a control batch holds; None for a batch that is not a transaction marker (not
/// control, compressed, empty — Kafka's cleaner may empty one — or another control type).
/// Errors only when the batch is cut short or its record is malformed.
pub fn parse_marker(batch: &[u8]) -> Result<Option<Marker>, KafkaError> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() || header.compression() != 0 || header.records_count < 1 {
        return Ok(None);
    }
    let end = header.size.min(batch.len());
    let mut rec = batch
        .get(HEADER_LEN..end)
        .ok_or(KafkaError::CorruptMessage)?;
    let _length = varint(&mut rec)?;
    let (_attributes, rest) = rec.split_first().ok_or(KafkaError::CorruptMessage)?;
    rec = rest;
    let _timestamp_delta = varlong(&mut rec)?;
    let _offset_delta = varint(&mut rec)?;
    let key_len = varint(&mut rec)?;
    if key_len < 4 {
        return Err(KafkaError::CorruptMessage);
    }
    let key = rec.get(..4).ok_or(KafkaError::CorruptMessage)?;
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlKind::Abort,
        1 => ControlKind::Commit,
        _ => return Ok(None),
    };
    rec = rec
        .get(key_len as usize..)
        .ok_or(KafkaError::CorruptMessage)?;
    let value_len = varint(&mut rec)?;
    // Kafka reads the coordinator epoch after the value's version.
    let coordinator_epoch = match rec.get(..6) {
        Some(v) if value_len >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
        _ => return Err(KafkaError::CorruptMessage),
    };
    Ok(Some(Marker {
        kind,
        coordinator_epoch,
    }))
}

/// Bytes enough to read a marker of a control batch (its header and first record), for a
/// scan that reads only headers otherwise.
pub const MARKER_PREFIX: usize = HEADER_LEN + 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ControlKind) -> MarkerSpec {
        MarkerSpec {
            producer_id: 42,
            producer_epoch: 3,
            kind,
            coordinator_epoch: 7,
            timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_marker_round_trips_with_kafkas_layout() {
        for kind in [ControlKind::Abort, ControlKind::Commit] {
            let b = encode_marker(&spec(kind), 100, 0);
            let h = crate::records::batch::validate(&b).unwrap();
            assert_eq!(h.base_offset, 100);
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!((h.records_count, h.last_offset_delta), (1, 0));
            assert_eq!(h.max_timestamp, 1_700_000_000_000);
            let m = parse_marker(&b).unwrap().unwrap();
            assert_eq!(m.kind, kind);
            assert_eq!(m.coordinator_epoch, 7);
            // Kafka's bytes: key {0, type}, value {0, coordinator epoch}.
            let records = crate::records::decode::decode_records(&b).unwrap();
            let code = if kind == ControlKind::Commit { 1 } else { 0 };
            assert_eq!(records[0].key.as_deref(), Some(&[0, 0, 0, code][..]));
            assert_eq!(records[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 7][..]));
            assert!(b.len() <= MARKER_PREFIX);
        }
    }

    #[test]
    fn data_batches_and_other_control_types_are_not_markers() {
        let data = crate::records::batch::tests::sample_batch(1, 0, b"v", (1, 0, 0));
        assert_eq!(parse_marker(&data), Ok(None));
        let mut other = encode_marker(&spec(ControlKind::Commit), 0, 0);
        other[HEADER_LEN + 8] = 2; // key type 2: not a transaction marker
        seal(&mut other);
        assert_eq!(parse_marker(&other), Ok(None));
        let cut = encode_marker(&spec(ControlKind::Abort), 0, 0);
        assert!(parse_marker(&cut[..HEADER_LEN + 3]).is_err());
    }
}
