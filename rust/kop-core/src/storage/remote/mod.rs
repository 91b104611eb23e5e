//! Storage whose bytes live in a remote backend: Pulsar, reached through Python (kop-py
//! implements `RemoteBackend` over `kop.pulsar.PulsarBackend`; docs/pulsar-storage.md is the
//! contract). Each seam has its file here: `documents`, `log` (with its `tail_cache`),
//! `group_log`, and the members below; `bridge` is the backend's trait, `blocking` how async
//! callers wait for it.

mod blocking;
mod bridge;
mod documents;
#[cfg(any(test, feature = "test-fakes"))]
pub mod fake;
mod group_log;
mod log;
mod tail_cache;

use std::io;
use std::sync::Arc;

pub use blocking::blocking;
pub use bridge::{OpenedPartition, RemoteBackend};
pub use group_log::{GROUP_SHARDS, TXN_SHARD_BASE};

use super::members::{ClusterState, Member, Membership};
use super::metadata::Metadata;
use super::Storage;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Storage over `backend`; each partition caches `tail_bytes` of its newest batches.
pub fn open(backend: Arc<dyn RemoteBackend>, tail_bytes: usize) -> Storage {
    let docs = documents::RemoteDocuments {
        backend: backend.clone(),
    };
    let record_logs = |first: i32| {
        (first..first + GROUP_SHARDS)
            .map(|shard| {
                Arc::new(group_log::RemoteGroupLog {
                    backend: backend.clone(),
                    shard,
                }) as Arc<dyn super::GroupLog>
            })
            .collect()
    };
    let group_logs = record_logs(0);
    let txn_logs = record_logs(TXN_SHARD_BASE);
    Storage {
        metadata: Arc::new(Metadata::new(Arc::new(docs))),
        logs: Arc::new(log::RemoteLogs {
            backend: backend.clone(),
            tail_bytes,
        }),
        group_logs,
        txn_logs,
        members: Arc::new(RemoteMembers { backend }),
        _lock: None,
    }
}

struct RemoteMembers {
    backend: Arc<dyn RemoteBackend>,
}

impl Membership for RemoteMembers {
    fn join(&self, me: &Member) -> io::Result<Vec<Member>> {
        blocking(|| self.backend.join(me))
    }

    fn cluster_state(&self) -> io::Result<Option<ClusterState>> {
        blocking(|| self.backend.cluster_state()).map(Some)
    }
}
