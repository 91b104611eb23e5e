//! The bridge to Python hooks (authenticator, authorizer).
//!
//! Tokio workers never touch the interpreter: a request's question goes over a channel to one
//! dedicated thread that stays attached to Python and only hands it to the Python adapter
//! (`kop.hooks`), which runs the user's callable on its own threads / asyncio loop and answers
//! through a `Reply` that completes a tokio oneshot. So a slow or hanging hook never blocks the
//! bridge thread; the Rust side times out and denies.

use std::net::IpAddr;
use std::sync::{mpsc, Arc};

use kop_core::auth::acl::{Operation, ResourceType};
use kop_core::auth::authorizer::{HookContext, HookDecision, Hooks, LoginAttempt};
use kop_core::auth::Principal;
use parking_lot::Mutex;
use pyo3::prelude::*;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(Python<'_>) + Send>;
type AuthorizeTx = oneshot::Sender<Result<Vec<HookDecision>, String>>;
type AuthenticateTx = oneshot::Sender<Result<Option<Principal>, String>>;

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

pub struct PyHooks {
    // Arc so a tokio worker can hand them to the bridge thread without attaching.
    authenticator: Option<Arc<Py<PyAny>>>,
    authorizer: Option<Arc<Py<PyAny>>>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl PyHooks {
    /// Starts the bridge thread. `authenticator` / `authorizer` are `kop.hooks` adapters with
    /// `submit(args..., reply)` methods that return at once.
    pub fn start(
        authenticator: Option<Py<PyAny>>,
        authorizer: Option<Py<PyAny>>,
    ) -> std::io::Result<PyHooks> {
        let (tx, rx) = mpsc::channel::<Job>();
        // detach() needs a Sync closure; only this thread ever locks it.
        let rx = Mutex::new(rx);
        std::thread::Builder::new()
            .name("kop-py-hooks".into())
            .spawn(move || {
                // Attached once; detached only while waiting for the next question.
                Python::attach(|py| {
                    while let Ok(job) = py.detach(|| rx.lock().recv()) {
                        job(py);
                    }
                });
            })?;
        Ok(PyHooks {
            authenticator: authenticator.map(Arc::new),
            authorizer: authorizer.map(Arc::new),
            jobs: Mutex::new(tx),
        })
    }

    fn send(&self, job: Job) -> bool {
        self.jobs.lock().send(job).is_ok()
    }
}

fn ip(h: IpAddr) -> String {
    h.to_string()
}

impl Hooks for PyHooks {
    fn has_authorizer(&self) -> bool {
        self.authorizer.is_some()
    }

    fn has_authenticator(&self) -> bool {
        self.authenticator.is_some()
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
        // If the bridge is gone the sender inside the job is dropped: the receiver sees it.
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
