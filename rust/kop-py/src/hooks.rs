//! The bridge to Python hooks (authenticator, authorizer, SCRAM credentials, OAUTHBEARER
//! validator).
//!
//! Tokio workers never touch the interpreter: a request's question is queued in the quick lane
//! of the worker pool (`blocking.rs`), whose worker only hands it to the Python adapter
//! (`kop.hooks`), which runs the user's callable on its own threads / asyncio loop and answers
//! through a `Reply` that completes a tokio oneshot. So a slow or hanging hook never holds a
//! worker; the Rust side times out and denies.

use std::net::IpAddr;
use std::sync::Arc;

use kop_core::auth::acl::{Operation, ResourceType};
use kop_core::auth::authorizer::{
    HookContext, HookDecision, HookScramCredential, Hooks, LoginAttempt, LoginConnection,
};
use kop_core::auth::scram::{self, ScramAlg, ScramCredential};
use kop_core::auth::Principal;
use parking_lot::Mutex;
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::blocking::{Job, Lane, WorkerPool};
type AuthorizeTx = oneshot::Sender<Result<Vec<HookDecision>, String>>;
type AuthenticateTx = oneshot::Sender<Result<Option<Principal>, String>>;
type ScramCredentialTx = oneshot::Sender<Result<HookScramCredential, String>>;

/// Completes one authorization question: `ok([(allowed, ttl_ms | None), ...])` or `err(msg)`.
#[pyclass(module = "kop._native", frozen)]
pub struct AuthorizeReply {
    tx: Mutex<Option<AuthorizeTx>>,
}

#[pymethods]
impl AuthorizeReply {
    fn ok(&self, decisions: Vec<(bool, Option<i64>)>) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(Ok(decisions
                .into_iter()
                .map(|(allowed, ttl_ms)| HookDecision { allowed, ttl_ms })
                .collect()));
        }
    }

    fn err(&self, message: String) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(Err(message));
        }
    }
}

/// Completes one login: `ok("User:alice")` accepts as that principal, `ok(None)` rejects,
/// `err(msg)` fails (denied, logged).
#[pyclass(module = "kop._native", frozen)]
pub struct AuthenticateReply {
    tx: Mutex<Option<AuthenticateTx>>,
}

#[pymethods]
impl AuthenticateReply {
    fn ok(&self, principal: Option<String>) {
        if let Some(tx) = self.tx.lock().take() {
            let answer = match principal {
                None => Ok(None),
                Some(p) => Principal::parse(&p)
                    .map(Some)
                    .ok_or_else(|| format!("principal {p:?} is not TYPE:NAME")),
            };
            let _ = tx.send(answer);
        }
    }

    fn err(&self, message: String) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(Err(message));
        }
    }
}

/// Completes one SCRAM credential question: `ok(salt, iterations, stored_key, server_key,
/// ttl_ms)`, `ok_password(password, ttl_ms)` (kop derives the credential), `unknown()` (no such
/// user) or `err(msg)` (the login fails, logged).
#[pyclass(module = "kop._native", frozen)]
pub struct ScramCredentialReply {
    alg: ScramAlg,
    tx: Mutex<Option<ScramCredentialTx>>,
}

impl ScramCredentialReply {
    fn send(&self, answer: Result<HookScramCredential, String>) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(answer);
        }
    }
}

#[pymethods]
impl ScramCredentialReply {
    #[pyo3(signature = (salt, iterations, stored_key, server_key, ttl_ms=None))]
    fn ok(
        &self,
        salt: Vec<u8>,
        iterations: i32,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        ttl_ms: Option<i64>,
    ) {
        self.send(Ok(HookScramCredential {
            credential: Some(ScramCredential {
                salt,
                iterations,
                stored_key,
                server_key,
            }),
            ttl_ms,
        }));
    }

    /// Derives the credential from a password with a random salt and Kafka's minimum
    /// iteration count; the PBKDF2 rounds run without the GIL, on the caller's (hook) thread.
    #[pyo3(signature = (password, ttl_ms=None))]
    fn ok_password(&self, py: Python<'_>, password: String, ttl_ms: Option<i64>) {
        let alg = self.alg;
        let credential = py.detach(|| {
            ScramCredential::from_password(
                alg,
                &password,
                &scram::random_bytes(),
                ScramAlg::MIN_ITERATIONS,
            )
        });
        self.send(Ok(HookScramCredential {
            credential: Some(credential),
            ttl_ms,
        }));
    }

    fn unknown(&self) {
        self.send(Ok(HookScramCredential {
            credential: None,
            ttl_ms: None,
        }));
    }

    fn err(&self, message: String) {
        self.send(Err(message));
    }
}

pub struct PyHooks {
    // Arc so a tokio worker can hand them to a pool worker without attaching.
    authenticator: Option<Arc<Py<PyAny>>>,
    authorizer: Option<Arc<Py<PyAny>>>,
    scram_credentials: Option<Arc<Py<PyAny>>>,
    oauthbearer_validator: Option<Arc<Py<PyAny>>>,
    pool: Arc<WorkerPool>,
}

/// The Python hooks of a server (`kop.hooks` adapters), any of them absent.
pub struct HookAdapters {
    pub authenticator: Option<Py<PyAny>>,
    pub authorizer: Option<Py<PyAny>>,
    pub scram_credentials: Option<Py<PyAny>>,
    pub oauthbearer_validator: Option<Py<PyAny>>,
}

impl PyHooks {
    /// The adapters have `submit(args..., reply)` methods that return at once; `pool` runs
    /// them.
    pub fn new(adapters: HookAdapters, pool: Arc<WorkerPool>) -> PyHooks {
        PyHooks {
            authenticator: adapters.authenticator.map(Arc::new),
            authorizer: adapters.authorizer.map(Arc::new),
            scram_credentials: adapters.scram_credentials.map(Arc::new),
            oauthbearer_validator: adapters.oauthbearer_validator.map(Arc::new),
            pool,
        }
    }

    /// If the pool is gone the sender inside the job is dropped: the receiver sees it.
    fn send(&self, job: Job) {
        self.pool.submit(Lane::Quick, job);
    }
}

fn ip(h: IpAddr) -> String {
    h.to_string()
}

/// `kop.ConnectionInfo`'s fields.
fn conn_tuple(c: LoginConnection) -> (String, &'static str, String, u16) {
    (
        c.listener,
        c.security_protocol,
        ip(c.client_host),
        c.client_port,
    )
}

impl Hooks for PyHooks {
    fn has_authorizer(&self) -> bool {
        self.authorizer.is_some()
    }

    fn has_authenticator(&self) -> bool {
        self.authenticator.is_some()
    }

    fn has_scram_credentials(&self) -> bool {
        self.scram_credentials.is_some()
    }

    fn has_oauthbearer_validator(&self) -> bool {
        self.oauthbearer_validator.is_some()
    }

    fn scram_credential(
        &self,
        alg: ScramAlg,
        username: String,
        conn: LoginConnection,
    ) -> oneshot::Receiver<Result<HookScramCredential, String>> {
        let (tx, rx) = oneshot::channel();
        let Some(hook) = self.scram_credentials.clone() else {
            let _ = tx.send(Err("no SCRAM credential hook".into()));
            return rx;
        };
        let job: Job = Box::new(move |py| {
            let reply = match Py::new(
                py,
                ScramCredentialReply {
                    alg,
                    tx: Mutex::new(Some(tx)),
                },
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create the hook reply");
                    return;
                }
            };
            let args = (
                alg.mechanism(),
                username,
                conn_tuple(conn),
                reply.clone_ref(py),
            );
            if let Err(e) = hook.call_method1(py, "submit", args) {
                reply.get().err(format!("SCRAM credential hook: {e}"));
            }
        });
        self.send(job);
        rx
    }

    fn validate_oauthbearer(
        &self,
        token: String,
        conn: LoginConnection,
    ) -> oneshot::Receiver<Result<Option<Principal>, String>> {
        let (tx, rx) = oneshot::channel();
        let Some(hook) = self.oauthbearer_validator.clone() else {
            let _ = tx.send(Err("no OAUTHBEARER validator hook".into()));
            return rx;
        };
        let job: Job = Box::new(move |py| {
            // The answer is a principal or nothing, as for the authenticator.
            let reply = match Py::new(
                py,
                AuthenticateReply {
                    tx: Mutex::new(Some(tx)),
                },
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create the hook reply");
                    return;
                }
            };
            if let Err(e) =
                hook.call_method1(py, "submit", (token, conn_tuple(conn), reply.clone_ref(py)))
            {
                reply.get().err(format!("OAUTHBEARER validator hook: {e}"));
            }
        });
        self.send(job);
        rx
    }

    fn authorize(
        &self,
        ctx: HookContext,
        actions: Vec<(Operation, ResourceType, String)>,
    ) -> oneshot::Receiver<Result<Vec<HookDecision>, String>> {
        let (tx, rx) = oneshot::channel();
        let Some(hook) = self.authorizer.clone() else {
            let _ = tx.send(Err("no authorizer hook".into()));
            return rx;
        };
        let job: Job = Box::new(move |py| {
            let reply = match Py::new(
                py,
                AuthorizeReply {
                    tx: Mutex::new(Some(tx)),
                },
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create the hook reply");
                    return;
                }
            };
            let context = (
                (ctx.principal.principal_type, ctx.principal.name),
                ctx.listener,
                ctx.security_protocol,
                ip(ctx.client_host),
                ctx.client_port,
                ctx.api,
                ctx.tenant,
            );
            let actions: Vec<(i8, i8, String)> = actions
                .into_iter()
                .map(|(op, rt, name)| (op.code(), rt.code(), name))
                .collect();
            if let Err(e) = hook.call_method1(py, "submit", (context, actions, reply.clone_ref(py)))
            {
                reply.get().err(format!("authorizer hook: {e}"));
            }
        });
        self.send(job);
        rx
    }

    fn authenticate(
        &self,
        login: LoginAttempt,
    ) -> oneshot::Receiver<Result<Option<Principal>, String>> {
        let (tx, rx) = oneshot::channel();
        let Some(hook) = self.authenticator.clone() else {
            let _ = tx.send(Err("no authenticator hook".into()));
            return rx;
        };
        let job: Job = Box::new(move |py| {
            let reply = match Py::new(
                py,
                AuthenticateReply {
                    tx: Mutex::new(Some(tx)),
                },
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create the hook reply");
                    return;
                }
            };
            let conn = (
                login.listener,
                login.security_protocol,
                ip(login.client_host),
                login.client_port,
            );
            let args = (
                login.mechanism,
                login.username,
                login.password,
                conn,
                reply.clone_ref(py),
            );
            if let Err(e) = hook.call_method1(py, "submit", args) {
                reply.get().err(format!("authenticator hook: {e}"));
            }
        });
        self.send(job);
        rx
    }
}
