//! DescribeProducers (API 61): the producer state of partitions led here (`kafka-transactions
//! describe-producers`), as Kafka answers it: READ on the topic, else
//! TOPIC_AUTHORIZATION_FAILED per partition.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::*;

use super::{authz, RequestContext};
use crate::error::KafkaError;

fn partition_answer(ctx: &RequestContext, topic: &str, index: i32) -> PartitionResponse {
    let answer = PartitionResponse::default().with_partition_index(index);
    let producers = ctx
        .broker
        .topic(topic)
        .and_then(|t| t.partition(index))
        .ok_or(KafkaError::UnknownTopicOrPartition)
        .and_then(|p| p.producers());
    match producers {
        Ok(producers) => answer.with_active_producers(
            producers
                .into_iter()
                .map(|p| {
                    ProducerState::default()
                        .with_producer_id(p.producer_id.into())
                        .with_producer_epoch(p.producer_epoch.into())
                        .with_last_sequence(p.last_sequence)
                        .with_last_timestamp(p.last_timestamp)
                        .with_coordinator_epoch(p.coordinator_epoch)
                        .with_current_txn_start_offset(p.current_txn_start_offset)
                })
                .collect(),
        ),
        Err(e) => answer.with_error_code(e.code()),
    }
}

pub async fn handle(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let denied = authz::denied(
        ctx,
        "DescribeProducers",
        authz::Operation::Read,
        authz::ResourceType::Topic,
        req.topics.iter().map(|t| t.name.as_str()),
    )
    .await;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let unauthorized = denied.contains(t.name.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    if unauthorized {
                        PartitionResponse::default()
                            .with_partition_index(index)
                            .with_error_code(KafkaError::TopicAuthorizationFailed.code())
                    } else {
                        partition_answer(ctx, &t.name, index)
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;

    use super::*;
    use crate::handlers::sb;
    use crate::records::control::ControlKind;

    fn request(topics: &[(&str, &[i32])]) -> DescribeProducersRequest {
        DescribeProducersRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, parts)| {
                    TopicRequest::default()
                        .with_name(TopicName(sb(*name)))
                        .with_partition_indexes(parts.to_vec())
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn producers_of_a_partition_with_their_open_transaction() {
        let ctx = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:alice")
            .build();
        let topic = ctx.topic("t", 1);
        ctx.topic("secret", 1);
        ctx.allow(
            "User:alice",
            authz::Operation::Read,
            authz::ResourceType::Topic,
            "t",
        );
        let p = topic.partition(0).unwrap();
        crate::broker::txn_tests::append_txn(&p, 9, 2, 0, 3);
        crate::broker::txn_tests::append_txn(&p, 10, 0, 0, 1);
        ctx.broker
            .write_txn_marker("t", 0, 10, 0, ControlKind::Commit, 4)
            .await
            .unwrap();
        let header = ctx.header(ApiKey::DescribeProducers, 0);
        let resp = handle(&ctx, &header, request(&[("t", &[0, 1]), ("secret", &[0])])).await;
        let parts = &resp.topics[0].partitions;
        assert_eq!(parts[0].error_code, 0);
        let producers: Vec<_> = parts[0]
            .active_producers
            .iter()
            .map(|p| {
                (
                    p.producer_id.0,
                    p.producer_epoch,
                    p.last_sequence,
                    p.coordinator_epoch,
                    p.current_txn_start_offset,
                )
            })
            .collect();
        assert_eq!(producers, vec![(9, 2, 2, -1, 0), (10, 0, 0, 4, -1)]);
        assert_eq!(
            parts[1].error_code,
            KafkaError::UnknownTopicOrPartition.code()
        );
        assert_eq!(
            resp.topics[1].partitions[0].error_code,
            KafkaError::TopicAuthorizationFailed.code()
        );
    }
}
