//! Authentication and authorization: listeners' security protocols, SASL mechanisms, TLS,
//! principals, and the authorizer.

pub mod acl;
pub mod authorizer;
pub mod credential_hooks;
pub mod jwt;
pub mod plain;
pub mod scram;
pub mod scram_client;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::ServerConfig;
pub use crate::config::{SecurityProtocol, DEFAULT_MECHANISMS, SUPPORTED_MECHANISMS};
use crate::storage::Metadata;
use authorizer::{Authorizer, AuthorizerKind, Hooks, LoginConnection};
use credential_hooks::ScramCredentialCache;
use scram::{ScramAlg, ScramCredential};

/// A Kafka principal, `TYPE:NAME` (kop's are `User:...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub principal_type: String,
    pub name: String,
}

impl Principal {
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            principal_type: "User".into(),
            name: name.into(),
        }
    }

    /// The principal of an unauthenticated connection (PLAINTEXT, SSL without client certs).
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    /// `TYPE:NAME`; None if there is no ':'.
    pub fn parse(s: &str) -> Option<Principal> {
        let (t, n) = s.split_once(':')?;
        (!t.is_empty()).then(|| Principal {
            principal_type: t.to_string(),
            name: n.to_string(),
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What is stored with the data (`Metadata::save_security`): ACLs and SCRAM credentials
/// created through the admin APIs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Stored {
    acls: Vec<acl::AclBinding>,
    scram: Vec<StoredScram>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredScram {
    user: String,
    mechanism: String,
    salt: Vec<u8>,
    iterations: i32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

/// The checks of the config's security keys that need the auth module's parsers (the config
/// checks the rest itself, `ServerConfig::validate`).
pub fn check_config(config: &ServerConfig) -> Result<(), String> {
    tls::PrincipalBuilder::parse(&config.ssl_principal_mapping_rules)?;
    AuthorizerKind::parse(&config.authorizer)?;
    Ok(())
}

/// Security settings and credentials, built once from the config (credentials may change at
/// run time through the SCRAM admin APIs).
pub struct Security {
    protocols: HashMap<String, SecurityProtocol>,
    pub mechanisms: Vec<String>,
    plain_users: HashMap<String, String>,
    scram: RwLock<HashMap<(ScramAlg, String), ScramCredential>>,
    /// SCRAM credentials set through AlterUserScramCredentials (stored with the data).
    admin_scram: RwLock<HashMap<(ScramAlg, String), ScramCredential>>,
    /// Where the state set at run time is stored (None: nowhere, in tests).
    stored_in: Option<Arc<Metadata>>,
    /// Serialises read-modify-write of the stored state.
    store_lock: parking_lot::Mutex<()>,
    pub authorizer: Authorizer,
    pub hooks: Option<Arc<dyn Hooks>>,
    /// With the `tenants` option, the `TENANT/NS` this security serves (each tenant has its
    /// own, `tenants.rs`); authorizer hooks are told it (`HookContext::tenant`). None without.
    pub tenant: Option<String>,
    pub hook_timeout: std::time::Duration,
    pub session_lifetime_ms: i64,
    pub failed_auth_delay_ms: u64,
    /// rustls config for SSL / SASL_SSL listeners (None if none is configured).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub tls_principal: tls::PrincipalBuilder,
    /// Validates OAUTHBEARER tokens and, with `plain_token_auth`, PLAIN `token:<jwt>` passwords.
    pub jwt: jwt::JwtValidator,
    pub plain_token_auth: bool,
    /// Credentials from the SCRAM credential hook.
    pub scram_hook_cache: ScramCredentialCache,
    /// Calls into the PLAIN authenticator hook (`net/sasl.rs`), for metrics.
    pub authenticator_hook_stats: crate::metrics::hooks::HookStats,
    /// Calls into the OAUTHBEARER validator hook, for metrics.
    pub oauthbearer_hook_stats: crate::metrics::hooks::HookStats,
    /// Derives the salts unknown SCRAM users get (random per server start).
    unknown_user_secret: [u8; 32],
}

impl Security {
    /// The security of a server: config, plus the state stored in `stored_in` (the
    /// storage's metadata).
    pub fn new(
        config: &ServerConfig,
        stored_in: Option<Arc<Metadata>>,
        hooks: Option<Arc<dyn Hooks>>,
    ) -> Result<Security, String> {
        let protocols = config.security_protocols()?;
        let mut plain_users = HashMap::new();
        let mut scram = HashMap::new();
        for entry in &config.sasl_users {
            let (user, password) = entry
                .split_once(':')
                .ok_or_else(|| format!("sasl_users: {entry:?} is not USER:PASSWORD"))?;
            if user.is_empty() {
                return Err(format!("sasl_users: {entry:?} has an empty user name"));
            }
            plain_users.insert(user.to_string(), password.to_string());
            for alg in [ScramAlg::Sha256, ScramAlg::Sha512] {
                if config
                    .sasl_enabled_mechanisms
                    .iter()
                    .any(|m| m == alg.mechanism())
                {
                    let cred = ScramCredential::from_password(
                        alg,
                        password,
                        &scram::random_bytes(),
                        ScramAlg::MIN_ITERATIONS,
                    );
                    scram.insert((alg, user.to_string()), cred);
                }
            }
        }
        let stored: Stored = match stored_in.as_ref().map(|m| m.security()).transpose() {
            Err(e) => return Err(format!("cannot read the stored ACLs and credentials: {e}")),
            Ok(None | Some(None)) => Stored::default(),
            Ok(Some(Some(data))) => serde_json::from_slice(&data)
                .map_err(|e| format!("stored ACLs and credentials are unreadable: {e}"))?,
        };
        let admin_scram = admin_credentials(stored.scram);
        for (alg, user) in admin_scram.keys() {
            if plain_users.contains_key(user) {
                tracing::warn!(
                    user,
                    mechanism = alg.mechanism(),
                    "a stored SCRAM credential is ignored: the user is defined in sasl_users, which wins"
                );
            }
        }
        let super_users: HashSet<Principal> = config
            .super_users
            .iter()
            .map(|s| {
                Principal::parse(s)
                    .ok_or_else(|| format!("super_users: {s:?} is not TYPE:NAME (e.g. User:admin)"))
            })
            .collect::<Result<_, _>>()?;
        let needs_tls = protocols.values().any(|p| p.is_tls());
        let tls = if needs_tls {
            Some(Arc::new(tls::server_config(config)?))
        } else {
            None
        };
        let jwt = jwt::JwtValidator::from_files(
            &config.oauthbearer_public_key_files,
            config.oauthbearer_issuer.clone(),
            config.oauthbearer_audience.clone(),
        )?;
        let wants_tokens = config.plain_token_auth
            || config
                .sasl_enabled_mechanisms
                .iter()
                .any(|m| m == "OAUTHBEARER");
        let token_hook = hooks
            .as_ref()
            .is_some_and(|h| h.has_oauthbearer_validator());
        if wants_tokens && !jwt.is_configured() && !token_hook {
            return Err(
                "OAUTHBEARER and plain_token_auth need oauthbearer_public_key_files or an oauthbearer_validator hook".into(),
            );
        }
        if config.oauthbearer_validator.is_some() && !token_hook {
            return Err(
                "oauthbearer_validator needs a Python hook (kop.Server(oauthbearer_validator=...))"
                    .into(),
            );
        }
        if config.scram_credentials.is_some()
            && !hooks.as_ref().is_some_and(|h| h.has_scram_credentials())
        {
            return Err(
                "scram_credentials needs a Python hook (kop.Server(scram_credentials=...))".into(),
            );
        }
        let kind = AuthorizerKind::parse(&config.authorizer)?;
        if kind == AuthorizerKind::Hook && !hooks.as_ref().is_some_and(|h| h.has_authorizer()) {
            return Err(format!(
                "authorizer {:?} needs a Python hook (kop.Server(authorizer=...))",
                config.authorizer
            ));
        }
        if config.authenticator.is_some() && !hooks.as_ref().is_some_and(|h| h.has_authenticator())
        {
            return Err("authenticator needs a Python hook (kop.Server(authenticator=...))".into());
        }
        let hook_timeout = std::time::Duration::from_millis(config.hook_timeout_ms.max(1) as u64);
        let hook_cache_ttl =
            std::time::Duration::from_millis(config.hook_cache_ttl_ms.max(0) as u64);
        let authorizer = Authorizer::new(
            kind,
            super_users,
            hooks.clone(),
            hook_timeout,
            hook_cache_ttl,
        );
        authorizer.set_acls(stored.acls);
        Ok(Security {
            protocols,
            mechanisms: config.sasl_enabled_mechanisms.clone(),
            plain_users,
            scram: RwLock::new(scram),
            admin_scram: RwLock::new(admin_scram),
            stored_in,
            store_lock: parking_lot::Mutex::new(()),
            authorizer,
            hooks,
            tenant: (!config.tenants.is_empty())
                .then(|| format!("{}/{}", config.pulsar_tenant, config.pulsar_namespace)),
            hook_timeout,
            session_lifetime_ms: config.sasl_session_lifetime_ms,
            failed_auth_delay_ms: config.failed_authentication_delay_ms.max(0) as u64,
            tls,
            tls_principal: tls::PrincipalBuilder::parse(&config.ssl_principal_mapping_rules)?,
            jwt,
            plain_token_auth: config.plain_token_auth,
            scram_hook_cache: ScramCredentialCache::new(hook_cache_ttl),
            authenticator_hook_stats: Default::default(),
            oauthbearer_hook_stats: Default::default(),
            unknown_user_secret: [scram::random_bytes(), scram::random_bytes()]
                .concat()
                .try_into()
                .expect("32 bytes"),
        })
    }

    /// The security protocol of a listener (validated at start, so always known).
    pub fn protocol(&self, listener: &str) -> SecurityProtocol {
        self.protocols
            .get(listener)
            .copied()
            .unwrap_or(SecurityProtocol::Plaintext)
    }

    pub fn mechanism_enabled(&self, name: &str) -> bool {
        self.mechanisms.iter().any(|m| m == name)
    }

    /// PLAIN: checks a user's password against the configured users.
    pub fn check_plain(&self, user: &str, password: &str) -> bool {
        self.plain_users
            .get(user)
            .is_some_and(|p| plain::constant_time_eq(p.as_bytes(), password.as_bytes()))
    }

    /// Whether `user` is defined in `sasl_users`. Such users are static, like the users of
    /// Kafka's JAAS file: their password (PLAIN and SCRAM) changes in the configuration only,
    /// so AlterUserScramCredentials refuses them rather than store a credential that the
    /// configured password would shadow (and PLAIN would ignore).
    pub fn is_configured_user(&self, user: &str) -> bool {
        self.plain_users.contains_key(user)
    }

    /// A user's SCRAM credential: from the config, else one set through the admin API.
    pub fn scram_credential(&self, alg: ScramAlg, user: &str) -> Option<ScramCredential> {
        let key = (alg, user.to_string());
        self.scram
            .read()
            .get(&key)
            .cloned()
            .or_else(|| self.admin_scram.read().get(&key).cloned())
    }

    /// The credential a SCRAM login of `user` is checked against: a configured user, one set
    /// through the admin API, else the credential hook's answer. An unknown user, and a hook
    /// that fails (logged), get a credential that fails like a wrong password.
    pub async fn scram_login_credential(
        &self,
        alg: ScramAlg,
        user: &str,
        conn: LoginConnection,
    ) -> ScramCredential {
        if let Some(cred) = self.scram_credential(alg, user) {
            return cred;
        }
        if let Some(hooks) = self.hooks.as_ref().filter(|h| h.has_scram_credentials()) {
            let found = self
                .scram_hook_cache
                .lookup(hooks.as_ref(), self.hook_timeout, alg, user, conn)
                .await;
            match found {
                Ok(Some(cred)) => return cred,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(user, mechanism = alg.mechanism(), error = %e, "SCRAM credential hook failed; the login fails");
                }
            }
        }
        ScramCredential::unknown_user(alg, user, &self.unknown_user_secret)
    }

    /// An OAUTHBEARER token (or a PLAIN `token:<jwt>` password): the validator hook decides
    /// when one is installed, else the configured JWT keys. Err says why it is rejected.
    pub async fn validate_bearer_token(
        &self,
        token: &str,
        conn: LoginConnection,
    ) -> Result<Principal, String> {
        match self
            .hooks
            .as_ref()
            .filter(|h| h.has_oauthbearer_validator())
        {
            Some(hooks) => {
                credential_hooks::validate_oauthbearer(
                    hooks.as_ref(),
                    self.hook_timeout,
                    token,
                    conn,
                    &self.oauthbearer_hook_stats,
                )
                .await
            }
            None => self
                .jwt
                .validate(token, crate::now_ms() / 1000)
                .map(|claims| Principal::user(claims.subject)),
        }
    }

    /// Forgets every cached hook answer: authorizer decisions and SCRAM credentials.
    pub fn invalidate_hook_caches(&self) {
        self.authorizer.invalidate();
        self.scram_hook_cache.invalidate();
    }

    /// Users with admin-managed SCRAM credentials: (user, mechanism, iterations).
    pub fn admin_scram_users(&self) -> Vec<(String, ScramAlg, i32)> {
        let mut out: Vec<_> = self
            .admin_scram
            .read()
            .iter()
            .map(|((alg, user), c)| (user.clone(), *alg, c.iterations))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1.mechanism()).cmp(&(&b.0, b.1.mechanism())));
        out
    }

    /// Sets (Some) or removes (None) an admin-managed SCRAM credential and stores the state.
    pub fn set_admin_scram(
        &self,
        changes: Vec<(String, ScramAlg, Option<ScramCredential>)>,
    ) -> std::io::Result<()> {
        let _guard = self.store_lock.lock();
        {
            let mut creds = self.admin_scram.write();
            for (user, alg, cred) in changes {
                match cred {
                    Some(c) => {
                        creds.insert((alg, user), c);
                    }
                    None => {
                        creds.remove(&(alg, user));
                    }
                }
            }
        }
        self.persist()
    }

    /// Adds ACLs and stores them.
    pub fn add_acls(&self, new: &[acl::AclBinding]) -> std::io::Result<()> {
        let _guard = self.store_lock.lock();
        self.authorizer.add_acls(new);
        self.persist()
    }

    /// Deletes the ACLs matching each filter, stores the rest; returns what each removed.
    pub fn delete_acls(
        &self,
        filters: &[acl::AclFilter],
    ) -> std::io::Result<Vec<Vec<acl::AclBinding>>> {
        let _guard = self.store_lock.lock();
        let (removed, _) = self.authorizer.delete_acls(filters);
        self.persist()?;
        Ok(removed)
    }

    /// Takes the stored ACLs and SCRAM credentials again (another kop instance sharing the
    /// storage changed them).
    pub fn reload_stored(&self) -> std::io::Result<()> {
        let Some(metadata) = &self.stored_in else {
            return Ok(());
        };
        let _guard = self.store_lock.lock();
        let stored: Stored = match metadata.security()? {
            None => Stored::default(),
            Some(data) => serde_json::from_slice(&data)?,
        };
        self.authorizer.set_acls(stored.acls);
        *self.admin_scram.write() = admin_credentials(stored.scram);
        Ok(())
    }

    fn persist(&self) -> std::io::Result<()> {
        let Some(metadata) = &self.stored_in else {
            return Ok(());
        };
        let stored = Stored {
            acls: self.authorizer.acls(),
            scram: self
                .admin_scram
                .read()
                .iter()
                .map(|((alg, user), c)| StoredScram {
                    user: user.clone(),
                    mechanism: alg.mechanism().to_string(),
                    salt: c.salt.clone(),
                    iterations: c.iterations,
                    stored_key: c.stored_key.clone(),
                    server_key: c.server_key.clone(),
                })
                .collect(),
        };
        metadata.save_security(&serde_json::to_vec(&stored)?)
    }
}

fn admin_credentials(stored: Vec<StoredScram>) -> HashMap<(ScramAlg, String), ScramCredential> {
    let mut out = HashMap::new();
    for c in stored {
        if let Some(alg) = ScramAlg::from_mechanism(&c.mechanism) {
            out.insert(
                (alg, c.user),
                ScramCredential {
                    salt: c.salt,
                    iterations: c.iterations,
                    stored_key: c.stored_key,
                    server_key: c.server_key,
                },
            );
        }
    }
    out
}
