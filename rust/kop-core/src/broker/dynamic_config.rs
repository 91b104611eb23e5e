//! Dynamic broker configs (`kafka-configs --entity-type brokers --entity-default` or
//! `--entity-name <id>`): the ones of Kafka's dynamic list that kop applies at run time, kept
//! in the `broker-configs` document (shared by every kop instance on the storage) as the
//! cluster default and per-node overrides. A node's own value beats the cluster default, which
//! beats the static setting (flags, KOP_* variables, kop.toml), as on Kafka.
//!
//! kop applies them as the defaults of the topic configs they are synonyms of: every topic
//! without an override of its own takes the new value at once.

use std::io;
use std::sync::Arc;

use super::topic_config::ConfigType;
use crate::config::ServerConfig;
use crate::storage::metadata::{Metadata, BROKER_CONFIGS};
use crate::storage::overrides::{Configs, StoredOverrides};

/// Kafka's `ConfigSource` values of broker configs.
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;

/// The stored entity of the cluster default (nodes are stored under their id).
const CLUSTER_DEFAULT: &str = "default";

pub struct DynamicDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka's lower limit of the broker config.
    min: i64,
    apply: fn(&mut ServerConfig, i64),
}

/// The dynamic broker configs kop applies.
pub const DYNAMIC: &[DynamicDef] = &[
    DynamicDef {
        name: "log.retention.ms",
        kind: ConfigType::Long,
        min: i64::MIN,
        apply: |c, v| c.log_retention_ms = v,
    },
    DynamicDef {
        name: "log.retention.bytes",
        kind: ConfigType::Long,
        min: i64::MIN,
        apply: |c, v| c.log_retention_bytes = v,
    },
    DynamicDef {
        name: "log.segment.bytes",
        kind: ConfigType::Int,
        min: 1 << 20,
        apply: |c, v| c.log_segment_bytes = v,
    },
    DynamicDef {
        name: "message.max.bytes",
        kind: ConfigType::Int,
        min: 0,
        apply: |c, v| c.message_max_bytes = v as i32,
    },
];

pub fn lookup(name: &str) -> Option<&'static DynamicDef> {
    DYNAMIC.iter().find(|d| d.name == name)
}

/// Kafka's check of a dynamic broker config's value (INVALID_REQUEST with this message).
pub fn validate(name: &str, value: &str) -> Result<i64, String> {
    let def =
        lookup(name).ok_or_else(|| format!("Cannot update these configs dynamically: [{name}]"))?;
    let bad = |why: String| format!("Invalid value {value} for configuration {name}: {why}");
    let n = match def.kind {
        ConfigType::Int => value
            .trim()
            .parse::<i32>()
            .map(i64::from)
            .map_err(|_| bad("Not a number of type INT".into()))?,
        _ => value
            .trim()
            .parse::<i64>()
            .map_err(|_| bad("Not a number of type LONG".into()))?,
    };
    if n < def.min {
        return Err(bad(format!("Value must be at least {}", def.min)));
    }
    Ok(n)
}

/// Which stored entity a BROKER resource name is: "" the cluster default, else a node id.
pub fn entity(resource_name: &str) -> &str {
    if resource_name.is_empty() {
        CLUSTER_DEFAULT
    } else {
        resource_name
    }
}

pub struct DynamicBrokerConfigs {
    stored: StoredOverrides,
    node: String,
}

impl DynamicBrokerConfigs {
    pub fn load(stored_in: Option<Arc<Metadata>>, node_id: i32) -> io::Result<Self> {
        Ok(DynamicBrokerConfigs {
            stored: StoredOverrides::load(BROKER_CONFIGS, stored_in)?,
            node: node_id.to_string(),
        })
    }

    /// Takes the stored configs again; true if they changed. Blocks.
    pub fn reload(&self) -> io::Result<bool> {
        self.stored.reload()
    }

    /// The cluster default's overrides (resource name "") or a node's.
    pub fn overrides(&self, resource_name: &str) -> Configs {
        self.stored.get(entity(resource_name))
    }

    /// The dynamic value of a config in force on this node and its source, if any.
    pub fn dynamic_value(&self, name: &str) -> Option<(String, i8)> {
        if let Some(v) = self.stored.get(&self.node).get(name) {
            return Some((v.clone(), SOURCE_DYNAMIC_BROKER));
        }
        let v = self.stored.get(CLUSTER_DEFAULT).get(name).cloned()?;
        Some((v, SOURCE_DYNAMIC_DEFAULT_BROKER))
    }

    /// The static settings with the dynamic ones in force on this node applied.
    pub fn apply(&self, base: &ServerConfig) -> ServerConfig {
        let mut c = base.clone();
        for def in DYNAMIC {
            if let Some((v, _)) = self.dynamic_value(def.name) {
                if let Ok(n) = validate(def.name, &v) {
                    (def.apply)(&mut c, n);
                }
            }
        }
        c
    }

    /// `edit` on an entity's dynamic configs (it validates them), stored unless
    /// `validate_only`. The outer error is storage's. Blocks.
    pub fn alter<E>(
        &self,
        resource_name: &str,
        validate_only: bool,
        edit: impl Fn(&mut Configs) -> Result<(), E>,
    ) -> io::Result<Result<(), E>> {
        self.stored
            .alter(entity(resource_name), validate_only, edit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_values_beat_the_cluster_default_which_beats_static_settings() {
        let d = DynamicBrokerConfigs::load(None, 1).unwrap();
        let set = |k: &'static str, v: &'static str| {
            move |c: &mut Configs| -> Result<(), String> {
                c.insert(k.into(), v.into());
                Ok(())
            }
        };
        d.alter("", false, set("log.retention.ms", "1000"))
            .unwrap()
            .unwrap();
        d.alter("", false, set("message.max.bytes", "2000"))
            .unwrap()
            .unwrap();
        d.alter("1", false, set("log.retention.ms", "5000"))
            .unwrap()
            .unwrap();
        let c = d.apply(&ServerConfig::default());
        assert_eq!(c.log_retention_ms, 5000);
        assert_eq!(c.message_max_bytes, 2000);
        assert_eq!(
            d.dynamic_value("message.max.bytes"),
            Some(("2000".into(), SOURCE_DYNAMIC_DEFAULT_BROKER))
        );
        assert_eq!(
            validate("broker.id", "1").unwrap_err(),
            "Cannot update these configs dynamically: [broker.id]"
        );
        assert_eq!(
            validate("log.retention.ms", "abc").unwrap_err(),
            "Invalid value abc for configuration log.retention.ms: Not a number of type LONG"
        );
        assert!(validate("log.segment.bytes", "100").is_err());
    }
}
