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

/// (offset, timestamp) Kafka answers for one partition. As Kafka, LATEST is the last offset
/// a consumer of the isolation level may fetch (the high watermark, or read_committed the last
/// stable offset), and a record found by timestamp at or past it is not found.
fn lookup(p: &Partition, timestamp: i64, read_committed: bool) -> Result<(i64, i64), KafkaError> {
    p.ensure_served()?;
    let fetchable = if read_committed {
        p.last_stable_offset()?
    } else {
        p.high_watermark()
    };
    let found = |point: Option<crate::records::decode::RecordPoint>| {
        point
            .filter(|r| r.offset < fetchable)
            .map_or((-1, -1), |r| (r.offset, r.timestamp))
    };
    Ok(match timestamp {
        LATEST => (fetchable, -1),
        EARLIEST | EARLIEST_LOCAL => (p.log_start_offset(), -1),
        MAX_TIMESTAMP => found(p.max_timestamp_record()?),
        ts if ts >= 0 => found(p.offset_for_timestamp(ts)?),
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
    let read_committed = req.isolation_level == 1;
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
                        .and_then(|part| lookup(&part, p.timestamp, read_committed));
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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};

    use super::*;
    use crate::handlers::sb;
    use crate::handlers::test_context::TestContext;

    fn request(topics: &[(&str, &[(i32, i64)])]) -> ListOffsetsRequest {
        ListOffsetsRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, parts)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(sb(*name)))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, ts)| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(*ts)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    /// (topic, partition, error, offset, timestamp, leader epoch) of each answer.
    async fn list(
        ctx: &TestContext,
        version: i16,
        topics: &[(&str, &[(i32, i64)])],
    ) -> Vec<(String, i32, i16, i64, i64, i32)> {
        let header = ctx.header(ApiKey::ListOffsets, version);
        handle(ctx, &header, request(topics))
            .await
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let name = t.name.to_string();
                    let (i, e, o, ts, ep) = (
                        p.partition_index,
                        p.error_code,
                        p.offset,
                        p.timestamp,
                        p.leader_epoch,
                    );
                    (name, i, e, o, ts, ep)
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn an_empty_partition_starts_and_ends_at_zero() {
        let ctx = RequestContext::builder().build();
        ctx.topic("t", 1);
        let asked = [
            (0, LATEST),
            (0, EARLIEST),
            (0, EARLIEST_LOCAL),
            (0, MAX_TIMESTAMP),
            (0, 0),
        ];
        let got = list(&ctx, 10, &[("t", &asked)]).await;
        let answers: Vec<(i16, i64, i64)> = got.iter().map(|r| (r.2, r.3, r.4)).collect();
        assert_eq!(
            answers,
            [(0, 0, -1), (0, 0, -1), (0, 0, -1), (0, -1, -1), (0, -1, -1)]
        );
        assert_eq!(got[0].5, LEADER_EPOCH);
        // The leader epoch exists from v4.
        assert_eq!(list(&ctx, 3, &[("t", &[(0, LATEST)])]).await[0].5, -1);
    }

    #[tokio::test]
    async fn read_committed_latest_is_the_last_stable_offset() {
        use crate::broker::txn_tests::append_txn;
        let ctx = RequestContext::builder().build();
        let p = ctx.topic("t", 1).partition(0).unwrap();
        append_txn(&p, 1, 0, 0, 2); // open from 0
        let header = ctx.header(ApiKey::ListOffsets, 10);
        let at = |isolation: i8| {
            let req = request(&[("t", &[(0, LATEST), (0, MAX_TIMESTAMP), (0, 0)])])
                .with_isolation_level(isolation);
            handle(&ctx, &header, req)
        };
        let answers = |resp: ListOffsetsResponse| -> Vec<(i64, i64)> {
            resp.topics[0]
                .partitions
                .iter()
                .map(|p| (p.offset, p.timestamp))
                .collect()
        };
        // Uncommitted: the high watermark, and the records found by timestamp.
        assert_eq!(answers(at(0).await), [(2, -1), (0, 0), (0, 0)]);
        // Committed: the LSO, and nothing at or past it is found.
        assert_eq!(answers(at(1).await), [(0, -1), (-1, -1), (-1, -1)]);
    }

    #[tokio::test]
    async fn unknown_topics_and_partitions() {
        let ctx = RequestContext::builder().build();
        ctx.topic("t", 1);
        let unknown = KafkaError::UnknownTopicOrPartition.code();
        let got = list(
            &ctx,
            10,
            &[
                ("t", &[(1, LATEST), (-1, LATEST)]),
                ("ghost", &[(0, LATEST)]),
            ],
        )
        .await;
        let answers: Vec<(i16, i64, i64)> = got.iter().map(|r| (r.2, r.3, r.4)).collect();
        assert_eq!(answers, [(unknown, -1, -1); 3]);
    }

    #[tokio::test]
    async fn listing_offsets_needs_describe_on_the_topic() {
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
        let denied = KafkaError::TopicAuthorizationFailed.code();
        let got = list(
            &ctx,
            10,
            &[
                ("mine", &[(0, LATEST)]),
                ("theirs", &[(0, LATEST)]),
                ("ghost", &[(0, LATEST)]),
            ],
        )
        .await;
        let codes: Vec<i16> = got.iter().map(|r| r.2).collect();
        assert_eq!(codes, [0, denied, denied]);
    }
}
