//! Topic-level configs: Kafka's names, types and defaults, and which of them kop applies.

use std::collections::BTreeMap;

use crate::config::ServerConfig;
use crate::storage::compaction::CompactionSettings;
use crate::storage::LogSettings;

/// Kafka's `ConfigDef.Type`, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Where a topic config's default comes from.
enum Default {
    Fixed(&'static str),
    /// From the broker setting of this Kafka name, with its effective value.
    Broker(&'static str, fn(&ServerConfig) -> String),
}

pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    default: Default,
    pub doc: &'static str,
}

macro_rules! def {
    ($name:expr, $kind:ident, $default:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            kind: ConfigType::$kind,
            default: $default,
            doc: $doc,
        }
    };
}

/// Every topic config Kafka 4 knows. Those kop applies are listed in `APPLIED`; the others are
/// accepted, stored and described so tools that set them keep working.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        Default::Fixed("delete"),
        "delete, compact or both; compact requires keys (docs/compaction.md)"
    ),
    def!(
        "compression.type",
        String,
        Default::Fixed("producer"),
        "producer keeps the client's codec"
    ),
    def!(
        "delete.retention.ms",
        Long,
        Default::Fixed("86400000"),
        "tombstone retention for compacted topics"
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        Default::Fixed("60000"),
        "on Pulsar: how long a replaced compacted copy is kept (docs/compaction.md)"
    ),
    def!(
        "flush.messages",
        Long,
        Default::Fixed("9223372036854775807"),
        "see the broker's fsync setting"
    ),
    def!(
        "flush.ms",
        Long,
        Default::Fixed("9223372036854775807"),
        "see the broker's fsync setting"
    ),
    def!(
        "index.interval.bytes",
        Int,
        Default::Fixed("4096"),
        "bytes between offset index entries"
    ),
    def!(
        "local.retention.bytes",
        Long,
        Default::Fixed("-2"),
        "tiered storage: local retention bytes"
    ),
    def!(
        "local.retention.ms",
        Long,
        Default::Fixed("-2"),
        "tiered storage: local retention time"
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        Default::Fixed("9223372036854775807"),
        "compaction lag bound"
    ),
    def!(
        "max.message.bytes",
        Int,
        Default::Broker("message.max.bytes", |c| c.message_max_bytes.to_string()),
        "largest record batch size accepted"
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        Default::Fixed("3600000"),
        "how far in the future a timestamp may be"
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        Default::Fixed("9223372036854775807"),
        "how far in the past a timestamp may be"
    ),
    def!(
        "message.timestamp.type",
        String,
        Default::Fixed("CreateTime"),
        "CreateTime or LogAppendTime"
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        Default::Fixed("0.5"),
        "compaction trigger ratio"
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        Default::Fixed("0"),
        "minimum time before compaction"
    ),
    def!(
        "min.insync.replicas",
        Int,
        Default::Fixed("1"),
        "kop has one replica"
    ),
    def!(
        "preallocate",
        Boolean,
        Default::Fixed("false"),
        "preallocate segment files"
    ),
    def!(
        "remote.storage.enable",
        Boolean,
        Default::Fixed("false"),
        "tiered storage"
    ),
    def!(
        "retention.bytes",
        Long,
        Default::Broker("log.retention.bytes", |c| c.log_retention_bytes.to_string()),
        "size-based retention per partition (-1: none)"
    ),
    def!(
        "retention.ms",
        Long,
        Default::Broker("log.retention.ms", |c| c.log_retention_ms.to_string()),
        "time-based retention (-1: none)"
    ),
    def!(
        "segment.bytes",
        Int,
        Default::Broker("log.segment.bytes", |c| c.log_segment_bytes.to_string()),
        "segment file size"
    ),
    def!(
        "segment.index.bytes",
        Int,
        Default::Fixed("10485760"),
        "index file size"
    ),
    def!(
        "segment.jitter.ms",
        Long,
        Default::Fixed("0"),
        "segment roll jitter"
    ),
    def!(
        "segment.ms",
        Long,
        Default::Fixed("604800000"),
        "roll a segment after this time"
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        Default::Fixed("false"),
        "kop has one replica"
    ),
];

pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

impl TopicConfigDef {
    pub fn default_value(&self, broker: &ServerConfig) -> String {
        match &self.default {
            Default::Fixed(v) => (*v).to_string(),
            Default::Broker(_, f) => f(broker),
        }
    }

    /// The broker config this default comes from, if any.
    pub fn broker_synonym(&self) -> Option<&'static str> {
        match &self.default {
            Default::Fixed(_) => None,
            Default::Broker(name, _) => Some(name),
        }
    }

    /// Checks a value's type (and the enumerations kop interprets).
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let ok = match self.kind {
            ConfigType::Boolean => matches!(value, "true" | "false"),
            ConfigType::Int => value.parse::<i32>().is_ok(),
            ConfigType::Short => value.parse::<i16>().is_ok(),
            ConfigType::Long => value.parse::<i64>().is_ok(),
            ConfigType::Double => value.parse::<f64>().is_ok(),
            ConfigType::String | ConfigType::List => true,
        };
        if !ok {
            return Err(format!("invalid value {value:?} for {}", self.name));
        }
        let valid_enum = match self.name {
            "cleanup.policy" => value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact")),
            "message.timestamp.type" => matches!(value, "CreateTime" | "LogAppendTime"),
            "compression.type" => {
                matches!(
                    value,
                    "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
                )
            }
            "max.message.bytes" | "segment.bytes" => value.parse::<i32>().is_ok_and(|v| v > 0),
            // Kafka's ranges: a ratio in [0, 1], lags and horizons >= 0 (max lag >= 1).
            "min.cleanable.dirty.ratio" => {
                value.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v))
            }
            "delete.retention.ms" | "min.compaction.lag.ms" => {
                value.parse::<i64>().is_ok_and(|v| v >= 0)
            }
            "max.compaction.lag.ms" => value.parse::<i64>().is_ok_and(|v| v >= 1),
            "message.timestamp.before.max.ms" | "message.timestamp.after.max.ms" => {
                value.parse::<i64>().is_ok_and(|v| v >= 0)
            }
            _ => true,
        };
        if valid_enum {
            Ok(())
        } else {
            Err(format!("invalid value {value:?} for {}", self.name))
        }
    }
}

/// Validates a set of overrides, for CreateTopics and config changes.
pub fn validate_overrides(overrides: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in overrides {
        let def = lookup(k).ok_or_else(|| format!("unknown topic config {k}"))?;
        def.validate(v)?;
    }
    Ok(())
}

/// The effective topic settings kop applies, from overrides and broker defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveTopicConfig {
    pub max_message_bytes: i32,
    pub log_append_time: bool,
    /// KIP-937 bounds on a CreateTime record's distance from the broker's clock.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains `compact`: produced records need keys.
    pub compacted: bool,
    pub log: LogSettings,
}

pub fn effective(
    overrides: &BTreeMap<String, String>,
    broker: &ServerConfig,
) -> EffectiveTopicConfig {
    let get = |name: &str| -> String {
        overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| lookup(name).expect("known config").default_value(broker))
    };
    let num = |name: &str| get(name).parse::<i64>().unwrap_or(-1);
    let compact = get("cleanup.policy")
        .split(',')
        .any(|p| p.trim() == "compact");
    EffectiveTopicConfig {
        max_message_bytes: num("max.message.bytes") as i32,
        log_append_time: get("message.timestamp.type") == "LogAppendTime",
        timestamp_before_max_ms: num("message.timestamp.before.max.ms"),
        timestamp_after_max_ms: num("message.timestamp.after.max.ms"),
        compacted: compact,
        log: LogSettings {
            segment_bytes: num("segment.bytes"),
            segment_ms: num("segment.ms"),
            retention_ms: num("retention.ms"),
            retention_bytes: num("retention.bytes"),
            delete_retention: get("cleanup.policy")
                .split(',')
                .any(|p| p.trim() == "delete"),
            compaction: CompactionSettings {
                compact,
                delete_retention_ms: num("delete.retention.ms"),
                min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
                    .parse::<f64>()
                    .unwrap_or(0.5),
                min_compaction_lag_ms: num("min.compaction.lag.ms"),
                max_compaction_lag_ms: num("max.compaction.lag.ms"),
                file_delete_delay_ms: num("file.delete.delay.ms"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker = ServerConfig::default();
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        let eff = effective(&o, &broker);
        assert_eq!(eff.log.retention_ms, 1000);
        assert_eq!(eff.max_message_bytes, broker.message_max_bytes);
        assert!(eff.log.delete_retention);
        // Kafka's defaults: one hour ahead, any time in the past, keys optional.
        assert_eq!(eff.timestamp_after_max_ms, 3_600_000);
        assert_eq!(eff.timestamp_before_max_ms, i64::MAX);
        assert!(!eff.compacted);
        o.insert("cleanup.policy".to_string(), "compact, delete".to_string());
        o.insert(
            "message.timestamp.before.max.ms".to_string(),
            "5000".to_string(),
        );
        let eff = effective(&o, &broker);
        assert!(eff.compacted);
        assert_eq!(eff.timestamp_before_max_ms, 5000);
    }

    #[test]
    fn compaction_settings_come_from_the_topic_configs() {
        let broker = ServerConfig::default();
        let mut o = BTreeMap::new();
        assert!(!effective(&o, &broker).log.compaction.compact);
        for (k, v) in [
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "2000"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "5"),
            ("max.compaction.lag.ms", "60000"),
        ] {
            o.insert(k.to_string(), v.to_string());
        }
        validate_overrides(&o).unwrap();
        let c = effective(&o, &broker).log.compaction;
        assert!(c.compact);
        assert_eq!(
            (
                c.delete_retention_ms,
                c.min_compaction_lag_ms,
                c.max_compaction_lag_ms
            ),
            (2000, 5, 60000)
        );
        assert!((c.min_cleanable_dirty_ratio - 0.01).abs() < 1e-12);
        for (k, bad) in [
            ("min.cleanable.dirty.ratio", "1.5"),
            ("delete.retention.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
        ] {
            let o = BTreeMap::from([(k.to_string(), bad.to_string())]);
            assert!(validate_overrides(&o).is_err(), "{k}={bad}");
        }
    }

    #[test]
    fn rejects_unknown_and_mistyped() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "soon".to_string());
        assert!(validate_overrides(&o).is_err());
        let mut o = BTreeMap::new();
        o.insert("no.such.config".to_string(), "1".to_string());
        assert!(validate_overrides(&o).is_err());
        let mut o = BTreeMap::new();
        o.insert(
            "message.timestamp.after.max.ms".to_string(),
            "-1".to_string(),
        );
        assert!(validate_overrides(&o).is_err());
    }
}
