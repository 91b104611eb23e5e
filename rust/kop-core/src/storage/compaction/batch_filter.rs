//! What the cleaner does with one batch: Kafka's `LogCleaner` retention rules applied through
//! `MemoryRecords.filterTo`.
//!
//! A record is kept if it is past the key map's range, or it has a key, is the latest record of
//! that key, and is not a tombstone whose batch's delete horizon has passed. A batch whose
//! records are all kept, and that needs no delete horizon, is kept byte for byte. Otherwise it
//! is rebuilt: same base offset and last offset delta (the producer's last sequence stays
//! readable), producer id/epoch/base sequence, leader epoch, timestamp type and codec; the
//! base timestamp is the first kept record's (or the delete horizon, KIP-534: set to
//! now + `delete.retention.ms` the first time a kept batch holds a tombstone). A batch left
//! without records is dropped, unless it is the last batch of its producer id: then its
//! header is kept as an empty batch (Kafka's `RETAIN_EMPTY`).
//!
//! Transactions (`txn_rules` says which rule applies, as Kafka's cleaner does): an aborted
//! transaction's batch loses every record (kept empty only as its producer's last batch); a
//! marker whose transaction has no batch left before it gets a delete horizon, and goes once
//! that has passed — unless it is its producer's last batch (its epoch is needed for fencing);
//! committed transactional records are filtered by key like any others.

use std::collections::HashMap;

use super::offset_map::OffsetMap;
use super::txn_rules::Rule;
use crate::error::KafkaError;
use crate::records::batch::{self, BatchHeader};
use crate::records::decode::for_each_raw_record;
use crate::records::encode::{compress, put_raw_record, rebuild_batch};

/// One aborted transaction of the log (Kafka's `AbortedTxn`): its producer id and the offsets
/// of its first record and of its ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

pub struct FilterContext<'a> {
    pub map: &'a OffsetMap,
    /// The last offset the map covers; later records are all kept.
    pub map_last_offset: i64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub producer_last_offsets: &'a HashMap<i64, i64>,
    /// Producers whose last batch is a marker (no data batch since their epoch began), with
    /// that epoch: such a marker is kept (Kafka keeps it for fencing).
    pub producer_marker_epochs: &'a HashMap<i64, i16>,
}

/// The batch to write in place of the original.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    Keep,
    Rewritten(Vec<u8>),
    Drop,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub kept: u64,
    pub removed: u64,
}

/// Applies `rule` (from `txn_rules`) to one stored batch.
pub fn filter_batch(
    bytes: &[u8],
    header: &BatchHeader,
    rule: Rule,
    ctx: &FilterContext<'_>,
    counts: &mut Counts,
) -> Result<Filtered, KafkaError> {
    let records = header.records_count.max(0) as u64;
    // Past the key map's range nothing is decided by this clean.
    let rule = if header.base_offset > ctx.map_last_offset && rule != Rule::ByKey {
        Rule::KeepWhole
    } else {
        rule
    };
    match rule {
        Rule::ByKey => filter_by_key(bytes, header, ctx, counts, false),
        Rule::KeepWhole | Rule::Marker { discardable: false } => {
            counts.kept += records;
            Ok(Filtered::Keep)
        }
        Rule::Aborted => {
            counts.removed += records;
            Ok(emptied(bytes, header, ctx))
        }
        Rule::Marker { discardable: true } => {
            let last_of_producer =
                ctx.producer_marker_epochs.get(&header.producer_id) == Some(&header.producer_epoch);
            match header.delete_horizon_ms() {
                Some(h) if ctx.now_ms >= h && !last_of_producer => {
                    counts.removed += records;
                    Ok(Filtered::Drop)
                }
                Some(_) => {
                    counts.kept += records;
                    Ok(Filtered::Keep)
                }
                // Kept whole with a delete horizon, as for a batch holding a tombstone.
                None => filter_by_key(bytes, header, ctx, counts, true),
            }
        }
    }
}

/// A batch left without records: dropped, unless it is its producer's last batch (then its
/// header is kept, Kafka's `RETAIN_EMPTY`).
fn emptied(bytes: &[u8], header: &BatchHeader, ctx: &FilterContext<'_>) -> Filtered {
    let last_of_producer = header.has_producer_id()
        && ctx.producer_last_offsets.get(&header.producer_id) == Some(&header.last_offset());
    if !last_of_producer {
        return Filtered::Drop;
    }
    // Kafka's empty header: uncompressed, no first timestamp, the original max timestamp.
    let attributes = header.attributes & !(batch::COMPRESSION_MASK | batch::DELETE_HORIZON);
    Filtered::Rewritten(rebuild_batch(
        bytes,
        attributes,
        -1,
        header.max_timestamp,
        0,
        &[],
    ))
}

/// Keeps the latest record of each key (every record when `marker`: a marker kept whole that
/// needs its delete horizon).
fn filter_by_key(
    bytes: &[u8],
    header: &BatchHeader,
    ctx: &FilterContext<'_>,
    counts: &mut Counts,
    marker: bool,
) -> Result<Filtered, KafkaError> {
    let horizon = header.delete_horizon_ms();
    let tombstones_expired = horizon.is_some_and(|h| ctx.now_ms >= h);
    // Kept records: timestamp, offset and their bytes from the key on (in `arena`).
    let mut kept: Vec<(i64, i64, std::ops::Range<usize>)> = Vec::new();
    let mut arena = Vec::new();
    let mut has_tombstone = false;
    let mut total = 0u64;
    for_each_raw_record(bytes, |r| {
        total += 1;
        let offset = r.point.offset;
        let keep = marker
            || offset > ctx.map_last_offset
            || r.key.is_some_and(|key| {
                let latest = ctx.map.get(key).is_none_or(|o| offset >= o);
                latest && (r.has_value || !tombstones_expired)
            });
        if keep {
            has_tombstone |= !r.has_value;
            let start = arena.len();
            arena.extend_from_slice(r.from_key);
            kept.push((r.point.timestamp, offset, start..arena.len()));
        }
    })?;
    counts.kept += kept.len() as u64;
    counts.removed += total - kept.len() as u64;
    let needs_horizon = (has_tombstone || marker) && horizon.is_none();
    if kept.len() as u64 == total && !needs_horizon {
        return Ok(Filtered::Keep);
    }
    if kept.is_empty() {
        return Ok(emptied(bytes, header, ctx));
    }
    let log_append = header.attributes & batch::TIMESTAMP_TYPE_LOG_APPEND != 0;
    let new_horizon = if needs_horizon {
        Some(ctx.now_ms.saturating_add(ctx.delete_retention_ms))
    } else {
        horizon
    };
    let base_timestamp = new_horizon.unwrap_or(kept[0].0);
    let max_timestamp = if log_append {
        header.max_timestamp
    } else {
        kept.iter().map(|k| k.0).max().unwrap_or(-1)
    };
    let mut records = Vec::with_capacity(arena.len() + kept.len() * 12);
    for (timestamp, offset, range) in &kept {
        let delta = (offset - header.base_offset) as i32;
        put_raw_record(
            &mut records,
            timestamp.wrapping_sub(base_timestamp),
            delta,
            &arena[range.clone()],
        );
    }
    let mut attributes = header.attributes;
    if new_horizon.is_some() {
        attributes |= batch::DELETE_HORIZON;
    }
    let payload = compress(header.compression(), &records);
    Ok(Filtered::Rewritten(rebuild_batch(
        bytes,
        attributes,
        base_timestamp,
        max_timestamp,
        kept.len() as i32,
        &payload,
    )))
}
