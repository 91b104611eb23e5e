//! The GROUP config resource (KIP-848 and later): per-group overrides of the group
//! coordinator's settings, as Apache Kafka 4.4's `GroupConfig` defines and validates them, kept
//! in the `group-configs` document (shared by every kop instance on the storage).
//!
//! `GroupConfigs::effective(group)` is the one accessor for what a group runs with: the
//! consumer group protocol uses its session timeout and heartbeat interval; the share.* values
//! are there for share groups; Streams groups use the streams session timeout, heartbeat
//! interval and standby replicas.

use std::io;
use std::sync::Arc;

use crate::error::KafkaError;
use crate::storage::metadata::{Metadata, GROUP_CONFIGS};
use crate::storage::overrides::{Configs, StoredOverrides};

/// Kafka's config types (DescribeConfigs v3 `ConfigType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

/// Kafka's `ConfigSource` of a group override and of a coordinator default.
pub const SOURCE_DYNAMIC_GROUP: i8 = 8;
pub const SOURCE_DEFAULT: i8 = 5;

/// A bound the broker puts on a group config (`group.consumer.min.session.timeout.ms`, ...), at
/// Kafka's defaults: kop's coordinator settings are Kafka's.
#[derive(Clone, Copy)]
enum Bound {
    None,
    Range(i64, i64),
    Max(i64),
    Min(i64),
}

struct Def {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    /// The broker config the default comes from (Kafka reports it as the synonym).
    synonym: &'static str,
    /// ConfigDef's own lower limit (`atLeast`).
    at_least: Option<i64>,
    bound: Bound,
    /// Kafka hides its internal group configs from DescribeConfigs.
    listed: bool,
    doc: &'static str,
}

const fn def(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    synonym: &'static str,
    at_least: Option<i64>,
    bound: Bound,
    doc: &'static str,
) -> Def {
    Def {
        name,
        kind,
        default,
        synonym,
        at_least,
        bound,
        listed: true,
        doc,
    }
}

const fn internal(name: &'static str, kind: Kind, default: &'static str, bound: Bound) -> Def {
    Def {
        name,
        kind,
        default,
        synonym: name,
        at_least: None,
        bound,
        listed: false,
        doc: "",
    }
}

use Bound::{Max, Min, Range};
use Kind::{Boolean, Int, List, Long};

/// Apache Kafka 4.4's group configs, their defaults and limits.
const DEFS: &[Def] = &[
    def("consumer.session.timeout.ms", Int, "45000", "group.consumer.session.timeout.ms", Some(1), Range(45_000, 60_000),
        "The timeout to detect client failures when using the consumer group protocol."),
    def("consumer.heartbeat.interval.ms", Int, "5000", "group.consumer.heartbeat.interval.ms", Some(1), Range(5_000, 15_000),
        "The heartbeat interval given to the members of a consumer group."),
    def("consumer.assignment.interval.ms", Int, "1000", "group.consumer.assignment.interval.ms", Some(0), Range(0, 15_000),
        "The interval between assignment updates for a consumer group."),
    def("share.session.timeout.ms", Int, "45000", "group.share.session.timeout.ms", Some(1), Range(45_000, 60_000),
        "The timeout to detect client failures when using the share group protocol."),
    def("share.heartbeat.interval.ms", Int, "5000", "group.share.heartbeat.interval.ms", Some(1), Range(5_000, 15_000),
        "The heartbeat interval given to the members of a share group."),
    def("share.record.lock.duration.ms", Int, "30000", "group.share.record.lock.duration.ms", Some(1000), Range(15_000, 60_000),
        "The record acquisition lock duration in milliseconds for share groups."),
    def("share.delivery.count.limit", Int, "5", "group.share.delivery.count.limit", Some(2), Range(2, 10),
        "The maximum number of delivery attempts for a record delivered to a share group."),
    def("share.partition.max.record.locks", Int, "2000", "group.share.partition.max.record.locks", Some(100), Range(100, 4000),
        "Share-group record lock limit per share-partition."),
    def("share.auto.offset.reset", Kind::String, "latest", "share.auto.offset.reset", None, Bound::None,
        "The strategy to initialize the share-partition start offset: earliest, latest or by_duration:<ISO-8601 duration>."),
    def("share.isolation.level", Kind::String, "read_uncommitted", "share.isolation.level", None, Bound::None,
        "Controls how to read records written transactionally (read_committed or read_uncommitted)."),
    def("share.renew.acknowledge.enable", Boolean, "true", "share.renew.acknowledge.enable", None, Bound::None,
        "Whether the renew acknowledge type is enabled for the share group."),
    def("share.assignment.interval.ms", Int, "1000", "group.share.assignment.interval.ms", Some(0), Range(0, 15_000),
        "The interval between assignment updates for a share group."),
    def("streams.session.timeout.ms", Int, "45000", "group.streams.session.timeout.ms", Some(1), Range(45_000, 60_000),
        "The timeout to detect client failures when using the streams group protocol."),
    def("streams.heartbeat.interval.ms", Int, "5000", "group.streams.heartbeat.interval.ms", Some(1), Range(5_000, 15_000),
        "The heartbeat interval given to the members."),
    def("streams.num.standby.replicas", Int, "0", "group.streams.num.standby.replicas", Some(0), Max(2),
        "The number of standby replicas for each task."),
    def("streams.initial.rebalance.delay.ms", Int, "3000", "group.streams.initial.rebalance.delay.ms", Some(0), Bound::None,
        "The amount of time the group coordinator will wait for more streams clients to join a new group before performing the first rebalance."),
    def("streams.assignment.interval.ms", Int, "1000", "group.streams.assignment.interval.ms", Some(0), Range(0, 15_000),
        "The interval between assignment updates for a streams group."),
    def("streams.rack.aware.assignment.tags", List, "", "group.streams.rack.aware.assignment.tags", None, Bound::None,
        "List of client tag keys used to distribute standby replicas across Kafka Streams instances."),
    def("streams.assignor.name", Kind::String, "sticky", "group.streams.assignors", None, Bound::None,
        "The task assignor to use for this streams group, by short name."),
    def("errors.deadletterqueue.topic.name", Kind::String, "", "errors.deadletterqueue.topic.name", None, Bound::None,
        "The name of the topic to be used as the dead-letter queue (DLQ) topic for this share group. If blank (the default), the group does not have a DLQ topic."),
    def("errors.deadletterqueue.copy.record.enable", Boolean, "false", "errors.deadletterqueue.copy.record.enable", None, Bound::None,
        "When writing onto the dead-letter queue topic, whether to copy the original record onto the DLQ topic, or just write a record containing the context information headers."),
    internal("consumer.assignor.offload.enable", Boolean, "true", Bound::None),
    internal("share.assignor.offload.enable", Boolean, "true", Bound::None),
    internal("streams.assignor.offload.enable", Boolean, "true", Bound::None),
    internal("streams.task.offset.interval.ms", Int, "60000", Min(15_000)),
    internal("streams.num.warmup.replicas", Int, "2", Max(20)),
    internal("streams.acceptable.recovery.lag", Long, "10000", Bound::None),
];

fn lookup(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// What a group runs with: its overrides over the coordinator's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    pub share_session_timeout_ms: i32,
    pub share_heartbeat_interval_ms: i32,
    pub share_record_lock_duration_ms: i32,
    pub share_delivery_count_limit: i32,
    pub share_partition_max_record_locks: i32,
    /// `earliest`, `latest` or `by_duration:<ISO-8601 duration>`.
    pub share_auto_offset_reset: String,
    /// `read_committed` or `read_uncommitted`.
    pub share_isolation_level: String,
    pub share_renew_acknowledge_enable: bool,
    pub errors_deadletterqueue_topic_name: String,
    pub streams_session_timeout_ms: i32,
    pub streams_heartbeat_interval_ms: i32,
    /// The group's own streams.num.standby.replicas; None: the broker's
    /// group.streams.num.standby.replicas.
    pub streams_num_standby_replicas: Option<i32>,
    /// The group's own streams.initial.rebalance.delay.ms; None: the broker's
    /// group.streams.initial.rebalance.delay.ms.
    pub streams_initial_rebalance_delay_ms: Option<i32>,
}

impl GroupSettings {
    fn from(overrides: &Configs) -> GroupSettings {
        let get = |name: &str| -> String {
            overrides
                .get(name)
                .cloned()
                .or_else(|| lookup(name).map(|d| d.default.to_string()))
                .unwrap_or_default()
        };
        let int = |name: &str| {
            get(name).trim().parse::<i32>().unwrap_or_else(|_| {
                lookup(name)
                    .and_then(|d| d.default.parse().ok())
                    .unwrap_or(0)
            })
        };
        GroupSettings {
            consumer_session_timeout_ms: int("consumer.session.timeout.ms"),
            consumer_heartbeat_interval_ms: int("consumer.heartbeat.interval.ms"),
            share_session_timeout_ms: int("share.session.timeout.ms"),
            share_heartbeat_interval_ms: int("share.heartbeat.interval.ms"),
            share_record_lock_duration_ms: int("share.record.lock.duration.ms"),
            share_delivery_count_limit: int("share.delivery.count.limit"),
            share_partition_max_record_locks: int("share.partition.max.record.locks"),
            share_auto_offset_reset: get("share.auto.offset.reset"),
            share_isolation_level: get("share.isolation.level"),
            share_renew_acknowledge_enable: get("share.renew.acknowledge.enable") == "true",
            errors_deadletterqueue_topic_name: get("errors.deadletterqueue.topic.name"),
            streams_session_timeout_ms: int("streams.session.timeout.ms"),
            streams_heartbeat_interval_ms: int("streams.heartbeat.interval.ms"),
            streams_num_standby_replicas: overrides
                .get("streams.num.standby.replicas")
                .and_then(|v| v.trim().parse().ok()),
            streams_initial_rebalance_delay_ms: overrides
                .get("streams.initial.rebalance.delay.ms")
                .and_then(|v| v.trim().parse().ok()),
        }
    }
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings::from(&Configs::new())
    }
}

/// One described group config.
pub struct DescribedConfig {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub kind: Kind,
    pub doc: &'static str,
    /// (name, value, source), most specific first.
    pub synonyms: Vec<(String, String, i8)>,
}

/// ISO-8601 duration as Java's `Duration.parse` takes it (`PnDTnHnMn.nS`), not negative.
fn valid_duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['P', 'p']) else {
        return false;
    };
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let num = |n: &str, decimal: bool| {
        !n.is_empty()
            && !n.starts_with('-')
            && n.trim_start_matches('+')
                .chars()
                .all(|c| c.is_ascii_digit() || (decimal && c == '.'))
    };
    let days_ok = days.is_empty() || days.strip_suffix(['D', 'd']).is_some_and(|n| num(n, false));
    let time_ok = match time {
        None => !days.is_empty(),
        Some("") => false,
        Some(t) => {
            let mut rest = t;
            for (unit, decimal) in [(['H', 'h'], false), (['M', 'm'], false), (['S', 's'], true)] {
                if let Some(i) = rest.find(unit) {
                    if !num(&rest[..i], decimal) {
                        return false;
                    }
                    rest = &rest[i + 1..];
                }
            }
            rest.is_empty()
        }
    };
    days_ok && time_ok
}

/// `earliest`, `latest` or `by_duration:<ISO-8601 duration>` (Kafka's `ShareGroupAutoOffsetReset`).
fn valid_reset(v: &str) -> bool {
    if matches!(v.to_ascii_lowercase().as_str(), "earliest" | "latest") {
        return true;
    }
    match (v.get(..12), v.get(12..)) {
        (Some(p), Some(d)) if p.eq_ignore_ascii_case("by_duration:") => valid_duration(d.trim()),
        _ => false,
    }
}

fn type_error(def: &Def, value: &str) -> Option<String> {
    let bad = |why: &str| {
        Some(format!(
            "Invalid value {value} for configuration {}: {why}",
            def.name
        ))
    };
    let v = value.trim();
    let number = match def.kind {
        Int => match v.parse::<i32>() {
            Ok(n) => Some(i64::from(n)),
            Err(_) => return bad("Not a number of type INT"),
        },
        Long => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return bad("Not a number of type LONG"),
        },
        Boolean if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") => {
            return bad("Expected value to be either true or false")
        }
        _ => None,
    };
    if let (Some(n), Some(min)) = (number, def.at_least) {
        if n < min {
            return bad(&format!("Value must be at least {min}"));
        }
    }
    match def.name {
        "share.isolation.level" if !["read_committed", "read_uncommitted"].contains(&v) => {
            bad("String must be one of: read_committed, read_uncommitted")
        }
        "share.auto.offset.reset" if !valid_reset(v) => {
            bad(&format!(
                "Invalid value `{value}` for configuration share.auto.offset.reset. The value must be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
            ))
        }
        _ => None,
    }
}

/// Kafka's `GroupConfig.validate` of a group's overrides: known names, values of their type
/// and within the coordinator's bounds, sessions longer than heartbeat intervals.
pub fn validate(configs: &Configs) -> Result<(), String> {
    for (name, value) in configs {
        let def = lookup(name).ok_or_else(|| format!("Unknown group config name: {name}"))?;
        if let Some(e) = type_error(def, value) {
            return Err(e);
        }
    }
    for def in DEFS {
        let Some(n) = configs
            .get(def.name)
            .and_then(|v| v.trim().parse::<i64>().ok())
        else {
            continue;
        };
        let name = def.name;
        match def.bound {
            Range(lo, hi) if n < lo || n > hi => {
                return Err(format!(
                    "{name} must be in the range {lo} to {hi} inclusive."
                ))
            }
            Max(hi) if n > hi => return Err(format!("{name} must be less than or equal to {hi}")),
            Min(lo) if n < lo => {
                return Err(format!("{name} must be greater than or equal to {lo}"))
            }
            _ => {}
        }
    }
    if let Some(tags) = configs.get("streams.rack.aware.assignment.tags") {
        let mut seen = std::collections::HashSet::new();
        if !tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .all(|t| seen.insert(t))
        {
            return Err(
                "streams.rack.aware.assignment.tags must not contain duplicate tag keys.".into(),
            );
        }
    }
    if let Some(assignor) = configs.get("streams.assignor.name") {
        if assignor != "sticky" {
            return Err(format!(
                "Invalid value {assignor} for configuration streams.assignor.name: must be one of the assignors in group.streams.assignors [sticky]"
            ));
        }
    }
    if configs
        .get("errors.deadletterqueue.topic.name")
        .is_some_and(|t| t.starts_with("__"))
    {
        return Err(
            "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'".into(),
        );
    }
    for kind in ["consumer", "share", "streams"] {
        let session = format!("{kind}.session.timeout.ms");
        let heartbeat = format!("{kind}.heartbeat.interval.ms");
        if !configs.contains_key(&session) && !configs.contains_key(&heartbeat) {
            continue;
        }
        let value = |name: &str| {
            configs
                .get(name)
                .map(String::as_str)
                .or_else(|| lookup(name).map(|d| d.default))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0)
        };
        if value(&session) <= value(&heartbeat) {
            return Err(format!("{session} must be greater than {heartbeat}"));
        }
    }
    Ok(())
}

/// The GROUP config overrides of every group, as stored.
pub struct GroupConfigs {
    stored: StoredOverrides,
}

impl GroupConfigs {
    /// The overrides stored in `stored_in` (None: in memory only).
    pub fn load(stored_in: Option<Arc<Metadata>>) -> io::Result<GroupConfigs> {
        Ok(GroupConfigs {
            stored: StoredOverrides::load(GROUP_CONFIGS, stored_in)?,
        })
    }

    pub fn in_memory() -> GroupConfigs {
        GroupConfigs::load(None).expect("nothing to read in memory")
    }

    /// Takes the stored overrides again (another kop instance changed them). Blocks.
    pub fn reload(&self) -> io::Result<bool> {
        self.stored.reload()
    }

    /// What `group_id` runs with now (also for a group that does not exist yet).
    pub fn effective(&self, group_id: &str) -> GroupSettings {
        GroupSettings::from(&self.stored.get(group_id))
    }

    /// Only the configs set for `group_id` (a share group's unset ones fall back to the
    /// broker's `group.share.*` settings, not to this table's defaults).
    pub fn overrides(&self, group_id: &str) -> crate::storage::overrides::Configs {
        self.stored.get(group_id)
    }

    /// Every listed config of a group, with its value, source and synonyms (as Kafka 4.4).
    pub fn describe(&self, group_id: &str) -> Vec<DescribedConfig> {
        let overrides = self.stored.get(group_id);
        DEFS.iter()
            .filter(|d| d.listed)
            .map(|d| {
                let default = (d.synonym.to_string(), d.default.to_string(), SOURCE_DEFAULT);
                match overrides.get(d.name) {
                    Some(v) => DescribedConfig {
                        name: d.name,
                        value: v.clone(),
                        source: SOURCE_DYNAMIC_GROUP,
                        kind: d.kind,
                        doc: d.doc,
                        synonyms: vec![
                            (d.name.to_string(), v.clone(), SOURCE_DYNAMIC_GROUP),
                            default,
                        ],
                    },
                    None => DescribedConfig {
                        name: d.name,
                        value: d.default.to_string(),
                        source: SOURCE_DEFAULT,
                        kind: d.kind,
                        doc: d.doc,
                        synonyms: vec![default],
                    },
                }
            })
            .collect()
    }

    /// Whether a group config is a LIST (for APPEND / SUBTRACT); None: unknown.
    pub fn is_list(name: &str) -> Option<bool> {
        lookup(name).map(|d| d.kind == List)
    }

    /// The default of a known group config.
    pub fn default_of(name: &str) -> Option<&'static str> {
        lookup(name).map(|d| d.default)
    }

    /// `edit` on a group's overrides, validated, then stored (unless `validate_only`).
    /// INVALID_CONFIG with Kafka's message when invalid. Blocks.
    pub fn alter(
        &self,
        group_id: &str,
        validate_only: bool,
        edit: impl Fn(&mut Configs) -> Result<(), (KafkaError, String)>,
    ) -> Result<(), (KafkaError, String)> {
        let checked = |c: &mut Configs| {
            edit(c)?;
            validate(c).map_err(|m| (KafkaError::InvalidConfig, m))
        };
        match self.stored.alter(group_id, validate_only, checked) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(group = group_id, error = %e, "storing group configs failed");
                Err((KafkaError::KafkaStorageError, e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Configs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation_follows_kafka() {
        assert!(validate(&with(&[("consumer.session.timeout.ms", "50000")])).is_ok());
        let err = |p: &[(&str, &str)]| validate(&with(p)).unwrap_err();
        assert_eq!(
            err(&[("consumer.session.timeout.ms", "5000")]),
            "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."
        );
        assert_eq!(
            err(&[("foo.bar", "1")]),
            "Unknown group config name: foo.bar"
        );
        assert_eq!(
            err(&[("consumer.session.timeout.ms", "abc")]),
            "Invalid value abc for configuration consumer.session.timeout.ms: Not a number of type INT"
        );
        assert_eq!(
            err(&[("share.delivery.count.limit", "1")]),
            "Invalid value 1 for configuration share.delivery.count.limit: Value must be at least 2"
        );
        assert_eq!(
            err(&[("streams.num.standby.replicas", "9")]),
            "streams.num.standby.replicas must be less than or equal to 2"
        );
        assert!(
            err(&[("share.isolation.level", "x")]).ends_with("read_committed, read_uncommitted")
        );
        assert!(err(&[("share.auto.offset.reset", "foo")]).contains("by_duration"));
        for ok in [
            "earliest",
            "latest",
            "by_duration:PT1H",
            "by_duration:P1DT2H30M0.5S",
        ] {
            assert!(
                validate(&with(&[("share.auto.offset.reset", ok)])).is_ok(),
                "{ok}"
            );
        }
        assert!(validate(&with(&[("share.auto.offset.reset", "by_duration:-PT1H")])).is_err());
        // Kafka's bounds leave no session <= heartbeat at the defaults; checked all the same.
        assert!(validate(&with(&[("consumer.heartbeat.interval.ms", "15000")])).is_ok());
    }

    #[test]
    fn effective_settings_and_description() {
        let c = GroupConfigs::in_memory();
        assert_eq!(c.effective("g").consumer_session_timeout_ms, 45_000);
        c.alter("g", false, |m| {
            m.insert("consumer.session.timeout.ms".into(), "50000".into());
            m.insert("share.isolation.level".into(), "read_committed".into());
            Ok(())
        })
        .unwrap();
        let s = c.effective("g");
        assert_eq!(s.consumer_session_timeout_ms, 50_000);
        assert_eq!(s.share_isolation_level, "read_committed");
        assert_eq!(s.share_delivery_count_limit, 5);
        assert_eq!(c.effective("other"), GroupSettings::default());
        let d = c.describe("g");
        assert_eq!(d.len(), 21);
        let session = d
            .iter()
            .find(|e| e.name == "consumer.session.timeout.ms")
            .unwrap();
        assert_eq!(
            (session.value.as_str(), session.source),
            ("50000", SOURCE_DYNAMIC_GROUP)
        );
        assert_eq!(session.synonyms[1].0, "group.consumer.session.timeout.ms");
        let bad = c.alter("g", false, |m| {
            m.insert("consumer.session.timeout.ms".into(), "1".into());
            Ok(())
        });
        assert_eq!(bad.unwrap_err().0, KafkaError::InvalidConfig);
        assert_eq!(c.effective("g").consumer_session_timeout_ms, 50_000);
    }
}
