//! Server configuration as handed over by Python (JSON object; keys in docs/native-api.md).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

/// Kafka's `group.streams.max.standby.replicas` default: the most standby replicas a Streams
/// group may have.
pub const MAX_STANDBY_REPLICAS: i64 = 2;

/// SASL mechanisms kop implements.
pub const SUPPORTED_MECHANISMS: &[&str] =
    &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// What `sasl_enabled_mechanisms` defaults to (OAUTHBEARER needs keys, so it is opt-in).
pub const DEFAULT_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Kafka's `SecurityProtocol` of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn is_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// How appended data is made durable against power loss. A process crash never loses an
/// acknowledged batch with any policy: the bytes are in the OS page cache before the ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

/// Whether SSL listeners ask for client certificates (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SslClientAuth {
    None,
    Requested,
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listeners: Vec<String>,
    pub advertised_listeners: Vec<String>,
    // -- security (see auth/) --
    pub listener_security_protocol_map: Vec<String>,
    pub sasl_enabled_mechanisms: Vec<String>,
    pub sasl_users: Vec<String>,
    pub sasl_session_lifetime_ms: i64,
    pub failed_authentication_delay_ms: i64,
    pub ssl_certfile: Option<String>,
    pub ssl_keyfile: Option<String>,
    pub ssl_cafile: Option<String>,
    pub ssl_client_auth: SslClientAuth,
    pub ssl_principal_mapping_rules: String,
    pub super_users: Vec<String>,
    // -- calls between kop instances sharing a storage (broker/peers.rs) --
    /// The listener kop instances call each other on (Kafka's `inter.broker.listener.name`);
    /// None: the first listener.
    pub inter_instance_listener: Option<String>,
    /// On a SASL listener: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, as this user.
    pub inter_instance_sasl_mechanism: String,
    pub inter_instance_sasl_user: Option<String>,
    pub inter_instance_sasl_password: Option<String>,
    pub authorizer: String,
    /// `module:callable` of a Python authenticator; resolved by kop.Server, Rust only checks
    /// that a hook was installed.
    pub authenticator: Option<String>,
    /// `module:callable` of a Python hook that gives SCRAM credentials; as `authenticator`.
    pub scram_credentials: Option<String>,
    /// `module:callable` of a Python hook that validates OAUTHBEARER tokens (instead of the
    /// JWT keys); as `authenticator`.
    pub oauthbearer_validator: Option<String>,
    pub hook_timeout_ms: i64,
    pub hook_cache_ttl_ms: i64,
    pub oauthbearer_public_key_files: Vec<String>,
    pub oauthbearer_issuer: Option<String>,
    pub oauthbearer_audience: Option<String>,
    pub plain_token_auth: bool,
    pub storage: String,
    // -- pulsar:// storage: the Python bridge (kop.pulsar) reads these; Rust only the cache --
    pub pulsar_admin_url: Option<String>,
    pub pulsar_tenant: String,
    pub pulsar_namespace: String,
    pub pulsar_token: Option<String>,
    pub pulsar_standby: bool,
    pub pulsar_startup_timeout_ms: u64,
    pub pulsar_entry_format: String,
    /// Pulsar namespaces (`TENANT/NS`) served as separate tenants, chosen by the principal
    /// after authentication (`tenants.rs`); empty: one namespace, as before.
    pub tenants: Vec<String>,
    /// `ROLE=TENANT/NS`: the tenant of principals whose login does not name one.
    pub tenant_roles: Vec<String>,
    /// Bytes of newest batches kept in memory per partition on remote storage.
    pub tail_cache_bytes: u64,
    pub node_id: i32,
    pub cluster_id: Option<String>,
    pub log_level: String,
    /// `text` or `json`: how `kop serve` formats lines (Python does; Rust only queues records).
    pub log_format: String,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub message_max_bytes: i32,
    pub max_request_bytes: i32,
    pub connections_max_idle_ms: i64,
    // -- what one client may hold (limits/) --
    /// Bytes of request frames all authenticated connections hold at once (at least
    /// `max_request_bytes`); reserved as the bytes arrive.
    pub request_memory_bytes: i64,
    /// A connection that sends part of a frame, then nothing for this long, is closed.
    pub frame_stall_timeout_ms: i64,
    /// Bytes of request frames all unauthenticated SASL connections hold at once.
    pub unauthenticated_request_memory_bytes: i64,
    /// Connections on SASL listeners that have not authenticated yet, at most.
    pub max_unauthenticated_connections: i64,
    /// Open connections at most (Kafka's `max.connections`); at the limit a listener accepts
    /// no more until one closes. A listener named by `inter_instance_listener` is not counted.
    pub max_connections: i64,
    /// Open connections from one IP address at most (Kafka's `max.connections.per.ip`); more
    /// are closed at once.
    pub max_connections_per_ip: i64,
    /// `IP:N,...`: per-address exceptions to `max_connections_per_ip` (Kafka's
    /// `max.connections.per.ip.overrides`, with IP addresses).
    pub max_connections_per_ip_overrides: String,
    /// Lines about bad input from one peer address: the first, then one per interval.
    pub bad_input_log_interval_ms: i64,
    // -- client quotas (quotas/) --
    /// Samples client rates are measured over (Kafka's `quota.window.num`).
    pub quota_window_num: i64,
    /// Length of one sample (Kafka's `quota.window.size.seconds`).
    pub quota_window_size_seconds: i64,
    /// The same for `controller_mutation_rate` (Kafka's `controller.quota.window.num`).
    pub controller_quota_window_num: i64,
    /// Kafka's `controller.quota.window.size.seconds`.
    pub controller_quota_window_size_seconds: i64,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_segment_bytes: i64,
    pub log_retention_check_interval_ms: i64,
    // -- the log cleaner (compacted topics, local storage) --
    pub log_cleaner_enable: bool,
    /// Bytes per second all cleaning reads and writes together (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`); 0: unlimited.
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// How often the cleaner looks for a partition to clean.
    pub log_cleaner_backoff_ms: i64,
    /// Memory for the keys of one clean (Kafka's `log.cleaner.dedupe.buffer.size`).
    pub log_cleaner_dedupe_buffer_size: i64,
    /// Incremental fetch sessions the broker keeps at most (Kafka's
    /// `max.incremental.fetch.session.cache.slots`); 0 turns sessions off.
    pub max_incremental_fetch_session_cache_slots: i64,
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: i64,
    pub io_threads: usize,
    pub group_initial_rebalance_delay_ms: i64,
    pub group_min_session_timeout_ms: i64,
    pub group_max_session_timeout_ms: i64,
    /// Members a classic group takes at most (Kafka group.max.size); more get
    /// GROUP_MAX_SIZE_REACHED on JoinGroup.
    pub group_max_size: i64,
    /// Members a KIP-848 consumer group takes at most (Kafka group.consumer.max.size).
    pub group_consumer_max_size: i64,
    /// Standby replicas of each task of a Streams group (Kafka
    /// group.streams.num.standby.replicas); a group's streams.num.standby.replicas overrides it.
    pub group_streams_num_standby_replicas: i64,
    /// How long the first assignment of a Streams group that was empty waits for more members
    /// (Kafka group.streams.initial.rebalance.delay.ms); a group's
    /// streams.initial.rebalance.delay.ms overrides it.
    pub group_streams_initial_rebalance_delay_ms: i64,
    pub offsets_retention_minutes: i64,
    /// The largest `transaction.timeout.ms` a producer may ask for (Kafka
    /// transaction.max.timeout.ms).
    pub transaction_max_timeout_ms: i32,
    /// How long an idle transactional id is remembered (Kafka transactional.id.expiration.ms).
    pub transactional_id_expiration_ms: i64,
    /// Share groups (KIP-932, `share/`): how long a delivered record stays locked to its
    /// consumer (Kafka group.share.record.lock.duration.ms).
    pub group_share_record_lock_duration_ms: i64,
    /// Deliveries of a record before it is archived (group.share.delivery.count.limit).
    pub group_share_delivery_count_limit: i64,
    /// Records in flight per share partition (group.share.partition.max.record.locks).
    pub group_share_partition_max_record_locks: i64,
    /// Share sessions open at once (group.share.max.share.sessions).
    pub group_share_max_share_sessions: i64,
    /// Where a share partition with no state starts: `latest` or `earliest` (the default of
    /// the share.auto.offset.reset group config).
    pub share_auto_offset_reset: String,
    /// `HOST:PORT` of the Prometheus/health HTTP listener (`metrics/http.rs`); None: off.
    pub metrics_listener: Option<String>,
    /// `HOST:PORT` of the schema registry's HTTP listener (`registry/`); None: off.
    pub schema_registry_listener: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listeners: vec!["PLAINTEXT://127.0.0.1:9092".into()],
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: Vec::new(),
            sasl_enabled_mechanisms: DEFAULT_MECHANISMS.iter().map(|m| m.to_string()).collect(),
            sasl_users: Vec::new(),
            sasl_session_lifetime_ms: 0,
            failed_authentication_delay_ms: 100,
            ssl_certfile: None,
            ssl_keyfile: None,
            ssl_cafile: None,
            ssl_client_auth: SslClientAuth::None,
            ssl_principal_mapping_rules: "DEFAULT".into(),
            super_users: Vec::new(),
            inter_instance_listener: None,
            inter_instance_sasl_mechanism: "PLAIN".into(),
            inter_instance_sasl_user: None,
            inter_instance_sasl_password: None,
            authorizer: "allow-all".into(),
            authenticator: None,
            scram_credentials: None,
            oauthbearer_validator: None,
            hook_timeout_ms: 5000,
            hook_cache_ttl_ms: 60_000,
            oauthbearer_public_key_files: Vec::new(),
            oauthbearer_issuer: None,
            oauthbearer_audience: None,
            plain_token_auth: false,
            storage: "file://kop-data".into(),
            pulsar_admin_url: None,
            pulsar_tenant: "public".into(),
            pulsar_namespace: "default".into(),
            pulsar_token: None,
            pulsar_standby: false,
            pulsar_startup_timeout_ms: 120_000,
            pulsar_entry_format: "kafka".into(),
            tenants: Vec::new(),
            tenant_roles: Vec::new(),
            tail_cache_bytes: 8 << 20,
            node_id: 1,
            cluster_id: None,
            log_level: "info".into(),
            log_format: "text".into(),
            auto_create_topics: true,
            num_partitions: 4,
            message_max_bytes: 1_048_588,
            max_request_bytes: 104_857_600,
            connections_max_idle_ms: 600_000,
            request_memory_bytes: 268_435_456,
            frame_stall_timeout_ms: 30_000,
            unauthenticated_request_memory_bytes: 16_777_216,
            max_unauthenticated_connections: 1000,
            max_connections: i64::from(i32::MAX),
            max_connections_per_ip: i64::from(i32::MAX),
            max_connections_per_ip_overrides: String::new(),
            bad_input_log_interval_ms: 10_000,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            controller_quota_window_num: 11,
            controller_quota_window_size_seconds: 1,
            log_retention_ms: 604_800_000,
            log_retention_bytes: -1,
            log_segment_bytes: 1_073_741_824,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_enable: true,
            log_cleaner_io_max_bytes_per_second: 33_554_432.0,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: 134_217_728,
            max_incremental_fetch_session_cache_slots: 1000,
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 1000,
            io_threads: 0,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i64::from(i32::MAX),
            group_consumer_max_size: i64::from(i32::MAX),
            group_streams_num_standby_replicas: 0,
            group_streams_initial_rebalance_delay_ms: 3_000,
            offsets_retention_minutes: 10_080,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            group_share_record_lock_duration_ms: 30_000,
            group_share_delivery_count_limit: 5,
            group_share_partition_max_record_locks: 2_000,
            group_share_max_share_sessions: 2_000,
            share_auto_offset_reset: "latest".into(),
            metrics_listener: None,
            schema_registry_listener: None,
        }
    }
}

/// Parses `max_connections_per_ip_overrides`: `IP:N,IP:N` (IPv6 addresses as `[::1]:N` or
/// `::1:N`: the count follows the last colon). Empty means none.
pub fn parse_connection_overrides(spec: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut out = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, count) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("{item:?} is not IP:N"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host
            .parse()
            .map_err(|_| format!("{host:?} is not an IP address"))?;
        let count: usize = count
            .parse()
            .map_err(|_| format!("{count:?} is not a connection count"))?;
        out.insert(ip, count);
    }
    Ok(out)
}

/// `HOST:PORT` (`[v6]:PORT` too), e.g. `metrics_listener`.
pub fn parse_host_port(spec: &str) -> Result<(String, u16), String> {
    let (host, port) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("{spec:?} is not HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{spec:?}: bad port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

/// A listener `NAME://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl ListenerSpec {
    pub fn parse(spec: &str) -> Result<ListenerSpec, String> {
        let (name, addr) = spec
            .split_once("://")
            .ok_or_else(|| format!("listener {spec:?} is not NAME://HOST:PORT"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("listener {spec:?} has no port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("listener {spec:?} has a bad port"))?;
        if name.is_empty() {
            return Err(format!("listener {spec:?} has no name"));
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(ListenerSpec {
            name: name.to_string(),
            host,
            port,
        })
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSpec {
    File(std::path::PathBuf),
    Memory,
    /// Pulsar at this service URL; the backend itself comes from Python (kop.pulsar).
    Pulsar(String),
}

impl StorageSpec {
    pub fn parse(url: &str) -> Result<StorageSpec, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("storage file:// needs a path".into());
            }
            Ok(StorageSpec::File(path.into()))
        } else if url == "memory://" || url == "memory:" {
            Ok(StorageSpec::Memory)
        } else if url.starts_with("pulsar://") || url.starts_with("pulsar+ssl://") {
            if url
                .split_once("://")
                .is_some_and(|(_, host)| host.is_empty())
            {
                return Err("storage pulsar:// needs HOST:PORT".into());
            }
            Ok(StorageSpec::Pulsar(url.to_string()))
        } else {
            Err(format!(
                "storage {url:?} is not supported (use file://PATH, memory:// or pulsar://HOST:PORT)"
            ))
        }
    }
}

impl ServerConfig {
    pub fn from_json(json: &str) -> Result<ServerConfig, String> {
        let cfg: ServerConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every key this module can check itself; the security keys that need the auth
    /// module's parsers are checked by `auth::check_config` when a server starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.listeners.is_empty() {
            return Err("listeners: at least one listener is required".into());
        }
        for l in self.listeners.iter().chain(&self.advertised_listeners) {
            ListenerSpec::parse(l).map_err(|e| format!("listeners: {e}"))?;
        }
        let spec = StorageSpec::parse(&self.storage).map_err(|e| format!("storage: {e}"))?;
        if !self.tenants.is_empty() {
            if !matches!(spec, StorageSpec::Pulsar(_)) {
                return Err(
                    "tenants: needs pulsar:// storage (each tenant is a Pulsar namespace)".into(),
                );
            }
            crate::tenants::TenantMap::parse(self).map_err(|e| format!("tenants: {e}"))?;
        }
        if let Some(m) = &self.metrics_listener {
            parse_host_port(m).map_err(|e| format!("metrics_listener: {e}"))?;
        }
        if let Some(m) = &self.schema_registry_listener {
            parse_host_port(m).map_err(|e| format!("schema_registry_listener: {e}"))?;
        }
        let io_max = self.log_cleaner_io_max_bytes_per_second;
        if !(io_max >= 0.0 && io_max.is_finite()) {
            return Err(format!(
                "log_cleaner_io_max_bytes_per_second must be >= 0, got {io_max}"
            ));
        }
        for (name, v) in [
            ("sasl_session_lifetime_ms", self.sasl_session_lifetime_ms),
            (
                "failed_authentication_delay_ms",
                self.failed_authentication_delay_ms,
            ),
            ("hook_cache_ttl_ms", self.hook_cache_ttl_ms),
            (
                "unauthenticated_request_memory_bytes",
                self.unauthenticated_request_memory_bytes,
            ),
            ("bad_input_log_interval_ms", self.bad_input_log_interval_ms),
            (
                "max_incremental_fetch_session_cache_slots",
                self.max_incremental_fetch_session_cache_slots,
            ),
        ] {
            if v < 0 {
                return Err(format!("{name} must be >= 0, got {v}"));
            }
        }
        for m in &self.sasl_enabled_mechanisms {
            if !SUPPORTED_MECHANISMS.contains(&m.as_str()) {
                return Err(format!(
                    "sasl_enabled_mechanisms: {m:?} is not supported (use {})",
                    SUPPORTED_MECHANISMS.join(", ")
                ));
            }
        }
        let protocols = self.security_protocols()?;
        if let Some(name) = &self.inter_instance_listener {
            if !protocols.contains_key(name) {
                return Err(format!(
                    "inter_instance_listener: {name:?} is not the name of a listener"
                ));
            }
        }
        if self.max_connections_per_ip < 0 {
            return Err("max_connections_per_ip must be >= 0".into());
        }
        parse_connection_overrides(&self.max_connections_per_ip_overrides)
            .map_err(|e| format!("max_connections_per_ip_overrides: {e}"))?;
        let mechanism = self.inter_instance_sasl_mechanism.as_str();
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism) {
            return Err(format!(
                "inter_instance_sasl_mechanism: {mechanism:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            ));
        }
        let positive = [
            ("hook_timeout_ms", self.hook_timeout_ms),
            ("num_partitions", i64::from(self.num_partitions)),
            ("message_max_bytes", i64::from(self.message_max_bytes)),
            ("max_request_bytes", i64::from(self.max_request_bytes)),
            ("connections_max_idle_ms", self.connections_max_idle_ms),
            ("request_memory_bytes", self.request_memory_bytes),
            ("frame_stall_timeout_ms", self.frame_stall_timeout_ms),
            (
                "max_unauthenticated_connections",
                self.max_unauthenticated_connections,
            ),
            ("max_connections", self.max_connections),
            ("log_segment_bytes", self.log_segment_bytes),
            ("quota_window_num", self.quota_window_num),
            ("quota_window_size_seconds", self.quota_window_size_seconds),
            (
                "controller_quota_window_num",
                self.controller_quota_window_num,
            ),
            (
                "controller_quota_window_size_seconds",
                self.controller_quota_window_size_seconds,
            ),
            (
                "log_retention_check_interval_ms",
                self.log_retention_check_interval_ms,
            ),
            ("fsync_interval_ms", self.fsync_interval_ms),
            ("log_cleaner_backoff_ms", self.log_cleaner_backoff_ms),
            (
                "log_cleaner_dedupe_buffer_size",
                self.log_cleaner_dedupe_buffer_size,
            ),
            (
                "group_min_session_timeout_ms",
                self.group_min_session_timeout_ms,
            ),
            (
                "group_max_session_timeout_ms",
                self.group_max_session_timeout_ms,
            ),
            ("group_max_size", self.group_max_size),
            ("group_consumer_max_size", self.group_consumer_max_size),
            ("offsets_retention_minutes", self.offsets_retention_minutes),
            (
                "transaction_max_timeout_ms",
                i64::from(self.transaction_max_timeout_ms),
            ),
            (
                "transactional_id_expiration_ms",
                self.transactional_id_expiration_ms,
            ),
            (
                "group_share_record_lock_duration_ms",
                self.group_share_record_lock_duration_ms,
            ),
            (
                "group_share_delivery_count_limit",
                self.group_share_delivery_count_limit,
            ),
            (
                "group_share_partition_max_record_locks",
                self.group_share_partition_max_record_locks,
            ),
            (
                "group_share_max_share_sessions",
                self.group_share_max_share_sessions,
            ),
        ];
        if !["latest", "earliest"].contains(&self.share_auto_offset_reset.as_str()) {
            return Err(format!(
                "share_auto_offset_reset must be latest or earliest, got {:?}",
                self.share_auto_offset_reset
            ));
        }
        for (name, v) in positive {
            if v < 1 {
                return Err(format!("{name} must be >= 1, got {v}"));
            }
        }
        if self.group_initial_rebalance_delay_ms < 0 {
            return Err(format!(
                "group_initial_rebalance_delay_ms must be >= 0, got {}",
                self.group_initial_rebalance_delay_ms
            ));
        }
        if !(0..=i64::from(i32::MAX)).contains(&self.group_streams_initial_rebalance_delay_ms) {
            return Err(format!(
                "group_streams_initial_rebalance_delay_ms must be between 0 and {}, got {}",
                i32::MAX,
                self.group_streams_initial_rebalance_delay_ms
            ));
        }
        // Kafka requires it within group.streams.max.standby.replicas (2, not configurable here).
        if !(0..=MAX_STANDBY_REPLICAS).contains(&self.group_streams_num_standby_replicas) {
            return Err(format!(
                "group_streams_num_standby_replicas must be between 0 and {MAX_STANDBY_REPLICAS}, got {}",
                self.group_streams_num_standby_replicas
            ));
        }
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms {
            return Err(
                "group_max_session_timeout_ms must be >= group_min_session_timeout_ms".into(),
            );
        }
        Ok(())
    }

    /// Listener name → security protocol, from `listener_security_protocol_map`
    /// (`NAME:PROTOCOL`); a listener named like a protocol needs no entry, as in Kafka; any
    /// other unmapped name is PLAINTEXT.
    pub fn security_protocols(
        &self,
    ) -> Result<std::collections::HashMap<String, SecurityProtocol>, String> {
        let mut map = std::collections::HashMap::new();
        for entry in &self.listener_security_protocol_map {
            let (name, proto) = entry.split_once(':').ok_or_else(|| {
                format!("listener_security_protocol_map: {entry:?} is not NAME:PROTOCOL")
            })?;
            let proto = SecurityProtocol::parse(proto).ok_or_else(|| {
                format!(
                    "listener_security_protocol_map: {proto:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                )
            })?;
            map.insert(name.to_ascii_uppercase(), proto);
        }
        let mut out = std::collections::HashMap::new();
        for l in &self.listeners {
            let spec = ListenerSpec::parse(l)?;
            let key = spec.name.to_ascii_uppercase();
            // Unmapped names that are not a protocol are PLAINTEXT (as before the map existed).
            let proto = map
                .get(&key)
                .copied()
                .or_else(|| SecurityProtocol::parse(&key))
                .unwrap_or(SecurityProtocol::Plaintext);
            if proto.is_tls() && (self.ssl_certfile.is_none() || self.ssl_keyfile.is_none()) {
                return Err(format!(
                    "listener {} is {proto:?}: ssl_certfile and ssl_keyfile are required",
                    spec.name
                ));
            }
            out.insert(spec.name.clone(), proto);
        }
        Ok(out)
    }

    pub fn listener_specs(&self) -> Vec<ListenerSpec> {
        self.listeners
            .iter()
            .map(|l| ListenerSpec::parse(l).expect("validated"))
            .collect()
    }

    /// The listener kop instances call each other on.
    pub fn inter_instance_listener(&self) -> ListenerSpec {
        let specs = self.listener_specs();
        self.inter_instance_listener
            .as_ref()
            .and_then(|name| specs.iter().find(|s| &s.name == name).cloned())
            .unwrap_or_else(|| specs[0].clone())
    }

    pub fn storage_spec(&self) -> StorageSpec {
        StorageSpec::parse(&self.storage).expect("validated")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_rejects_unknown_keys() {
        let cfg = ServerConfig::from_json("{}").unwrap();
        assert_eq!(cfg.num_partitions, 4);
        assert!(ServerConfig::from_json(r#"{"bogus": 1}"#).is_err());
        let err = ServerConfig::from_json(r#"{"num_partitions": 0}"#).unwrap_err();
        assert!(err.contains("num_partitions"), "{err}");
        let standbys = r#"{"group_streams_num_standby_replicas": 3}"#;
        let err = ServerConfig::from_json(standbys).unwrap_err();
        assert!(err.contains("between 0 and 2"), "{err}");
    }

    #[test]
    fn parses_listeners_and_storage() {
        let l = ListenerSpec::parse("PLAINTEXT://127.0.0.1:0").unwrap();
        assert_eq!(
            (l.name.as_str(), l.host.as_str(), l.port),
            ("PLAINTEXT", "127.0.0.1", 0)
        );
        assert!(ListenerSpec::parse("127.0.0.1:9092").is_err());
        assert_eq!(
            StorageSpec::parse("memory://").unwrap(),
            StorageSpec::Memory
        );
        assert_eq!(
            StorageSpec::parse("file:///var/lib/kop").unwrap(),
            StorageSpec::File("/var/lib/kop".into())
        );
    }
}
