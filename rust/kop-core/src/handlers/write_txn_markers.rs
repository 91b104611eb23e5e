//! WriteTxnMarkers (API 27): a transaction coordinator (a peer kop instance) asks for COMMIT/
//! ABORT markers on partitions led here (`Broker::write_txn_marker`), or on a group shard
//! coordinated here (`__consumer_offsets` partition: the producer's offsets there end). CLUSTER_ACTION on the
//! cluster, as Kafka; else every partition gets CLUSTER_AUTHORIZATION_FAILED.

use futures::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;

use super::{authz, RequestContext};
use crate::broker::leadership::GROUPS_TOPIC;
use crate::error::{code_of, KafkaError};
use crate::records::control::ControlKind;

pub async fn handle(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed =
        authz::cluster_allowed(ctx, "WriteTxnMarkers", authz::Operation::ClusterAction).await;
    let markers = req.markers.into_iter().map(|m| async move {
        let (producer_id, producer_epoch, coordinator_epoch) =
            (m.producer_id.0, m.producer_epoch, m.coordinator_epoch);
        let kind = if m.transaction_result {
            ControlKind::Commit
        } else {
            ControlKind::Abort
        };
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in m.topics {
            // The partitions of a topic are written at once (on Pulsar each waits for its
            // receipt).
            let writes = t.partition_indexes.iter().map(|&index| {
                let topic = t.name.as_str();
                async move {
                    let written = if !allowed {
                        Err(KafkaError::ClusterAuthorizationFailed)
                    } else if topic == GROUPS_TOPIC {
                        // A marker on a group shard: ends the producer's offsets in its groups.
                        let shard =
                            usize::try_from(index).map_err(|_| KafkaError::UnknownTopicOrPartition);
                        match shard {
                            Ok(shard) => {
                                ctx.broker
                                    .groups
                                    .complete_txn_in_shard(
                                        shard,
                                        producer_id,
                                        kind == ControlKind::Commit,
                                    )
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    } else {
                        ctx.broker
                            .write_txn_marker(
                                topic,
                                index,
                                producer_id,
                                producer_epoch,
                                kind,
                                coordinator_epoch,
                            )
                            .await
                    };
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code_of(&written))
                }
            });
            let partitions = join_all(writes).await;
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        WritableTxnMarkerResult::default()
            .with_producer_id(m.producer_id)
            .with_topics(topics)
    });
    WriteTxnMarkersResponse::default().with_markers(join_all(markers).await)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };

    use super::*;
    use crate::broker::partition::Isolation;
    use crate::handlers::sb;

    fn request(commit: bool, topics: &[(&str, &[i32])]) -> WriteTxnMarkersRequest {
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(9))
            .with_producer_epoch(0)
            .with_transaction_result(commit)
            .with_coordinator_epoch(1)
            .with_topics(
                topics
                    .iter()
                    .map(|(name, parts)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(sb(*name)))
                            .with_partition_indexes(parts.to_vec())
                    })
                    .collect(),
            )])
    }

    fn codes(resp: &WriteTxnMarkersResponse) -> Vec<i16> {
        resp.markers[0]
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    #[tokio::test]
    async fn markers_end_the_transaction_on_each_partition() {
        let ctx = RequestContext::builder().build();
        let topic = ctx.topic("t", 2);
        let p = topic.partition(0).unwrap();
        crate::broker::txn_tests::append_txn(&p, 9, 0, 0, 2);
        assert_eq!(p.last_stable_offset().unwrap(), 0);
        let header = ctx.header(ApiKey::WriteTxnMarkers, 1);
        let resp = handle(
            &ctx,
            &header,
            request(false, &[("t", &[0, 1, 2]), ("ghost", &[0])]),
        )
        .await;
        let unknown = KafkaError::UnknownTopicOrPartition.code();
        assert_eq!(codes(&resp), vec![0, 0, unknown, unknown]);
        // The abort marker is at offset 2: stable again, and the aborted transaction indexed.
        assert_eq!(p.last_stable_offset().unwrap(), 3);
        let read = p.read(0, 1 << 20, Isolation::ReadCommitted).unwrap();
        assert_eq!(read.aborted.len(), 1);
        assert_eq!(
            (read.aborted[0].first_offset, read.aborted[0].last_offset),
            (0, 2)
        );
    }

    #[tokio::test]
    async fn writing_markers_needs_cluster_action() {
        let ctx = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:alice")
            .build();
        ctx.topic("t", 1);
        let header = ctx.header(ApiKey::WriteTxnMarkers, 1);
        let resp = handle(&ctx, &header, request(true, &[("t", &[0])])).await;
        assert_eq!(
            codes(&resp),
            vec![KafkaError::ClusterAuthorizationFailed.code()]
        );
        ctx.allow(
            "User:alice",
            authz::Operation::ClusterAction,
            authz::ResourceType::Cluster,
            "kafka-cluster",
        );
        let resp = handle(&ctx, &header, request(true, &[("t", &[0])])).await;
        assert_eq!(codes(&resp), vec![0]);
    }
}
