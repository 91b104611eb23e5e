//! Fetch: whole stored batches, with min_bytes/max_wait long-polling woken by appends, and
//! incremental fetch sessions (KIP-227, `broker::fetch_sessions`) from Fetch v7.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;
use tokio::sync::watch;

use super::{authz, sb, RequestContext};
use crate::broker::fetch_sessions::{PartitionKey, Position, Told, TopicKey};
use crate::broker::partition::{LogMark, Partition};
use crate::error::KafkaError;
use crate::records::batch::LOG_OVERHEAD;

/// Cap on one fetch response, whatever the client asks (Kafka's `fetch.max.bytes` default);
/// the first batch is still returned whole if it is larger (KIP-74).
const FETCH_MAX_BYTES: i32 = 57_671_680;

/// The session epochs with a meaning of their own (Kafka's `FetchMetadata`).
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;

/// What the request's session id and epoch ask for.
enum SessionPlan {
    /// No session: the request lists every partition (Fetch v4-6, or id 0 with epoch -1).
    None,
    /// A full fetch that opens a new session.
    Open,
    /// An incremental fetch of session `id`.
    Incremental(i32),
}

/// One partition a fetch reads.
struct Wanted {
    key: PartitionKey,
    position: Position,
    partition: Result<Arc<Partition>, KafkaError>,
}

fn topic_key(version: i16, name: &TopicName, id: uuid::Uuid) -> TopicKey {
    if version >= 13 {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.to_string())
    }
}

/// The partitions a request lists, with their positions, in request order.
fn listed(version: i16, req: &FetchRequest) -> Vec<(PartitionKey, Position)> {
    req.topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(version, &t.topic, t.topic_id);
            t.partitions.iter().map(move |p| {
                (
                    PartitionKey {
                        topic: topic.clone(),
                        partition: p.partition,
                    },
                    Position {
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes,
                    },
                )
            })
        })
        .collect()
}

fn forgotten(version: i16, req: &FetchRequest) -> Vec<PartitionKey> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(version, &t.topic, t.topic_id);
            t.partitions.iter().map(move |&partition| PartitionKey {
                topic: topic.clone(),
                partition,
            })
        })
        .collect()
}

fn topic_name(ctx: &RequestContext, topic: &TopicKey) -> Option<String> {
    match topic {
        TopicKey::Name(name) => Some(name.clone()),
        TopicKey::Id(id) => ctx.broker.topic_by_id(id).map(|t| t.name.clone()),
    }
}

fn resolve(
    ctx: &RequestContext,
    partitions: Vec<(PartitionKey, Position)>,
    denied: &std::collections::HashSet<String>,
) -> Vec<Wanted> {
    partitions
        .into_iter()
        .map(|(key, position)| {
            let topic = match &key.topic {
                _ if !denied.is_empty()
                    && topic_name(ctx, &key.topic).is_some_and(|n| denied.contains(&n)) =>
                {
                    Err(KafkaError::TopicAuthorizationFailed)
                }
                TopicKey::Id(id) => ctx.broker.topic_by_id(id).ok_or(KafkaError::UnknownTopicId),
                TopicKey::Name(name) => ctx
                    .broker
                    .topic(name)
                    .ok_or(KafkaError::UnknownTopicOrPartition),
            };
            let partition = topic.and_then(|t| {
                t.partition(key.partition)
                    .ok_or(KafkaError::UnknownTopicOrPartition)
            });
            Wanted {
                key,
                position,
                partition,
            }
        })
        .collect()
}

/// One pass over every wanted partition; returns each one's answer and the bytes found.
fn collect(
    wanted: &[Wanted],
    max_bytes: i32,
    read_committed: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let mut remaining = max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    let answers = wanted
        .iter()
        .map(|w| {
            let limit = (w.position.max_bytes.max(0) as usize).min(remaining);
            // Kafka's rule (KIP-74): only the first partition with data may return a batch
            // larger than its limit; later ones return whole batches that fit.
            let first_with_data = total == 0;
            let budget = if first_with_data { limit.max(1) } else { limit };
            let read = w
                .partition
                .as_ref()
                .map_err(|e| *e)
                .and_then(|p| p.read(w.position.fetch_offset, budget));
            let mut data = PartitionData::default().with_partition_index(w.key.partition);
            match read {
                Ok(mut r) => {
                    if !first_with_data {
                        r.records = whole_batches_within(r.records, limit);
                    }
                    remaining = remaining.saturating_sub(r.records.len());
                    total += r.records.len();
                    data.high_watermark = r.high_watermark;
                    data.last_stable_offset = r.high_watermark;
                    data.log_start_offset = r.log_start_offset;
                    data.records = Some(r.records);
                }
                Err(e) => {
                    any_error = true;
                    data.error_code = e.code();
                    data.high_watermark = -1;
                    data.last_stable_offset = -1;
                    data.log_start_offset = -1;
                    data.records = Some(Bytes::new());
                }
            }
            if read_committed {
                data.aborted_transactions = Some(Vec::new());
            }
            data
        })
        .collect();
    (answers, total, any_error)
}

fn told(data: &PartitionData) -> Told {
    Told {
        has_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
        error: data.error_code != 0,
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        log_start_offset: data.log_start_offset,
    }
}

/// The answers grouped by topic, in order (consecutive partitions of one topic share an entry).
fn by_topic(
    answers: impl IntoIterator<Item = (PartitionKey, PartitionData)>,
) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<(TopicKey, FetchableTopicResponse)> = Vec::new();
    for (key, data) in answers {
        match topics.last_mut() {
            Some((topic, entry)) if *topic == key.topic => entry.partitions.push(data),
            _ => {
                let entry = match &key.topic {
                    TopicKey::Name(name) => {
                        FetchableTopicResponse::default().with_topic(TopicName(sb(name.as_str())))
                    }
                    TopicKey::Id(id) => FetchableTopicResponse::default().with_topic_id(*id),
                };
                topics.push((key.topic, entry.with_partitions(vec![data])));
            }
        }
    }
    topics.into_iter().map(|(_, t)| t).collect()
}

/// The longest prefix of `records` made of whole batches and at most `limit` bytes long.
fn whole_batches_within(records: Bytes, limit: usize) -> Bytes {
    if records.len() <= limit {
        return records;
    }
    let mut end = 0usize;
    while let Some(length) = records.get(end + 8..end + LOG_OVERHEAD) {
        let size =
            LOG_OVERHEAD + i32::from_be_bytes(length.try_into().expect("4 bytes")).max(0) as usize;
        if end + size > limit {
            break;
        }
        end += size;
    }
    records.slice(..end)
}

pub async fn handle(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: FetchRequest,
) -> FetchResponse {
    let version = header.request_api_version;
    let sessions = &ctx.broker.fetch_sessions;
    let plan = match (version >= 7, req.session_id, req.session_epoch) {
        (false, _, _) => SessionPlan::None,
        (true, id, FINAL_EPOCH) => {
            sessions.close(id);
            SessionPlan::None
        }
        (true, id, INITIAL_EPOCH) => {
            sessions.close(id);
            SessionPlan::Open
        }
        (true, id, _) => SessionPlan::Incremental(id),
    };
    let partitions = match plan {
        SessionPlan::Incremental(id) => match sessions.begin_incremental(
            id,
            req.session_epoch,
            &ctx.principal.to_string(),
            listed(version, &req),
            &forgotten(version, &req),
            Instant::now(),
        ) {
            Ok(partitions) => partitions,
            Err(e) => return FetchResponse::default().with_error_code(e.code()),
        },
        _ => listed(version, &req),
    };
    // Consumers need READ on each topic (follower fetches, CLUSTER_ACTION, don't exist here).
    // Names are collected only when an authorizer must be asked (not on the allow-all path).
    let denied = if authz::allow_all(ctx) {
        Default::default()
    } else {
        let names: Vec<String> = partitions
            .iter()
            .filter_map(|(key, _)| topic_name(ctx, &key.topic))
            .collect();
        authz::denied(
            ctx,
            "Fetch",
            authz::Operation::Read,
            authz::ResourceType::Topic,
            names.iter().map(String::as_str),
        )
        .await
    };
    let wanted = resolve(ctx, partitions, &denied);
    // Subscribe before the first read so an append between read and wait is not missed.
    let mut watchers: Vec<watch::Receiver<LogMark>> = wanted
        .iter()
        .filter_map(|w| w.partition.as_ref().ok().map(|p| p.subscribe()))
        .collect();
    let max_bytes = req.max_bytes.min(FETCH_MAX_BYTES);
    let read_committed = req.isolation_level == 1;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut shutdown = ctx.shutdown.clone();
    let answers = loop {
        for w in watchers.iter_mut() {
            w.borrow_and_update();
        }
        let (answers, total, any_error) = collect(&wanted, max_bytes, read_committed);
        let done = total >= req.min_bytes.max(0) as usize
            || any_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
            || shutdown.is_set();
        if done {
            break answers;
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait() => {}
        }
    };
    let answered = wanted.into_iter().map(|w| (w.key, w.position)).zip(answers);
    match plan {
        SessionPlan::None => FetchResponse::default()
            .with_responses(by_topic(answered.map(|((key, _), data)| (key, data)))),
        SessionPlan::Open => {
            let answered: Vec<_> = answered.collect();
            let cached = answered
                .iter()
                .map(|((key, position), data)| (key.clone(), *position, told(data)))
                .collect();
            let session_id = sessions
                .open(&ctx.principal.to_string(), cached, Instant::now())
                .unwrap_or(0);
            FetchResponse::default()
                .with_session_id(session_id)
                .with_responses(by_topic(
                    answered.into_iter().map(|((key, _), data)| (key, data)),
                ))
        }
        SessionPlan::Incremental(id) => {
            let answered: Vec<_> = answered.map(|((key, _), data)| (key, data)).collect();
            let found: Vec<_> = answered
                .iter()
                .map(|(key, data)| (key.clone(), told(data)))
                .collect();
            let include = sessions.answered(id, &found);
            FetchResponse::default()
                .with_session_id(id)
                .with_responses(by_topic(
                    answered
                        .into_iter()
                        .zip(include)
                        .filter_map(|(answer, news)| news.then_some(answer)),
                ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches reduced to what the cut looks at: base offset, length, and filler.
    fn batches(bodies: &[usize]) -> Bytes {
        let mut out = Vec::new();
        for (i, &body) in bodies.iter().enumerate() {
            out.extend_from_slice(&(i as i64).to_be_bytes());
            out.extend_from_slice(&(body as i32).to_be_bytes());
            out.extend(std::iter::repeat_n(0xab, body));
        }
        out.into()
    }

    #[test]
    fn later_partitions_get_only_whole_batches_within_their_limit() {
        let all = batches(&[88, 188, 38]); // 100 + 200 + 50 bytes
        assert_eq!(whole_batches_within(all.clone(), 350), all);
        assert_eq!(whole_batches_within(all.clone(), 349).len(), 300);
        assert_eq!(whole_batches_within(all.clone(), 299).len(), 100);
        assert_eq!(whole_batches_within(all.clone(), 99).len(), 0);
        assert_eq!(whole_batches_within(all, 0).len(), 0);
    }
}
