//! The cleaner through the log seam, on memory and file logs: Kafka's visible results.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;

use bytes::Bytes;

use super::{AbortedTxn, CleanRequest, CleanStats, CompactionSettings, Throttle};
use crate::records::batch::{self, split_batches, BatchHeader};
use crate::records::compression;
use crate::records::control::{encode_marker, ControlKind, MarkerSpec};
use crate::records::decode::{decode_records, DecodedRecord};
use crate::records::encode::{encode_batch, BatchSpec, NewRecord};
use crate::storage::{LogSettings, PartitionLog};

const START: i64 = 1_000_000;

/// A compacted topic's settings that clean at once (no lag, no dirty ratio); also used by the
/// remote log's compaction tests.
pub(crate) fn settings(segment_bytes: i64) -> LogSettings {
    LogSettings {
        segment_bytes,
        segment_ms: 1 << 40,
        retention_ms: -1,
        retention_bytes: -1,
        delete_retention: false,
        compaction: CompactionSettings {
            compact: true,
            delete_retention_ms: 1_000,
            min_cleanable_dirty_ratio: 0.0,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
        },
    }
}

fn memory_log(s: LogSettings) -> Box<dyn PartitionLog> {
    crate::storage::memory::open()
        .logs
        .open("t", 0, s, &mut |_, _| {})
        .unwrap()
}

type Rec<'a> = (&'a str, Option<&'a str>);

/// Appends one batch of keyed records at `ts`; returns its stored header.
fn append_spec(log: &mut dyn PartitionLog, records: &[Rec<'_>], spec: BatchSpec) -> BatchHeader {
    let recs: Vec<NewRecord> = records
        .iter()
        .map(|(k, v)| NewRecord {
            key: Some(k.as_bytes().to_vec()),
            value: v.map(|v| v.as_bytes().to_vec()),
            ..Default::default()
        })
        .collect();
    let mut raw = encode_batch(&spec, &recs);
    batch::patch_offset_and_epoch(&mut raw, log.next_offset(), 0);
    let header = BatchHeader::parse(&raw).unwrap();
    log.append(&header, Bytes::from(raw), spec.base_timestamp)
        .unwrap();
    header
}

fn append(log: &mut dyn PartitionLog, records: &[Rec<'_>], ts: i64) -> BatchHeader {
    append_spec(log, records, BatchSpec::plain(ts, compression::NONE))
}

fn clean_with(
    log: &mut dyn PartitionLog,
    now_ms: i64,
    producers: HashMap<i64, i64>,
) -> Option<CleanStats> {
    let req = CleanRequest {
        now_ms,
        upper_bound: log.next_offset(),
        producer_last_offsets: producers,
        producer_marker_epochs: HashMap::new(),
        aborted: Vec::new(),
        map_budget_bytes: 1 << 20,
    };
    let job = log.begin_clean(&req).unwrap()?;
    let cleaned = job
        .run(&Throttle::new(0.0), &AtomicBool::new(false))
        .unwrap();
    Some(log.finish_clean(cleaned).unwrap())
}

fn clean(log: &mut dyn PartitionLog, now_ms: i64) -> Option<CleanStats> {
    clean_with(log, now_ms, HashMap::new())
}

/// Every batch header and record from the log start to the end, fetched as a consumer does
/// (the next fetch starts after the last batch received): a fetch that returns nothing
/// before the end would leave a consumer stuck.
fn read_all(log: &dyn PartitionLog) -> (Vec<BatchHeader>, Vec<DecodedRecord>) {
    let (mut headers, mut records) = (Vec::new(), Vec::new());
    let end = log.next_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let data = log.read(offset, 300, end).unwrap().unwrap();
        assert!(!data.is_empty(), "no data at {offset} before the end {end}");
        for b in split_batches(&data).unwrap() {
            let h = batch::validate(b).unwrap();
            records.extend(decode_records(b).unwrap());
            offset = h.last_offset() + 1;
            headers.push(h);
        }
    }
    (headers, records)
}

fn latest(records: &[DecodedRecord]) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|r| {
            let s = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8(b.clone()).unwrap());
            (s(&r.key).unwrap(), s(&r.value))
        })
        .collect()
}

/// 10 keys written 5 times each, in batches of 2 (the last one stays in the active segment).
fn key_heavy(log: &mut dyn PartitionLog) -> BTreeMap<String, Option<String>> {
    let mut expected = BTreeMap::new();
    for round in 0..5 {
        for pair in 0..5 {
            let (k1, k2) = (format!("k{}", pair * 2), format!("k{}", pair * 2 + 1));
            let v = format!("v{round}");
            append(log, &[(&k1, Some(&v)), (&k2, Some(&v))], START + round);
            expected.insert(k1, Some(v.clone()));
            expected.insert(k2, Some(v));
        }
    }
    expected
}

#[test]
fn keeps_the_latest_value_per_key_at_its_offset_and_reads_across_gaps() {
    let mut log = memory_log(settings(400));
    let expected = key_heavy(log.as_mut());
    let (_, before) = read_all(log.as_ref());
    let end = log.next_offset();
    let stats = clean(log.as_mut(), START + 10).expect("a clean is due");
    assert!(stats.records_removed > 0 && stats.bytes_after < stats.bytes_before);
    assert_eq!(log.next_offset(), end, "the log end never moves");
    assert_eq!(log.log_start_offset(), 0);
    let (_, after) = read_all(log.as_ref());
    // Every record left is the original record at its original offset.
    for r in &after {
        assert!(before.contains(r), "{r:?} was not in the log");
    }
    assert_eq!(latest(&after), expected);
    // Keys of the active segment may repeat; the cleaned part holds each key at most once.
    let cleaned_upto = stats.dirty_offset;
    let mut seen = std::collections::HashSet::new();
    for r in after.iter().filter(|r| r.offset < cleaned_upto) {
        assert!(
            seen.insert(r.key.clone()),
            "{r:?} twice in the cleaned part"
        );
    }
    // A fetch at an offset a clean removed returns the next batch left.
    let gap = (0..end)
        .find(|o| !after.iter().any(|r| r.offset == *o))
        .expect("a gap");
    let data = log.read(gap, 1 << 20, end).unwrap().unwrap();
    let first = BatchHeader::parse(&data).unwrap();
    assert!(first.last_offset() > gap);
    // Nothing new: no clean is due.
    assert_eq!(clean(log.as_mut(), START + 20), None);
}

#[test]
fn tombstones_stay_for_delete_retention_after_the_first_clean_then_go() {
    let mut log = memory_log(settings(1));
    append(log.as_mut(), &[("a", Some("1")), ("b", Some("1"))], START);
    append(log.as_mut(), &[("a", None), ("c", Some("1"))], START + 1);
    append(
        log.as_mut(),
        &[("d", Some("1")), ("e", Some("1"))],
        START + 2,
    );
    append(log.as_mut(), &[("f", Some("1"))], START + 3);
    let now = START + 100;
    clean(log.as_mut(), now).expect("due");
    let (headers, records) = read_all(log.as_ref());
    let tombstone = records
        .iter()
        .find(|r| r.key.as_deref() == Some(b"a"))
        .unwrap();
    assert_eq!(
        tombstone.value, None,
        "the tombstone is kept, the old value is gone"
    );
    assert_eq!(
        tombstone.timestamp,
        START + 1,
        "record timestamps survive the rewrite"
    );
    let h = headers
        .iter()
        .find(|h| h.last_offset() >= tombstone.offset)
        .unwrap();
    assert_eq!(
        h.delete_horizon_ms(),
        Some(now + 1_000),
        "KIP-534 delete horizon"
    );
    // More data makes the next clean due; before the horizon the tombstone stays.
    append(log.as_mut(), &[("g", Some("1"))], START + 4);
    append(log.as_mut(), &[("h", Some("1"))], START + 5);
    clean(log.as_mut(), now + 999).expect("due");
    assert!(read_all(log.as_ref())
        .1
        .iter()
        .any(|r| r.key.as_deref() == Some(b"a")));
    append(log.as_mut(), &[("i", Some("1"))], START + 6);
    append(log.as_mut(), &[("j", Some("1"))], START + 7);
    clean(log.as_mut(), now + 1_000).expect("due");
    let (_, records) = read_all(log.as_ref());
    assert!(
        !records.iter().any(|r| r.key.as_deref() == Some(b"a")),
        "tombstone removed"
    );
    assert!(records.iter().any(|r| r.key.as_deref() == Some(b"b")));
}

#[test]
fn dirty_ratio_and_compaction_lags_decide_when_to_clean() {
    let mut s = settings(1);
    s.compaction.min_cleanable_dirty_ratio = 0.99;
    let mut log = memory_log(s);
    for i in 0..6 {
        append(log.as_mut(), &[("k", Some("v"))], START + i);
    }
    // All dirty: ratio 1 > 0.99.
    clean(log.as_mut(), START + 10).expect("due by ratio");
    append(log.as_mut(), &[("k", Some("w"))], START + 20);
    append(log.as_mut(), &[("k", Some("x"))], START + 21);
    assert_eq!(clean(log.as_mut(), START + 30), None, "ratio below 0.99");
    // max.compaction.lag.ms: a dirty segment older than the lag is cleaned whatever the ratio.
    s.compaction.max_compaction_lag_ms = 5;
    log.set_settings(s);
    clean(log.as_mut(), START + 30).expect("due by max lag");

    // min.compaction.lag.ms: segments with records younger than the lag are not cleaned.
    let mut s = settings(1);
    s.compaction.min_compaction_lag_ms = 1_000;
    let mut log = memory_log(s);
    for i in 0..6 {
        append(log.as_mut(), &[("k", Some("v"))], START + i);
    }
    assert_eq!(clean(log.as_mut(), START + 500), None);
    clean(log.as_mut(), START + 1_010).expect("old enough now");
}

#[test]
fn the_active_segment_and_the_upper_bound_are_never_cleaned() {
    let mut log = memory_log(settings(1 << 20));
    for i in 0..10 {
        append(log.as_mut(), &[("k", Some("v"))], START + i);
    }
    assert_eq!(
        clean(log.as_mut(), START + 10),
        None,
        "one (active) segment"
    );
    let mut log = memory_log(settings(1));
    for i in 0..10 {
        append(log.as_mut(), &[("k", Some("v"))], START + i);
    }
    let req = CleanRequest {
        now_ms: START + 10,
        upper_bound: 0,
        map_budget_bytes: 1 << 20,
        ..Default::default()
    };
    assert!(
        log.begin_clean(&req).unwrap().is_none(),
        "nothing below the bound"
    );
}

#[test]
fn an_idempotent_producers_last_batch_is_kept_empty_and_its_state_survives() {
    let dir = tempfile::tempdir().unwrap();
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let mut log = storage
        .logs
        .open("t", 0, settings(1), &mut |_, _| {})
        .unwrap();
    let idem = |seq| BatchSpec {
        producer_id: 7,
        producer_epoch: 2,
        base_sequence: seq,
        ..BatchSpec::plain(START, compression::NONE)
    };
    append_spec(log.as_mut(), &[("a", Some("1")), ("b", Some("1"))], idem(0));
    let last = append_spec(log.as_mut(), &[("a", Some("2")), ("b", Some("2"))], idem(2));
    // Another producer overwrites both keys; then filler to roll segments.
    append(log.as_mut(), &[("a", Some("3")), ("b", Some("3"))], START);
    append(log.as_mut(), &[("c", Some("1"))], START);
    append(log.as_mut(), &[("d", Some("1"))], START);
    append(log.as_mut(), &[("e", Some("1"))], START);
    let producers = HashMap::from([(7, last.last_offset())]);
    clean_with(log.as_mut(), START + 10, producers).expect("due");
    let (headers, records) = read_all(log.as_ref());
    let kept: Vec<_> = headers.iter().filter(|h| h.producer_id == 7).collect();
    assert_eq!(kept.len(), 1, "only the last batch of producer 7 is left");
    let empty = kept[0];
    assert_eq!(empty.records_count, 0);
    assert_eq!(
        (
            empty.base_offset,
            empty.last_offset(),
            empty.base_sequence,
            empty.last_sequence()
        ),
        (last.base_offset, last.last_offset(), 2, 3)
    );
    assert_eq!(empty.producer_epoch, 2);
    assert!(records.iter().all(|r| r.value.as_deref() != Some(b"2")));
    drop(log);
    drop(storage);
    // Reopened, the log reports that batch: producer state is rebuilt with sequence 3.
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let mut seen = Vec::new();
    let log = storage
        .logs
        .open("t", 0, settings(1), &mut |h, _| seen.push(*h))
        .unwrap();
    let last_of_7 = seen.iter().rev().find(|h| h.producer_id == 7).unwrap();
    assert_eq!(last_of_7.last_sequence(), 3);
    assert_eq!(read_all(log.as_ref()).1, records);
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec() {
    for codec in [
        compression::GZIP,
        compression::SNAPPY,
        compression::LZ4,
        compression::ZSTD,
    ] {
        let mut log = memory_log(settings(1));
        for i in 0..6 {
            let v = format!("v{i}");
            let spec = BatchSpec::plain(START + i, codec);
            append_spec(
                log.as_mut(),
                &[("a", Some(&v)), (&format!("x{i}"), Some("1"))],
                spec,
            );
        }
        clean(log.as_mut(), START + 10).expect("due");
        let (headers, records) = read_all(log.as_ref());
        assert!(headers.iter().all(|h| h.compression() == codec));
        let a: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(b"a"))
            .collect();
        assert!(!a.is_empty() && a.len() < 6, "codec {codec}: {a:?}");
    }
}

fn append_marker(log: &mut dyn PartitionLog, producer_id: i64, kind: ControlKind) -> i64 {
    let spec = MarkerSpec {
        producer_id,
        producer_epoch: 0,
        kind,
        coordinator_epoch: 0,
        timestamp: START,
    };
    let offset = log.next_offset();
    let raw = encode_marker(&spec, offset, 0);
    let header = BatchHeader::parse(&raw).unwrap();
    log.append(&header, Bytes::from(raw), START).unwrap();
    offset
}

fn txn_spec(producer_id: i64) -> BatchSpec {
    BatchSpec {
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
        transactional: true,
        ..BatchSpec::plain(START, compression::NONE)
    }
}

fn clean_txn(
    log: &mut dyn PartitionLog,
    now_ms: i64,
    aborted: &[AbortedTxn],
    marker_epochs: HashMap<i64, i16>,
) -> CleanStats {
    let req = CleanRequest {
        now_ms,
        upper_bound: log.next_offset(),
        producer_marker_epochs: marker_epochs,
        aborted: aborted.to_vec(),
        map_budget_bytes: 1 << 20,
        ..Default::default()
    };
    let job = log.begin_clean(&req).unwrap().expect("due");
    let cleaned = job
        .run(&Throttle::new(0.0), &AtomicBool::new(false))
        .unwrap();
    log.finish_clean(cleaned).unwrap()
}

/// (producer id, is control) of every batch, and the values of the data records.
fn txn_view(log: &dyn PartitionLog) -> (Vec<(i64, bool)>, Vec<String>) {
    let (headers, records) = read_all(log);
    let control: Vec<i64> = headers
        .iter()
        .filter(|h| h.is_control())
        .map(|h| h.base_offset)
        .collect();
    let values = records
        .into_iter()
        .filter(|r| !control.contains(&r.offset))
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect();
    let batches = headers
        .iter()
        .filter(|h| h.has_producer_id())
        .map(|h| (h.producer_id, h.is_control()))
        .collect();
    (batches, values)
}

#[test]
fn aborted_data_goes_at_once_and_markers_after_delete_retention() {
    let mut log = memory_log(settings(1));
    let filler = |log: &mut dyn PartitionLog, n: i64| {
        for i in 0..3 {
            append(log, &[(&format!("x{n}-{i}"), Some("f"))], START);
        }
    };
    // Producer 9 aborts (a, b); producer 8 commits a = c1.
    append_spec(
        log.as_mut(),
        &[("a", Some("t1")), ("b", Some("t1"))],
        txn_spec(9),
    );
    let abort = append_marker(log.as_mut(), 9, ControlKind::Abort);
    append_spec(log.as_mut(), &[("a", Some("c1"))], txn_spec(8));
    append_marker(log.as_mut(), 8, ControlKind::Commit);
    filler(log.as_mut(), 0);
    let aborted = [AbortedTxn {
        producer_id: 9,
        first_offset: 0,
        last_offset: abort,
    }];
    let stats = clean_txn(log.as_mut(), START + 10, &aborted, HashMap::new());
    let (batches, values) = txn_view(log.as_ref());
    assert!(!values.contains(&"t1".to_string()), "{values:?}");
    assert!(values.contains(&"c1".to_string()), "committed data stays");
    assert!(stats.records_removed >= 2);
    // Both markers stay: this pass still read a batch of their transactions.
    assert_eq!(batches, vec![(9, true), (8, false), (8, true)]);

    // a is overwritten: the committed batch goes, its marker stays one more pass; nothing of
    // the aborted transaction is left, so its marker gets a delete horizon.
    append(log.as_mut(), &[("a", Some("plain"))], START);
    filler(log.as_mut(), 1);
    clean_txn(log.as_mut(), START + 20, &aborted, HashMap::new());
    let (batches, values) = txn_view(log.as_ref());
    assert!(!values.contains(&"c1".to_string()));
    assert_eq!(batches, vec![(9, true), (8, true)]);
    let horizons = |log: &dyn PartitionLog| -> Vec<Option<i64>> {
        let (headers, _) = read_all(log);
        headers
            .iter()
            .filter(|h| h.is_control())
            .map(|h| h.delete_horizon_ms())
            .collect()
    };
    assert_eq!(horizons(log.as_ref()), vec![Some(START + 1_020), None]);

    // Nothing of the committed transaction is left either: its marker gets one too.
    filler(log.as_mut(), 2);
    clean_txn(log.as_mut(), START + 30, &aborted, HashMap::new());
    assert_eq!(txn_view(log.as_ref()).0, vec![(9, true), (8, true)]);
    assert_eq!(
        horizons(log.as_ref()),
        vec![Some(START + 1_020), Some(START + 1_030)]
    );
    // ... and go once it has passed, except the marker that is its producer's last batch.
    filler(log.as_mut(), 3);
    clean_txn(
        log.as_mut(),
        START + 1_030,
        &aborted,
        HashMap::from([(9, 0)]),
    );
    assert_eq!(txn_view(log.as_ref()).0, vec![(9, true)]);
    // Every offset still reads in order (gaps only).
    let (_, records) = read_all(log.as_ref());
    assert!(records.windows(2).all(|w| w[0].offset < w[1].offset));
}

#[test]
fn a_kill_during_a_clean_leaves_the_old_or_the_new_segments() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("logs").join("t-0");
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let mut log = storage
        .logs
        .open("t", 0, settings(400), &mut |_, _| {})
        .unwrap();
    let expected = key_heavy(log.as_mut());
    let (_, before) = read_all(log.as_ref());
    let files = |d: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    // Killed while writing: the cleaned copy is written but not committed.
    let req = CleanRequest {
        now_ms: START + 10,
        upper_bound: log.next_offset(),
        map_budget_bytes: 1 << 20,
        ..Default::default()
    };
    let job = log.begin_clean(&req).unwrap().unwrap();
    let cleaned = job
        .run(&Throttle::new(0.0), &AtomicBool::new(false))
        .unwrap();
    assert!(files(&logdir).iter().any(|n| n.ends_with(".cleaned")));
    drop(cleaned);
    drop(log);
    drop(storage);
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let log = storage
        .logs
        .open("t", 0, settings(400), &mut |_, _| {})
        .unwrap();
    assert!(!files(&logdir).iter().any(|n| n.ends_with(".cleaned")));
    assert_eq!(
        read_all(log.as_ref()).1,
        before,
        "the old segments, untouched"
    );
    drop(log);
    drop(storage);

    // Killed after the commit point (the .swap rename) with some old segments deleted.
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let mut log = storage
        .logs
        .open("t", 0, settings(400), &mut |_, _| {})
        .unwrap();
    let job = log.begin_clean(&req).unwrap().unwrap();
    let cleaned = job
        .run(&Throttle::new(0.0), &AtomicBool::new(false))
        .unwrap();
    let group = &cleaned.groups[0];
    let (base, end) = (group.base, group.end);
    drop(cleaned);
    drop(log);
    drop(storage);
    let cleaned = logdir.join(format!("{base:020}.cleaned"));
    std::fs::rename(&cleaned, logdir.join(format!("{base:020}.{end:020}.swap"))).unwrap();
    std::fs::remove_file(logdir.join(format!("{base:020}.log"))).unwrap();
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let log = storage
        .logs
        .open("t", 0, settings(400), &mut |_, _| {})
        .unwrap();
    let names = files(&logdir);
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".log") || n == "cleaner-offset"),
        "{names:?}"
    );
    assert!(names.contains(&format!("{base:020}.log")));
    assert!(!names.iter().any(|n| {
        n.strip_suffix(".log")
            .and_then(|b| b.parse::<i64>().ok())
            .is_some_and(|b| b > base && b < end)
    }));
    let (_, after) = read_all(log.as_ref());
    assert_eq!(latest(&after), expected);
    assert!(after.len() < before.len());
}

#[test]
fn a_clean_swapped_in_survives_a_restart_and_retention_meanwhile_skips_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let mut log = storage
        .logs
        .open("t", 0, settings(400), &mut |_, _| {})
        .unwrap();
    let expected = key_heavy(log.as_mut());
    clean(log.as_mut(), START + 10).expect("due");
    let (_, after) = read_all(log.as_ref());
    drop(log);
    drop(storage);
    let storage = crate::storage::file::open(dir.path(), false).unwrap();
    let mut log = storage
        .logs
        .open("t", 0, settings(400), &mut |_, _| {})
        .unwrap();
    assert_eq!(read_all(log.as_ref()).1, after);
    assert_eq!(latest(&after), expected);
    assert_eq!(
        clean(log.as_mut(), START + 20),
        None,
        "the cleaner offset was kept"
    );

    // Retention removes segments while a clean runs: those groups are not swapped in.
    let mut s = settings(400);
    s.delete_retention = true;
    s.retention_bytes = 0;
    let mut log = memory_log(s);
    key_heavy(log.as_mut());
    let req = CleanRequest {
        now_ms: START + 10,
        upper_bound: log.next_offset(),
        map_budget_bytes: 1 << 20,
        ..Default::default()
    };
    let job = log.begin_clean(&req).unwrap().unwrap();
    let cleaned = job
        .run(&Throttle::new(0.0), &AtomicBool::new(false))
        .unwrap();
    let groups = cleaned.groups.len();
    assert!(log.enforce_retention(START + 10).unwrap() > 0);
    let stats = log.finish_clean(cleaned).unwrap();
    assert_eq!(stats.groups_skipped, groups);
    read_all(log.as_ref());
}

#[test]
fn a_small_key_map_cleans_in_several_passes() {
    let mut log = memory_log(settings(1));
    let mut expected = BTreeMap::new();
    for i in 0..40 {
        let k = format!("key-{}", i % 20);
        let v = format!("{i}");
        append(log.as_mut(), &[(&k, Some(&v))], START + i);
        expected.insert(k, Some(v));
    }
    let mut passes = 0;
    loop {
        let req = CleanRequest {
            now_ms: START + 100,
            upper_bound: log.next_offset(),
            map_budget_bytes: 5 * 60, // about five keys
            ..Default::default()
        };
        let Some(job) = log.begin_clean(&req).unwrap() else {
            break;
        };
        let cleaned = job
            .run(&Throttle::new(0.0), &AtomicBool::new(false))
            .unwrap();
        log.finish_clean(cleaned).unwrap();
        passes += 1;
        assert!(passes < 50);
    }
    assert!(passes > 1);
    assert_eq!(latest(&read_all(log.as_ref()).1), expected);
}
