//! DescribeTopicPartitions (KIP-966): the topic part of Metadata, paged by a cursor. Kafka 3.8+
//! `kafka-topics --describe` and `Admin.describeTopics` ask it before falling back to Metadata.
//! Answers follow Kafka 4.4's `DescribeTopicPartitionsRequestHandler`: topics in name order from
//! the cursor on, at most `response_partition_limit` partitions (capped at Kafka's default
//! `max.request.partition.size.limit`), and a next cursor where the page ends.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::*;

use super::{authz, sb, RequestContext};
use crate::broker::partition::LEADER_EPOCH;
use crate::broker::{is_internal, valid_topic_name, Topic};
use crate::error::{KafkaError, NONE};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one answer holds.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

fn topic_result(name: &str, error: i16) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error)
        .with_name(Some(TopicName(sb(name))))
        .with_is_internal(is_internal(name))
}

/// The partitions of `topic` from `start`, at most `room` of them, and the index to continue
/// from when some are left.
fn partitions_from(
    ctx: &RequestContext,
    topic: &Topic,
    start: i32,
    room: i32,
) -> (Vec<DescribeTopicPartitionsResponsePartition>, Option<i32>) {
    let count = topic.partition_count();
    let end = count.min(start.saturating_add(room));
    let partitions = (start..end)
        .map(|index| {
            let node = BrokerId(ctx.broker.cluster.leader(&topic.name, index));
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
        })
        .collect();
    (partitions, (end < count).then_some(end))
}

/// Kafka answers a request it cannot serve with the request's error on every topic it named.
fn refused(
    req: &DescribeTopicPartitionsRequest,
    err: KafkaError,
) -> DescribeTopicPartitionsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(err.code())
                .with_name(Some(t.name.clone()))
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

pub async fn handle(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let broker = &ctx.broker;
    let all = req.topics.is_empty();
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (c.topic_name.to_string(), c.partition_index),
        None => (String::new(), 0),
    };
    let mut names: Vec<String> = if all {
        broker.topics().iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.retain(|n| *n >= cursor_topic);
    names.sort_unstable();
    names.dedup();
    // The cursor must name one of the listed topics and a real partition index.
    if req.cursor.is_some()
        && ((!all && names.binary_search(&cursor_topic).is_err()) || cursor_partition < 0)
    {
        return refused(&req, KafkaError::InvalidRequest);
    }

    let mut actions = authz::Actions::default();
    for name in &names {
        // Asked by name, a denial is an error the client sees (and is logged); in a listing it
        // only hides the topic.
        if all {
            actions.probe(&authz::TOPIC_OPERATIONS, authz::ResourceType::Topic, name);
        } else {
            actions.require(authz::Operation::Describe, authz::ResourceType::Topic, name);
            actions.probe(&authz::TOPIC_OPERATIONS, authz::ResourceType::Topic, name);
        }
    }
    let decisions = actions.decide(ctx, "DescribeTopicPartitions").await;
    let may_describe = |name: &str| {
        decisions.allowed(authz::Operation::Describe, authz::ResourceType::Topic, name)
    };

    let mut room = req
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut resp = DescribeTopicPartitionsResponse::default();
    let mut denied = Vec::new();
    for name in &names {
        if !may_describe(name) {
            if !all {
                denied.push(
                    topic_result(name, KafkaError::TopicAuthorizationFailed.code())
                        .with_is_internal(false),
                );
            }
            continue;
        }
        if room == 0 {
            // The page is full: the next one starts with this topic.
            resp.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(sb(name)))
                    .with_partition_index(0),
            );
            break;
        }
        let Some(topic) = broker.topic(name) else {
            if !all {
                let err = if valid_topic_name(name) {
                    KafkaError::UnknownTopicOrPartition
                } else {
                    KafkaError::InvalidTopic
                };
                resp.topics.push(topic_result(name, err.code()));
            }
            continue;
        };
        let start = if *name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        let (partitions, next) = partitions_from(ctx, &topic, start, room);
        room -= partitions.len() as i32;
        resp.topics.push(
            topic_result(name, NONE)
                .with_topic_id(topic.id)
                .with_partitions(partitions)
                .with_topic_authorized_operations(decisions.operations(
                    &authz::TOPIC_OPERATIONS,
                    authz::ResourceType::Topic,
                    name,
                )),
        );
        if let Some(index) = next {
            resp.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(sb(name)))
                    .with_partition_index(index),
            );
            break;
        }
    }
    resp.topics.extend(denied);
    resp
}
