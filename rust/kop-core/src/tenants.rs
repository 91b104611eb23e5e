//! Tenants (the `tenants` option, docs/tenants.md): one `Broker` and `Security` per Pulsar
//! namespace served, each what a kop cluster on that namespace is alone. A connection starts on
//! the instance's own broker (`pulsar_tenant`/`pulsar_namespace`) for authentication; once the
//! principal is known, `net/connection.rs` swaps in its tenant's broker and security, so topics,
//! groups, offsets, transactions, configs, ACLs, SCRAM credentials and quotas are per tenant
//! with no handler knowing.
//!
//! Who is which tenant: a SASL/PLAIN user name `tenant` or `tenant/namespace` naming a served
//! namespace (KoP's way), else `tenant_roles` (`ROLE=TENANT/NS`) by principal name. Calls from
//! the other kop instances (`broker/peers.rs`) carry their tenant in the client id instead.

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::{Principal, Security};
use crate::broker::Broker;
use crate::config::ServerConfig;

/// The served namespaces and the role mapping, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMap {
    /// `TENANT/NS` of every namespace served.
    pub served: Vec<String>,
    /// Principal name → `TENANT/NS`.
    roles: HashMap<String, String>,
    /// The namespace of a PLAIN user name without one (`pulsar_namespace`).
    default_namespace: String,
}

/// What a login selects.
#[derive(Debug, PartialEq, Eq)]
pub enum Selected<'a> {
    /// This served namespace.
    Tenant(&'a str),
    /// No served namespace; the reason, for the client and the log.
    Nothing(String),
}

fn check_namespace(key: &str) -> Result<(), String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.=:-".contains(c))
    };
    match key.split_once('/') {
        Some((t, ns)) if valid(t) && valid(ns) => Ok(()),
        _ => Err(format!("{key:?} is not TENANT/NAMESPACE")),
    }
}

impl TenantMap {
    pub fn parse(config: &ServerConfig) -> Result<TenantMap, String> {
        let mut served = Vec::new();
        for key in &config.tenants {
            check_namespace(key)?;
            if !served.contains(key) {
                served.push(key.clone());
            }
        }
        let mut roles = HashMap::new();
        for entry in &config.tenant_roles {
            let (role, key) = entry
                .split_once('=')
                .filter(|(role, _)| !role.is_empty())
                .ok_or_else(|| format!("tenant_roles: {entry:?} is not ROLE=TENANT/NS"))?;
            if !served.iter().any(|s| s == key) {
                return Err(format!(
                    "tenant_roles: {entry:?} names {key}, which is not in tenants"
                ));
            }
            roles.insert(role.to_string(), key.to_string());
        }
        Ok(TenantMap {
            served,
            roles,
            default_namespace: config.pulsar_namespace.clone(),
        })
    }

    fn served(&self, key: &str) -> Option<&str> {
        self.served.iter().find(|s| *s == key).map(String::as_str)
    }

    /// The tenant of a login: the PLAIN user name (`tenant` or `tenant/namespace`) when it
    /// names a served namespace, else the principal's `tenant_roles` entry.
    pub fn select(&self, plain_user: Option<&str>, principal: &Principal) -> Selected<'_> {
        let named = plain_user.map(|user| match user.contains('/') {
            true => user.to_string(),
            false => format!("{user}/{}", self.default_namespace),
        });
        if let Some(key) = named.as_deref().and_then(|k| self.served(k)) {
            return Selected::Tenant(key);
        }
        if let Some(key) = self.roles.get(&principal.name) {
            return Selected::Tenant(key);
        }
        Selected::Nothing(match named {
            Some(key) => format!(
                "tenant {key} (from the user name) is not served here, and {principal} has no tenant_roles entry"
            ),
            None => format!(
                "{principal} has no tenant (log in with PLAIN as TENANT or TENANT/NAMESPACE, or map the role in tenant_roles)"
            ),
        })
    }

    /// The tenant `tenant_roles` gives a user name (where its SCRAM credentials are).
    pub fn role_tenant(&self, user: &str) -> Option<&str> {
        self.roles.get(user).map(String::as_str)
    }
}

/// The client id kop instances call each other with; with tenants on it names the caller's
/// tenant, `kop-instance-N@TENANT/NS`, so the call lands in that tenant's broker.
pub fn instance_client_id(config: &ServerConfig) -> String {
    match config.tenants.is_empty() {
        true => format!("kop-instance-{}", config.node_id),
        false => format!(
            "kop-instance-{}@{}/{}",
            config.node_id, config.pulsar_tenant, config.pulsar_namespace
        ),
    }
}

/// The config of a tenant's broker: the instance's, on the tenant's namespace.
pub fn tenant_config(config: &ServerConfig, key: &str) -> ServerConfig {
    let (tenant, namespace) = key.split_once('/').expect("validated TENANT/NS");
    let mut c = config.clone();
    c.pulsar_tenant = tenant.to_string();
    c.pulsar_namespace = namespace.to_string();
    c
}

/// One served namespace.
pub struct Tenant {
    pub key: String,
    pub broker: Arc<Broker>,
    pub security: Arc<Security>,
}

/// What an authenticated connection is served by.
pub enum Choice {
    Tenant(Arc<Tenant>),
    /// Another kop instance: each request names its tenant in the client id.
    Instance,
}

/// The tenants of a running server.
pub struct Tenants {
    map: TenantMap,
    by_key: HashMap<String, Arc<Tenant>>,
    inter_instance_listener: String,
    instance_user: Option<String>,
}

impl Tenants {
    /// Opens the broker of every served namespace on its storage (`storage`: `TENANT/NS` →
    /// backend); the instance's own namespace, if served, is `instance`. None without tenants.
    pub fn open(
        config: &ServerConfig,
        instance: (&Arc<Broker>, &Arc<Security>),
        hooks: Option<Arc<dyn crate::auth::authorizer::Hooks>>,
        storage: Vec<(String, Arc<dyn crate::storage::RemoteBackend>)>,
        me: &crate::storage::Member,
    ) -> std::io::Result<Option<Arc<Tenants>>> {
        if config.tenants.is_empty() {
            return Ok(None);
        }
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let own = format!("{}/{}", config.pulsar_tenant, config.pulsar_namespace);
        let mut opened = Vec::new();
        if config.tenants.contains(&own) {
            opened.push(Arc::new(Tenant {
                key: own.clone(),
                broker: instance.0.clone(),
                security: instance.1.clone(),
            }));
        }
        for (key, remote) in storage.into_iter().filter(|(k, _)| *k != own) {
            let c = tenant_config(config, &key);
            let started = std::time::Instant::now();
            let broker = Arc::new(Broker::open(c.clone(), Some(remote), me.clone())?);
            let security =
                Security::new(&c, Some(broker.metadata()), hooks.clone()).map_err(invalid)?;
            tracing::info!(
                tenant = %key,
                topics = broker.topics().len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                cluster_id = %broker.cluster_id,
                "tenant storage opened"
            );
            opened.push(Arc::new(Tenant {
                key,
                broker,
                security: Arc::new(security),
            }));
        }
        Tenants::new(config, opened)
            .map(|t| Some(Arc::new(t)))
            .map_err(invalid)
    }

    /// `tenants` holds every served namespace, the instance's own among them if served.
    pub fn new(config: &ServerConfig, tenants: Vec<Arc<Tenant>>) -> Result<Tenants, String> {
        let map = TenantMap::parse(config)?;
        let by_key: HashMap<_, _> = tenants.into_iter().map(|t| (t.key.clone(), t)).collect();
        if let Some(missing) = map.served.iter().find(|k| !by_key.contains_key(*k)) {
            return Err(format!("tenants: no storage opened for {missing}"));
        }
        Ok(Tenants {
            map,
            by_key,
            inter_instance_listener: config.inter_instance_listener().name,
            instance_user: config.inter_instance_sasl_user.clone(),
        })
    }

    /// Every served tenant (each broker once).
    pub fn all(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_key.values()
    }

    /// Who serves a connection authenticated as `principal` (with `plain_user` on SASL/PLAIN)
    /// on `listener`. Other kop instances have no tenant: on the inter-instance listener, the
    /// `inter_instance_sasl_user` on a SASL listener, anyone on another.
    pub fn resolve(
        &self,
        plain_user: Option<&str>,
        principal: &Principal,
        listener: &str,
        sasl: bool,
    ) -> Result<Choice, String> {
        let why = match self.map.select(plain_user, principal) {
            Selected::Tenant(key) => return Ok(Choice::Tenant(self.by_key[key].clone())),
            Selected::Nothing(why) => why,
        };
        let instance = listener == self.inter_instance_listener
            && (!sasl || self.instance_user.as_deref() == Some(principal.name.as_str()));
        match instance {
            true => Ok(Choice::Instance),
            false => Err(why),
        }
    }

    /// Where the SCRAM credentials of `user` are: its `tenant_roles` tenant, if any.
    pub fn login_security(&self, user: &str) -> Option<Arc<Security>> {
        let key = self.map.role_tenant(user)?;
        Some(self.by_key[key].security.clone())
    }

    /// The tenant a call from another instance names (`instance_client_id`).
    pub fn of_instance_call(&self, client_id: &str) -> Option<&Arc<Tenant>> {
        let (_, key) = client_id.strip_prefix("kop-instance-")?.split_once('@')?;
        self.by_key.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(tenants: &[&str], roles: &[&str]) -> Result<TenantMap, String> {
        let config = ServerConfig {
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
            tenant_roles: roles.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        };
        TenantMap::parse(&config)
    }

    #[test]
    fn plain_user_names_the_tenant_with_the_default_namespace() {
        let m = map(&["acme/default", "acme/eu", "globex/default"], &[]).unwrap();
        let p = Principal::user("acme");
        assert_eq!(m.select(Some("acme"), &p), Selected::Tenant("acme/default"));
        assert_eq!(m.select(Some("acme/eu"), &p), Selected::Tenant("acme/eu"));
        // With a `token:` password the principal is the token's subject; the user name counts.
        let sub = Principal::user("svc-orders");
        assert_eq!(
            m.select(Some("globex"), &sub),
            Selected::Tenant("globex/default")
        );
    }

    #[test]
    fn unknown_tenant_or_no_tenant_is_refused_with_a_reason() {
        let m = map(&["acme/default"], &[]).unwrap();
        let Selected::Nothing(why) = m.select(Some("initech"), &Principal::user("initech")) else {
            panic!("initech is not served")
        };
        assert!(why.contains("initech/default"), "{why}");
        let Selected::Nothing(why) = m.select(None, &Principal::anonymous()) else {
            panic!("ANONYMOUS has no tenant")
        };
        assert!(why.contains("User:ANONYMOUS"), "{why}");
    }

    #[test]
    fn roles_map_principals_without_a_tenant_user_name() {
        let m = map(&["acme/default", "globex/prod"], &["alice=globex/prod"]).unwrap();
        // SCRAM, OAUTHBEARER, mTLS: no PLAIN user name.
        assert_eq!(
            m.select(None, &Principal::user("alice")),
            Selected::Tenant("globex/prod")
        );
        // A PLAIN user name that names no served tenant falls back to the role.
        assert_eq!(
            m.select(Some("alice"), &Principal::user("alice")),
            Selected::Tenant("globex/prod")
        );
        assert_eq!(m.role_tenant("alice"), Some("globex/prod"));
        assert_eq!(m.role_tenant("bob"), None);
    }

    #[test]
    fn bad_entries_are_config_errors() {
        assert!(map(&["acme"], &[]).is_err());
        assert!(map(&["acme/"], &[]).is_err());
        assert!(map(&["a/b/c"], &[]).is_err());
        assert!(map(&["acme/default"], &["alice"]).is_err());
        assert!(map(&["acme/default"], &["alice=globex/default"]).is_err());
        assert!(map(&["acme/default"], &["=acme/default"]).is_err());
    }

    #[test]
    fn each_tenants_security_tells_hooks_its_namespace() {
        let config = ServerConfig {
            tenants: vec!["acme/eu".into(), "globex/prod".into()],
            ..ServerConfig::default()
        };
        for key in ["acme/eu", "globex/prod"] {
            let security = Security::new(&tenant_config(&config, key), None, None).unwrap();
            assert_eq!(security.tenant.as_deref(), Some(key));
        }
        // The instance's own namespace (authentication, calls naming no tenant).
        let own = Security::new(&config, None, None).unwrap();
        assert_eq!(own.tenant.as_deref(), Some("public/default"));
        let off = Security::new(&ServerConfig::default(), None, None).unwrap();
        assert_eq!(off.tenant, None);
    }

    #[test]
    fn instance_calls_name_their_tenant() {
        let mut config = ServerConfig {
            node_id: 3,
            ..ServerConfig::default()
        };
        assert_eq!(instance_client_id(&config), "kop-instance-3");
        config.tenants = vec!["acme/eu".into()];
        let c = tenant_config(&config, "acme/eu");
        assert_eq!(instance_client_id(&c), "kop-instance-3@acme/eu");
    }
}
