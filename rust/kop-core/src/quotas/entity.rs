//! Quota entities and the quotas set on them, as Kafka keeps them (KIP-55, KIP-257, KIP-546,
//! KIP-612): an entity is a user, a client id, both, or an IP address, each either named or
//! the default (`<default>`); every entity holds some of the quota keys below. Validation and
//! the order in which entities apply to a connection are Kafka's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The Java type Kafka gives a quota key's value (its checks depend on it).
#[derive(Clone, Copy)]
enum ValueType {
    Double,
    Long,
    Int,
}

/// The keys of user and client-id entities.
const CLIENT_KEYS: [(&str, ValueType); 4] = [
    (PRODUCER_BYTE_RATE, ValueType::Long),
    (CONSUMER_BYTE_RATE, ValueType::Long),
    (REQUEST_PERCENTAGE, ValueType::Double),
    (CONTROLLER_MUTATION_RATE, ValueType::Double),
];
/// The keys of IP entities.
const IP_KEYS: [(&str, ValueType); 1] = [(CONNECTION_CREATION_RATE, ValueType::Int)];

/// One entity. For each type: absent (None), the default (Some(None)) or named.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
    pub ip: Option<Option<String>>,
}

impl Entity {
    /// (type, name) pairs, None naming the default.
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::new();
        for (t, v) in [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ] {
            if let Some(name) = v {
                out.push((t, name.as_deref()));
            }
        }
        out
    }

    /// The entity a request names, checked as Kafka's controller checks it
    /// (`ClientQuotaControlManager`): INVALID_REQUEST with Kafka's message when it is not one.
    pub fn parse<'a>(
        components: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Entity, String> {
        let mut e = Entity::default();
        let mut any = false;
        for (entity_type, name) in components {
            any = true;
            let slot = match entity_type {
                USER => &mut e.user,
                CLIENT_ID => &mut e.client_id,
                IP => &mut e.ip,
                other => return Err(format!("Unhandled client quota entity type: {other}")),
            };
            if slot.is_some() {
                return Err(format!(
                    "Invalid client quota entity, duplicate entity entry {entity_type}"
                ));
            }
            if name == Some("") {
                return Err(format!("Empty {entity_type} not supported"));
            }
            *slot = Some(name.map(str::to_string));
        }
        if !any {
            return Err("Invalid empty client quota entity".into());
        }
        match (&e.user, &e.client_id, &e.ip) {
            (_, _, None) => {}
            (None, None, Some(ip)) => {
                if let Some(ip) = ip {
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        return Err(format!("{ip} is not a valid IP or resolvable host."));
                    }
                }
            }
            // Kafka's message, its missing space included.
            _ => {
                return Err("Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId".into())
            }
        }
        Ok(e)
    }

    fn keys(&self) -> &'static [(&'static str, ValueType)] {
        if self.ip.is_some() {
            &IP_KEYS
        } else {
            &CLIENT_KEYS
        }
    }

    /// Kafka's check of one quota value for this entity.
    pub fn check_value(&self, key: &str, value: f64) -> Result<(), String> {
        let Some(&(_, value_type)) = self.keys().iter().find(|(k, _)| *k == key) else {
            return Err(format!("Invalid configuration key {key}"));
        };
        if value.is_nan() || value <= 0.0 {
            return Err(format!("Quota {key} must be greater than 0"));
        }
        let too_large = match value_type {
            ValueType::Double => return Ok(()),
            ValueType::Long if value > i64::MAX as f64 => "a LONG",
            ValueType::Int if value > f64::from(i32::MAX) => "an INT",
            ValueType::Long | ValueType::Int => "",
        };
        if !too_large.is_empty() {
            return Err(format!(
                "Proposed value for {key} is too large for {too_large}."
            ));
        }
        if (value % 1.0).abs() > 1e-6 {
            return Err(format!("{key} cannot be a fractional value."));
        }
        Ok(())
    }
}

/// Which quota applies to a client, and which clients share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Applied {
    /// The user the quota is kept for (None: shared by every user).
    pub user: Option<String>,
    /// The client id it is kept for (None: shared by every client id).
    pub client_id: Option<String>,
}

/// Every quota set, by entity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaConfigs {
    pub entries: BTreeMap<Entity, BTreeMap<String, f64>>,
}

/// How the quotas are stored (the `quotas` document, JSON).
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    quotas: Vec<StoredEntry>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    /// (type, name); a null name is the default entity.
    entity: Vec<(String, Option<String>)>,
    values: BTreeMap<String, f64>,
}

/// A describe filter component: the type, and EXACT(name) / DEFAULT / SPECIFIED (any).
pub enum Match<'a> {
    Exact(&'a str),
    Default,
    Any,
}

impl QuotaConfigs {
    pub fn get(&self, entity: &Entity) -> Option<&BTreeMap<String, f64>> {
        self.entries.get(entity)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let stored = Stored {
            quotas: self
                .entries
                .iter()
                .map(|(e, values)| StoredEntry {
                    entity: e
                        .components()
                        .into_iter()
                        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                        .collect(),
                    values: values.clone(),
                })
                .collect(),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// The stored quotas; entries this version cannot read are skipped.
    pub fn from_json(data: &[u8]) -> Result<QuotaConfigs, serde_json::Error> {
        let stored: Stored = serde_json::from_slice(data)?;
        let mut out = QuotaConfigs::default();
        for entry in stored.quotas {
            let components = entry.entity.iter().map(|(t, n)| (t.as_str(), n.as_deref()));
            match Entity::parse(components) {
                Ok(e) => {
                    out.entries.insert(e, entry.values);
                }
                Err(e) => tracing::warn!(error = %e, "a stored client quota is skipped"),
            }
        }
        Ok(out)
    }

    /// Sets (Some) or removes (None) quota keys of one entity; an entity left without any is
    /// dropped.
    pub fn alter(&mut self, entity: &Entity, ops: &[(String, Option<f64>)]) {
        let values = self.entries.entry(entity.clone()).or_default();
        for (k, v) in ops {
            match v {
                Some(v) => values.insert(k.clone(), *v),
                None => values.remove(k),
            };
        }
        if values.is_empty() {
            self.entries.remove(entity);
        }
    }

    /// The entities matching a DescribeClientQuotas filter (Kafka's `ClientQuotasImage`):
    /// every component must match; with `strict` the entity has no other types.
    pub fn describe<'a>(
        &'a self,
        filter: &[(&str, Match<'_>)],
        strict: bool,
    ) -> Vec<(&'a Entity, &'a BTreeMap<String, f64>)> {
        self.entries
            .iter()
            .filter(|(entity, _)| {
                let components = entity.components();
                if strict && components.len() != filter.len() {
                    return false;
                }
                filter.iter().all(|(t, m)| {
                    components.iter().any(|(ct, name)| {
                        ct == t
                            && match m {
                                Match::Exact(n) => *name == Some(*n),
                                Match::Default => name.is_none(),
                                Match::Any => true,
                            }
                    })
                })
            })
            .collect()
    }

    /// The quota `key` of a client, in Kafka's order: user+client-id, user+default client-id,
    /// user, default user+client-id, default user+default client-id, default user, client-id,
    /// default client-id. With it, who shares it: a named entity's quota is shared by all the
    /// clients it covers, a default's is kept for each user / client id it applies to.
    pub fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(f64, Applied)> {
        let named = |s: &str| Some(Some(s.to_string()));
        let levels = [
            (named(user), named(client_id)),
            (named(user), Some(None)),
            (named(user), None),
            (Some(None), named(client_id)),
            (Some(None), Some(None)),
            (Some(None), None),
            (None, named(client_id)),
            (None, Some(None)),
        ];
        for (u, c) in levels {
            let applied = Applied {
                user: u.as_ref().map(|_| user.to_string()),
                client_id: c.as_ref().map(|_| client_id.to_string()),
            };
            let entity = Entity {
                user: u,
                client_id: c,
                ip: None,
            };
            if let Some(v) = self.get(&entity).and_then(|v| v.get(key)) {
                return Some((*v, applied));
            }
        }
        None
    }

    /// `connection_creation_rate` of an IP address: its own, else the default IP's.
    pub fn resolve_ip(&self, ip: &str) -> Option<f64> {
        [Some(Some(ip.to_string())), Some(None)]
            .into_iter()
            .find_map(|i| {
                let entity = Entity {
                    ip: i,
                    ..Entity::default()
                };
                self.get(&entity)
                    .and_then(|v| v.get(CONNECTION_CREATION_RATE))
                    .copied()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> Entity {
        Entity {
            user: user.map(|u| u.map(str::to_string)),
            client_id: client.map(|c| c.map(str::to_string)),
            ip: None,
        }
    }

    #[test]
    fn precedence_is_kafkas() {
        let levels = [
            entity(Some(Some("alice")), Some(Some("app"))),
            entity(Some(Some("alice")), Some(None)),
            entity(Some(Some("alice")), None),
            entity(Some(None), Some(Some("app"))),
            entity(Some(None), Some(None)),
            entity(Some(None), None),
            entity(None, Some(Some("app"))),
            entity(None, Some(None)),
        ];
        let mut q = QuotaConfigs::default();
        for (i, e) in levels.iter().enumerate() {
            q.alter(e, &[(PRODUCER_BYTE_RATE.into(), Some(i as f64 + 1.0))]);
        }
        // Removing the levels one by one from the top reveals the next.
        for (i, e) in levels.iter().enumerate() {
            let (v, _) = q.resolve(PRODUCER_BYTE_RATE, "alice", "app").unwrap();
            assert_eq!(v, i as f64 + 1.0, "level {i}");
            q.alter(e, &[(PRODUCER_BYTE_RATE.into(), None)]);
        }
        assert!(q.resolve(PRODUCER_BYTE_RATE, "alice", "app").is_none());
        assert!(q.entries.is_empty());
    }

    #[test]
    fn keys_resolve_independently_and_defaults_are_kept_per_client() {
        let mut q = QuotaConfigs::default();
        q.alter(
            &entity(Some(Some("alice")), None),
            &[(PRODUCER_BYTE_RATE.into(), Some(10.0))],
        );
        q.alter(
            &entity(None, Some(None)),
            &[(CONSUMER_BYTE_RATE.into(), Some(20.0))],
        );
        let (v, applied) = q.resolve(PRODUCER_BYTE_RATE, "alice", "app").unwrap();
        assert_eq!(v, 10.0);
        assert_eq!(
            applied,
            Applied {
                user: Some("alice".into()),
                client_id: None
            }
        );
        let (v, applied) = q.resolve(CONSUMER_BYTE_RATE, "alice", "app").unwrap();
        assert_eq!(v, 20.0);
        assert_eq!(
            applied,
            Applied {
                user: None,
                client_id: Some("app".into())
            }
        );
        assert!(q.resolve(PRODUCER_BYTE_RATE, "bob", "app").is_none());
    }

    #[test]
    fn entities_and_values_are_checked_as_kafka_does() {
        let ok = |c: &[(&str, Option<&str>)]| Entity::parse(c.iter().copied());
        assert!(ok(&[("user", Some("a")), ("client-id", None)]).is_ok());
        assert!(ok(&[("ip", Some("10.0.0.1"))]).is_ok());
        assert!(ok(&[("ip", None)]).is_ok());
        assert_eq!(ok(&[]).unwrap_err(), "Invalid empty client quota entity");
        assert!(ok(&[("ip", Some("nope"))]).is_err());
        assert!(ok(&[("ip", Some("10.0.0.1")), ("user", Some("a"))]).is_err());
        assert!(ok(&[("user", Some("a")), ("user", Some("b"))]).is_err());
        assert!(ok(&[("user", Some(""))]).is_err());
        assert!(ok(&[("group", Some("g"))]).is_err());
        let user = ok(&[("user", Some("a"))]).unwrap();
        assert!(user.check_value(PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(user.check_value(REQUEST_PERCENTAGE, 12.5).is_ok());
        assert_eq!(
            user.check_value(PRODUCER_BYTE_RATE, 1.5).unwrap_err(),
            "producer_byte_rate cannot be a fractional value."
        );
        assert_eq!(
            user.check_value(REQUEST_PERCENTAGE, 0.0).unwrap_err(),
            "Quota request_percentage must be greater than 0"
        );
        assert!(user.check_value(CONNECTION_CREATION_RATE, 1.0).is_err());
        assert!(user.check_value("bogus", 1.0).is_err());
        let ip = ok(&[("ip", None)]).unwrap();
        assert!(ip.check_value(CONNECTION_CREATION_RATE, 5.0).is_ok());
        assert!(ip.check_value(PRODUCER_BYTE_RATE, 5.0).is_err());
        assert_eq!(
            ip.check_value(CONNECTION_CREATION_RATE, 3e9).unwrap_err(),
            "Proposed value for connection_creation_rate is too large for an INT."
        );
    }

    #[test]
    fn describe_filters_as_kafka_does() {
        let mut q = QuotaConfigs::default();
        let set = [(PRODUCER_BYTE_RATE.to_string(), Some(1.0))];
        q.alter(&entity(Some(Some("alice")), None), &set);
        q.alter(&entity(Some(None), None), &set);
        q.alter(&entity(Some(Some("alice")), Some(Some("app"))), &set);
        q.alter(&entity(None, Some(None)), &set);
        assert_eq!(q.describe(&[], false).len(), 4);
        assert_eq!(q.describe(&[(USER, Match::Any)], false).len(), 3);
        assert_eq!(q.describe(&[(USER, Match::Any)], true).len(), 2);
        assert_eq!(q.describe(&[(USER, Match::Exact("alice"))], false).len(), 2);
        assert_eq!(q.describe(&[(USER, Match::Default)], false).len(), 1);
        assert_eq!(q.describe(&[(CLIENT_ID, Match::Default)], true).len(), 1);
        let back = QuotaConfigs::from_json(&q.to_json()).unwrap();
        assert_eq!(back, q);
    }
}
