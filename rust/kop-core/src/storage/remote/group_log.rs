//! One shard's records in the remote backend's record logs: group records in shards
//! `0..GROUP_SHARDS`, transaction state in `TXN_SHARD_BASE..TXN_SHARD_BASE + GROUP_SHARDS`
//! (the backend keeps them in topics of their own: `__kop_groups`, `__kop_transactions`).

use std::io;
use std::sync::Arc;

use super::{blocking, RemoteBackend};
use crate::storage::group_log::GroupLog;

/// Group shards on shared storage: Kafka's default `offsets.topic.num.partitions`.
pub const GROUP_SHARDS: i32 = 50;

/// The record-log shard of transaction shard 0 (Kafka's `__transaction_state` partitions).
pub const TXN_SHARD_BASE: i32 = GROUP_SHARDS;

pub struct RemoteGroupLog {
    pub(super) backend: Arc<dyn RemoteBackend>,
    pub(super) shard: i32,
}

impl GroupLog for RemoteGroupLog {
    fn load(&self) -> io::Result<Vec<Vec<u8>>> {
        blocking(|| self.backend.load_group_records(self.shard))
    }

    fn append(&self, records: Vec<Vec<u8>>) -> io::Result<()> {
        blocking(|| self.backend.append_group_records(self.shard, records))
    }

    fn rewrite(&self, live: Vec<Vec<u8>>) -> io::Result<()> {
        blocking(|| self.backend.rewrite_group_records(self.shard, live))
    }

    fn release(&self) -> io::Result<()> {
        blocking(|| self.backend.release_group_records(self.shard))
    }
}
