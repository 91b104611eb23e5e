//! Produce's transactional rules (Kafka's KIP-890 verification): before a producer's first
//! transactional batch on a partition, the transaction coordinator confirms the partition is in
//! the producer's transaction (Produce v12+, TV2: adds it), and its refusals are translated as
//! Kafka's `ReplicaManager` and `AddPartitionsToTxnManager` translate them for producers.

use super::RequestContext;
use crate::broker::partition::Partition;
use crate::error::KafkaError;
use crate::records::batch::BatchHeader;
use crate::records::validate::RecordError;
use crate::txn::TxnTarget;

/// Produce v12+ clients leave adding the partition to the broker (KIP-890 part 2).
const ADDS_PARTITIONS: i16 = 12;
/// Produce v11+ clients understand TRANSACTION_ABORTABLE (KIP-890); older ones get
/// INVALID_TXN_STATE instead.
const KNOWS_ABORTABLE: i16 = 11;

/// Kafka's name of a coordinator error (in the message producers see).
fn error_name(e: KafkaError) -> &'static str {
    match e {
        KafkaError::ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
        KafkaError::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
        KafkaError::NotCoordinator => "NOT_COORDINATOR",
        _ => "UNKNOWN_SERVER_ERROR",
    }
}

/// What a producer gets for the coordinator's refusal (also for a transactional batch the
/// partition refused as unverified, CONCURRENT_TRANSACTIONS: its transaction ended between the
/// verification and the append).
pub fn refusal(e: KafkaError, version: i16) -> RecordError {
    match e {
        KafkaError::TransactionAbortable if version < KNOWS_ABORTABLE => {
            refusal(KafkaError::InvalidTxnState, version)
        }
        // Producers expect INVALID_PRODUCER_EPOCH here (Kafka's AddPartitionsToTxnManager).
        KafkaError::ProducerFenced | KafkaError::InvalidProducerEpoch => {
            RecordError::batch(KafkaError::InvalidProducerEpoch, "fenced producer epoch")
        }
        KafkaError::InvalidTxnState => RecordError {
            error_message: Some("Partition was not added to the transaction".into()),
            ..RecordError::batch(e, "partition not in the transaction")
        },
        // Retriable, in a form older clients retry (and without a metadata refresh).
        KafkaError::ConcurrentTransactions
        | KafkaError::CoordinatorNotAvailable
        | KafkaError::NotCoordinator => RecordError {
            error_message: Some(format!(
                "Unable to verify the partition has been added to the transaction. \
                 Underlying error: {}",
                error_name(e)
            )),
            ..RecordError::batch(KafkaError::NotEnoughReplicas, "transaction not verified")
        },
        other => RecordError::batch(other, "transaction verification failed"),
    }
}

/// Ok(Some(guard)) when `records` start a producer's transaction on `partition` and the
/// coordinator admitted it (the append presents the guard), Ok(None) when there is nothing to
/// verify (not transactional, or the producer's transaction is open here already).
pub async fn verify(
    ctx: &RequestContext,
    transactional_id: &str,
    topic: &str,
    partition: &Partition,
    records: &[u8],
    version: i16,
) -> Result<Option<u64>, RecordError> {
    let Ok(h) = BatchHeader::parse(records) else {
        return Ok(None); // validation answers for a malformed batch
    };
    if !h.is_transactional()
        || !h.has_producer_id()
        || partition.in_transaction(h.producer_id, h.producer_epoch)
    {
        return Ok(None);
    }
    let guard = partition.begin_verification(h.producer_id);
    let target = TxnTarget::Partition {
        topic,
        partition: partition.index,
    };
    let admitted = ctx
        .broker
        .admit_to_transaction(
            transactional_id,
            h.producer_id,
            h.producer_epoch,
            target,
            version >= ADDS_PARTITIONS,
        )
        .await;
    if let Err(e) = admitted {
        partition.end_verification(h.producer_id, guard);
        return Err(refusal(e, version));
    }
    Ok(Some(guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_refusals_are_translated_as_kafka_does() {
        assert_eq!(
            refusal(KafkaError::ProducerFenced, 12).error,
            KafkaError::InvalidProducerEpoch
        );
        let e = refusal(KafkaError::ConcurrentTransactions, 12);
        assert_eq!(e.error, KafkaError::NotEnoughReplicas);
        assert!(e
            .error_message
            .unwrap()
            .ends_with("Underlying error: CONCURRENT_TRANSACTIONS"));
        let e = refusal(KafkaError::InvalidTxnState, 12);
        assert_eq!(e.error, KafkaError::InvalidTxnState);
        assert_eq!(
            refusal(KafkaError::TransactionAbortable, 12).error,
            KafkaError::TransactionAbortable
        );
        assert_eq!(
            refusal(KafkaError::TransactionAbortable, 10).error,
            KafkaError::InvalidTxnState
        );
        assert_eq!(
            refusal(KafkaError::TransactionalIdAuthorizationFailed, 12).error,
            KafkaError::TransactionalIdAuthorizationFailed
        );
    }
}
