//! One share partition's delivery state (KIP-932's `SharePartition`), pure: no I/O, no clock of
//! its own (callers pass the wall-clock milliseconds), so tests drive every timer.
//!
//! Every offset from the share-partition start offset (SPSO, `start`) up to `end` (one past the
//! share-partition end offset, SPEO) is in flight and has a state: available, acquired by a
//! member until its lock expires, acknowledged, or archived. Offsets below `start` are done;
//! offsets from `end` on were never fetched. The start moves up over acknowledged and archived
//! offsets; at most `max_in_flight` offsets are in flight (Kafka's
//! `group.share.partition.max.record.locks`), so a slow group does not hold a window of any
//! size. Offsets are kept one entry each: the window is bounded by that limit (2000 by default).

use std::collections::BTreeMap;

use crate::error::KafkaError;

/// A record's delivery state, with Kafka's wire/persisted ids (`RecordState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available = 0,
    Acquired = 1,
    Acknowledged = 2,
    Archived = 4,
}

impl RecordState {
    pub fn from_id(id: u8) -> Option<RecordState> {
        Some(match id {
            0 => RecordState::Available,
            1 => RecordState::Acquired,
            2 => RecordState::Acknowledged,
            4 => RecordState::Archived,
            _ => return None,
        })
    }

    fn is_done(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// An acknowledgement type as the wire carries it (ShareFetch/ShareAcknowledge; RENEW from v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// No record at this offset (a compacted-away offset or a control record): done.
    Gap = 0,
    Accept = 1,
    Release = 2,
    Reject = 3,
    /// KIP-1222: the member keeps the record, its acquisition lock starts again.
    Renew = 4,
}

impl AckType {
    pub fn from_wire(t: i8) -> Option<AckType> {
        Some(match t {
            0 => AckType::Gap,
            1 => AckType::Accept,
            2 => AckType::Release,
            3 => AckType::Reject,
            4 => AckType::Renew,
            _ => return None,
        })
    }
}

/// Whether an acknowledgement may renew acquisition locks (KIP-1222), as Kafka 4.4 decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// RENEW is not a type of this request (v1, or a v2 request without `IsRenewAck`):
    /// INVALID_REQUEST.
    NotInRequest,
    /// The group's `share.renew.acknowledge.enable` is false: INVALID_RECORD_STATE.
    Disabled,
    /// Locks renewed now (wall-clock ms) last the group's lock duration from now.
    At(i64),
}

/// The settings a share partition runs with (broker defaults, or the group's overrides:
/// `ShareCoordinator::settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimits {
    /// `group.share.record.lock.duration.ms`.
    pub lock_ms: i64,
    /// `group.share.delivery.count.limit`: a record delivered this often and not accepted is
    /// archived.
    pub delivery_limit: i16,
    /// `group.share.partition.max.record.locks`.
    pub max_in_flight: i64,
}

impl Default for ShareLimits {
    fn default() -> Self {
        ShareLimits {
            lock_ms: 30_000,
            delivery_limit: 5,
            max_in_flight: 2_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    delivery_count: i16,
    /// The member holding the acquisition lock (Acquired only).
    owner: Option<String>,
    lock_until_ms: i64,
}

/// A range of acquired offsets handed to a member, as ShareFetch's AcquiredRecords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub delivery_count: i16,
}

/// A run of offsets with one durable state, as stored (acquired offsets are stored as
/// available: a lock does not outlive its leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first: i64,
    pub last: i64,
    pub state: RecordState,
    pub delivery_count: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    start: i64,
    end: i64,
    records: BTreeMap<i64, InFlight>,
}

impl SharePartition {
    /// A share partition nothing was delivered from yet, starting at `start` (the log's end
    /// for `share.auto.offset.reset=latest`, its start for `earliest`).
    pub fn new(start: i64) -> SharePartition {
        SharePartition {
            start,
            end: start,
            records: BTreeMap::new(),
        }
    }

    /// Back from its durable form: the start and the in-flight runs (every offset between the
    /// start and the last run's end). Acquired runs come back available.
    pub fn restore(start: i64, batches: &[StateBatch]) -> SharePartition {
        let mut sp = SharePartition::new(start);
        for b in batches {
            for offset in b.first.max(start)..=b.last {
                let state = match b.state {
                    RecordState::Acquired => RecordState::Available,
                    s => s,
                };
                sp.records.insert(
                    offset,
                    InFlight {
                        state,
                        delivery_count: b.delivery_count,
                        owner: None,
                        lock_until_ms: 0,
                    },
                );
                sp.end = sp.end.max(offset + 1);
            }
        }
        // Holes (never in a stored form kop writes) count as available, never delivered.
        for offset in start..sp.end {
            sp.records.entry(offset).or_insert(InFlight {
                state: RecordState::Available,
                delivery_count: 0,
                owner: None,
                lock_until_ms: 0,
            });
        }
        sp.advance();
        sp
    }

    /// The share-partition start offset (SPSO).
    pub fn start(&self) -> i64 {
        self.start
    }

    /// One past the share-partition end offset (the next offset never fetched).
    pub fn end(&self) -> i64 {
        self.end
    }

    /// The durable form: runs of equal state and delivery count over [start, end).
    pub fn batches(&self) -> Vec<StateBatch> {
        let mut out: Vec<StateBatch> = Vec::new();
        for (&offset, r) in &self.records {
            let state = match r.state {
                RecordState::Acquired => RecordState::Available,
                s => s,
            };
            match out.last_mut() {
                Some(b)
                    if b.last + 1 == offset
                        && b.state == state
                        && b.delivery_count == r.delivery_count =>
                {
                    b.last = offset
                }
                _ => out.push(StateBatch {
                    first: offset,
                    last: offset,
                    state,
                    delivery_count: r.delivery_count,
                }),
            }
        }
        out
    }

    /// Where the next read for acquisition starts: the first available offset in flight, else
    /// the end if the window has room; None when nothing can be acquired until a lock expires
    /// or records are acknowledged.
    pub fn next_fetch_offset(&self, limits: &ShareLimits) -> Option<i64> {
        self.records
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
            .map(|(&o, _)| o)
            .or_else(|| (self.end - self.start < limits.max_in_flight).then_some(self.end))
    }

    /// The earliest acquisition lock that has yet to expire (a waiting ShareFetch wakes then).
    pub fn next_lock_expiry(&self) -> Option<i64> {
        self.records
            .values()
            .filter(|r| r.state == RecordState::Acquired)
            .map(|r| r.lock_until_ms)
            .min()
    }

    /// Acquires for `member` what is available within the batches read (`(first, last,
    /// holds_records)` of each batch, in order, all below the log's end), at most
    /// `max_records` records. Offsets from the end on enter the window; offsets missing
    /// between batches (a compacted log) and those of control batches (transaction markers)
    /// are archived, never delivered. Returns the acquired runs.
    ///
    /// This is KIP-1206's record-limit mode (`max_records` exactly, a batch split if need be);
    /// `acquire_whole_batches` is the batch-optimized one.
    pub fn acquire(
        &mut self,
        member: &str,
        batches: &[(i64, i64, bool)],
        max_records: usize,
        now_ms: i64,
        limits: &ShareLimits,
    ) -> Vec<Acquired> {
        self.acquire_as(member, batches, max_records, false, now_ms, limits)
    }

    /// KIP-1206's batch-optimized mode (the only one of ShareFetch v1): whole batches until
    /// `max_records` are taken, so the last batch may take it over (Kafka: "this limit can be
    /// exceeded for alignment of batch boundaries").
    pub fn acquire_whole_batches(
        &mut self,
        member: &str,
        batches: &[(i64, i64, bool)],
        max_records: usize,
        now_ms: i64,
        limits: &ShareLimits,
    ) -> Vec<Acquired> {
        self.acquire_as(member, batches, max_records, true, now_ms, limits)
    }

    fn acquire_as(
        &mut self,
        member: &str,
        batches: &[(i64, i64, bool)],
        max_records: usize,
        whole_batches: bool,
        now_ms: i64,
        limits: &ShareLimits,
    ) -> Vec<Acquired> {
        let mut taken: Vec<Acquired> = Vec::new();
        let mut count = 0usize;
        'batches: for &(first, last, holds_records) in batches {
            if whole_batches && count >= max_records && holds_records {
                break;
            }
            for offset in first.max(self.start)..=last {
                if !whole_batches && count >= max_records && holds_records {
                    break 'batches;
                }
                if offset >= self.end {
                    if self.end - self.start >= limits.max_in_flight {
                        break 'batches;
                    }
                    // A gap before this batch: offsets that hold no record.
                    while self.end < offset {
                        self.records
                            .insert(self.end, done(RecordState::Archived, 0));
                        self.end += 1;
                    }
                    let state = if holds_records {
                        RecordState::Available
                    } else {
                        RecordState::Archived
                    };
                    self.records.insert(offset, done(state, 0));
                    self.end = offset + 1;
                }
                let Some(r) = self.records.get_mut(&offset) else {
                    continue;
                };
                if r.state != RecordState::Available {
                    continue;
                }
                r.state = RecordState::Acquired;
                r.delivery_count = r.delivery_count.saturating_add(1);
                r.owner = Some(member.to_string());
                r.lock_until_ms = now_ms.saturating_add(limits.lock_ms);
                count += 1;
                let dc = r.delivery_count;
                match taken.last_mut() {
                    Some(a) if a.last + 1 == offset && a.delivery_count == dc => a.last = offset,
                    _ => taken.push(Acquired {
                        first: offset,
                        last: offset,
                        delivery_count: dc,
                    }),
                }
            }
        }
        self.advance();
        taken
    }

    /// Applies one acknowledgement batch of `member`: `types` holds one type for the whole
    /// range or one per offset. Every offset must be acquired by the member, else nothing
    /// changes and the answer is INVALID_RECORD_STATE (Kafka's rule). RENEW is refused
    /// (`acknowledge_renewing` takes it).
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[i8],
        limits: &ShareLimits,
    ) -> Result<(), KafkaError> {
        self.acknowledge_renewing(member, first, last, types, limits, Renewal::NotInRequest)
    }

    /// `acknowledge`, with RENEW (4) as `renewal` says: a renewed record stays acquired by
    /// the member, its delivery count unchanged, its lock running from now for the lock
    /// duration (Kafka 4.4's `SharePartition` reschedules the acquisition lock timeout).
    pub fn acknowledge_renewing(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[i8],
        limits: &ShareLimits,
        renewal: Renewal,
    ) -> Result<(), KafkaError> {
        let len = last
            .checked_sub(first)
            .and_then(|d| d.checked_add(1))
            .filter(|&n| n > 0)
            .ok_or(KafkaError::InvalidRequest)?;
        if types.is_empty() || (types.len() != 1 && types.len() as i64 != len) {
            return Err(KafkaError::InvalidRequest);
        }
        let mut kinds = Vec::with_capacity(types.len());
        for &t in types {
            match AckType::from_wire(t) {
                Some(AckType::Renew) if renewal == Renewal::NotInRequest => {
                    return Err(KafkaError::InvalidRequest)
                }
                Some(kind) => kinds.push(kind),
                None => return Err(KafkaError::InvalidRequest),
            }
        }
        if first < self.start || last >= self.end {
            return Err(KafkaError::InvalidRecordState);
        }
        let held = self
            .records
            .range(first..=last)
            .all(|(_, r)| r.state == RecordState::Acquired && r.owner.as_deref() == Some(member));
        if !held {
            return Err(KafkaError::InvalidRecordState);
        }
        let renew_until = match renewal {
            _ if !kinds.contains(&AckType::Renew) => 0,
            Renewal::At(now_ms) => now_ms.saturating_add(limits.lock_ms),
            // "Renewing acquisition locks is not enabled for the group."
            _ => return Err(KafkaError::InvalidRecordState),
        };
        for (i, (_, r)) in self.records.range_mut(first..=last).enumerate() {
            let kind = if kinds.len() == 1 { kinds[0] } else { kinds[i] };
            if kind == AckType::Renew {
                r.lock_until_ms = renew_until;
                continue;
            }
            r.owner = None;
            r.state = match kind {
                AckType::Accept => RecordState::Acknowledged,
                AckType::Gap | AckType::Reject => RecordState::Archived,
                AckType::Release | AckType::Renew => after_delivery(r.delivery_count, limits),
            };
        }
        self.advance();
        Ok(())
    }

    /// Releases the locks that expired by `now_ms`; true if any did.
    pub fn expire_locks(&mut self, now_ms: i64, limits: &ShareLimits) -> bool {
        self.release_where(limits, |r| r.lock_until_ms <= now_ms)
    }

    /// Releases every record `member` holds (its share session closed, or it left the group);
    /// true if it held any.
    pub fn release_member(&mut self, member: &str, limits: &ShareLimits) -> bool {
        self.release_where(limits, |r| r.owner.as_deref() == Some(member))
    }

    fn release_where(&mut self, limits: &ShareLimits, pick: impl Fn(&InFlight) -> bool) -> bool {
        let mut any = false;
        for r in self.records.values_mut() {
            if r.state == RecordState::Acquired && pick(r) {
                r.state = after_delivery(r.delivery_count, limits);
                r.owner = None;
                any = true;
            }
        }
        if any {
            self.advance();
        }
        any
    }

    /// Moves the start to `offset` (the log start moved past it, or an admin reset the group's
    /// offsets): everything in flight below it is dropped; the window restarts there if it
    /// lies beyond the end.
    pub fn move_start(&mut self, offset: i64) {
        if offset <= self.start {
            return;
        }
        self.records = self.records.split_off(&offset);
        self.start = offset;
        if self.end < offset {
            self.end = offset;
        }
        self.advance();
    }

    /// Moves the start up over acknowledged and archived offsets.
    fn advance(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            if *entry.key() != self.start || !entry.get().state.is_done() {
                break;
            }
            entry.remove();
            self.start += 1;
        }
        if self.records.is_empty() {
            self.start = self.start.max(self.end);
            self.end = self.start;
        }
    }

    /// The offsets in flight that are done (acknowledged or archived, gaps and control records
    /// included): Kafka's `deliveryCompleteCount`, which it persists with the state. Offsets
    /// below the start are not counted (they are behind it).
    pub fn delivery_complete_count(&self) -> i64 {
        self.records.values().filter(|r| r.state.is_done()).count() as i64
    }

    /// KIP-1226's share-partition lag given the partition's high watermark: the records from
    /// the start offset up to the high watermark that are still to be delivered and completed
    /// — never fetched, available, or acquired and not yet acknowledged. As Kafka 4.4's group
    /// coordinator computes it (`high watermark - start offset - deliveryCompleteCount`, not
    /// clamped: a start set beyond the log's end by AlterShareGroupOffsets gives a negative lag).
    pub fn lag(&self, high_watermark: i64) -> i64 {
        lag(high_watermark, self.start, self.delivery_complete_count())
    }

    /// (acquired, available, done) offsets in flight (ShareGroupDescribe-style counters).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for r in self.records.values() {
            match r.state {
                RecordState::Acquired => c.0 += 1,
                RecordState::Available => c.1 += 1,
                _ => c.2 += 1,
            }
        }
        c
    }
}

/// The share-partition lag from a high watermark, a start offset and a delivery-complete
/// count (`SharePartition::lag`; `states::Summary::lag` from a stored state).
pub fn lag(high_watermark: i64, start: i64, delivery_complete: i64) -> i64 {
    high_watermark
        .saturating_sub(start)
        .saturating_sub(delivery_complete)
}

/// What a delivered record that was not accepted becomes: available again, or archived once
/// it reached the delivery count limit.
fn after_delivery(delivery_count: i16, limits: &ShareLimits) -> RecordState {
    if delivery_count >= limits.delivery_limit {
        RecordState::Archived
    } else {
        RecordState::Available
    }
}

fn done(state: RecordState, delivery_count: i16) -> InFlight {
    InFlight {
        state,
        delivery_count,
        owner: None,
        lock_until_ms: 0,
    }
}
