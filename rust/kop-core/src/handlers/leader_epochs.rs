//! OffsetForLeaderEpoch: where a leader epoch ends. Consumers ask it after a leader change to
//! check that their position was not truncated away (KIP-320).
//!
//! A kop partition has had one leader epoch, `LEADER_EPOCH`, since it was created: a takeover
//! on Pulsar continues the same log (only acknowledged batches are ever read), so no log is
//! truncated and that epoch ends at the log end offset. The answers follow Kafka 4.4's
//! `Partition.lastOffsetForLeaderEpoch` for a partition whose epoch cache holds that one epoch.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;

use super::{authz, RequestContext};
use crate::broker::partition::LEADER_EPOCH;
use crate::error::KafkaError;

/// "No epoch" on the wire (Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`).
const UNDEFINED_EPOCH: i32 = -1;

fn end_of_epoch(
    ctx: &RequestContext,
    topic: &str,
    asked: &kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition,
) -> Result<(i32, i64), KafkaError> {
    let partition = ctx
        .broker
        .topic(topic)
        .and_then(|t| t.partition(asked.partition))
        .ok_or(KafkaError::UnknownTopicOrPartition)?;
    let log_end = partition.log_end_offset()?;
    // The client's idea of the current epoch, when it sends one, must be ours.
    match asked.current_leader_epoch {
        e if e == UNDEFINED_EPOCH || e == LEADER_EPOCH => {}
        e if e < LEADER_EPOCH => return Err(KafkaError::FencedLeaderEpoch),
        _ => return Err(KafkaError::UnknownLeaderEpoch),
    }
    Ok(match asked.leader_epoch {
        e if e == LEADER_EPOCH => (LEADER_EPOCH, log_end),
        // Older than the first epoch: it ended where the first epoch began.
        e if e < UNDEFINED_EPOCH => (e, partition.log_start_offset()),
        _ => (UNDEFINED_EPOCH, -1),
    })
}

pub async fn handle(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // Brokers ask with CLUSTER_ACTION; consumers need DESCRIBE on each topic (as Kafka).
    let cluster_action = [(
        authz::Operation::ClusterAction,
        authz::ResourceType::Cluster,
        authz::CLUSTER_NAME,
    )];
    let is_broker = authz::decide(ctx, "OffsetForLeaderEpoch", &cluster_action, |_| false).await;
    let denied = if is_broker.first().copied().unwrap_or(false) {
        Default::default()
    } else {
        authz::denied(
            ctx,
            "OffsetForLeaderEpoch",
            authz::Operation::Describe,
            authz::ResourceType::Topic,
            req.topics.iter().map(|t| &*t.topic.0),
        )
        .await
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let allowed = !denied.contains(&*t.topic.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = if allowed {
                        end_of_epoch(ctx, &t.topic, p)
                    } else {
                        Err(KafkaError::TopicAuthorizationFailed)
                    };
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    match result {
                        Ok((epoch, end)) => answer.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => answer.with_error_code(e.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
