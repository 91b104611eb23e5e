//! TEMP stand-in (dropped when txn-partitions merges).
use super::Broker;
use crate::error::KafkaError;
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
