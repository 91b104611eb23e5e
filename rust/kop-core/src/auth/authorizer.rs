//! Authorization: the configured authorizer, super users, and the decision cache in front of
//! a Python hook (TTL per decision, coalesced misses, invalidation).
//!
//! `allow-all`, `deny-all` and Kafka ACLs are decided in Rust and never touch Python. A hook
//! is asked at most once per request (every cache miss of the request in one batch).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use super::acl::{self, AclBinding, AclFilter, Operation, ResourceType};
use super::scram::{ScramAlg, ScramCredential};
use super::Principal;

/// The configured authorizer (`authorizer` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizerKind {
    /// Everything is allowed (kop's default, like Kafka without an authorizer).
    AllowAll,
    /// Everything is denied except to super users.
    DenyAll,
    /// Kafka ACLs (CreateAcls/DescribeAcls/DeleteAcls), stored with the data.
    Acl,
    /// A Python hook (`module:callable`, or `kop.Server(authorizer=...)`).
    Hook,
}

impl AuthorizerKind {
    pub fn parse(s: &str) -> Result<AuthorizerKind, String> {
        match s {
            "allow-all" => Ok(AuthorizerKind::AllowAll),
            "deny-all" => Ok(AuthorizerKind::DenyAll),
            "acl" => Ok(AuthorizerKind::Acl),
            "python" => Ok(AuthorizerKind::Hook),
            s if s.contains(':') && !s.starts_with(':') && !s.ends_with(':') => {
                Ok(AuthorizerKind::Hook)
            }
            other => Err(format!(
                "authorizer: {other:?} is not one of allow-all, deny-all, acl, module:callable"
            )),
        }
    }
}

/// Who asks, for a hook.
#[derive(Debug, Clone)]
pub struct HookContext {
    pub principal: Principal,
    pub listener: String,
    pub security_protocol: &'static str,
    pub client_host: IpAddr,
    pub client_port: u16,
    /// The API of the request that needs the decision (e.g. "Produce").
    pub api: String,
    /// With the `tenants` option, the `TENANT/NS` the connection was bound to (the hook
    /// decides against that namespace); None without. Each tenant has its own `Security`, so
    /// the decision cache is per tenant already.
    pub tenant: Option<String>,
}

/// What a hook decided about one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookDecision {
    pub allowed: bool,
    /// How long the decision may be cached; None = the configured default.
    pub ttl_ms: Option<i64>,
}

/// A SASL/PLAIN login for the authenticator hook.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub mechanism: String,
    pub username: String,
    pub password: String,
    pub listener: String,
    pub security_protocol: &'static str,
    pub client_host: IpAddr,
    pub client_port: u16,
}

/// Where a login comes from, for the authentication hooks.
#[derive(Debug, Clone)]
pub struct LoginConnection {
    pub listener: String,
    pub security_protocol: &'static str,
    pub client_host: IpAddr,
    pub client_port: u16,
}

/// The SCRAM credential hook's answer: the user's credential (None: no such user) and how
/// long it may be cached (None = the configured default).
#[derive(Debug, Clone)]
pub struct HookScramCredential {
    pub credential: Option<ScramCredential>,
    pub ttl_ms: Option<i64>,
}

/// The Python side (implemented in kop-py). Every call returns at once; the answer comes on
/// the oneshot, from a thread that is not a tokio worker.
pub trait Hooks: Send + Sync {
    fn has_authorizer(&self) -> bool;
    fn has_authenticator(&self) -> bool;
    fn has_scram_credentials(&self) -> bool {
        false
    }
    fn has_oauthbearer_validator(&self) -> bool {
        false
    }
    /// The stored SCRAM credential of `username` for `alg`.
    fn scram_credential(
        &self,
        alg: ScramAlg,
        username: String,
        conn: LoginConnection,
    ) -> oneshot::Receiver<Result<HookScramCredential, String>> {
        let _ = (alg, username, conn);
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err("no SCRAM credential hook".into()));
        rx
    }
    /// Validates an OAUTHBEARER token: Ok(Some(principal)) accepts, Ok(None) rejects.
    fn validate_oauthbearer(
        &self,
        token: String,
        conn: LoginConnection,
    ) -> oneshot::Receiver<Result<Option<Principal>, String>> {
        let _ = (token, conn);
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err("no OAUTHBEARER validator hook".into()));
        rx
    }
    fn authorize(
        &self,
        ctx: HookContext,
        actions: Vec<(Operation, ResourceType, String)>,
    ) -> oneshot::Receiver<Result<Vec<HookDecision>, String>>;
    /// Ok(Some(principal)) accepts, Ok(None) rejects.
    fn authenticate(
        &self,
        login: LoginAttempt,
    ) -> oneshot::Receiver<Result<Option<Principal>, String>>;
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    principal: Principal,
    listener: String,
    host: IpAddr,
    op: Operation,
    rtype: ResourceType,
    name: String,
}

enum Slot {
    Ready { allowed: bool, until: Instant },
    Pending(watch::Receiver<Option<bool>>),
}

/// Bounds the cache; past it, everything is forgotten at once (cheap and rare).
const MAX_CACHED: usize = 100_000;

pub struct Authorizer {
    pub kind: AuthorizerKind,
    super_users: std::collections::HashSet<Principal>,
    acls: RwLock<Vec<AclBinding>>,
    hooks: Option<Arc<dyn Hooks>>,
    cache: Mutex<HashMap<Key, Slot>>,
    hook_timeout: Duration,
    default_ttl: Duration,
    /// How many times the hook was asked (one per batch), for tests and metrics.
    pub hook_calls: std::sync::atomic::AtomicU64,
    /// Calls, latency and cache hits, for metrics.
    pub hook_stats: crate::metrics::hooks::HookStats,
}

impl Authorizer {
    pub fn new(
        kind: AuthorizerKind,
        super_users: std::collections::HashSet<Principal>,
        hooks: Option<Arc<dyn Hooks>>,
        hook_timeout: Duration,
        default_ttl: Duration,
    ) -> Authorizer {
        Authorizer {
            kind,
            super_users,
            acls: RwLock::new(Vec::new()),
            hooks,
            cache: Mutex::new(HashMap::new()),
            hook_timeout,
            default_ttl,
            hook_calls: Default::default(),
            hook_stats: Default::default(),
        }
    }

    pub fn is_super_user(&self, p: &Principal) -> bool {
        self.super_users.contains(p)
    }

    /// Forgets every cached hook decision.
    pub fn invalidate(&self) {
        self.cache.lock().clear();
    }

    // -- ACL store ------------------------------------------------------------------------

    pub fn acls(&self) -> Vec<AclBinding> {
        self.acls.read().clone()
    }

    pub fn set_acls(&self, acls: Vec<AclBinding>) {
        *self.acls.write() = acls;
    }

    pub fn describe_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls
            .read()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Adds bindings (existing ones are kept once); returns the new full list.
    pub fn add_acls(&self, new: &[AclBinding]) -> Vec<AclBinding> {
        let mut acls = self.acls.write();
        for b in new {
            if !acls.contains(b) {
                acls.push(b.clone());
            }
        }
        acls.clone()
    }

    /// Removes every binding matching a filter; returns (removed per filter, the new list).
    pub fn delete_acls(&self, filters: &[AclFilter]) -> (Vec<Vec<AclBinding>>, Vec<AclBinding>) {
        let mut acls = self.acls.write();
        let mut removed = Vec::with_capacity(filters.len());
        for f in filters {
            removed.push(acls.iter().filter(|b| f.matches(b)).cloned().collect());
        }
        acls.retain(|b| !filters.iter().any(|f| f.matches(b)));
        (removed, acls.clone())
    }

    // -- decisions ------------------------------------------------------------------------

    /// Decides every action for one request: allow-all/deny-all/ACLs at once; a hook is asked
    /// once for all cache misses together.
    pub async fn authorize(
        &self,
        ctx: &HookContext,
        actions: &[(Operation, ResourceType, &str)],
    ) -> Vec<bool> {
        if self.kind == AuthorizerKind::AllowAll || actions.is_empty() {
            return vec![true; actions.len()];
        }
        if self.is_super_user(&ctx.principal) {
            return vec![true; actions.len()];
        }
        match self.kind {
            AuthorizerKind::AllowAll => vec![true; actions.len()],
            AuthorizerKind::DenyAll => vec![false; actions.len()],
            AuthorizerKind::Acl => {
                let acls = self.acls.read();
                let host = ctx.client_host.to_string();
                actions
                    .iter()
                    .map(|&(op, rt, name)| acl::decide(&acls, &ctx.principal, &host, op, rt, name))
                    .collect()
            }
            AuthorizerKind::Hook => self.authorize_with_hook(ctx, actions).await,
        }
    }

    async fn authorize_with_hook(
        &self,
        ctx: &HookContext,
        actions: &[(Operation, ResourceType, &str)],
    ) -> Vec<bool> {
        let Some(hooks) = self.hooks.clone().filter(|h| h.has_authorizer()) else {
            tracing::error!("authorizer is a Python hook but none is installed; denying");
            return vec![false; actions.len()];
        };
        let now = Instant::now();
        let mut out: Vec<Option<bool>> = vec![None; actions.len()];
        let mut waits = Vec::new();
        let mut misses: Vec<(usize, Key)> = Vec::new();
        let mut senders = Vec::new();
        {
            let mut cache = self.cache.lock();
            if cache.len() > MAX_CACHED {
                cache.clear();
            }
            for (i, &(op, rtype, name)) in actions.iter().enumerate() {
                let key = Key {
                    principal: ctx.principal.clone(),
                    listener: ctx.listener.clone(),
                    host: ctx.client_host,
                    op,
                    rtype,
                    name: name.to_string(),
                };
                match cache.get(&key) {
                    Some(Slot::Ready { allowed, until }) if *until > now => {
                        self.hook_stats.cache_hit(1);
                        out[i] = Some(*allowed);
                        continue;
                    }
                    // Asked by another request, or earlier in this one (its Pending is
                    // inserted below): wait for that answer instead of asking twice.
                    Some(Slot::Pending(rx)) if rx.has_changed().is_ok() => {
                        waits.push((i, rx.clone()));
                        continue;
                    }
                    _ => {}
                }
                let (tx, rx) = watch::channel(None);
                cache.insert(key.clone(), Slot::Pending(rx));
                senders.push(tx);
                misses.push((i, key));
            }
        }
        if !misses.is_empty() {
            self.hook_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let asked = misses
                .iter()
                .map(|(_, k)| (k.op, k.rtype, k.name.clone()))
                .collect();
            let asked_at = Instant::now();
            let answer =
                tokio::time::timeout(self.hook_timeout, hooks.authorize(ctx.clone(), asked)).await;
            let answered = matches!(&answer, Ok(Ok(Ok(d))) if d.len() == misses.len());
            self.hook_stats.called(asked_at.elapsed(), answered);
            let decisions = match answer {
                Ok(Ok(Ok(d))) if d.len() == misses.len() => Ok(d),
                Ok(Ok(Ok(d))) => Err(format!(
                    "hook answered {} decisions for {} actions",
                    d.len(),
                    misses.len()
                )),
                Ok(Ok(Err(e))) => Err(e),
                Ok(Err(_)) => Err("hook bridge went away".into()),
                Err(_) => Err(format!(
                    "hook did not answer within {} ms",
                    self.hook_timeout.as_millis()
                )),
            };
            let mut cache = self.cache.lock();
            let now = Instant::now();
            match decisions {
                Ok(decisions) => {
                    for (((i, key), d), tx) in misses.into_iter().zip(decisions).zip(senders) {
                        out[i] = Some(d.allowed);
                        let ttl = d
                            .ttl_ms
                            .map_or(self.default_ttl, |t| Duration::from_millis(t.max(0) as u64));
                        if ttl.is_zero() {
                            cache.remove(&key);
                        } else {
                            cache.insert(
                                key,
                                Slot::Ready {
                                    allowed: d.allowed,
                                    until: now + ttl,
                                },
                            );
                        }
                        let _ = tx.send(Some(d.allowed));
                    }
                }
                Err(why) => {
                    tracing::warn!(principal = %ctx.principal, api = %ctx.api, error = %why, "authorizer hook failed; denying");
                    for ((i, key), tx) in misses.into_iter().zip(senders) {
                        out[i] = Some(false);
                        cache.remove(&key);
                        let _ = tx.send(Some(false));
                    }
                }
            }
        }
        for (i, mut rx) in waits {
            let got = tokio::time::timeout(self.hook_timeout, rx.wait_for(|v| v.is_some())).await;
            out[i] = Some(matches!(got, Ok(Ok(v)) if *v == Some(true)));
        }
        out.into_iter().map(|v| v.unwrap_or(false)).collect()
    }
}

impl Authorizer {
    /// Kafka's fallback for InitProducerId: some ACL allows the principal to WRITE a topic.
    /// Only ACLs can answer this (a hook cannot enumerate topics).
    pub fn may_write_some_topic(&self, principal: &Principal) -> bool {
        if self.kind != AuthorizerKind::Acl {
            return false;
        }
        let who = principal.to_string();
        let any = format!("{}:*", principal.principal_type);
        self.acls.read().iter().any(|b| {
            b.resource_type == ResourceType::Topic
                && b.permission == acl::Permission::Allow
                && matches!(b.operation, Operation::Write | Operation::All)
                && (b.principal == who || b.principal == any)
        })
    }
}
