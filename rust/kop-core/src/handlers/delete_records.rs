//! DeleteRecords: moves partitions' log starts up (Kafka's `KafkaApis.handleDeleteRecordsRequest`
//! and `Partition.deleteRecordsOnLeader`). A single replica has nothing to wait for, so the
//! answer's low watermark is the new log start at once and `timeout_ms` is not needed.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::*;

use super::{authz, RequestContext};
use crate::error::KafkaError;

/// The low watermark of a partition that was not changed (Kafka's `INVALID_LOW_WATERMARK`).
const INVALID_LOW_WATERMARK: i64 = -1;

pub async fn handle(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let denied = authz::denied(
        ctx,
        "DeleteRecords",
        authz::Operation::Delete,
        authz::ResourceType::Topic,
        req.topics.iter().map(|t| &*t.name.0),
    )
    .await;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let unauthorized = denied.contains(&*t.name.0);
            let topic = ctx.broker.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = if unauthorized {
                        Err(KafkaError::TopicAuthorizationFailed)
                    } else {
                        topic
                            .as_ref()
                            .and_then(|tp| tp.partition(p.partition_index))
                            .ok_or(KafkaError::UnknownTopicOrPartition)
                            .and_then(|part| part.delete_records_before(p.offset))
                    };
                    let answer = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok(low_watermark) => answer.with_low_watermark(low_watermark),
                        Err(e) => {
                            if e == KafkaError::KafkaStorageError
                                || e == KafkaError::UnknownServerError
                            {
                                tracing::warn!(topic = %t.name.0, partition = p.partition_index, error = %e, "DeleteRecords failed");
                            }
                            answer
                                .with_error_code(e.code())
                                .with_low_watermark(INVALID_LOW_WATERMARK)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };

    use super::*;
    use crate::broker::partition::{Isolation, Produced};
    use crate::handlers::sb;
    use crate::handlers::test_context::TestContext;
    use crate::records::batch::tests::sample_batch;

    /// (topic, partition, error, low watermark) of each answer.
    async fn delete(
        ctx: &TestContext,
        topics: &[(&str, &[(i32, i64)])],
    ) -> Vec<(String, i32, i16, i64)> {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                topics
                    .iter()
                    .map(|(name, parts)| {
                        DeleteRecordsTopic::default()
                            .with_name(TopicName(sb(*name)))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|&(p, offset)| {
                                        DeleteRecordsPartition::default()
                                            .with_partition_index(p)
                                            .with_offset(offset)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let header = ctx.header(ApiKey::DeleteRecords, 2);
        handle(ctx, &header, req)
            .await
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.to_string(),
                        p.partition_index,
                        p.error_code,
                        p.low_watermark,
                    )
                })
            })
            .collect()
    }

    fn produce(ctx: &TestContext, topic: &str, records: i32) {
        let p = ctx.broker.topic(topic).unwrap().partition(0).unwrap();
        let batch = sample_batch(records, 1_000, b"v", (-1, -1, -1));
        let produced = Produced {
            topic,
            now_ms: crate::now_ms(),
            sync: false,
            zstd_allowed: true,
            txn_verified: None,
        };
        p.append(BytesMut::from(&batch[..]), &produced).unwrap();
    }

    #[tokio::test]
    async fn moves_the_log_start_and_answers_the_low_watermark() {
        let ctx = RequestContext::builder().build();
        ctx.topic("t", 1);
        produce(&ctx, "t", 5);
        produce(&ctx, "t", 5);
        assert_eq!(
            delete(&ctx, &[("t", &[(0, 3)])]).await[0],
            ("t".into(), 0, 0, 3)
        );
        // A lower offset changes nothing and answers the current start.
        assert_eq!(
            delete(&ctx, &[("t", &[(0, 1)])]).await[0],
            ("t".into(), 0, 0, 3)
        );
        let p = ctx.broker.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(p.log_start_offset(), 3);
        let below = p.read(2, 1 << 20, Isolation::ReadUncommitted).unwrap_err();
        assert_eq!(below, KafkaError::OffsetOutOfRange);
        // -1: up to the high watermark.
        assert_eq!(delete(&ctx, &[("t", &[(0, -1)])]).await[0].3, 10);
        assert_eq!(p.log_start_offset(), 10);
    }

    #[tokio::test]
    async fn out_of_range_unknown_and_policy_errors_as_kafka() {
        let ctx = RequestContext::builder().build();
        ctx.topic("t", 2);
        ctx.broker
            .create_topic(
                "compacted",
                1,
                [("cleanup.policy".to_string(), "compact".to_string())].into(),
            )
            .unwrap();
        produce(&ctx, "t", 2);
        let out_of_range = KafkaError::OffsetOutOfRange.code();
        let unknown = KafkaError::UnknownTopicOrPartition.code();
        let policy = KafkaError::PolicyViolation.code();
        let got = delete(
            &ctx,
            &[
                ("t", &[(0, 3), (1, -2), (2, 0)]),
                ("ghost", &[(0, 0)]),
                ("compacted", &[(0, 0)]),
            ],
        )
        .await;
        let codes: Vec<(i16, i64)> = got.iter().map(|r| (r.2, r.3)).collect();
        assert_eq!(
            codes,
            [
                (out_of_range, -1),
                (out_of_range, -1),
                (unknown, -1),
                (unknown, -1),
                (policy, -1)
            ]
        );
    }

    #[tokio::test]
    async fn deleting_records_needs_delete_on_the_topic() {
        let ctx = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:alice")
            .build();
        ctx.topic("mine", 1);
        ctx.topic("theirs", 1);
        ctx.allow(
            "User:alice",
            authz::Operation::Delete,
            authz::ResourceType::Topic,
            "mine",
        );
        ctx.allow(
            "User:alice",
            authz::Operation::Describe,
            authz::ResourceType::Topic,
            "theirs",
        );
        let denied = KafkaError::TopicAuthorizationFailed.code();
        let got = delete(
            &ctx,
            &[
                ("mine", &[(0, 0)]),
                ("theirs", &[(0, 0)]),
                ("ghost", &[(0, 0)]),
            ],
        )
        .await;
        let codes: Vec<i16> = got.iter().map(|r| r.2).collect();
        assert_eq!(codes, [0, denied, denied]);
    }
}
