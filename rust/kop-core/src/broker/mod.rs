//! The broker's state: topics, partitions, identity, producer ids.

pub mod aborted_txns;
pub mod cluster;
pub mod dynamic_config;
mod external_writers;
pub mod fetch_sessions;
pub mod housekeeping;
pub mod leadership;
pub mod partition;
pub mod peers;
pub mod producer_state;
pub mod topic_config;
pub mod txn_admission;
pub mod txn_markers;
#[cfg(test)]
pub(crate) mod txn_tests;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::{FsyncPolicy, ServerConfig, StorageSpec};
use crate::error::KafkaError;
use crate::group::{GroupConfig, GroupCoordinator, GroupStore, LogGroupStore};
use crate::storage::compaction::Throttle;
use crate::storage::{
    LogSettings, LogStore, Member, Metadata, PartitionLog, RemoteBackend, Storage, TopicMeta,
};
use crate::txn::{TransactionCoordinator, TxnConfig};
use cluster::Cluster;
use fetch_sessions::FetchSessions;
use partition::{LogOpener, Partition};
use producer_state::ProducerStates;

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    configs: RwLock<BTreeMap<String, String>>,
    partitions: RwLock<Vec<Arc<Partition>>>,
    /// Bytes and messages in and out (metrics; recorded by produce and fetch).
    pub traffic: crate::metrics::topics::TopicTraffic,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions.read().len() as i32
    }

    pub fn config_overrides(&self) -> BTreeMap<String, String> {
        self.configs.read().clone()
    }

    fn meta(&self) -> TopicMeta {
        TopicMeta {
            name: self.name.clone(),
            id: self.id,
            partitions: self.partition_count(),
            configs: self.config_overrides(),
        }
    }
}

#[derive(Default)]
struct TopicIndex {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// Internal topic names Kafka reserves; kop has none of its own yet.
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

/// Kafka's legal topic names: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

pub struct Broker {
    pub config: ServerConfig,
    pub cluster_id: String,
    storage: Storage,
    topics: RwLock<TopicIndex>,
    /// Serialises topic creation/deletion so two requests can't create the same topic twice.
    admin: Mutex<()>,
    producer_ids: Mutex<(i64, i64)>,
    /// Consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    /// Transactional ids and their transactions (sharded like the groups).
    pub transactions: TransactionCoordinator,
    /// The kop instances sharing the storage, and who leads what.
    pub cluster: Cluster,
    /// The storage's metadata counter as of the last `sync_cluster` (topics, security).
    metadata_version: AtomicU64,
    /// Consumers' incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessions,
    /// Calls to the other kop instances (transaction markers and verification).
    pub peers: peers::Peers,
    /// What the request path records for Prometheus (`metrics/`).
    pub metrics: crate::metrics::Metrics,
    /// Client quotas: those in force and the clients' rates.
    pub quotas: crate::quotas::QuotaManager,
    /// Dynamic broker configs (cluster default and per node), applied as topic defaults.
    pub dynamic_configs: dynamic_config::DynamicBrokerConfigs,
    /// Whether `__consumer_offsets` / `__transaction_state` exist in Kafka's terms (Kafka
    /// creates them at the first coordinator lookup): all-topics Metadata lists them then.
    pub internal_topics_used: [std::sync::atomic::AtomicBool; 2],
    /// Share groups (KIP-932): membership, share sessions, share-partition state.
    pub share: crate::share::ShareCoordinator,
}

/// Opens one partition's log from the storage (and lets go of it).
pub(crate) struct StorageLog {
    pub logs: Arc<dyn LogStore>,
    pub topic: String,
    pub index: i32,
}

impl LogOpener for StorageLog {
    fn open(&self, settings: LogSettings) -> io::Result<(Box<dyn PartitionLog>, ProducerStates)> {
        let mut producers = ProducerStates::default();
        let log = self
            .logs
            .open(&self.topic, self.index, settings, &mut |h, marker| {
                producers.replay(h, marker)
            })?;
        // Aborted transactions wholly before the log start (a checkpoint may still name them).
        producers.aborted.trim(log.log_start_offset());
        Ok((log, producers))
    }

    fn close(&self) {
        self.logs.close(&self.topic, self.index);
    }
}

const CHANGED_ELSEWHERE: &str =
    "the topic was changed by another kop instance at the same time; retry";

/// Producer ids are reserved durably in blocks so a restart never hands one out twice.
const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    /// The stored metadata (the auth module keeps its state there).
    pub fn metadata(&self) -> Arc<Metadata> {
        self.storage.metadata.clone()
    }

    /// Opens storage, recovers every topic's partitions and loads the cluster identity.
    /// `remote` is the backend for `pulsar://` storage (supplied by the embedding layer); `me`
    /// is this instance as other instances sharing that storage see it.
    pub fn open(
        config: ServerConfig,
        remote: Option<Arc<dyn RemoteBackend>>,
        me: Member,
    ) -> io::Result<Broker> {
        let storage = Storage::open(&config, remote)?;
        Broker::with_storage(config, storage, me)
    }

    pub fn with_storage(config: ServerConfig, storage: Storage, me: Member) -> io::Result<Broker> {
        // Join first, so that this instance opens only the partitions it leads among the
        // instances already serving.
        let cluster = Cluster::new(me);
        cluster.set_members(storage.members.join(cluster.me())?);
        let cluster_id = match (&config.cluster_id, storage.metadata.cluster_id()?) {
            (Some(wanted), Some(stored)) if *wanted != stored => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cluster_id {wanted} does not match {stored} stored with the data"),
                ))
            }
            (_, Some(stored)) => stored,
            (wanted, None) => {
                let id = wanted.clone().unwrap_or_else(new_cluster_id);
                // Another instance may have stored its id first: the stored one counts.
                storage.metadata.init_cluster_id(&id)?
            }
        };
        let group_stores = storage
            .group_logs
            .iter()
            .map(|log| Arc::new(LogGroupStore::new(log.clone())) as Arc<dyn GroupStore>)
            .collect();
        let groups = GroupCoordinator::inactive(group_stores, GroupConfig::from_server(&config))
            .with_group_configs(crate::group::configs::GroupConfigs::load(Some(
                storage.metadata.clone(),
            ))?);
        let dynamic_configs = dynamic_config::DynamicBrokerConfigs::load(
            Some(storage.metadata.clone()),
            config.node_id,
        )?;
        let transactions =
            TransactionCoordinator::inactive(&storage.txn_logs, TxnConfig::from_server(&config));
        for shard in 0..groups.shard_count() {
            if cluster.leads_group_shard(shard) {
                groups.activate(shard)?;
                transactions.activate(shard)?;
            }
        }
        let windows = crate::quotas::rate::Windows::new(
            config.quota_window_num,
            config.quota_window_size_seconds,
        );
        let mutation_windows = crate::quotas::rate::Windows::new(
            config.controller_quota_window_num,
            config.controller_quota_window_size_seconds,
        );
        let quotas = crate::quotas::QuotaManager::load(
            windows,
            mutation_windows,
            Some(storage.metadata.clone()),
        )?;
        let session_slots =
            usize::try_from(config.max_incremental_fetch_session_cache_slots).unwrap_or(0);
        let share = crate::share::ShareCoordinator::new(storage.metadata.clone(), &config);
        let broker = Broker {
            share,
            peers: peers::Peers::new(&config),
            quotas,
            dynamic_configs,
            internal_topics_used: Default::default(),
            groups,
            transactions,
            config,
            cluster_id,
            storage,
            topics: RwLock::new(TopicIndex::default()),
            admin: Mutex::new(()),
            producer_ids: Mutex::new((0, 0)),
            cluster,
            metadata_version: AtomicU64::new(0),
            fetch_sessions: FetchSessions::with_slots(session_slots),
            metrics: Default::default(),
        };
        for meta in broker.storage.metadata.topics()? {
            let topic = broker.open_topic(&meta)?;
            broker.index(topic);
        }
        Ok(broker)
    }

    fn index(&self, topic: Arc<Topic>) {
        let mut idx = self.topics.write();
        idx.by_id.insert(topic.id, topic.clone());
        idx.by_name.insert(topic.name.clone(), topic);
    }

    /// The partition, opened if this instance leads it.
    fn open_partition(&self, meta: &TopicMeta, index: i32) -> io::Result<Arc<Partition>> {
        let config = topic_config::effective(&meta.configs, &self.topic_defaults());
        let opener: Arc<dyn LogOpener> = Arc::new(StorageLog {
            logs: self.storage.logs.clone(),
            topic: meta.name.clone(),
            index,
        });
        if !self.cluster.leads(&meta.name, index) {
            return Ok(Arc::new(Partition::led_elsewhere(index, config, opener)));
        }
        let (log, producers) = opener.open(config.log)?;
        let partition = Arc::new(Partition::new(index, log, producers, config, Some(opener)));
        partition.follow_external_end();
        Ok(partition)
    }

    fn open_topic(&self, meta: &TopicMeta) -> io::Result<Arc<Topic>> {
        let partitions = (0..meta.partitions)
            .map(|i| self.open_partition(meta, i))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Arc::new(Topic {
            name: meta.name.clone(),
            id: meta.id,
            configs: RwLock::new(meta.configs.clone()),
            partitions: RwLock::new(partitions),
            traffic: Default::default(),
        }))
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.topics.read().by_id.get(id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks a CreateTopics request without creating anything.
    pub fn check_new_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), (KafkaError, String)> {
        if !valid_topic_name(name) {
            return Err((
                KafkaError::InvalidTopic,
                format!("topic name {name:?} is illegal"),
            ));
        }
        // The internal topics exist in Kafka's terms (their data is the group and
        // transaction shards): never created as data topics.
        if is_internal(name) {
            return Err((
                KafkaError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if let Some(why) = self.reserved_by_storage(name) {
            return Err((KafkaError::InvalidTopic, why));
        }
        if self.topic(name).is_some() {
            return Err((
                KafkaError::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        if partitions < 1 {
            return Err((
                KafkaError::InvalidPartitions,
                format!("number of partitions must be at least 1, got {partitions}"),
            ));
        }
        topic_config::validate_overrides(configs).map_err(|m| (KafkaError::InvalidConfig, m))
    }

    /// Names the storage backend can't hold: on Pulsar, kop's own topics (`__kop_*`) and names
    /// that look like a partition of a Pulsar partitioned topic (`NAME-partition-N`).
    fn reserved_by_storage(&self, name: &str) -> Option<String> {
        if !matches!(self.config.storage_spec(), StorageSpec::Pulsar(_)) {
            return None;
        }
        if name.starts_with("__kop_") {
            return Some(format!(
                "topic name {name:?} is reserved for kop's own Pulsar topics"
            ));
        }
        let looks_like_partition = name
            .rsplit_once("-partition-")
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        looks_like_partition.then(|| {
            format!(
                "topic name {name:?} ends in -partition-<n>, which Pulsar reserves for partitions"
            )
        })
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, (KafkaError, String)> {
        let _admin = self.admin.lock();
        self.check_new_topic(name, partitions, &configs)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        let storage_err = |e: io::Error| (KafkaError::KafkaStorageError, e.to_string());
        // Stored first: with several instances, the first to store a name owns it.
        if !self.storage.save_topic(&meta, None).map_err(storage_err)? {
            return Err((
                KafkaError::TopicAlreadyExists,
                format!("topic {name} already exists (created by another kop instance)"),
            ));
        }
        let topic = self.open_topic(&meta).map_err(storage_err)?;
        self.index(topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Creates the topic with broker defaults if auto-creation allows (Metadata, Produce).
    pub fn auto_create(&self, name: &str) -> Result<Arc<Topic>, KafkaError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        // Never a data topic under an internal topic's name (kop keeps their data elsewhere).
        if is_internal(name) {
            return Err(KafkaError::UnknownTopicOrPartition);
        }
        if !self.config.auto_create_topics {
            return Err(KafkaError::UnknownTopicOrPartition);
        }
        match self.create_topic(name, self.config.num_partitions, BTreeMap::new()) {
            Ok(t) => Ok(t),
            Err((KafkaError::TopicAlreadyExists, _)) => {
                self.topic(name).ok_or(KafkaError::UnknownTopicOrPartition)
            }
            Err((e, _)) => Err(e),
        }
    }

    pub fn delete_topic(&self, name: &str) -> Result<Uuid, KafkaError> {
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or(KafkaError::UnknownTopicOrPartition)?;
        {
            let mut idx = self.topics.write();
            idx.by_name.remove(name);
            idx.by_id.remove(&topic.id);
        }
        self.storage.delete_topic(&topic.meta())?;
        self.groups.remove_topic(name);
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    pub fn add_partitions(&self, name: &str, total: i32) -> Result<(), (KafkaError, String)> {
        let _admin = self.admin.lock();
        let topic = self.topic(name).ok_or((
            KafkaError::UnknownTopicOrPartition,
            format!("topic {name} does not exist"),
        ))?;
        let current = topic.partition_count();
        if total <= current {
            return Err((
                KafkaError::InvalidPartitions,
                format!("topic {name} has {current} partitions; the count can only grow"),
            ));
        }
        let previous = topic.meta();
        let mut meta = previous.clone();
        meta.partitions = total;
        let storage_err = |e: io::Error| (KafkaError::KafkaStorageError, e.to_string());
        if !self
            .storage
            .save_topic(&meta, Some(&previous))
            .map_err(storage_err)?
        {
            return Err((KafkaError::KafkaStorageError, CHANGED_ELSEWHERE.into()));
        }
        let new = (current..total)
            .map(|i| self.open_partition(&meta, i))
            .collect::<io::Result<Vec<_>>>()
            .map_err(storage_err)?;
        topic.partitions.write().extend(new);
        Ok(())
    }

    /// Replaces a topic's config overrides (validated by the caller) and applies them.
    pub fn set_topic_configs(
        &self,
        topic: &Topic,
        configs: BTreeMap<String, String>,
    ) -> Result<(), KafkaError> {
        let _admin = self.admin.lock();
        let previous = topic.meta();
        let mut meta = previous.clone();
        meta.configs = configs.clone();
        if !self.storage.save_topic(&meta, Some(&previous))? {
            tracing::warn!(topic = %topic.name, "{CHANGED_ELSEWHERE}");
            return Err(KafkaError::KafkaStorageError);
        }
        let effective = topic_config::effective(&configs, &self.topic_defaults());
        *topic.configs.write() = configs;
        for p in topic.partitions() {
            p.set_config(effective);
        }
        Ok(())
    }

    /// A new producer id, from a durably reserved block.
    pub fn next_producer_id(&self) -> Result<i64, KafkaError> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let first = self
                .storage
                .metadata
                .reserve_producer_ids(PRODUCER_ID_BLOCK)?;
            *ids = (first, first + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// The broker settings topic defaults come from: the static ones with the dynamic broker
    /// configs in force applied.
    pub fn topic_defaults(&self) -> ServerConfig {
        self.dynamic_configs.apply(&self.config)
    }

    /// Applies changed dynamic broker configs to every topic (their defaults changed).
    pub fn apply_dynamic_configs(&self) {
        let defaults = self.topic_defaults();
        for topic in self.topics() {
            let effective = topic_config::effective(&topic.configs.read(), &defaults);
            for p in topic.partitions() {
                p.set_config(effective);
            }
        }
    }

    /// Whether other kop instances may share this broker's storage (Pulsar).
    pub fn shares_storage(&self) -> bool {
        matches!(self.config.storage_spec(), StorageSpec::Pulsar(_))
    }

    /// Makes the topic index match the stored topics (changed by another instance).
    fn reload_topics(&self) -> io::Result<()> {
        let stored = self.storage.metadata.topics()?;
        let _admin = self.admin.lock();
        let mut names = std::collections::HashSet::new();
        for meta in stored {
            names.insert(meta.name.clone());
            match self.topic(&meta.name) {
                Some(t) if t.id == meta.id => self.apply_stored(&t, &meta)?,
                existing => {
                    if let Some(old) = existing {
                        self.forget_topic(&old);
                    }
                    let topic = self.open_topic(&meta)?;
                    self.index(topic);
                    tracing::info!(topic = %meta.name, "topic created by another kop instance");
                }
            }
        }
        for t in self.topics() {
            if !names.contains(&t.name) {
                self.forget_topic(&t);
                tracing::info!(topic = %t.name, "topic deleted by another kop instance");
            }
        }
        Ok(())
    }

    /// Partitions added and configs changed elsewhere.
    fn apply_stored(&self, topic: &Topic, meta: &TopicMeta) -> io::Result<()> {
        let current = topic.partition_count();
        if meta.partitions > current {
            let new = (current..meta.partitions)
                .map(|i| self.open_partition(meta, i))
                .collect::<io::Result<Vec<_>>>()?;
            topic.partitions.write().extend(new);
        }
        if *topic.configs.read() != meta.configs {
            let effective = topic_config::effective(&meta.configs, &self.topic_defaults());
            *topic.configs.write() = meta.configs.clone();
            for p in topic.partitions() {
                p.set_config(effective);
            }
        }
        Ok(())
    }

    fn forget_topic(&self, topic: &Topic) {
        {
            let mut idx = self.topics.write();
            idx.by_name.remove(&topic.name);
            idx.by_id.remove(&topic.id);
        }
        for p in topic.partitions() {
            p.release();
        }
        self.groups.remove_topic(&topic.name);
    }

    /// Whether appends must be fsynced before they are acknowledged.
    pub fn sync_on_append(&self) -> bool {
        self.config.fsync == FsyncPolicy::Always
    }

    /// Periodic fsync of every partition (`fsync = "interval"`).
    pub fn flush_all(&self) {
        self.groups.flush();
        if let Err(e) = self.transactions.flush() {
            tracing::error!(error = %e, "fsync of the transaction state failed");
        }
        for topic in self.topics() {
            for p in topic.partitions() {
                if let Err(e) = p.flush() {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "fsync failed");
                }
            }
        }
    }

    /// `Partition::start_writeback` of every partition (between the periodic fsyncs).
    pub fn start_writeback_all(&self) {
        for topic in self.topics() {
            for p in topic.partitions() {
                if let Err(e) = p.start_writeback() {
                    tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "starting writeback failed");
                }
            }
        }
    }

    /// One pass of the log cleaner over every compacted partition (`housekeeping::log_cleaner`).
    /// Returns how many partitions were cleaned.
    pub fn clean_logs(&self, throttle: &Throttle, stop: &AtomicBool) -> usize {
        let budget = self.config.log_cleaner_dedupe_buffer_size.max(1) as usize;
        let mut cleaned = 0;
        for topic in self.topics() {
            for p in topic.partitions() {
                if stop.load(Ordering::Relaxed) {
                    return cleaned;
                }
                let started = std::time::Instant::now();
                match p.clean(crate::now_ms(), budget, throttle, stop) {
                    Ok(None) => {}
                    Ok(Some(s)) => {
                        cleaned += 1;
                        tracing::info!(
                            topic = %topic.name,
                            partition = p.index,
                            bytes_before = s.bytes_before,
                            bytes_after = s.bytes_after,
                            records_removed = s.records_removed,
                            segments_before = s.segments_before,
                            segments_after = s.segments_after,
                            ms = started.elapsed().as_millis() as u64,
                            "log cleaned"
                        );
                    }
                    Err(e) if stop.load(Ordering::Relaxed) => {
                        tracing::debug!(topic = %topic.name, partition = p.index, error = %e, "log cleaning stopped");
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = p.index, error = %e, "log cleaning failed")
                    }
                }
            }
        }
        cleaned
    }

    pub fn enforce_retention(&self, now_ms: i64) {
        self.groups.expire(now_ms);
        if let Err(e) = self.transactions.compact() {
            tracing::warn!(error = %e, "compacting the transaction state failed");
        }
        for topic in self.topics() {
            for p in topic.partitions() {
                match p.enforce_retention(now_ms) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(topic = %topic.name, partition = p.index, segments = n, "retention deleted segments")
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = p.index, error = %e, "retention failed")
                    }
                }
            }
        }
    }
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = Vec::with_capacity(22);
    for _ in 0..22 {
        out.push(ALPHABET[(bits >> 122) as usize & 63]);
        bits <<= 6;
    }
    String::from_utf8(out).expect("ascii")
}
