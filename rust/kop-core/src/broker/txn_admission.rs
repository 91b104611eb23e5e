//! KIP-890 admission of a transactional write by its transaction coordinator, wherever it
//! runs: here (`TransactionCoordinator::admit`), or on a peer kop instance, asked as Kafka's
//! partition leaders and group coordinators ask (`AddPartitionsToTxnManager`): AddPartitionsToTxn
//! v5 for a partition (verify only, or add with transaction version 2), and for a group
//! AddPartitionsToTxn v5 verify-only on the group's `__consumer_offsets` partition, or
//! AddOffsetsToTxn to add it by name (Kafka's coordinator stores the partition; kop's stores the
//! group, so adding needs the name).

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, GroupId, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::leadership::GROUPS_TOPIC;
use super::Broker;
use crate::error::KafkaError;
use crate::txn::TxnTarget;

/// The batched form kop serves (`handlers/transactions.rs`).
const ADD_PARTITIONS_VERSION: i16 = 5;
/// PRODUCER_FENCED from v2; kop serves up to 4.
const ADD_OFFSETS_VERSION: i16 = 4;

impl Broker {
    /// Whether the transaction of `transactional_id` holds `target` (with `add`: makes it hold
    /// it), asking the coordinator of the id's shard, here or on its instance. Errors as
    /// `TransactionCoordinator::admit`; an unreachable coordinator is COORDINATOR_NOT_AVAILABLE.
    pub async fn admit_to_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        target: TxnTarget<'_>,
        add: bool,
    ) -> Result<(), KafkaError> {
        let shard = self.transactions.shard_of(transactional_id);
        let node = self.cluster.group_coordinator(shard);
        if node == self.cluster.node_id() {
            return self
                .transactions
                .admit(transactional_id, producer_id, producer_epoch, target, add)
                .await;
        }
        let endpoint = self
            .cluster
            .endpoint(node, self.peers.listener())
            .ok_or(KafkaError::CoordinatorNotAvailable)?;
        let (topic, partition) = match target {
            TxnTarget::Group(group) if add => {
                let req = AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(sb(transactional_id)))
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(producer_epoch)
                    .with_group_id(GroupId(sb(group)));
                let resp = self
                    .peers
                    .call(node, &endpoint, &req, ADD_OFFSETS_VERSION)
                    .await?;
                return KafkaError::from_code(resp.error_code).map_or(Ok(()), Err);
            }
            TxnTarget::Group(group) => (GROUPS_TOPIC, self.groups.shard_of(group) as i32),
            TxnTarget::Partition { topic, partition } => (topic, partition),
        };
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(sb(transactional_id)))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
                .with_verify_only(!add)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![partition])]),
        ]);
        let resp = self
            .peers
            .call(node, &endpoint, &req, ADD_PARTITIONS_VERSION)
            .await?;
        if let Some(e) = KafkaError::from_code(resp.error_code) {
            return Err(e);
        }
        let code = resp
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .next()
            .ok_or(KafkaError::UnknownServerError)?;
        KafkaError::from_code(code).map_or(Ok(()), Err)
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
