//! The share-partition state machine: locks, delivery counts, acknowledgements, the start
//! offset, and the durable form.

use super::partition::*;
use super::state_doc;
use crate::error::KafkaError;

const LIMITS: ShareLimits = ShareLimits {
    lock_ms: 1_000,
    delivery_limit: 3,
    max_in_flight: 10,
};

/// One batch per record, offsets `from..to`.
fn batches(from: i64, to: i64) -> Vec<(i64, i64, bool)> {
    (from..to).map(|o| (o, o, true)).collect()
}

fn runs(a: &[Acquired]) -> Vec<(i64, i64, i16)> {
    a.iter()
        .map(|r| (r.first, r.last, r.delivery_count))
        .collect()
}

#[test]
fn two_members_split_records_and_accept_moves_the_start() {
    let mut sp = SharePartition::new(0);
    let a = sp.acquire("a", &batches(0, 4), 2, 0, &LIMITS);
    assert_eq!(runs(&a), vec![(0, 1, 1)]);
    // b reads from the first available offset and gets the rest, not a's.
    assert_eq!(sp.next_fetch_offset(&LIMITS), Some(2));
    let b = sp.acquire("b", &batches(0, 4), 10, 0, &LIMITS);
    assert_eq!(runs(&b), vec![(2, 3, 1)]);
    // b may not acknowledge a's records; nothing changes.
    assert_eq!(
        sp.acknowledge("b", 0, 2, &[1], &LIMITS),
        Err(KafkaError::InvalidRecordState)
    );
    sp.acknowledge("b", 2, 3, &[1], &LIMITS).unwrap();
    assert_eq!(sp.start(), 0, "0-1 still in flight");
    sp.acknowledge("a", 0, 1, &[1, 3], &LIMITS).unwrap();
    assert_eq!((sp.start(), sp.end()), (4, 4));
    // Acknowledged records are never acquired again.
    assert!(sp.acquire("a", &batches(0, 4), 10, 0, &LIMITS).is_empty());
}

#[test]
fn release_and_lock_expiry_redeliver_until_the_delivery_limit_archives() {
    let mut sp = SharePartition::new(5);
    assert_eq!(
        runs(&sp.acquire("a", &batches(5, 7), 10, 0, &LIMITS)),
        vec![(5, 6, 1)]
    );
    sp.acknowledge("a", 5, 5, &[2], &LIMITS).unwrap();
    // Released: available again, with a higher delivery count next time.
    assert_eq!(
        runs(&sp.acquire("b", &batches(5, 7), 10, 10, &LIMITS)),
        vec![(5, 5, 2)]
    );
    // 6 is a's until its lock expires at 1000.
    assert_eq!(sp.next_lock_expiry(), Some(1_000));
    assert!(!sp.expire_locks(999, &LIMITS));
    assert!(sp.expire_locks(1_000, &LIMITS));
    assert_eq!(
        runs(&sp.acquire("b", &batches(6, 7), 10, 1_000, &LIMITS)),
        vec![(6, 6, 2)]
    );
    // Third delivery of 6, then its lock expires: the limit (3) archives it.
    sp.acknowledge("b", 6, 6, &[2], &LIMITS).unwrap();
    assert_eq!(
        runs(&sp.acquire("b", &batches(6, 7), 10, 2_000, &LIMITS)),
        vec![(6, 6, 3)]
    );
    // Reject archives at once.
    sp.acknowledge("b", 5, 5, &[3], &LIMITS).unwrap();
    assert!(sp.expire_locks(3_000, &LIMITS));
    assert!(sp
        .acquire("b", &batches(6, 7), 10, 3_000, &LIMITS)
        .is_empty());
    assert_eq!(sp.start(), 7);
}

#[test]
fn a_member_that_goes_away_releases_its_records() {
    let mut sp = SharePartition::new(0);
    sp.acquire("a", &batches(0, 3), 10, 0, &LIMITS);
    assert!(sp.release_member("a", &LIMITS));
    assert!(!sp.release_member("a", &LIMITS));
    assert_eq!(
        runs(&sp.acquire("b", &batches(0, 3), 10, 0, &LIMITS)),
        vec![(0, 2, 2)]
    );
}

#[test]
fn the_window_is_bounded_and_gaps_and_control_batches_are_archived() {
    let mut sp = SharePartition::new(0);
    let got = sp.acquire("a", &batches(0, 20), 100, 0, &LIMITS);
    assert_eq!(runs(&got), vec![(0, 9, 1)], "max_in_flight 10");
    assert_eq!(sp.next_fetch_offset(&LIMITS), None);
    sp.acknowledge("a", 0, 9, &[1], &LIMITS).unwrap();
    // A compacted log: 10-11 hold nothing; 13 is a transaction marker.
    let got = sp.acquire(
        "a",
        &[(12, 12, true), (13, 13, false), (14, 15, true)],
        100,
        0,
        &LIMITS,
    );
    assert_eq!(runs(&got), vec![(12, 12, 1), (14, 15, 1)]);
    sp.acknowledge("a", 12, 12, &[1], &LIMITS).unwrap();
    assert_eq!(sp.start(), 14);
    // Bad acknowledgements.
    assert_eq!(
        sp.acknowledge("a", 14, 15, &[1, 1, 1], &LIMITS),
        Err(KafkaError::InvalidRequest)
    );
    assert_eq!(
        sp.acknowledge("a", 14, 15, &[9], &LIMITS),
        Err(KafkaError::InvalidRequest)
    );
    assert_eq!(
        sp.acknowledge("a", 15, 14, &[1], &LIMITS),
        Err(KafkaError::InvalidRequest)
    );
    assert_eq!(
        sp.acknowledge("a", 3, 3, &[1], &LIMITS),
        Err(KafkaError::InvalidRecordState)
    );
    // The log start moved past the window (retention).
    sp.move_start(100);
    assert_eq!((sp.start(), sp.end()), (100, 100));
}

#[test]
fn the_durable_form_restores_accepted_and_counts_and_frees_locks() {
    let mut sp = SharePartition::new(0);
    sp.acquire("a", &batches(0, 6), 10, 0, &LIMITS);
    sp.acknowledge("a", 1, 1, &[1], &LIMITS).unwrap();
    sp.acknowledge("a", 2, 2, &[2], &LIMITS).unwrap();
    sp.acknowledge("a", 0, 0, &[1], &LIMITS).unwrap();
    let bytes = state_doc::encode(&sp);
    let mut back = state_doc::decode(&bytes).unwrap();
    assert_eq!((back.start(), back.end()), (2, 6));
    // 2 was released once; 3-5 were acquired when stored: they come back available.
    let got = back.acquire("b", &batches(0, 6), 10, 0, &LIMITS);
    assert_eq!(runs(&got), vec![(2, 5, 2)]);
    assert_eq!(
        state_doc::encode(&state_doc::decode(&bytes).unwrap()),
        bytes
    );
    assert!(state_doc::decode(b"{\"start\":5,\"batches\":[[1,2,0,0]]}").is_err());
    assert!(state_doc::decode(b"{\"start\":5,\"batches\":[[5,6,3,0]]}").is_err());
}

/// KIP-1206: record-limit takes `max_records` exactly, splitting a batch; batch-optimized
/// takes whole batches and may go over.
#[test]
fn acquire_modes_split_a_batch_or_take_it_whole() {
    let one_batch = [(0, 5, true)];
    let mut sp = SharePartition::new(0);
    assert_eq!(
        runs(&sp.acquire("a", &one_batch, 2, 0, &LIMITS)),
        vec![(0, 1, 1)]
    );
    assert_eq!(
        runs(&sp.acquire("b", &one_batch, 2, 0, &LIMITS)),
        vec![(2, 3, 1)]
    );
    let mut sp = SharePartition::new(0);
    let two = [(0, 5, true), (6, 8, true)];
    assert_eq!(
        runs(&sp.acquire_whole_batches("a", &two, 2, 0, &LIMITS)),
        vec![(0, 5, 1)]
    );
    // The next batch goes to the next fetch, whole.
    assert_eq!(
        runs(&sp.acquire_whole_batches("b", &two, 2, 0, &LIMITS)),
        vec![(6, 8, 1)]
    );
}

/// KIP-1222: RENEW keeps the record acquired by the member at its delivery count with a new
/// lock; a group that disables it gets INVALID_RECORD_STATE, a request without renewals
/// INVALID_REQUEST, another member's records INVALID_RECORD_STATE.
#[test]
fn renew_extends_the_lock_and_nothing_else() {
    let mut sp = SharePartition::new(0);
    sp.acquire("a", &batches(0, 3), 10, 0, &LIMITS);
    assert_eq!(
        sp.acknowledge("a", 0, 0, &[4], &LIMITS),
        Err(KafkaError::InvalidRequest)
    );
    assert_eq!(
        sp.acknowledge_renewing("a", 0, 0, &[4], &LIMITS, Renewal::Disabled),
        Err(KafkaError::InvalidRecordState)
    );
    assert_eq!(
        sp.acknowledge_renewing("b", 0, 0, &[4], &LIMITS, Renewal::At(900)),
        Err(KafkaError::InvalidRecordState)
    );
    // Renew 0 at 900 (lock to 1900), accept 1; 2 keeps its lock to 1000.
    sp.acknowledge_renewing("a", 0, 1, &[4, 1], &LIMITS, Renewal::At(900))
        .unwrap();
    assert_eq!(sp.next_lock_expiry(), Some(1_000));
    sp.expire_locks(1_000, &LIMITS);
    assert_eq!(sp.counts(), (1, 1, 1));
    assert_eq!(sp.next_lock_expiry(), Some(1_900));
    // Still a's, still delivery 1: a can accept it; nobody else got it.
    assert!(sp
        .acquire("b", &batches(0, 3), 10, 1_500, &LIMITS)
        .iter()
        .all(|r| r.first == 2));
    sp.acknowledge("a", 0, 0, &[1], &LIMITS).unwrap();
    assert_eq!(sp.start(), 2);
}

/// KIP-1226's lag: the records from the start up to the high watermark not yet delivered and
/// completed. Acquired and available records count, acknowledged and archived ones (rejected,
/// over the delivery limit, or gaps) do not, and neither does anything below the start.
#[test]
fn the_lag_counts_what_is_not_done_between_the_start_and_the_high_watermark() {
    let mut sp = SharePartition::new(10);
    // Never initialised here: the whole log from the start is to be delivered.
    assert_eq!((sp.delivery_complete_count(), sp.lag(20)), (0, 10));
    // 10-15 acquired: still to be completed.
    sp.acquire("a", &batches(10, 16), 10, 0, &LIMITS);
    assert_eq!(sp.lag(20), 10);
    // Accept 12-13 and reject 15: 11, 14 still in flight; 10 too, so the start stays.
    sp.acknowledge("a", 12, 13, &[1], &LIMITS).unwrap();
    sp.acknowledge("a", 15, 15, &[3], &LIMITS).unwrap();
    assert_eq!((sp.start(), sp.delivery_complete_count()), (10, 3));
    assert_eq!(sp.lag(20), 20 - 10 - 3);
    // Release 11: available again, still lagging.
    sp.acknowledge("a", 11, 11, &[2], &LIMITS).unwrap();
    assert_eq!(sp.lag(20), 7);
    // Accept 10: the start moves over 10 and nothing else (11 is available).
    sp.acknowledge("a", 10, 10, &[1], &LIMITS).unwrap();
    assert_eq!((sp.start(), sp.delivery_complete_count()), (11, 3));
    assert_eq!(sp.lag(20), 6, "11, 14, 16-19");
    // The durable form keeps the same count (what another instance reads).
    let back = state_doc::decode(&state_doc::encode(&sp)).unwrap();
    assert_eq!((back.start(), back.delivery_complete_count()), (11, 3));
    assert_eq!(back.lag(20), 6);
}

#[test]
fn gaps_and_records_over_the_delivery_limit_are_done_and_not_lag() {
    let mut sp = SharePartition::new(0);
    // Batches at 0-1 and 5-6: 2-4 are a gap (compacted away) and archived on the way in.
    sp.acquire("a", &[(0, 1, true), (5, 6, true)], 10, 0, &LIMITS);
    assert_eq!(sp.delivery_complete_count(), 3);
    assert_eq!(sp.lag(7), 4, "0, 1, 5, 6 acquired");
    // 0 is released until it reaches the delivery limit (3): archived.
    sp.acknowledge("a", 0, 0, &[2], &LIMITS).unwrap();
    for _ in 1..LIMITS.delivery_limit {
        sp.acquire("a", &batches(0, 1), 1, 0, &LIMITS);
        sp.acknowledge("a", 0, 0, &[2], &LIMITS).unwrap();
    }
    assert_eq!(sp.start(), 1, "0 archived");
    assert_eq!(sp.lag(7), 3);
    // Everything accepted: the start passes the window and the lag is what was produced since.
    sp.acknowledge("a", 1, 1, &[1], &LIMITS).unwrap();
    sp.acknowledge("a", 5, 6, &[1], &LIMITS).unwrap();
    assert_eq!((sp.start(), sp.delivery_complete_count()), (7, 0));
    assert_eq!((sp.lag(7), sp.lag(9)), (0, 2));
}

/// The log start moving past the start (retention, DeleteRecords) drops what was in flight
/// below it, done or not: neither is lag any more.
#[test]
fn moving_the_start_drops_done_records_from_the_count() {
    let mut sp = SharePartition::new(0);
    sp.acquire("a", &batches(0, 6), 10, 0, &LIMITS);
    sp.acknowledge("a", 1, 2, &[1], &LIMITS).unwrap();
    sp.acknowledge("a", 4, 4, &[1], &LIMITS).unwrap();
    assert_eq!((sp.delivery_complete_count(), sp.lag(6)), (3, 3));
    sp.move_start(3);
    assert_eq!((sp.start(), sp.delivery_complete_count()), (3, 1));
    assert_eq!(sp.lag(6), 2, "3 and 5 acquired");
}
