//! `kop._native`: the thin PyO3 layer over kop-core. Contract: docs/native-api.md.
//!
//! Every call that may block (start: storage recovery; stop; wait) detaches from the
//! interpreter, so Python threads and signal handlers keep running meanwhile. Rust's calls into
//! Python (hooks, the Pulsar bridge) run on one worker pool per server (`blocking.rs`).

mod blocking;
mod hooks;
mod log_bridge;
mod pulsar;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use kop_core::{RunningServer, ServerConfig};
use parking_lot::Mutex;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Hostile array counts on the wire must not abort the host process (see `alloc_guard`).
#[global_allocator]
static ALLOCATOR: kop_core::alloc_guard::GuardedAlloc = kop_core::alloc_guard::GuardedAlloc;

#[pyclass(module = "kop._native", frozen)]
struct NativeServer {
    config: ServerConfig,
    running: Mutex<Option<Arc<RunningServer>>>,
    authenticator: Option<Py<PyAny>>,
    authorizer: Option<Py<PyAny>>,
    scram_credentials: Option<Py<PyAny>>,
    oauthbearer_validator: Option<Py<PyAny>>,
    /// A started `kop.pulsar.PulsarBackend` for `pulsar://` storage.
    storage_backend: Option<Py<PyAny>>,
    /// With the `tenants` option: `TENANT/NS` → the started backend on that namespace.
    tenant_backends: Vec<(String, Py<PyAny>)>,
    /// Runs the hooks and the Pulsar bridge; its threads start on first use.
    pool: Arc<blocking::WorkerPool>,
}

fn to_py_err(err: io::Error) -> PyErr {
    match err.kind() {
        io::ErrorKind::InvalidInput => PyValueError::new_err(err.to_string()),
        _ => PyOSError::new_err(err.to_string()),
    }
}

/// `to_py_err`, except that an error the Pulsar bridge raised is raised again as it was (a
/// `PulsarStorageError`: start-up waits for Pulsar and tries again).
fn start_error(err: io::Error) -> PyErr {
    if !err.get_ref().is_some_and(|e| e.is::<pulsar::BridgeError>()) {
        return to_py_err(err);
    }
    match err
        .into_inner()
        .map(|e| e.downcast::<pulsar::BridgeError>())
    {
        Some(Ok(bridge)) => bridge.error,
        _ => unreachable!("checked above"),
    }
}

impl NativeServer {
    fn server(&self) -> Option<Arc<RunningServer>> {
        self.running.lock().clone()
    }
}

#[pymethods]
impl NativeServer {
    #[new]
    #[pyo3(signature = (config_json, authenticator=None, authorizer=None, scram_credentials=None, oauthbearer_validator=None, storage_backend=None, tenant_backends=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        config_json: &str,
        authenticator: Option<Py<PyAny>>,
        authorizer: Option<Py<PyAny>>,
        scram_credentials: Option<Py<PyAny>>,
        oauthbearer_validator: Option<Py<PyAny>>,
        storage_backend: Option<Py<PyAny>>,
        tenant_backends: Option<BTreeMap<String, Py<PyAny>>>,
    ) -> PyResult<Self> {
        let config = ServerConfig::from_json(config_json).map_err(PyValueError::new_err)?;
        Ok(NativeServer {
            config,
            running: Mutex::new(None),
            authenticator,
            authorizer,
            scram_credentials,
            oauthbearer_validator,
            storage_backend,
            tenant_backends: tenant_backends.unwrap_or_default().into_iter().collect(),
            pool: Arc::new(blocking::WorkerPool::new()),
        })
    }

    /// Opens storage, binds every listener and starts serving.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        if self.running.lock().is_some() {
            return Err(PyRuntimeError::new_err("server already started"));
        }
        let config = self.config.clone();
        let adapter = |h: &Option<Py<PyAny>>| h.as_ref().map(|h| h.clone_ref(py));
        let adapters = hooks::HookAdapters {
            authenticator: adapter(&self.authenticator),
            authorizer: adapter(&self.authorizer),
            scram_credentials: adapter(&self.scram_credentials),
            oauthbearer_validator: adapter(&self.oauthbearer_validator),
        };
        let any_hook = adapters.authenticator.is_some()
            || adapters.authorizer.is_some()
            || adapters.scram_credentials.is_some()
            || adapters.oauthbearer_validator.is_some();
        let hooks: Option<Arc<dyn kop_core::auth::authorizer::Hooks>> = if any_hook {
            Some(Arc::new(hooks::PyHooks::new(adapters, self.pool.clone())))
        } else {
            None
        };
        let remote: Option<Arc<dyn kop_core::storage::RemoteBackend>> = match &self.storage_backend
        {
            Some(b) => Some(Arc::new(
                pulsar::PyRemoteBackend::start(py, b.clone_ref(py), self.pool.clone())
                    .map_err(start_error)?,
            )),
            None => None,
        };
        let mut tenant_storage: Vec<(String, Arc<dyn kop_core::storage::RemoteBackend>)> =
            Vec::new();
        for (key, b) in &self.tenant_backends {
            let backend = pulsar::PyRemoteBackend::start(py, b.clone_ref(py), self.pool.clone())
                .map_err(start_error)?;
            tenant_storage.push((key.clone(), Arc::new(backend)));
        }
        let server = py
            .detach(|| RunningServer::start_with_tenants(config, hooks, remote, tenant_storage))
            .map_err(start_error)?;
        // The bridge's worker pool in every scrape (its queue is where hook and Pulsar calls
        // wait for Python).
        let pool = self.pool.clone();
        server
            .broker()
            .metrics
            .add_collector(Arc::new(move || pool_metrics(pool.stats())));
        *self.running.lock() = Some(Arc::new(server));
        Ok(())
    }

    /// (listener name, host, port) of every listener as bound.
    fn bound_addresses(&self) -> Vec<(String, String, u16)> {
        self.server()
            .map(|s| {
                s.listeners()
                    .iter()
                    .map(|l| (l.name.clone(), l.host.clone(), l.port))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops accepting, finishes in-flight requests (up to the timeout), flushes, closes.
    fn stop(&self, py: Python<'_>, timeout_secs: f64) {
        if let Some(server) = self.server() {
            let timeout = Duration::from_secs_f64(timeout_secs.max(0.0));
            py.detach(|| server.stop(timeout));
        }
    }

    /// True once the server has stopped (or was never started); waits up to the timeout.
    fn wait(&self, py: Python<'_>, timeout_secs: Option<f64>) -> bool {
        match self.server() {
            None => true,
            Some(server) => {
                let timeout = timeout_secs.map(|t| Duration::from_secs_f64(t.max(0.0)));
                py.detach(|| server.wait(timeout))
            }
        }
    }

    fn is_running(&self) -> bool {
        self.server().is_some_and(|s| s.is_running())
    }

    /// Forgets every cached hook answer (authorizer decisions, SCRAM credentials).
    /// With `tenants`, every tenant's.
    fn invalidate_authorization_cache(&self) {
        if let Some(server) = self.server() {
            for security in server.securities() {
                security.invalidate_hook_caches();
            }
        }
    }

    /// How many times the authorizer hook has been asked (one per request with cache misses;
    /// with `tenants`, summed over the tenants).
    fn authorizer_hook_calls(&self) -> u64 {
        self.server().map_or(0, |s| {
            s.securities()
                .iter()
                .map(|security| {
                    security
                        .authorizer
                        .hook_calls
                        .load(std::sync::atomic::Ordering::Relaxed)
                })
                .sum()
        })
    }

    /// Every metric in Prometheus' text format (what the metrics listener serves); empty
    /// when not started.
    fn metrics(&self, py: Python<'_>) -> String {
        match self.server() {
            Some(s) => py.detach(|| s.metrics_text()),
            None => String::new(),
        }
    }

    /// (host, port) of the metrics listener, when `metrics_listener` is set.
    fn metrics_address(&self) -> Option<(String, u16)> {
        let a = self.server()?.metrics_address()?;
        Some((a.ip().to_string(), a.port()))
    }

    /// (host, port) of the schema registry, when `schema_registry_listener` is set.
    fn schema_registry_address(&self) -> Option<(String, u16)> {
        let a = self.server()?.registry_address()?;
        Some((a.ip().to_string(), a.port()))
    }

    /// The worker pool that runs the hooks and the Pulsar bridge: `queued` (jobs waiting for a
    /// worker), `workers` (threads started), `busy` (running a job), `done` (jobs finished).
    fn bridge_stats(&self) -> BTreeMap<&'static str, u64> {
        let stats = self.pool.stats();
        BTreeMap::from([
            ("queued", stats.queued as u64),
            ("workers", stats.workers as u64),
            ("busy", stats.busy as u64),
            ("done", stats.done),
        ])
    }
}

/// The bridge worker pool's gauges and counter, in the exposition format.
fn pool_metrics(s: blocking::PoolStats) -> String {
    format!(
        "# HELP kop_bridge_queue_depth Calls (Python hooks, Pulsar bridge) waiting for a bridge worker.\n\
         # TYPE kop_bridge_queue_depth gauge\nkop_bridge_queue_depth {}\n\
         # HELP kop_bridge_workers Bridge worker threads started.\n\
         # TYPE kop_bridge_workers gauge\nkop_bridge_workers {}\n\
         # HELP kop_bridge_busy_workers Bridge workers running a call.\n\
         # TYPE kop_bridge_busy_workers gauge\nkop_bridge_busy_workers {}\n\
         # HELP kop_bridge_calls_total Calls the bridge workers finished.\n\
         # TYPE kop_bridge_calls_total counter\nkop_bridge_calls_total {}\n",
        s.queued, s.workers, s.busy, s.done
    )
}

#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// A decoded record: (offset, timestamp, key, value, [(header name, header value)]).
type PyRecord = (
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

/// Every record of a Kafka v2 record batch (any compression); ValueError if it is malformed.
#[pyfunction]
fn decode_batch(data: &[u8]) -> PyResult<Vec<PyRecord>> {
    let records = kop_core::records::decode::decode_records(data)
        .map_err(|e| PyValueError::new_err(format!("not a valid Kafka record batch: {e}")))?;
    Ok(records
        .into_iter()
        .map(|r| (r.offset, r.timestamp, r.key, r.value, r.headers))
        .collect())
}

/// The CRC-32C a Kafka v2 record batch stores (of its bytes from the attributes on), for the
/// batches kop.pulsar.records encodes.
#[pyfunction]
fn batch_crc(batch: &[u8]) -> PyResult<u32> {
    if batch.len() < 61 {
        return Err(PyValueError::new_err("a record batch header is 61 bytes"));
    }
    Ok(kop_core::records::batch::compute_crc(batch))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeServer>()?;
    m.add_class::<hooks::AuthorizeReply>()?;
    m.add_class::<hooks::AuthenticateReply>()?;
    m.add_class::<hooks::ScramCredentialReply>()?;
    m.add_function(wrap_pyfunction!(log_bridge::init_logging, m)?)?;
    m.add_function(wrap_pyfunction!(log_bridge::take_log_records, m)?)?;
    m.add_function(wrap_pyfunction!(log_bridge::log_record_counts, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(decode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(batch_crc, m)?)?;
    m.add_class::<pulsar::AppendDone>()?;
    m.add_class::<pulsar::PartitionEnd>()?;
    Ok(())
}
