//! Writing transaction markers (COMMIT/ABORT control batches) to partitions led here: the
//! transaction coordinator's way to end a producer's transaction on a partition, locally or
//! for a peer instance through WriteTxnMarkers.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;

use super::partition::{Durability, Partition, LEADER_EPOCH};
use super::Broker;
use crate::error::KafkaError;
use crate::records::batch::BatchHeader;
use crate::records::control::{encode_marker, ControlKind, Marker, MarkerSpec};
use crate::txn::TxnParticipants;

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

/// How the transaction coordinator reaches partitions and groups.
impl TxnParticipants for Broker {
    fn next_producer_id(&self) -> Result<i64, KafkaError> {
        Broker::next_producer_id(self)
    }

    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlKind,
    ) -> impl Future<Output = Result<(), KafkaError>> + Send {
        self.write_txn_marker(
            topic,
            partition,
            producer_id,
            producer_epoch,
            kind,
            COORDINATOR_EPOCH,
        )
    }

    fn complete_group(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> impl Future<Output = Result<(), KafkaError>> + Send {
        self.groups.complete_txn(group, producer_id, commit)
    }
}

/// The coordinator epoch markers carry: kop's coordinators are never re-elected by epoch (a
/// takeover is fenced by the storage instead).
const COORDINATOR_EPOCH: i32 = 0;
