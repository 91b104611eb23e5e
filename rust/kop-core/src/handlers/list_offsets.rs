//! ListOffsets: earliest, latest, max timestamp, and by timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::*;

use super::{authz, RequestContext};
use crate::broker::partition::{Partition, LEADER_EPOCH};
use crate::error::KafkaError;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// (offset, timestamp) Kafka answers for one partition.
fn lookup(p: &Partition, timestamp: i64) -> Result<(i64, i64), KafkaError> {
    p.ensure_served()?;
    Ok(match timestamp {
        LATEST => (p.high_watermark(), -1),
        EARLIEST | EARLIEST_LOCAL => (p.log_start_offset(), -1),
        MAX_TIMESTAMP => p
            .max_timestamp_record()?
            .map_or((-1, -1), |r| (r.offset, r.timestamp)),
        ts if ts >= 0 => p
            .offset_for_timestamp(ts)?
            .map_or((-1, -1), |r| (r.offset, r.timestamp)),
        _ => (-1, -1),
    })
}

pub async fn handle(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // The leader epoch field exists from v4; older versions must leave it at its default.
    let epoch = if header.request_api_version >= 4 {
        LEADER_EPOCH
    } else {
        -1
    };
    let denied = authz::denied(
        ctx,
        "ListOffsets",
        authz::Operation::Describe,
        authz::ResourceType::Topic,
        req.topics.iter().map(|t| t.name.as_str()),
    )
    .await;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let unauthorized = denied.contains(t.name.as_str());
            let topic = ctx.broker.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = topic
                        .as_ref()
                        .filter(|_| !unauthorized)
                        .and_then(|tp| tp.partition(p.partition_index))
                        .ok_or(if unauthorized {
                            KafkaError::TopicAuthorizationFailed
                        } else {
                            KafkaError::UnknownTopicOrPartition
                        })
                        .and_then(|part| lookup(&part, p.timestamp));
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok((offset, timestamp)) => resp
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch),
                        Err(e) => resp
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
