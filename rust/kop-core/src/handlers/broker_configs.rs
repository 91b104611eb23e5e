//! The BROKER config resource: DescribeConfigs of a node (every Kafka broker config kop knows,
//! with its value, source and synonyms) or of the cluster default (the dynamic defaults), and
//! the dynamic broker configs kop applies (`broker::dynamic_config`).

use kafka_protocol::messages::{alter_configs_request, incremental_alter_configs_request};

use super::configs::{ConfigEntry, SOURCE_DEFAULT, SOURCE_STATIC_BROKER};
use super::RequestContext;
use crate::broker::dynamic_config::{self, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT_BROKER};
use crate::broker::topic_config::ConfigType;
use crate::config::{FsyncPolicy, ServerConfig};
use crate::error::KafkaError;
use crate::storage::overrides::Configs;

type Row = (&'static str, String, ConfigType, &'static str);

/// The broker configs kop lists, under their Kafka names, for settings `c`.
fn rows(c: &ServerConfig, advertised: String) -> Vec<Row> {
    use ConfigType::*;
    let flush_ms = match c.fsync {
        FsyncPolicy::Always => "0".to_string(),
        FsyncPolicy::Interval => c.fsync_interval_ms.to_string(),
        FsyncPolicy::Never => i64::MAX.to_string(),
    };
    let s = |v: &dyn ToString| v.to_string();
    vec![
        (
            "advertised.listeners",
            advertised,
            List,
            "listener the client connected through",
        ),
        (
            "auto.create.topics.enable",
            s(&c.auto_create_topics),
            Boolean,
            "auto-create unknown topics",
        ),
        ("broker.id", s(&c.node_id), Int, "this broker's id"),
        (
            "compression.type",
            "producer".into(),
            String,
            "batches are stored as produced",
        ),
        (
            "connections.max.idle.ms",
            s(&c.connections_max_idle_ms),
            Long,
            "idle connection timeout",
        ),
        (
            "default.replication.factor",
            "1".into(),
            Int,
            "kop keeps one replica",
        ),
        (
            "delete.topic.enable",
            "true".into(),
            Boolean,
            "topics can be deleted",
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            "5000".into(),
            Int,
            "heartbeat interval of consumer groups (a group's own: GROUP configs)",
        ),
        (
            "group.consumer.max.heartbeat.interval.ms",
            "15000".into(),
            Int,
            "largest consumer.heartbeat.interval.ms of a group",
        ),
        (
            "group.consumer.max.session.timeout.ms",
            "60000".into(),
            Int,
            "largest consumer.session.timeout.ms of a group",
        ),
        (
            "group.consumer.max.size",
            s(&c.group_consumer_max_size),
            Int,
            "members of a consumer group at most",
        ),
        (
            "group.consumer.min.heartbeat.interval.ms",
            "5000".into(),
            Int,
            "smallest consumer.heartbeat.interval.ms of a group",
        ),
        (
            "group.consumer.min.session.timeout.ms",
            "45000".into(),
            Int,
            "smallest consumer.session.timeout.ms of a group",
        ),
        (
            "group.consumer.session.timeout.ms",
            "45000".into(),
            Int,
            "session timeout of consumer groups (a group's own: GROUP configs)",
        ),
        (
            "group.coordinator.rebalance.protocols",
            "classic,consumer".into(),
            List,
            "the group protocols served",
        ),
        (
            "group.initial.rebalance.delay.ms",
            s(&c.group_initial_rebalance_delay_ms),
            Int,
            "delay of a classic group's first rebalance",
        ),
        (
            "group.max.session.timeout.ms",
            s(&c.group_max_session_timeout_ms),
            Int,
            "largest session timeout of a classic group member",
        ),
        (
            "group.max.size",
            s(&c.group_max_size),
            Int,
            "members of a classic group at most",
        ),
        (
            "group.min.session.timeout.ms",
            s(&c.group_min_session_timeout_ms),
            Int,
            "smallest session timeout of a classic group member",
        ),
        (
            "group.streams.initial.rebalance.delay.ms",
            s(&c.group_streams_initial_rebalance_delay_ms),
            Int,
            "first-assignment delay of a streams group that was empty (a group's own: GROUP configs)",
        ),
        (
            "group.streams.max.standby.replicas",
            s(&crate::config::MAX_STANDBY_REPLICAS),
            Int,
            "largest streams.num.standby.replicas of a group",
        ),
        (
            "group.streams.num.standby.replicas",
            s(&c.group_streams_num_standby_replicas),
            Int,
            "standby replicas per task of a streams group (a group's own: GROUP configs)",
        ),
        ("listeners", c.listeners.join(","), List, "listeners"),
        (
            "log.cleaner.backoff.ms",
            s(&c.log_cleaner_backoff_ms),
            Long,
            "pause of the log cleaner when there is nothing to clean",
        ),
        (
            "log.cleaner.dedupe.buffer.size",
            s(&c.log_cleaner_dedupe_buffer_size),
            Long,
            "memory of the log cleaner's offset map",
        ),
        (
            "log.cleaner.enable",
            s(&c.log_cleaner_enable),
            Boolean,
            "compacted topics are cleaned",
        ),
        (
            "log.cleaner.io.max.bytes.per.second",
            format!("{:?}", c.log_cleaner_io_max_bytes_per_second),
            Double,
            "log cleaner I/O throttle",
        ),
        (
            "log.cleanup.policy",
            "delete".into(),
            List,
            "default cleanup policy",
        ),
        ("log.dirs", c.storage.clone(), String, "kop storage URL"),
        (
            "log.flush.interval.ms",
            flush_ms,
            Long,
            "fsync period (kop fsync setting)",
        ),
        (
            "log.message.timestamp.type",
            "CreateTime".into(),
            String,
            "default timestamp type",
        ),
        (
            "log.retention.bytes",
            s(&c.log_retention_bytes),
            Long,
            "default retention.bytes (dynamic)",
        ),
        (
            "log.retention.check.interval.ms",
            s(&c.log_retention_check_interval_ms),
            Long,
            "retention period",
        ),
        (
            "log.retention.ms",
            s(&c.log_retention_ms),
            Long,
            "default retention.ms (dynamic)",
        ),
        (
            "log.segment.bytes",
            s(&c.log_segment_bytes),
            Int,
            "default segment.bytes (dynamic)",
        ),
        (
            "message.max.bytes",
            s(&c.message_max_bytes),
            Int,
            "default max.message.bytes (dynamic)",
        ),
        (
            "min.insync.replicas",
            "1".into(),
            Int,
            "kop keeps one replica",
        ),
        ("node.id", s(&c.node_id), Int, "this broker's id"),
        (
            "num.partitions",
            s(&c.num_partitions),
            Int,
            "partitions of auto-created topics",
        ),
        (
            "offsets.retention.minutes",
            s(&c.offsets_retention_minutes),
            Int,
            "retention of committed offsets of empty groups",
        ),
        (
            "offsets.topic.num.partitions",
            "50".into(),
            Int,
            "partitions of __consumer_offsets (the group shards)",
        ),
        (
            "offsets.topic.replication.factor",
            "1".into(),
            Short,
            "kop keeps one replica",
        ),
        (
            "quota.window.num",
            s(&c.quota_window_num),
            Int,
            "samples of client quota rates",
        ),
        (
            "controller.quota.window.num",
            s(&c.controller_quota_window_num),
            Int,
            "samples of controller mutation rates",
        ),
        (
            "controller.quota.window.size.seconds",
            s(&c.controller_quota_window_size_seconds),
            Int,
            "length of one controller mutation sample",
        ),
        (
            "quota.window.size.seconds",
            s(&c.quota_window_size_seconds),
            Int,
            "length of one quota sample",
        ),
        (
            "sasl.enabled.mechanisms",
            c.sasl_enabled_mechanisms.join(","),
            List,
            "SASL mechanisms offered",
        ),
        (
            "socket.request.max.bytes",
            s(&c.max_request_bytes),
            Int,
            "largest request accepted",
        ),
        (
            "transaction.max.timeout.ms",
            s(&c.transaction_max_timeout_ms),
            Int,
            "largest transaction timeout",
        ),
        (
            "transaction.state.log.num.partitions",
            "50".into(),
            Int,
            "partitions of __transaction_state",
        ),
        (
            "transactional.id.expiration.ms",
            s(&c.transactional_id_expiration_ms),
            Int,
            "expiry of idle transactional ids",
        ),
    ]
}

/// Every broker config of this node: dynamic ones (writable) with the source in force, the
/// others read-only, STATIC_BROKER_CONFIG where the operator set them, else DEFAULT_CONFIG.
pub fn node_entries(ctx: &RequestContext) -> Vec<ConfigEntry> {
    let advertised = format!(
        "{}://{}:{}",
        ctx.listener.name, ctx.listener.advertised_host, ctx.listener.advertised_port
    );
    let set = rows(&ctx.broker.config, advertised.clone());
    let defaults = rows(&ServerConfig::default(), advertised);
    let dynamic = &ctx.broker.dynamic_configs;
    set.into_iter()
        .zip(defaults)
        .map(|((name, value, kind, doc), (_, default, _, _))| {
            // Kafka has no default for these: they are always the operator's.
            let required = [
                "broker.id",
                "node.id",
                "listeners",
                "advertised.listeners",
                "log.dirs",
            ];
            let static_source = if value == default && !required.contains(&name) {
                SOURCE_DEFAULT
            } else {
                SOURCE_STATIC_BROKER
            };
            let writable = dynamic_config::lookup(name).is_some();
            let mut synonyms = Vec::new();
            if writable {
                let node = dynamic.overrides(&ctx.broker.config.node_id.to_string());
                if let Some(v) = node.get(name) {
                    synonyms.push((name.to_string(), v.clone(), SOURCE_DYNAMIC_BROKER));
                }
                if let Some(v) = dynamic.overrides("").get(name) {
                    synonyms.push((name.to_string(), v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER));
                }
            }
            if static_source == SOURCE_STATIC_BROKER {
                synonyms.push((name.to_string(), value.clone(), SOURCE_STATIC_BROKER));
            }
            synonyms.push((name.to_string(), default, SOURCE_DEFAULT));
            let (value, source) = match synonyms.first() {
                Some((_, v, s)) if *s != SOURCE_DEFAULT => (v.clone(), *s),
                _ => (value, static_source),
            };
            ConfigEntry {
                name: name.to_string(),
                value,
                source,
                kind: kind as i8,
                doc,
                read_only: !writable,
                synonyms,
            }
        })
        .collect()
}

/// The cluster default (resource name ""): the dynamic defaults set, as Kafka lists them.
pub fn default_entries(ctx: &RequestContext) -> Vec<ConfigEntry> {
    ctx.broker
        .dynamic_configs
        .overrides("")
        .into_iter()
        .map(|(name, value)| ConfigEntry {
            kind: dynamic_config::lookup(&name).map_or(ConfigType::String, |d| d.kind) as i8,
            synonyms: vec![(name.clone(), value.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER)],
            name,
            value,
            source: SOURCE_DYNAMIC_DEFAULT_BROKER,
            doc: "",
            read_only: false,
        })
        .collect()
}

/// A BROKER resource name kop answers for: "" (the cluster default) or this node's id.
pub fn check_name(ctx: &RequestContext, name: &str) -> Result<(), (KafkaError, String)> {
    if name.is_empty() || name == ctx.broker.config.node_id.to_string() {
        Ok(())
    } else {
        Err((KafkaError::InvalidRequest, format!("unknown broker {name}")))
    }
}

/// Kafka's refusal of configs that are not dynamic (in kop: not applied at run time).
fn refuse_static<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), (KafkaError, String)> {
    let fixed: Vec<&str> = names
        .filter(|n| dynamic_config::lookup(n).is_none())
        .collect();
    if fixed.is_empty() {
        return Ok(());
    }
    Err((
        KafkaError::InvalidRequest,
        format!(
            "Cannot update these configs dynamically: [{}]",
            fixed.join(", ")
        ),
    ))
}

fn store(
    ctx: &RequestContext,
    name: &str,
    validate_only: bool,
    edit: impl Fn(&mut Configs) -> Result<(), (KafkaError, String)>,
) -> Result<(), (KafkaError, String)> {
    check_name(ctx, name)?;
    let checked = |c: &mut Configs| {
        edit(c)?;
        for (k, v) in c.iter() {
            dynamic_config::validate(k, v).map_err(|m| (KafkaError::InvalidRequest, m))?;
        }
        Ok(())
    };
    match ctx
        .broker
        .dynamic_configs
        .alter(name, validate_only, checked)
    {
        Ok(Ok(())) => {
            if !validate_only {
                ctx.broker.apply_dynamic_configs();
                tracing::info!(principal = %ctx.principal, broker = name, "dynamic broker configs altered");
            }
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => {
            tracing::error!(error = %e, "storing dynamic broker configs failed");
            Err((KafkaError::KafkaStorageError, e.to_string()))
        }
    }
}

/// IncrementalAlterConfigs SET / DELETE of dynamic broker configs.
pub fn alter_incremental(
    ctx: &RequestContext,
    name: &str,
    validate_only: bool,
    ops: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<(), (KafkaError, String)> {
    refuse_static(ops.iter().map(|c| c.name.as_str()))?;
    store(ctx, name, validate_only, |configs| {
        for c in ops {
            match (c.config_operation, &c.value) {
                (super::configs::OP_SET, Some(v)) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                (super::configs::OP_DELETE, _) => {
                    configs.remove(c.name.as_str());
                }
                (op, _) => {
                    return Err((
                        KafkaError::InvalidConfig,
                        format!("operation {op} is not valid for {}", c.name.as_str()),
                    ))
                }
            }
        }
        Ok(())
    })
}

/// Legacy AlterConfigs: the given configs become the entity's dynamic configs.
pub fn alter_replace(
    ctx: &RequestContext,
    name: &str,
    validate_only: bool,
    given: &[alter_configs_request::AlterableConfig],
) -> Result<(), (KafkaError, String)> {
    refuse_static(given.iter().map(|c| c.name.as_str()))?;
    store(ctx, name, validate_only, |configs| {
        configs.clear();
        for c in given {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        Ok(())
    })
}
