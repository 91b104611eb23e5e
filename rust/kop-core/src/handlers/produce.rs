//! Produce: validate each partition's batches and append them, assigning offsets.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;

use super::{authz, sb, Outcome, RequestContext};
use crate::broker::partition::Durability;
use crate::broker::Topic;
use crate::codec::frame::encode_response;
use crate::error::KafkaError;
use std::sync::Arc;
use std::time::Duration;

/// Kafka 4 still advertises Produce v0 (KAFKA-18659) and answers v0–v2 with UNSUPPORTED_VERSION.
pub const ADVERTISED_MIN: i16 = 0;
/// The oldest version the codec decodes; older ones go to `produce_legacy`.
pub const DECODABLE_MIN: i16 = 3;
pub const MAX: i16 = 13;

fn partition_error(index: i32, err: KafkaError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(err.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(sb(err.to_string())))
}

/// Appends every partition's batches. With acks=0 Kafka sends no response; if anything failed
/// it closes the connection instead, so the producer notices — `Close` says why.
pub async fn handle(ctx: &RequestContext, header: &RequestHeader, req: ProduceRequest) -> Outcome {
    let version = header.request_api_version;
    let broker = &ctx.broker;
    let acks_error = (!matches!(req.acks, -1..=1)).then_some(KafkaError::InvalidRequiredAcks);
    let tx_error = req
        .transactional_id
        .is_some()
        .then_some(KafkaError::InvalidRequest);
    let now = crate::now_ms();
    let sync = broker.sync_on_append();
    // Topic names are collected only when an authorizer must be asked (the hot path under
    // allow-all skips the allocations).
    let denied = if authz::allow_all(ctx) {
        Default::default()
    } else {
        let names: Vec<String> = req
            .topic_data
            .iter()
            .filter_map(|t| {
                if version >= 13 {
                    broker.topic_by_id(&t.topic_id).map(|t| t.name.clone())
                } else {
                    Some(t.name.to_string())
                }
            })
            .collect();
        authz::denied(
            ctx,
            "Produce",
            authz::Operation::Write,
            authz::ResourceType::Topic,
            names.iter().map(String::as_str),
        )
        .await
    };
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Appends a remote backend has yet to acknowledge: (topic index, partition index, wait).
    let mut pending: Vec<(usize, usize, Durability)> = Vec::new();
    for topic_data in req.topic_data {
        let (topic, missing): (Option<Arc<Topic>>, KafkaError) = if version >= 13 {
            (
                broker.topic_by_id(&topic_data.topic_id),
                KafkaError::UnknownTopicId,
            )
        } else {
            (
                broker.topic(&topic_data.name),
                KafkaError::UnknownTopicOrPartition,
            )
        };
        let unauthorized = topic
            .as_ref()
            .map_or(
                version < 13 && denied.contains(topic_data.name.as_str()),
                |t| denied.contains(&t.name),
            )
            .then_some(KafkaError::TopicAuthorizationFailed);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let result = match (acks_error.or(tx_error).or(unauthorized), &topic) {
                (Some(e), _) => Err(e),
                (None, None) => Err(missing),
                (None, Some(t)) => match (t.partition(pd.index), pd.records.as_deref()) {
                    (None, _) => Err(KafkaError::UnknownTopicOrPartition),
                    (Some(_), None) => Err(KafkaError::InvalidRecord),
                    (Some(p), Some(records)) => p.append(records, now, sync),
                },
            };
            partitions.push(match result {
                Ok((done, durability)) => {
                    if let Some(d) = durability {
                        pending.push((responses.len(), partitions.len(), d));
                    }
                    PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_base_offset(done.base_offset)
                        .with_log_append_time_ms(done.log_append_time)
                        .with_log_start_offset(done.log_start_offset)
                }
                Err(e) => {
                    tracing::debug!(topic = %topic_data.name.0, partition = pd.index, error = %e, "produce rejected");
                    partition_error(pd.index, e)
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partitions),
        );
    }
    // acks=0 never waits. Otherwise every partition's append must be stored before the answer:
    // the appends are done, so the wait is handed back as `Later` and the connection reads the
    // next request meanwhile (pipelining; responses still go out in request order). The
    // request's timeout counts from now, not from when the connection gets to await it.
    if req.acks != 0 && !pending.is_empty() {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(1) as u64);
        let correlation_id = header.correlation_id;
        return Outcome::Later(Box::pin(async move {
            let (slots, waits): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .map(|(t, p, d)| ((t, p), d.wait()))
                .unzip();
            let outcomes =
                tokio::time::timeout_at(deadline, futures::future::join_all(waits)).await;
            for (i, (t, p)) in slots.into_iter().enumerate() {
                let failed = match &outcomes {
                    Ok(results) => results[i].err(),
                    Err(_) => Some(KafkaError::RequestTimedOut),
                };
                if let Some(e) = failed {
                    let part = &mut responses[t].partition_responses[p];
                    *part = partition_error(part.index, e);
                }
            }
            respond(version, correlation_id, responses)
        }));
    }
    if req.acks != 0 {
        return respond(version, header.correlation_id, responses);
    }
    let failed = responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.error_code != 0);
    match failed {
        Some(p) => Outcome::Close(format!("acks=0 produce failed with error {}", p.error_code)),
        None => Outcome::NoResponse,
    }
}

fn respond(version: i16, correlation_id: i32, responses: Vec<TopicProduceResponse>) -> Outcome {
    let resp = ProduceResponse::default().with_responses(responses);
    match encode_response(ApiKey::Produce, version, correlation_id, &resp) {
        Ok(bytes) => Outcome::Respond(bytes),
        Err(e) => Outcome::Close(format!("Produce v{version}: {e}")),
    }
}
