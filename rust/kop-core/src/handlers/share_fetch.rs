//! KIP-932: ShareFetch and ShareAcknowledge, served by the leader of each partition.
//!
//! A request belongs to a share session (`share::sessions`). Its acknowledgements are applied
//! first (and saved before the answer: an accepted record is never delivered again); then, for
//! ShareFetch, each partition of the session acquires for the member what is available —
//! whole batches are read from the log and the answer names the acquired offsets
//! (AcquiredRecords), which the client alone delivers. With nothing acquired the request waits
//! for an append, an expiring lock, or MaxWaitMs.
//!
//! Version 2 (hand-decoded: `share_wire.rs`) adds KIP-1206's acquire mode (record-limit takes
//! MaxRecords exactly, batch-optimized — v1's only mode — whole batches) and KIP-1222's RENEW
//! acknowledgement, which restarts the lock of records the member holds; a renewing ShareFetch
//! fetches nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::share_acknowledge_response::{
    self as sar, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::*;
use tokio::sync::watch;
use uuid::Uuid;

use super::authz::{self, Operation, ResourceType};
use super::share_wire::{self, AcquireMode, ShareAcknowledge, ShareFetch};
use super::{sb, Outcome, RequestContext};
use crate::broker::aborted_txns::AbortedTxn;
use crate::broker::partition::{Isolation, LogMark, Partition, LEADER_EPOCH};
use crate::codec::frame::RequestFrame;
use crate::error::KafkaError;
use crate::records::batch::{BatchHeader, LOG_OVERHEAD};
use crate::share::partition::{Acquired, Renewal};
use crate::share::sessions::{SessionPartition, FINAL_EPOCH, INITIAL_EPOCH};
use crate::share::ShareKey;

/// Cap on one answer whatever the client asks (as Fetch).
const FETCH_MAX_BYTES: usize = 57_671_680;

/// One acknowledgement batch: (first, last, types).
type AckBatch = (i64, i64, Vec<i8>);

/// What a partition's answer carries.
#[derive(Default)]
struct Answer {
    error: Option<KafkaError>,
    ack_error: Option<KafkaError>,
    /// Set when the partition had acknowledgements (their result is always answered).
    acked: bool,
    records: Bytes,
    acquired: Vec<Acquired>,
}

fn partition_of(
    ctx: &RequestContext,
    (topic_id, index): SessionPartition,
) -> Result<std::sync::Arc<Partition>, KafkaError> {
    let topic = ctx
        .broker
        .topic_by_id(&topic_id)
        .ok_or(KafkaError::UnknownTopicId)?;
    let p = topic
        .partition(index)
        .ok_or(KafkaError::UnknownTopicOrPartition)?;
    p.ensure_served()?;
    Ok(p)
}

fn key(group: &str, (topic_id, partition): SessionPartition) -> ShareKey {
    ShareKey {
        group: group.to_string(),
        topic_id,
        partition,
    }
}

/// What the group runs with now (its GROUP configs over the broker's defaults).
fn settings(ctx: &RequestContext, group: &str) -> crate::share::ShareSettings {
    ctx.broker
        .share
        .settings(&ctx.broker.groups.group_configs, group)
}

/// Loads (or starts) the share partition under the partition's current log generation.
fn load(
    ctx: &RequestContext,
    group: &str,
    sp: SessionPartition,
) -> Result<(std::sync::Arc<Partition>, crate::share::states::Locked), KafkaError> {
    let p = partition_of(ctx, sp)?;
    let generation = p.subscribe().borrow().generation;
    let reset = settings(ctx, group).auto_offset_reset;
    let locked = ctx
        .broker
        .share
        .states
        .load(&key(group, sp), generation, &|| reset.start_in(&p))?;
    Ok((p, locked))
}

/// Applies a partition's acknowledgement batches, all or until the first that fails, and saves
/// the outcome before answering.
fn acknowledge(
    ctx: &RequestContext,
    group: &str,
    member: &str,
    sp: SessionPartition,
    batches: &[AckBatch],
    renew_in_request: bool,
) -> Result<(), KafkaError> {
    let (_, locked) = load(ctx, group, sp)?;
    let settings = settings(ctx, group);
    let renewal = match (renew_in_request, settings.renew_enabled) {
        (false, _) => Renewal::NotInRequest,
        (true, false) => Renewal::Disabled,
        (true, true) => Renewal::At(crate::now_ms()),
    };
    let result = {
        let mut g = locked.guard();
        let state = g.sp();
        let mut result = Ok(());
        for (first, last, types) in batches {
            let done =
                state.acknowledge_renewing(member, *first, *last, types, &settings.limits, renewal);
            if let Err(e) = done {
                result = Err(e);
            }
        }
        result
    };
    ctx.broker.share.states.save(&key(group, sp), &locked)?;
    result
}

/// (first offset, last offset, holds records) of each whole batch in `records`. Batches of
/// `aborted` transactions (read_committed) hold no records to deliver: they are archived.
fn batch_ranges(records: &[u8], aborted: &[AbortedTxn]) -> Vec<(i64, i64, bool)> {
    let mut out = Vec::new();
    let mut rest = records;
    while let Ok(h) = BatchHeader::parse(rest) {
        let was_aborted = h.is_transactional()
            && aborted.iter().any(|a| {
                a.producer_id == h.producer_id
                    && a.first_offset <= h.base_offset
                    && h.base_offset <= a.last_offset
            });
        out.push((
            h.base_offset,
            h.last_offset(),
            !h.is_control() && !was_aborted,
        ));
        let Some(next) = rest.get(h.size.max(LOG_OVERHEAD)..) else {
            break;
        };
        rest = next;
    }
    out
}

/// The prefix of `records` up to the batch holding `last`.
fn through(records: Bytes, last: i64) -> Bytes {
    let mut end = 0usize;
    let mut rest = &records[..];
    while let Ok(h) = BatchHeader::parse(rest) {
        if h.base_offset > last {
            break;
        }
        end += h.size.max(LOG_OVERHEAD);
        let Some(next) = rest.get(h.size.max(LOG_OVERHEAD)..) else {
            break;
        };
        rest = next;
    }
    records.slice(..end.min(records.len()))
}

/// Acquires records of one share partition for the member. Saves when locks expired (their
/// delivery counts, or archiving, must survive a restart).
fn acquire(
    ctx: &RequestContext,
    group: &str,
    member: &str,
    sp: SessionPartition,
    mode: AcquireMode,
    max_records: &mut usize,
    max_bytes: &mut usize,
) -> Result<(Bytes, Vec<Acquired>), KafkaError> {
    let (p, locked) = load(ctx, group, sp)?;
    let states = &ctx.broker.share.states;
    let settings = settings(ctx, group);
    let limits = settings.limits;
    let now = crate::now_ms();
    let log_start = p.log_start_offset();
    let (changed, out) = {
        let mut g = locked.guard();
        let state = g.sp();
        let mut changed = state.expire_locks(now, &limits);
        if state.start() < log_start {
            // Retention or DeleteRecords removed records never delivered: they are gone.
            state.move_start(log_start);
            changed = true;
        }
        let from = state.next_fetch_offset(&limits);
        let out = match from {
            Some(from) if *max_records > 0 && *max_bytes > 0 && from < p.high_watermark() => {
                let isolation = if settings.read_committed {
                    Isolation::ReadCommitted
                } else {
                    Isolation::ReadUncommitted
                };
                let read = p.read(from, *max_bytes, isolation)?;
                let batches = batch_ranges(&read.records, &read.aborted);
                let acquired = match mode {
                    AcquireMode::RecordLimit => {
                        state.acquire(member, &batches, *max_records, now, &limits)
                    }
                    AcquireMode::BatchOptimized => {
                        state.acquire_whole_batches(member, &batches, *max_records, now, &limits)
                    }
                };
                match acquired.last() {
                    Some(last) => {
                        let bytes = through(read.records, last.last);
                        let n: i64 = acquired.iter().map(|a| a.last - a.first + 1).sum();
                        *max_records = max_records.saturating_sub(n as usize);
                        *max_bytes = max_bytes.saturating_sub(bytes.len());
                        (bytes, acquired)
                    }
                    None => (Bytes::new(), Vec::new()),
                }
            }
            _ => (Bytes::new(), Vec::new()),
        };
        (changed, out)
    };
    if changed {
        states.save(&key(group, sp), &locked)?;
    }
    Ok(out)
}

/// The soonest lock expiry among the session's partitions held here (a waiting fetch wakes then).
fn next_expiry(ctx: &RequestContext, group: &str, partitions: &[SessionPartition]) -> Option<i64> {
    partitions
        .iter()
        .filter_map(|&sp| load(ctx, group, sp).ok())
        .filter_map(|(_, locked)| locked.guard().sp().next_lock_expiry())
        .min()
}

/// Acknowledgement batches per partition, as listed in a request.
fn ack_batches<'a, P>(
    topics: impl Iterator<Item = (Uuid, &'a [P])>,
    batches_of: impl Fn(&'a P) -> (i32, Vec<AckBatch>),
) -> BTreeMap<SessionPartition, Vec<AckBatch>>
where
    P: 'a,
{
    let mut out: BTreeMap<SessionPartition, Vec<AckBatch>> = BTreeMap::new();
    for (topic_id, partitions) in topics {
        for p in partitions {
            let (index, bs) = batches_of(p);
            if !bs.is_empty() {
                out.entry((topic_id, index)).or_default().extend(bs);
            }
        }
    }
    out
}

/// The topics among `partitions` the principal may not READ (by id).
async fn denied_topics(
    ctx: &RequestContext,
    api: &str,
    partitions: impl Iterator<Item = Uuid>,
) -> std::collections::HashSet<Uuid> {
    if authz::allow_all(ctx) {
        return Default::default();
    }
    let mut ids: Vec<Uuid> = partitions.collect();
    ids.sort();
    ids.dedup();
    let named: Vec<(Uuid, String)> = ids
        .into_iter()
        .filter_map(|id| ctx.broker.topic_by_id(&id).map(|t| (id, t.name.clone())))
        .collect();
    let denied = authz::denied(
        ctx,
        api,
        Operation::Read,
        ResourceType::Topic,
        named.iter().map(|(_, n)| n.as_str()),
    )
    .await;
    named
        .into_iter()
        .filter(|(_, n)| denied.contains(n))
        .map(|(id, _)| id)
        .collect()
}

fn leader(ctx: &RequestContext, sp: SessionPartition, error: Option<KafkaError>) -> (i32, i32) {
    if error == Some(KafkaError::NotLeaderOrFollower) {
        if let Some(t) = ctx.broker.topic_by_id(&sp.0) {
            return (ctx.broker.cluster.leader(&t.name, sp.1), LEADER_EPOCH);
        }
        return (-1, -1);
    }
    (ctx.broker.config.node_id, LEADER_EPOCH)
}

/// ShareFetch v1 (the crate's codec).
pub async fn fetch(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: ShareFetchRequest,
) -> ShareFetchResponse {
    fetch_any(ctx, ShareFetch::v1(req)).await
}

async fn fetch_any(ctx: &RequestContext, fetch: ShareFetch) -> ShareFetchResponse {
    let ShareFetch {
        req,
        acquire_mode,
        is_renew_ack,
        ..
    } = fetch;
    let fail = |e: KafkaError| {
        ShareFetchResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(e.to_string())))
    };

    let (Some(group), Some(member)) = (req.group_id.as_ref(), req.member_id.as_ref()) else {
        return fail(KafkaError::InvalidRequest);
    };
    let (group, member) = (group.to_string(), member.to_string());
    if member.is_empty() {
        return fail(KafkaError::InvalidRequest);
    }
    if !authz::group_allowed(ctx, "ShareFetch", Operation::Read, &group).await {
        return fail(KafkaError::GroupAuthorizationFailed);
    }
    // A renewing fetch fetches nothing: Kafka refuses one that asks for records.
    if is_renew_ack
        && (
            req.max_bytes,
            req.min_bytes,
            req.max_records,
            req.max_wait_ms,
        ) != (0, 0, 0, 0)
    {
        return ShareFetchResponse::default()
            .with_error_code(KafkaError::InvalidRequest.code())
            .with_error_message(Some(sb(
                "MaxBytes, MinBytes, MaxRecords and MaxWaitMs must be 0 when IsRenewAck is set"
                    .to_string(),
            )));
    }
    let share = &ctx.broker.share;
    let listed: Vec<SessionPartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic_id, p.partition_index))
        })
        .collect();
    let acks = ack_batches(
        req.topics
            .iter()
            .map(|t| (t.topic_id, t.partitions.as_slice())),
        |p| {
            let bs = p
                .acknowledgement_batches
                .iter()
                .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                .collect();
            (p.partition_index, bs)
        },
    );
    let forgotten: Vec<SessionPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic_id, p)))
        .collect();
    let now = Instant::now();
    let epoch = req.share_session_epoch;
    let session = match epoch {
        INITIAL_EPOCH if !acks.is_empty() => return fail(KafkaError::InvalidRequest),
        INITIAL_EPOCH => share
            .sessions
            .open(
                &group,
                &member,
                ctx.connection_id,
                listed.iter().copied(),
                now,
            )
            .map(|_| listed.clone()),
        FINAL_EPOCH => {
            if share.sessions.exists(&group, &member) {
                Ok(Vec::new())
            } else {
                Err(KafkaError::ShareSessionNotFound)
            }
        }
        _ => share.sessions.advance(
            &group,
            &member,
            epoch,
            listed.iter().copied(),
            &forgotten,
            now,
        ),
    };
    let partitions = match session {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let denied = denied_topics(
        ctx,
        "ShareFetch",
        partitions.iter().chain(acks.keys()).map(|(t, _)| *t),
    )
    .await;
    let mut answers: BTreeMap<SessionPartition, Answer> = BTreeMap::new();
    for (sp, batches) in &acks {
        let a = answers.entry(*sp).or_default();
        a.acked = true;
        a.ack_error = if denied.contains(&sp.0) {
            Some(KafkaError::TopicAuthorizationFailed)
        } else {
            acknowledge(ctx, &group, &member, *sp, batches, is_renew_ack).err()
        };
    }
    if epoch == FINAL_EPOCH {
        share.member_gone(&ctx.broker.groups.group_configs, &group, &member);
    }
    if epoch == FINAL_EPOCH || is_renew_ack {
        return respond(ctx, answers, settings(ctx, &group).limits.lock_ms);
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut watchers: Vec<watch::Receiver<LogMark>> = partitions
        .iter()
        .filter_map(|&sp| partition_of(ctx, sp).ok().map(|p| p.subscribe()))
        .collect();
    let mut shutdown = ctx.shutdown.clone();
    let max_records = if req.max_records > 0 {
        req.max_records as usize
    } else {
        500
    };
    let max_bytes = (req.max_bytes.max(1) as usize).min(FETCH_MAX_BYTES);
    loop {
        for w in watchers.iter_mut() {
            w.borrow_and_update();
        }
        let mut records_left = max_records;
        let mut bytes_left = max_bytes;
        let mut any = false;
        for &sp in &partitions {
            if denied.contains(&sp.0) {
                answers.entry(sp).or_default().error = Some(KafkaError::TopicAuthorizationFailed);
                any = true;
                continue;
            }
            match acquire(
                ctx,
                &group,
                &member,
                sp,
                acquire_mode,
                &mut records_left,
                &mut bytes_left,
            ) {
                Ok((records, acquired)) if !acquired.is_empty() => {
                    let a = answers.entry(sp).or_default();
                    a.records = records;
                    a.acquired = acquired;
                    any = true;
                }
                Ok(_) => {}
                Err(e) => {
                    answers.entry(sp).or_default().error = Some(e);
                    any = true;
                }
            }
        }
        if any
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
            || shutdown.is_set()
        {
            break;
        }
        // Wake on an append, on the soonest lock expiry, or at the deadline.
        let wake = match next_expiry(ctx, &group, &partitions) {
            Some(at) => {
                let wait = (at - crate::now_ms()).max(1) as u64;
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(wait))
            }
            None => deadline,
        };
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.wait() => {}
        }
    }
    respond(ctx, answers, settings(ctx, &group).limits.lock_ms)
}

fn respond(
    ctx: &RequestContext,
    answers: BTreeMap<SessionPartition, Answer>,
    lock_ms: i64,
) -> ShareFetchResponse {
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for (sp, a) in answers {
        let (leader_id, leader_epoch) = leader(ctx, sp, a.error);
        let data = PartitionData::default()
            .with_partition_index(sp.1)
            .with_error_code(a.error.map_or(0, KafkaError::code))
            .with_acknowledge_error_code(a.ack_error.map_or(0, KafkaError::code))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(leader_id)
                    .with_leader_epoch(leader_epoch),
            )
            .with_records(Some(a.records))
            .with_acquired_records(
                a.acquired
                    .iter()
                    .map(|r| {
                        AcquiredRecords::default()
                            .with_first_offset(r.first)
                            .with_last_offset(r.last)
                            .with_delivery_count(r.delivery_count)
                    })
                    .collect(),
            );
        match topics.last_mut() {
            Some(t) if t.topic_id == sp.0 => t.partitions.push(data),
            _ => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(sp.0)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms.clamp(0, i32::MAX as i64) as i32)
        .with_responses(topics)
}

/// ShareAcknowledge v1 (the crate's codec).
pub async fn acknowledge_request(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    acknowledge_any(ctx, ShareAcknowledge::v1(req)).await
}

async fn acknowledge_any(ctx: &RequestContext, ack: ShareAcknowledge) -> ShareAcknowledgeResponse {
    let ShareAcknowledge {
        req, is_renew_ack, ..
    } = ack;
    let fail = |e: KafkaError| {
        ShareAcknowledgeResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(e.to_string())))
    };
    let (Some(group), Some(member)) = (req.group_id.as_ref(), req.member_id.as_ref()) else {
        return fail(KafkaError::InvalidRequest);
    };
    let (group, member) = (group.to_string(), member.to_string());
    if !authz::group_allowed(ctx, "ShareAcknowledge", Operation::Read, &group).await {
        return fail(KafkaError::GroupAuthorizationFailed);
    }
    let share = &ctx.broker.share;
    let epoch = req.share_session_epoch;
    let session = match epoch {
        INITIAL_EPOCH => Err(KafkaError::InvalidShareSessionEpoch),
        FINAL_EPOCH if share.sessions.exists(&group, &member) => Ok(()),
        FINAL_EPOCH => Err(KafkaError::ShareSessionNotFound),
        _ => share
            .sessions
            .advance(&group, &member, epoch, [], &[], Instant::now())
            .map(drop),
    };
    if let Err(e) = session {
        return fail(e);
    }
    let acks = ack_batches(
        req.topics
            .iter()
            .map(|t| (t.topic_id, t.partitions.as_slice())),
        |p| {
            let bs = p
                .acknowledgement_batches
                .iter()
                .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                .collect();
            (p.partition_index, bs)
        },
    );
    let denied = denied_topics(ctx, "ShareAcknowledge", acks.keys().map(|(t, _)| *t)).await;
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for (sp, batches) in &acks {
        let error = if denied.contains(&sp.0) {
            Some(KafkaError::TopicAuthorizationFailed)
        } else {
            acknowledge(ctx, &group, &member, *sp, batches, is_renew_ack).err()
        };
        let (leader_id, leader_epoch) = leader(ctx, *sp, error);
        let data = sar::PartitionData::default()
            .with_partition_index(sp.1)
            .with_error_code(error.map_or(0, KafkaError::code))
            .with_current_leader(
                sar::LeaderIdAndEpoch::default()
                    .with_leader_id(leader_id)
                    .with_leader_epoch(leader_epoch),
            );
        match topics.last_mut() {
            Some(t) if t.topic_id == sp.0 => t.partitions.push(data),
            _ => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(sp.0)
                    .with_partitions(vec![data]),
            ),
        }
    }
    if epoch == FINAL_EPOCH {
        share.member_gone(&ctx.broker.groups.group_configs, &group, &member);
    }
    ShareAcknowledgeResponse::default().with_responses(topics)
}

/// ShareFetch and ShareAcknowledge v2, decoded by hand (`share_wire.rs`). ShareFetch's
/// response is the same at v1 and v2 (the crate encodes it); ShareAcknowledge's carries the
/// group's lock duration.
pub async fn dispatch_v2(
    ctx: &RequestContext,
    frame: RequestFrame,
    started: std::time::Instant,
) -> Outcome {
    let correlation_id = frame.header.correlation_id;
    let client_id = frame.header.client_id.clone();
    let key = frame.api_key;
    let throttle = |ctx: &RequestContext| {
        super::request_time_throttle(ctx, key, client_id.as_deref(), started).min(i32::MAX as u64)
            as i32
    };
    if key == ApiKey::ShareFetch {
        let req = match ShareFetch::decode(frame.body) {
            Ok(req) => req,
            Err(e) => return Outcome::Close(format!("ShareFetch v2: {e}")),
        };
        let mut resp = fetch_any(ctx, req).await;
        super::response_errors::count(&ctx.broker.metrics.requests, key, &resp);
        resp.throttle_time_ms = resp.throttle_time_ms.max(throttle(ctx));
        // The v1 encoding is the v2 one (ShareFetchResponse.json @ 4.4.0).
        return match super::respond(key, 1, correlation_id, &resp) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Close(format!("ShareFetch v2: {e}")),
        };
    }
    let req = match ShareAcknowledge::decode(frame.body) {
        Ok(req) => req,
        Err(e) => return Outcome::Close(format!("ShareAcknowledge v2: {e}")),
    };
    let group = req
        .req
        .group_id
        .as_ref()
        .map(|g| g.to_string())
        .unwrap_or_default();
    let mut resp = acknowledge_any(ctx, req).await;
    super::response_errors::count(&ctx.broker.metrics.requests, key, &resp);
    resp.throttle_time_ms = resp.throttle_time_ms.max(throttle(ctx));
    let lock_ms = settings(ctx, &group)
        .limits
        .lock_ms
        .clamp(0, i32::MAX as i64) as i32;
    let body = share_wire::acknowledge_response(&resp, lock_ms);
    Outcome::Respond(super::streams_wire::frame(correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::encode::{encode_batch, BatchSpec, NewRecord};

    fn batch_at(offset: i64, producer_id: i64, transactional: bool) -> Vec<u8> {
        let spec = BatchSpec {
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            transactional,
            ..BatchSpec::plain(0, 0)
        };
        let record = NewRecord {
            timestamp_delta: 0,
            key: None,
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
        };
        let mut b = encode_batch(&spec, &[record.clone(), record]);
        b[..8].copy_from_slice(&offset.to_be_bytes());
        b
    }

    /// read_committed: the batches of an aborted transaction hold nothing to deliver (they
    /// are archived); another producer's transactional batch and plain batches do.
    #[test]
    fn batches_of_aborted_transactions_hold_no_records() {
        let mut records = batch_at(0, 7, true);
        records.extend(batch_at(2, 8, true));
        records.extend(batch_at(4, -1, false));
        let aborted = [AbortedTxn {
            producer_id: 7,
            first_offset: 0,
            last_offset: 6,
        }];
        assert_eq!(
            batch_ranges(&records, &aborted),
            vec![(0, 1, false), (2, 3, true), (4, 5, true)]
        );
        assert_eq!(batch_ranges(&records, &[])[0], (0, 1, true));
    }
}
