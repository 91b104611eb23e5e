//! One group shard's records in the remote backend's group-record log.

use std::io;
use std::sync::Arc;

use super::{blocking, RemoteBackend};
use crate::storage::group_log::GroupLog;

/// Group shards on shared storage: Kafka's default `offsets.topic.num.partitions`.
pub const GROUP_SHARDS: i32 = 50;

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
