//! Durable transaction state: per shard a log of records (the role Kafka's compacted
//! `__transaction_state` topic plays), kept in a storage `GroupLog` (`transactions/txn.log` on
//! the local log, `__kop_transactions` on Pulsar). Each record is the whole state of one
//! transactional id (JSON), so replay keeps the last record per id and compaction keeps one.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::state::TxnMeta;
use crate::storage::GroupLog;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TxnRecord {
    Txn(TxnMeta),
    /// The transactional id expired (`transactional_id_expiration_ms`).
    Removed {
        transactional_id: String,
    },
}

pub struct TxnStore {
    log: Arc<dyn GroupLog>,
}

impl TxnStore {
    pub fn new(log: Arc<dyn GroupLog>) -> TxnStore {
        TxnStore { log }
    }

    /// The state of every transactional id in the log (taking the shard over on shared storage).
    pub fn load(&self) -> io::Result<HashMap<String, TxnMeta>> {
        let mut live = HashMap::new();
        for raw in self.log.load()? {
            match serde_json::from_slice(&raw) {
                Ok(TxnRecord::Txn(meta)) => {
                    live.insert(meta.transactional_id.clone(), meta);
                }
                Ok(TxnRecord::Removed { transactional_id }) => {
                    live.remove(&transactional_id);
                }
                // A record this version can't read is skipped, not fatal (as a torn file tail).
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable transaction record"),
            }
        }
        Ok(live)
    }

    pub fn append(&self, record: &TxnRecord) -> io::Result<()> {
        let raw = serde_json::to_vec(record).map_err(io::Error::other)?;
        self.log.append(vec![raw])
    }

    /// Replaces the log with one record per live transactional id.
    pub fn rewrite<'a>(&self, live: impl Iterator<Item = &'a TxnMeta>) -> io::Result<()> {
        let records = live
            .map(|m| serde_json::to_vec(&TxnRecord::Txn(m.clone())).map_err(io::Error::other))
            .collect::<io::Result<Vec<_>>>()?;
        self.log.rewrite(records)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.log.flush()
    }

    pub fn release(&self) -> io::Result<()> {
        self.log.release()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FileGroupLog;

    #[test]
    fn replay_keeps_the_last_state_per_id_and_forgets_removed_ids() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(FileGroupLog::open_named(dir.path(), "txn.log", false).unwrap());
        let store = TxnStore::new(log.clone());
        let mut a = TxnMeta::new("a", 1, 1000, 0);
        store.append(&TxnRecord::Txn(a.clone())).unwrap();
        a.producer_epoch = 3;
        store.append(&TxnRecord::Txn(a.clone())).unwrap();
        let b = TxnMeta::new("b", 2, 1000, 0);
        store.append(&TxnRecord::Txn(b.clone())).unwrap();
        store
            .append(&TxnRecord::Removed {
                transactional_id: "b".into(),
            })
            .unwrap();
        let loaded = TxnStore::new(log.clone()).load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded["a"], a);

        store.rewrite(loaded.values()).unwrap();
        assert_eq!(log.load().unwrap().len(), 1);
        assert_eq!(TxnStore::new(log).load().unwrap()["a"], a);
    }
}
