//! Fetch: whole stored batches, with min_bytes/max_wait long-polling woken by appends.
//!
//! kop does not create incremental fetch sessions (KIP-227): it answers session id 0, which
//! tells clients to keep sending full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;
use tokio::sync::watch;

use super::{authz, RequestContext};
use crate::broker::partition::{LogMark, Partition};
use crate::error::KafkaError;
use crate::records::batch::LOG_OVERHEAD;

/// Cap on one fetch response, whatever the client asks (Kafka's `fetch.max.bytes` default);
/// the first batch is still returned whole if it is larger (KIP-74).
const FETCH_MAX_BYTES: i32 = 57_671_680;

/// FETCH_SESSION_ID_NOT_FOUND: the client refers to a session kop never created.
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;

struct Wanted {
    partition: Result<Arc<Partition>, KafkaError>,
    index: i32,
    offset: i64,
    max_bytes: i32,
}

fn topic_name(ctx: &RequestContext, version: i16, t: &FetchTopic) -> Option<String> {
    if version >= 13 {
        ctx.broker.topic_by_id(&t.topic_id).map(|t| t.name.clone())
    } else {
        Some(t.topic.to_string())
    }
}

fn resolve(
    ctx: &RequestContext,
    version: i16,
    req: &FetchRequest,
    denied: &std::collections::HashSet<String>,
) -> Vec<(FetchTopic, Vec<Wanted>)> {
    req.topics
        .iter()
        .map(|t| {
            let topic = if !denied.is_empty()
                && topic_name(ctx, version, t).is_some_and(|n| denied.contains(&n))
            {
                Err(KafkaError::TopicAuthorizationFailed)
            } else if version >= 13 {
                ctx.broker
                    .topic_by_id(&t.topic_id)
                    .ok_or(KafkaError::UnknownTopicId)
            } else {
                ctx.broker
                    .topic(&t.topic)
                    .ok_or(KafkaError::UnknownTopicOrPartition)
            };
            let wanted = t
                .partitions
                .iter()
                .map(|p| Wanted {
                    partition: topic.clone().and_then(|tp| {
                        tp.partition(p.partition)
                            .ok_or(KafkaError::UnknownTopicOrPartition)
                    }),
                    index: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                })
                .collect();
            (t.clone(), wanted)
        })
        .collect()
}

/// One pass over every wanted partition; returns the response parts and the bytes found.
fn collect(
    wanted: &[(FetchTopic, Vec<Wanted>)],
    max_bytes: i32,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut remaining = max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    let topics = wanted
        .iter()
        .map(|(t, parts)| {
            let partitions = parts
                .iter()
                .map(|w| {
                    let limit = (w.max_bytes.max(0) as usize).min(remaining);
                    // Kafka's rule (KIP-74): only the first partition with data may return a
                    // batch larger than its limit; later ones return whole batches that fit.
                    let first_with_data = total == 0;
                    let budget = if first_with_data { limit.max(1) } else { limit };
                    let read = w
                        .partition
                        .as_ref()
                        .map_err(|e| *e)
                        .and_then(|p| p.read(w.offset, budget));
                    let mut data = PartitionData::default().with_partition_index(w.index);
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
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    (topics, total, any_error)
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
    if version >= 7 && req.session_id != 0 {
        return FetchResponse::default().with_error_code(FETCH_SESSION_ID_NOT_FOUND);
    }
    // Consumers need READ on each topic (follower fetches, CLUSTER_ACTION, don't exist here).
    // Names are collected only when an authorizer must be asked (not on the allow-all path).
    let denied = if authz::allow_all(ctx) {
        Default::default()
    } else {
        let names: Vec<String> = req
            .topics
            .iter()
            .filter_map(|t| topic_name(ctx, version, t))
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
    let wanted = resolve(ctx, version, &req, &denied);
    // Subscribe before the first read so an append between read and wait is not missed.
    let mut watchers: Vec<watch::Receiver<LogMark>> = wanted
        .iter()
        .flat_map(|(_, parts)| parts.iter())
        .filter_map(|w| w.partition.as_ref().ok().map(|p| p.subscribe()))
        .collect();
    let max_bytes = req.max_bytes.min(FETCH_MAX_BYTES);
    let read_committed = req.isolation_level == 1;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        for w in watchers.iter_mut() {
            w.borrow_and_update();
        }
        let (topics, total, any_error) = collect(&wanted, max_bytes, read_committed);
        let done = total >= req.min_bytes.max(0) as usize
            || any_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
            || shutdown.is_set();
        if done {
            return FetchResponse::default().with_responses(topics);
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait() => {}
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
