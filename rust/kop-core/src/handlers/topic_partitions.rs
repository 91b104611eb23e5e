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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_topic_partitions_request::{
        Cursor as AskedCursor, TopicRequest,
    };

    use super::*;
    use crate::handlers::test_context::TestContext;

    async fn describe(
        ctx: &TestContext,
        names: &[&str],
        limit: i32,
        cursor: Option<(&str, i32)>,
    ) -> DescribeTopicPartitionsResponse {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|n| TopicRequest::default().with_name(TopicName(sb(*n))))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                AskedCursor::default()
                    .with_topic_name(TopicName(sb(t)))
                    .with_partition_index(p)
            }));
        handle(ctx, &ctx.header(ApiKey::DescribeTopicPartitions, 0), req).await
    }

    /// A topic of an answer: (name, error, partition indexes).
    type Described = (String, i16, Vec<i32>);

    /// Each topic of an answer, and the next cursor (topic, partition).
    fn page(resp: &DescribeTopicPartitionsResponse) -> (Vec<Described>, Option<(String, i32)>) {
        let topics = resp
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let next = resp
            .next_cursor
            .as_ref()
            .map(|c| (c.topic_name.to_string(), c.partition_index));
        (topics, next)
    }

    #[tokio::test]
    async fn pages_follow_the_cursor_across_topics_in_name_order() {
        let ctx = RequestContext::builder().build();
        ctx.topic("b", 2);
        ctx.topic("a", 3);
        let first = describe(&ctx, &[], 2, None).await;
        assert_eq!(
            page(&first),
            (vec![("a".into(), 0, vec![0, 1])], Some(("a".into(), 2)))
        );
        let second = describe(&ctx, &[], 2, Some(("a", 2))).await;
        assert_eq!(
            page(&second),
            (
                vec![("a".into(), 0, vec![2]), ("b".into(), 0, vec![0])],
                Some(("b".into(), 1))
            )
        );
        let last = describe(&ctx, &[], 2, Some(("b", 1))).await;
        assert_eq!(page(&last), (vec![("b".into(), 0, vec![1])], None));
        // A page that ends exactly with a topic points at the next topic's first partition.
        let exact = describe(&ctx, &[], 3, None).await;
        assert_eq!(
            page(&exact),
            (vec![("a".into(), 0, vec![0, 1, 2])], Some(("b".into(), 0)))
        );
    }

    #[tokio::test]
    async fn named_topics_report_what_is_wrong_and_a_cursor_must_be_among_them() {
        let ctx = RequestContext::builder().build();
        ctx.topic("a", 1);
        let resp = describe(&ctx, &["a", "nope", "bad/name"], 10, None).await;
        let unknown = KafkaError::UnknownTopicOrPartition.code();
        let invalid = KafkaError::InvalidTopic.code();
        assert_eq!(
            page(&resp).0,
            vec![
                ("a".into(), 0, vec![0]),
                ("bad/name".into(), invalid, vec![]),
                ("nope".into(), unknown, vec![]),
            ]
        );
        let refused = describe(&ctx, &["a"], 10, Some(("b", 0))).await;
        assert_eq!(
            page(&refused).0,
            vec![("a".into(), KafkaError::InvalidRequest.code(), vec![])]
        );
        let negative = describe(&ctx, &["a"], 10, Some(("a", -1))).await;
        assert_eq!(
            negative.topics[0].error_code,
            KafkaError::InvalidRequest.code()
        );
    }

    #[tokio::test]
    async fn topics_denied_describe_are_errors_when_named_and_hidden_when_listed() {
        let ctx = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:alice")
            .build();
        ctx.topic("mine", 1);
        ctx.topic("theirs", 1);
        ctx.allow(
            "User:alice",
            authz::Operation::Describe,
            authz::ResourceType::Topic,
            "mine",
        );
        let listed = describe(&ctx, &[], 10, None).await;
        assert_eq!(page(&listed).0, vec![("mine".into(), 0, vec![0])]);
        let named = describe(&ctx, &["mine", "theirs"], 10, None).await;
        assert_eq!(
            page(&named).0,
            vec![
                ("mine".into(), 0, vec![0]),
                (
                    "theirs".into(),
                    KafkaError::TopicAuthorizationFailed.code(),
                    vec![]
                ),
            ]
        );
    }
}
