//! The authentication side of the Python hooks: SCRAM credentials (cached in Rust per user and
//! mechanism, for the hook's TTL) and OAUTHBEARER token validation. Both fail closed: an
//! exception, a malformed answer or a timeout fails the login, and is logged.
//!
//! A login crosses to Python at most once: a cached credential is answered in Rust. Unknown
//! users are not cached, so a user the hook learns about can log in at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::authorizer::{Hooks, LoginConnection};
use super::scram::{ScramAlg, ScramCredential};
use super::Principal;

/// Bounds the cache; past it, everything is forgotten at once (cheap and rare).
const MAX_CACHED: usize = 100_000;

/// Credentials the SCRAM credential hook gave, until their TTL.
pub struct ScramCredentialCache {
    entries: Mutex<HashMap<(ScramAlg, String), (ScramCredential, Instant)>>,
    default_ttl: Duration,
    /// How many times the hook was asked, for tests and metrics.
    pub hook_calls: AtomicU64,
    /// Calls, latency and cache hits, for metrics.
    pub hook_stats: crate::metrics::hooks::HookStats,
}

impl ScramCredentialCache {
    pub fn new(default_ttl: Duration) -> ScramCredentialCache {
        ScramCredentialCache {
            entries: Mutex::new(HashMap::new()),
            default_ttl,
            hook_calls: AtomicU64::new(0),
            hook_stats: Default::default(),
        }
    }

    pub fn invalidate(&self) {
        self.entries.lock().clear();
    }

    /// The hook's credential of `user` for `alg`: Ok(None) when the hook knows no such user,
    /// Err when it failed (raised, answered nonsense, or took longer than `timeout`).
    pub async fn lookup(
        &self,
        hooks: &dyn Hooks,
        timeout: Duration,
        alg: ScramAlg,
        user: &str,
        conn: LoginConnection,
    ) -> Result<Option<ScramCredential>, String> {
        let key = (alg, user.to_string());
        if let Some((cred, until)) = self.entries.lock().get(&key) {
            if *until > Instant::now() {
                self.hook_stats.cache_hit(1);
                return Ok(Some(cred.clone()));
            }
        }
        self.hook_calls.fetch_add(1, Ordering::Relaxed);
        let asked_at = Instant::now();
        let answer =
            tokio::time::timeout(timeout, hooks.scram_credential(alg, user.to_string(), conn))
                .await;
        self.hook_stats
            .called(asked_at.elapsed(), matches!(answer, Ok(Ok(Ok(_)))));
        let answer = match answer {
            Ok(Ok(Ok(a))) => a,
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) => return Err("hook bridge went away".into()),
            Err(_) => {
                return Err(format!(
                    "hook did not answer within {} ms",
                    timeout.as_millis()
                ))
            }
        };
        let Some(cred) = answer.credential else {
            return Ok(None);
        };
        cred.check(alg)?;
        let ttl = answer
            .ttl_ms
            .map_or(self.default_ttl, |t| Duration::from_millis(t.max(0) as u64));
        if !ttl.is_zero() {
            let mut entries = self.entries.lock();
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
            entries.insert(key, (cred.clone(), Instant::now() + ttl));
        }
        Ok(Some(cred))
    }
}

/// Asks the OAUTHBEARER validator hook about a token: the principal, or why not.
pub async fn validate_oauthbearer(
    hooks: &dyn Hooks,
    timeout: Duration,
    token: &str,
    conn: LoginConnection,
    stats: &crate::metrics::hooks::HookStats,
) -> Result<Principal, String> {
    let asked_at = Instant::now();
    let answer =
        tokio::time::timeout(timeout, hooks.validate_oauthbearer(token.into(), conn)).await;
    // A rejected token is an answer; only a raise, a lost bridge or a timeout is a failure.
    stats.called(asked_at.elapsed(), matches!(answer, Ok(Ok(Ok(_)))));
    match answer {
        Ok(Ok(Ok(Some(principal)))) => Ok(principal),
        Ok(Ok(Ok(None))) => Err("rejected by the validator".into()),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "OAUTHBEARER validator hook failed; rejecting");
            Err("the validator failed".into())
        }
        Ok(Err(_)) => {
            tracing::warn!("OAUTHBEARER validator hook bridge went away; rejecting");
            Err("the validator failed".into())
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "OAUTHBEARER validator hook timed out; rejecting"
            );
            Err("the validator timed out".into())
        }
    }
}
