//! Writing transaction markers (COMMIT/ABORT control batches) to partitions led here: the
//! transaction coordinator's way to end a producer's transaction on a partition, locally or
//! for a peer instance through WriteTxnMarkers.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;

use super::leadership::GROUPS_TOPIC;
use super::partition::{Durability, Partition, LEADER_EPOCH};
use super::Broker;
use crate::error::KafkaError;
use crate::records::batch::BatchHeader;
use crate::records::control::{encode_marker, ControlKind, Marker, MarkerSpec};
use crate::txn::{TopicPartition, TxnParticipants};

impl Partition {
    /// Appends a marker through the same offset and durability path as Produce: Kafka's checks
    /// first (`ProducerStates::check_marker`), then the batch gets the next offset and ends the
    /// producer's open transaction. A remote log acknowledges it when the returned
    /// `Durability` completes.
    pub fn write_marker(
        self: &Arc<Self>,
        spec: &MarkerSpec,
        sync: bool,
    ) -> Result<Option<Durability>, KafkaError> {
        let mut inner = self.inner.write();
        if !inner.opened || inner.stepped_down.is_some() {
            return Err(KafkaError::NotLeaderOrFollower);
        }
        inner.producers.check_marker(
            spec.producer_id,
            spec.producer_epoch,
            spec.coordinator_epoch,
        )?;
        let generation = self.mark.borrow().generation;
        let base_offset = inner.log.next_offset();
        let bytes = encode_marker(spec, base_offset, LEADER_EPOCH);
        let header = BatchHeader::parse(&bytes)?;
        let receipt = inner
            .log
            .append(&header, Bytes::from(bytes), spec.timestamp)?;
        inner.producers.record_marker(
            &header,
            Marker {
                kind: spec.kind,
                coordinator_epoch: spec.coordinator_epoch,
            },
        );
        if sync {
            inner.log.flush()?;
        }
        let end = header.last_offset() + 1;
        let remote = inner.log.remote_reads().is_some();
        drop(inner);
        if !remote {
            self.mark.send_modify(|m| m.high_watermark = end);
            return Ok(None);
        }
        let too_large = Arc::new(AtomicBool::new(false));
        if let Some(receipt) = receipt {
            self.await_receipts(generation, vec![(receipt, end)], too_large.clone());
        }
        Ok(Some(Durability {
            partition: self.clone(),
            generation,
            end_offset: end,
            too_large,
        }))
    }
}

impl Broker {
    /// Writes a COMMIT/ABORT marker (a control batch: producer id/epoch, no sequence, key
    /// {version 0, type}, value {version 0, coordinator_epoch}) to one partition led here, ending
    /// `producer_id`'s transaction there, and waits until it is durable (Pulsar: the receipt).
    /// A marker for a producer with no open transaction on the partition is still written (Kafka
    /// does too: harmless for readers). Errors: UNKNOWN_TOPIC_OR_PARTITION,
    /// NOT_LEADER_OR_FOLLOWER (led elsewhere / stepped down), INVALID_PRODUCER_EPOCH (epoch older
    /// than the partition's for that producer), TRANSACTION_COORDINATOR_FENCED (coordinator
    /// epoch older than the producer's last marker's, as Kafka), storage errors as
    /// KAFKA_STORAGE_ERROR.
    pub async fn write_txn_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlKind,
        coordinator_epoch: i32,
    ) -> Result<(), KafkaError> {
        let p = self
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or(KafkaError::UnknownTopicOrPartition)?;
        let spec = MarkerSpec {
            producer_id,
            producer_epoch,
            kind,
            coordinator_epoch,
            timestamp: crate::now_ms(),
        };
        if let Some(durability) = p.write_marker(&spec, self.sync_on_append())? {
            durability.wait().await?;
        }
        tracing::debug!(
            topic,
            partition,
            producer_id,
            producer_epoch,
            ?kind,
            "wrote a transaction marker"
        );
        Ok(())
    }
}

/// How the transaction coordinator reaches partitions and groups: those led here directly,
/// those led by another kop instance through WriteTxnMarkers to it (`peers.rs`), as Kafka's
/// coordinator does, one request per instance.
impl TxnParticipants for Broker {
    fn next_producer_id(&self) -> Result<i64, KafkaError> {
        Broker::next_producer_id(self)
    }

    async fn write_markers(
        &self,
        partitions: &[TopicPartition],
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlKind,
    ) -> Vec<Result<(), KafkaError>> {
        let me = self.cluster.node_id();
        let mut by_node: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, (topic, partition)) in partitions.iter().enumerate() {
            by_node
                .entry(self.cluster.leader(topic, *partition))
                .or_default()
                .push(i);
        }
        let mut results = vec![Ok(()); partitions.len()];
        let calls = by_node.into_iter().map(|(node, indexes)| async move {
            let chosen: Vec<&TopicPartition> = indexes.iter().map(|&i| &partitions[i]).collect();
            let written = if node == me {
                let writes = chosen.iter().map(|(topic, partition)| {
                    self.write_txn_marker(
                        topic,
                        *partition,
                        producer_id,
                        producer_epoch,
                        kind,
                        COORDINATOR_EPOCH,
                    )
                });
                join_all(writes).await
            } else {
                let marker = PeerMarker {
                    producer_id,
                    producer_epoch,
                    kind,
                };
                self.markers_elsewhere(node, &chosen, marker).await
            };
            (indexes, written)
        });
        for (indexes, written) in join_all(calls).await {
            for (i, w) in indexes.into_iter().zip(written) {
                results[i] = w;
            }
        }
        results
    }

    async fn complete_group(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), KafkaError> {
        let shard = self.groups.shard_of(group);
        let node = self.cluster.group_coordinator(shard);
        if node == self.cluster.node_id() || group.is_empty() {
            return self.groups.complete_txn(group, producer_id, commit).await;
        }
        // Kafka's marker on the group's `__consumer_offsets` partition: the peer ends the
        // producer's offsets in every group of the shard.
        let kind = if commit {
            ControlKind::Commit
        } else {
            ControlKind::Abort
        };
        let shard_partition = (GROUPS_TOPIC.to_string(), shard as i32);
        let marker = PeerMarker {
            producer_id,
            producer_epoch: NO_EPOCH_CHECK,
            kind,
        };
        let mut written = self
            .markers_elsewhere(node, &[&shard_partition], marker)
            .await;
        written.pop().unwrap_or(Err(KafkaError::UnknownServerError))
    }
}

/// The producer and the transaction outcome of a marker.
#[derive(Clone, Copy)]
struct PeerMarker {
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlKind,
}

impl Broker {
    /// WriteTxnMarkers to the peer `node` for `partitions` (all led there); one result per
    /// partition. A peer that is unreachable or no longer leads a partition gives a retriable
    /// error: the coordinator tries the whole completion again.
    async fn markers_elsewhere(
        &self,
        node: i32,
        partitions: &[&TopicPartition],
        marker: PeerMarker,
    ) -> Vec<Result<(), KafkaError>> {
        let failed = |e: KafkaError| vec![Err(e); partitions.len()];
        let Some(endpoint) = self.cluster.endpoint(node, self.peers.listener()) else {
            return failed(KafkaError::NotLeaderOrFollower);
        };
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        let topics = by_topic
            .into_iter()
            .map(|(name, indexes)| {
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partition_indexes(indexes)
            })
            .collect();
        let req =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(marker.producer_id))
                .with_producer_epoch(marker.producer_epoch)
                .with_transaction_result(marker.kind == ControlKind::Commit)
                .with_coordinator_epoch(COORDINATOR_EPOCH)
                .with_topics(topics)]);
        let resp = match self.peers.call(node, &endpoint, &req, 1).await {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        let answered: BTreeMap<(&str, i32), i16> = resp
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| ((t.name.as_str(), p.partition_index), p.error_code))
            })
            .collect();
        partitions
            .iter()
            .map(
                |(topic, partition)| match answered.get(&(topic.as_str(), *partition)) {
                    Some(&code) => KafkaError::from_code(code).map_or(Ok(()), Err),
                    None => Err(KafkaError::UnknownServerError),
                },
            )
            .collect()
    }
}

/// Markers on a `__consumer_offsets` shard end offsets of any epoch of the producer (the
/// coordinator decided the transaction; the group side has no epoch to check).
const NO_EPOCH_CHECK: i16 = -1;

/// The coordinator epoch markers carry: kop's coordinators are never re-elected by epoch (a
/// takeover is fenced by the storage instead).
const COORDINATOR_EPOCH: i32 = 0;
