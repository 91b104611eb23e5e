//! DeleteRecords' log start through the log seam: file, memory and remote (Pulsar) logs.

use std::sync::Arc;

use bytes::Bytes;

use super::remote::fake::FakeBackend;
use super::{LogSettings, PartitionLog, Storage};
use crate::records::batch::{self, tests::sample_batch, BatchHeader};

fn settings(segment_bytes: i64) -> LogSettings {
    LogSettings {
        segment_bytes,
        segment_ms: 1 << 40,
        retention_ms: -1,
        retention_bytes: -1,
        delete_retention: true,
        compaction: Default::default(),
    }
}

/// Appends a batch of `records` records at the log end.
fn append(log: &mut dyn PartitionLog, records: i32) {
    let mut raw = sample_batch(records, 1_000, b"v", (-1, -1, -1));
    batch::patch_offset_and_epoch(&mut raw, log.next_offset(), 0);
    let header = BatchHeader::parse(&raw).unwrap();
    log.append(&header, Bytes::from(raw), 1_000).unwrap();
}

fn open(storage: &Storage, segment_bytes: i64) -> Box<dyn PartitionLog> {
    storage
        .logs
        .open("t", 0, settings(segment_bytes), &mut |_, _| {})
        .unwrap()
}

fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("logs").join("t-0"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
        .count()
}

#[test]
fn a_file_log_deletes_segments_below_the_start_and_keeps_the_start_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = super::file::open(dir.path(), false).unwrap();
    let mut log = open(&storage, 1); // one batch per segment
    for _ in 0..4 {
        append(log.as_mut(), 3); // segments at 0, 3, 6, 9
    }
    assert_eq!(segment_files(dir.path()), 4);
    log.advance_log_start(4).unwrap();
    assert_eq!(log.log_start_offset(), 4);
    // The segment at 0 is wholly below 4; the one at 3 holds offset 4 and stays.
    assert_eq!(segment_files(dir.path()), 3);
    // A lower start changes nothing; a read below the start begins at the start's batch.
    log.advance_log_start(2).unwrap();
    assert_eq!(log.log_start_offset(), 4);
    let read = log.read(0, 1 << 20, 12).unwrap().unwrap();
    assert_eq!(BatchHeader::parse(&read).unwrap().base_offset, 3);
    // Up to the end: every segment but the active one goes.
    log.advance_log_start(12).unwrap();
    assert_eq!(segment_files(dir.path()), 1);
    drop(log);
    drop(storage);

    let storage = super::file::open(dir.path(), false).unwrap();
    let mut log = open(&storage, 1);
    assert_eq!((log.log_start_offset(), log.next_offset()), (12, 12));
    append(log.as_mut(), 3);
    // Retention never moves the start back to a segment's base.
    log.set_settings(LogSettings {
        retention_bytes: 0,
        ..settings(1)
    });
    append(log.as_mut(), 3);
    log.enforce_retention(2_000).unwrap();
    assert_eq!(log.log_start_offset(), 15);
}

#[test]
fn a_start_inside_the_first_segment_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = super::file::open(dir.path(), false).unwrap();
    let mut log = open(&storage, 1 << 20);
    append(log.as_mut(), 5);
    append(log.as_mut(), 5);
    log.advance_log_start(7).unwrap();
    drop(log);
    drop(storage);
    let storage = super::file::open(dir.path(), false).unwrap();
    let log = open(&storage, 1 << 20);
    assert_eq!((log.log_start_offset(), log.next_offset()), (7, 10));
}

#[test]
fn a_memory_log_moves_its_start() {
    let storage = super::memory::open();
    let mut log = open(&storage, 1);
    append(log.as_mut(), 2);
    append(log.as_mut(), 2);
    log.advance_log_start(3).unwrap();
    assert_eq!(log.log_start_offset(), 3);
}

#[test]
fn a_remote_start_is_seen_by_the_next_takeover_and_forgotten_with_the_topic() {
    let backend = Arc::new(FakeBackend::default());
    let storage = super::remote::open(backend.clone(), 1 << 20);
    let mut log = open(&storage, 1 << 20);
    append(log.as_mut(), 4);
    append(log.as_mut(), 4);
    log.advance_log_start(6).unwrap();
    assert_eq!(log.log_start_offset(), 6);
    // Another instance (same backend) takes the partition over.
    let other = super::remote::open(backend.clone(), 1 << 20);
    let taken = open(&other, 1 << 20);
    assert_eq!((taken.log_start_offset(), taken.next_offset()), (6, 8));
    // A topic deleted and created again starts at 0.
    other.logs.delete("t", 1).unwrap();
    let again = open(&other, 1 << 20);
    assert_eq!(again.log_start_offset(), 0);
}
