//! TEMP stand-ins (dropped when txn-partitions and txn-groups merge).
use super::Broker;
use crate::error::KafkaError;
use crate::group::GroupCoordinator;
use crate::records::control::ControlKind;

impl Broker {
    pub async fn write_txn_marker(
        &self,
        _topic: &str,
        _partition: i32,
        _producer_id: i64,
        _producer_epoch: i16,
        _kind: ControlKind,
        _coordinator_epoch: i32,
    ) -> Result<(), KafkaError> {
        Ok(())
    }
}

impl GroupCoordinator {
    pub async fn complete_txn(
        &self,
        _group_id: &str,
        _producer_id: i64,
        _commit: bool,
    ) -> Result<(), KafkaError> {
        Ok(())
    }
}
