//! What kop stores besides logs, written once over the document seam: the cluster id, the
//! security state, topic metadata and producer-id blocks.
//!
//! Document names and formats are the contract with data already stored (docs/pulsar-storage.md
//! lists them; the file backend maps them onto its directory layout):
//! - `cluster-id`    the id, UTF-8; the first one stored wins
//! - `security`      the auth module's state, opaque here
//! - `producer-ids`  the next producer id not yet reserved, decimal
//! - `topic/<name>`  a topic's `TopicMeta`, JSON
//! - `quotas`        the client quotas (`quotas::entity::QuotaConfigs`), JSON
//! - `group-configs` the GROUP config overrides (`group::configs`), JSON
//! - `broker-configs` the dynamic broker configs (`broker::dynamic_config`), JSON
//! - `schema-registry/...` the schema registry's (`registry/store.rs`)
//! - `share/<group as hex>/<topic id>/<partition>`  a share partition's delivery state
//!   (`share::state_doc`), JSON; written by the partition's leader, compare-and-set

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::documents::DocumentStore;

const CLUSTER_ID: &str = "cluster-id";
const SECURITY: &str = "security";
const PRODUCER_IDS: &str = "producer-ids";
const TOPIC_PREFIX: &str = "topic/";
const QUOTAS: &str = "quotas";
pub const GROUP_CONFIGS: &str = "group-configs";
pub const BROKER_CONFIGS: &str = "broker-configs";
const SHARE_PREFIX: &str = "share/";

/// What is stored about a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (`retention.ms`, ...); defaults are not stored.
    pub configs: BTreeMap<String, String>,
}

pub struct Metadata {
    docs: Arc<dyn DocumentStore>,
    /// Serialises this process's read-modify-writes of the producer-id counter (other
    /// instances are kept out by the compare-and-set).
    producer_ids: Mutex<()>,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

fn topic_doc(name: &str) -> String {
    format!("{TOPIC_PREFIX}{name}")
}

impl Metadata {
    pub fn new(docs: Arc<dyn DocumentStore>) -> Metadata {
        Metadata {
            docs,
            producer_ids: Mutex::new(()),
        }
    }

    /// The documents underneath, for the stores that keep documents of their own (the schema
    /// registry, `registry/store.rs`).
    pub fn documents(&self) -> Arc<dyn DocumentStore> {
        self.docs.clone()
    }

    pub fn cluster_id(&self) -> io::Result<Option<String>> {
        self.docs
            .get(CLUSTER_ID)?
            .map(|b| String::from_utf8(b).map_err(|e| invalid("the stored cluster id", e)))
            .transpose()
    }

    /// Stores `id` unless an id is stored already, and returns the stored one: two instances
    /// starting on an empty storage agree on the first id stored.
    pub fn init_cluster_id(&self, id: &str) -> io::Result<String> {
        self.docs.put_if(CLUSTER_ID, Some(id.as_bytes()), None)?;
        Ok(self.cluster_id()?.unwrap_or_else(|| id.to_string()))
    }

    /// The security state (ACLs, SCRAM credentials) as the auth module stored it; None before
    /// the first save.
    pub fn security(&self) -> io::Result<Option<Vec<u8>>> {
        self.docs.get(SECURITY)
    }

    /// Replaces the security state durably.
    pub fn save_security(&self, data: &[u8]) -> io::Result<()> {
        self.docs.put(SECURITY, Some(data))
    }

    /// The client quotas as the quota module stored them; None before the first alteration.
    pub fn quotas(&self) -> io::Result<Option<Vec<u8>>> {
        self.docs.get(QUOTAS)
    }

    /// Replaces the client quotas if they are still `expected` (None: none stored); false if
    /// another kop instance changed them first.
    pub fn save_quotas(&self, data: &[u8], expected: Option<&[u8]>) -> io::Result<bool> {
        self.docs.put_if(QUOTAS, Some(data), expected)
    }

    /// A small document replaced whole (`GROUP_CONFIGS`, `BROKER_CONFIGS`); None before the
    /// first save.
    pub fn document(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.docs.get(name)
    }

    /// Replaces such a document if it is still `expected` (None: absent); false if another
    /// kop instance changed it first.
    pub fn save_document(
        &self,
        name: &str,
        data: &[u8],
        expected: Option<&[u8]>,
    ) -> io::Result<bool> {
        self.docs.put_if(name, Some(data), expected)
    }

    pub fn topics(&self) -> io::Result<Vec<TopicMeta>> {
        let mut topics = Vec::new();
        for name in self.docs.names(TOPIC_PREFIX)? {
            if let Some(doc) = self.docs.get(&name)? {
                topics.push(serde_json::from_slice(&doc).map_err(|e| invalid(&name, e))?);
            }
        }
        Ok(topics)
    }

    /// Stores a topic's metadata if what is stored is still `previous` (None: no such topic);
    /// false if another kop instance changed it first (storage shared by several instances).
    pub fn save_topic(&self, meta: &TopicMeta, previous: Option<&TopicMeta>) -> io::Result<bool> {
        let name = topic_doc(&meta.name);
        // Compared as metadata, not bytes: documents written by other versions (pretty JSON in
        // older data directories) still match.
        let stored = self.docs.get(&name)?;
        let current: Option<TopicMeta> = stored
            .as_deref()
            .map(serde_json::from_slice)
            .transpose()
            .map_err(|e| invalid(&name, e))?;
        if current.as_ref() != previous {
            return Ok(false);
        }
        let doc = serde_json::to_vec(meta).map_err(|e| invalid(&name, e))?;
        self.docs
            .put_if(&name, Some(doc.as_slice()), stored.as_deref())
    }

    pub fn delete_topic(&self, name: &str) -> io::Result<()> {
        self.docs.put(&topic_doc(name), None)
    }

    /// The document name prefix of a share group's partitions (group ids may hold any
    /// character; document names only `[A-Za-z0-9._-]` between slashes).
    pub fn share_group_prefix(group: &str) -> String {
        let hex: String = group.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{SHARE_PREFIX}g{hex}/")
    }

    fn share_doc(group: &str, topic_id: uuid::Uuid, partition: i32) -> String {
        format!("{}{topic_id}/{partition}", Self::share_group_prefix(group))
    }

    /// A share partition's stored state (opaque here), None before its first save.
    pub fn share_state(
        &self,
        group: &str,
        topic_id: uuid::Uuid,
        partition: i32,
    ) -> io::Result<Option<Vec<u8>>> {
        self.docs.get(&Self::share_doc(group, topic_id, partition))
    }

    /// Replaces a share partition's state (None deletes it) if it still holds `expected` (the
    /// leader's fence against an instance that led the partition before).
    pub fn save_share_state(
        &self,
        group: &str,
        topic_id: uuid::Uuid,
        partition: i32,
        data: Option<&[u8]>,
        expected: Option<&[u8]>,
    ) -> io::Result<bool> {
        let name = Self::share_doc(group, topic_id, partition);
        self.docs.put_if(&name, data, expected)
    }

    /// The (topic id, partition) share states stored for a group.
    pub fn share_states(&self, group: &str) -> io::Result<Vec<(uuid::Uuid, i32)>> {
        let prefix = Self::share_group_prefix(group);
        Ok(self
            .docs
            .names(&prefix)?
            .iter()
            .filter_map(|n| {
                let (topic, partition) = n.strip_prefix(&prefix)?.split_once('/')?;
                Some((topic.parse().ok()?, partition.parse().ok()?))
            })
            .collect())
    }

    /// Reserves `count` producer ids durably and returns the first one.
    pub fn reserve_producer_ids(&self, count: i64) -> io::Result<i64> {
        let _serial = self.producer_ids.lock();
        loop {
            let stored = self.docs.get(PRODUCER_IDS)?;
            let first = match &stored {
                Some(doc) => std::str::from_utf8(doc)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| invalid(PRODUCER_IDS, "not a number"))?,
                None => 0,
            };
            let next = (first + count).to_string();
            if self
                .docs
                .put_if(PRODUCER_IDS, Some(next.as_bytes()), stored.as_deref())?
            {
                return Ok(first);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryDocuments;

    fn meta(partitions: i32) -> TopicMeta {
        TopicMeta {
            name: "orders".into(),
            id: uuid::Uuid::from_u128(7),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn topics_are_compare_and_set_and_the_first_cluster_id_wins() {
        let docs = Arc::new(MemoryDocuments::default());
        let m = Metadata::new(docs.clone());
        assert!(m.save_topic(&meta(1), None).unwrap());
        assert!(!m.save_topic(&meta(1), None).unwrap());
        assert!(!m.save_topic(&meta(3), Some(&meta(2))).unwrap());
        assert!(m.save_topic(&meta(2), Some(&meta(1))).unwrap());
        assert_eq!(m.topics().unwrap(), vec![meta(2)]);
        m.delete_topic("orders").unwrap();
        assert!(m.topics().unwrap().is_empty());

        assert_eq!(m.cluster_id().unwrap(), None);
        assert_eq!(m.init_cluster_id("a").unwrap(), "a");
        assert_eq!(m.init_cluster_id("b").unwrap(), "a");

        assert_eq!(m.reserve_producer_ids(1000).unwrap(), 0);
        assert_eq!(m.reserve_producer_ids(10).unwrap(), 1000);
        assert_eq!(docs.get(PRODUCER_IDS).unwrap().unwrap(), b"1010");
    }
}
