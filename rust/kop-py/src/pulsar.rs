//! `RemoteBackend` over the Python Pulsar bridge (`kop.pulsar.PulsarBackend`; the contract is
//! docs/pulsar-storage.md).
//!
//! Tokio workers never touch the interpreter. Blocking calls (takeover, cold reads, documents)
//! go to a small pool of threads attached to Python; the caller waits on a channel (inside
//! `block_in_place`, see `kop_core::storage::remote::blocking`). Appends go to one thread that
//! takes every queued append per attach — one crossing for many batches under load — and calls
//! the bridge's non-blocking `append`, whose receipt completes a oneshot from a client thread.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use bytes::Bytes;
use kop_core::broker::cluster::Member;
use kop_core::records::batch::BatchHeader;
use kop_core::storage::remote::{OpenedPartition, RemoteBackend};
use kop_core::storage::{AppendFailure, ClusterState, Receipt};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// Threads for blocking bridge calls: enough that one slow cold read doesn't hold up a takeover.
const BLOCKING_THREADS: usize = 4;
/// Appends handed to Python per attach, at most.
const APPENDS_PER_CROSSING: usize = 1024;

/// Completes one append: called by the bridge with None (stored) or an error message, and
/// `too_large` when Pulsar refused the batch for its size.
#[pyclass(module = "kop._native", frozen)]
pub struct AppendDone {
    tx: Mutex<Option<oneshot::Sender<Result<(), AppendFailure>>>>,
    /// The batch's size, and the backend's limit to lower when Pulsar refuses that size.
    size: usize,
    max_batch: Arc<AtomicUsize>,
}

#[pymethods]
impl AppendDone {
    #[pyo3(signature = (error=None, too_large=false))]
    fn __call__(&self, error: Option<String>, too_large: bool) {
        let result = match error {
            None => Ok(()),
            Some(why) if too_large => {
                // Pulsar's limit is lower than kop read (or assumed): learn it, so the next
                // batch this large is refused before it gets offsets.
                let learned = self.size.saturating_sub(1).max(1);
                let before = self.max_batch.fetch_min(learned, Ordering::AcqRel);
                if learned < before {
                    tracing::warn!(
                        size = self.size,
                        max = learned,
                        "Pulsar refused a batch as too large: refusing batches above {learned} bytes from now on"
                    );
                }
                Err(AppendFailure::TooLarge(why))
            }
            Some(why) => Err(AppendFailure::Lost(why)),
        };
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(result);
        }
    }
}

struct Append {
    topic: String,
    partition: i32,
    epoch: i32,
    base_offset: i64,
    record_count: i32,
    max_timestamp: i64,
    payload: Bytes,
    done: oneshot::Sender<Result<(), AppendFailure>>,
}

pub struct PyRemoteBackend {
    bridge: Arc<Py<PyAny>>,
    jobs: Mutex<mpsc::Sender<Job>>,
    appends: Mutex<mpsc::Sender<Append>>,
    /// The largest batch Pulsar takes (`max_batch_bytes` of the bridge, lowered when Pulsar
    /// refuses a smaller one).
    max_batch: Arc<AtomicUsize>,
}

/// A bridge method raised: the message names the method, and the Python exception is kept so
/// that `NativeServer.start` raises it as it was (a `PulsarStorageError` tells start-up to
/// wait for Pulsar and try again).
#[derive(Debug)]
pub struct BridgeError {
    message: String,
    pub error: PyErr,
}

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BridgeError {}

fn bridge_error(py: Python<'_>, method: &str, err: PyErr) -> io::Error {
    let msg = err.value(py).to_string();
    io::Error::other(BridgeError {
        message: format!("pulsar bridge {method}: {msg}"),
        error: err,
    })
}

impl PyRemoteBackend {
    /// `bridge` is a started `kop.pulsar.PulsarBackend`.
    pub fn start(py: Python<'_>, bridge: Py<PyAny>) -> io::Result<PyRemoteBackend> {
        let max_batch = bridge
            .call_method0(py, "max_batch_bytes")
            .and_then(|r| r.extract::<usize>(py))
            .map_err(|e| bridge_error(py, "max_batch_bytes", e))?;
        let max_batch = Arc::new(AtomicUsize::new(max_batch));
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for i in 0..BLOCKING_THREADS {
            let rx = job_rx.clone();
            std::thread::Builder::new()
                .name(format!("kop-pulsar-{i}"))
                .spawn(move || loop {
                    // Wait detached from the interpreter, run attached.
                    let Ok(job) = rx.lock().recv() else { return };
                    Python::attach(job);
                })?;
        }
        let bridge = Arc::new(bridge);
        let (append_tx, append_rx) = mpsc::channel::<Append>();
        let appender = bridge.clone();
        let limit = max_batch.clone();
        std::thread::Builder::new()
            .name("kop-pulsar-append".into())
            .spawn(move || {
                while let Ok(first) = append_rx.recv() {
                    Python::attach(|py| {
                        let mut next = Some(first);
                        let mut sent = 0;
                        while let Some(a) = next.take() {
                            send_append(py, &appender, a, &limit);
                            sent += 1;
                            if sent < APPENDS_PER_CROSSING {
                                next = append_rx.try_recv().ok();
                            }
                        }
                    });
                }
            })?;
        Ok(PyRemoteBackend {
            bridge,
            jobs: Mutex::new(job_tx),
            appends: Mutex::new(append_tx),
            max_batch,
        })
    }

    /// Runs `f` on a bridge thread and waits for its result.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let bridge = self.bridge.clone();
        let job: Job = Box::new(move |py| {
            let _ = tx.send(f(py, bridge.bind(py)));
        });
        self.jobs
            .lock()
            .send(job)
            .map_err(|_| io::Error::other("the pulsar bridge has stopped"))?;
        rx.recv()
            .map_err(|_| io::Error::other("the pulsar bridge dropped a call"))?
    }
}

fn send_append(py: Python<'_>, bridge: &Py<PyAny>, a: Append, max_batch: &Arc<AtomicUsize>) {
    let done = match Py::new(
        py,
        AppendDone {
            tx: Mutex::new(Some(a.done)),
            size: a.payload.len(),
            max_batch: max_batch.clone(),
        },
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot create an append receipt");
            return; // the dropped sender fails the append
        }
    };
    let args = (
        a.topic,
        a.partition,
        a.epoch,
        a.base_offset,
        a.record_count,
        a.max_timestamp,
        PyBytes::new(py, &a.payload),
        done.clone_ref(py),
    );
    if let Err(e) = bridge.call_method1(py, "append", args) {
        done.get()
            .__call__(Some(bridge_error(py, "append", e).to_string()), false);
    }
}

/// Members as the bridge returns them (the JSON `join` was given); a malformed one is skipped.
fn parse_members(docs: &[String]) -> io::Result<Vec<Member>> {
    Ok(docs
        .iter()
        .filter_map(|d| match serde_json::from_str(d) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, member = %d, "skipping an unreadable member announcement");
                None
            }
        })
        .collect())
}

fn bytes_list(v: Vec<Vec<u8>>) -> Vec<Bytes> {
    v.into_iter().map(Bytes::from).collect()
}

impl RemoteBackend for PyRemoteBackend {
    fn load_doc(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let name = name.to_string();
        self.call(move |py, b| {
            b.call_method1("load_doc", (name,))
                .and_then(|r| r.extract::<Option<Vec<u8>>>())
                .map_err(|e| bridge_error(py, "load_doc", e))
        })
    }

    fn save_doc(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        let name = name.to_string();
        let data = data.map(<[u8]>::to_vec);
        self.call(move |py, b| {
            let data = data.map(|d| PyBytes::new(py, &d));
            b.call_method1("save_doc", (name, data))
                .map(drop)
                .map_err(|e| bridge_error(py, "save_doc", e))
        })
    }

    fn save_doc_if(
        &self,
        name: &str,
        data: Option<&[u8]>,
        expected: Option<&[u8]>,
    ) -> io::Result<bool> {
        let name = name.to_string();
        let data = data.map(<[u8]>::to_vec);
        let expected = expected.map(<[u8]>::to_vec);
        self.call(move |py, b| {
            let data = data.map(|d| PyBytes::new(py, &d));
            let expected = expected.map(|d| PyBytes::new(py, &d));
            b.call_method1("save_doc_if", (name, data, expected))
                .and_then(|r| r.extract::<bool>())
                .map_err(|e| bridge_error(py, "save_doc_if", e))
        })
    }

    fn close_partition(&self, topic: &str, partition: i32) -> io::Result<()> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            b.call_method1("close_partition", (topic, partition))
                .map(drop)
                .map_err(|e| bridge_error(py, "close_partition", e))
        })
    }

    fn join(&self, me: &Member) -> io::Result<Vec<Member>> {
        let me = serde_json::to_string(me).map_err(io::Error::other)?;
        let live = self.call(move |py, b| {
            b.call_method1("join", (me,))
                .and_then(|r| r.extract::<Vec<String>>())
                .map_err(|e| bridge_error(py, "join", e))
        })?;
        parse_members(&live)
    }

    fn cluster_state(&self) -> io::Result<ClusterState> {
        let (members, metadata_version) = self.call(move |py, b| {
            b.call_method0("cluster_state")
                .and_then(|r| r.extract::<(Vec<String>, u64)>())
                .map_err(|e| bridge_error(py, "cluster_state", e))
        })?;
        Ok(ClusterState {
            members: parse_members(&members)?,
            metadata_version,
        })
    }

    fn doc_names(&self, prefix: &str) -> io::Result<Vec<String>> {
        let prefix = prefix.to_string();
        self.call(move |py, b| {
            b.call_method1("doc_names", (prefix,))
                .and_then(|r| r.extract::<Vec<String>>())
                .map_err(|e| bridge_error(py, "doc_names", e))
        })
    }

    fn create_topic(&self, topic: &str, partitions: i32) -> io::Result<()> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            b.call_method1("create_topic", (topic, partitions))
                .map(drop)
                .map_err(|e| bridge_error(py, "create_topic", e))
        })
    }

    fn delete_topic(&self, topic: &str) -> io::Result<()> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            b.call_method1("delete_topic", (topic,))
                .map(drop)
                .map_err(|e| bridge_error(py, "delete_topic", e))
        })
    }

    fn apply_retention(
        &self,
        topic: &str,
        partition: i32,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> io::Result<i64> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            b.call_method1(
                "apply_retention",
                (topic, partition, retention_ms, retention_bytes),
            )
            .and_then(|r| r.extract::<i64>())
            .map_err(|e| bridge_error(py, "apply_retention", e))
        })
    }

    fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        tail_bytes: usize,
    ) -> io::Result<OpenedPartition> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            type Opened = (i32, i64, i64, Vec<Vec<u8>>, Vec<Vec<u8>>);
            let (epoch, log_start, next_offset, headers, tail) = b
                .call_method1("open_partition", (topic, partition, tail_bytes))
                .and_then(|r| r.extract::<Opened>())
                .map_err(|e| bridge_error(py, "open_partition", e))?;
            Ok(OpenedPartition {
                epoch,
                log_start,
                next_offset,
                headers: bytes_list(headers),
                tail: bytes_list(tail),
            })
        })
    }

    fn max_batch_bytes(&self) -> Option<usize> {
        Some(self.max_batch.load(Ordering::Acquire))
    }

    fn append(
        &self,
        topic: &str,
        partition: i32,
        epoch: i32,
        header: &BatchHeader,
        payload: Bytes,
    ) -> Receipt {
        let (done, receipt) = oneshot::channel();
        // If the append thread is gone the job (and its sender) is dropped: the receipt fails.
        let _ = self.appends.lock().send(Append {
            topic: topic.to_string(),
            partition,
            epoch,
            base_offset: header.base_offset,
            record_count: header.records_count,
            max_timestamp: header.max_timestamp,
            payload,
            done,
        });
        receipt
    }

    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        upper: i64,
    ) -> io::Result<Vec<Bytes>> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            b.call_method1("read", (topic, partition, offset, max_bytes, upper))
                .and_then(|r| r.extract::<Vec<Vec<u8>>>())
                .map(bytes_list)
                .map_err(|e| bridge_error(py, "read", e))
        })
    }

    fn batch_at_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> io::Result<Option<Bytes>> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            b.call_method1("batch_at_timestamp", (topic, partition, timestamp))
                .and_then(|r| r.extract::<Option<Vec<u8>>>())
                .map(|o| o.map(Bytes::from))
                .map_err(|e| bridge_error(py, "batch_at_timestamp", e))
        })
    }

    fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> io::Result<Option<Bytes>> {
        let topic = topic.to_string();
        self.call(move |py, b| {
            b.call_method1("batch_with_max_timestamp", (topic, partition))
                .and_then(|r| r.extract::<Option<Vec<u8>>>())
                .map(|o| o.map(Bytes::from))
                .map_err(|e| bridge_error(py, "batch_with_max_timestamp", e))
        })
    }

    fn load_group_records(&self, shard: i32) -> io::Result<Vec<Vec<u8>>> {
        self.call(move |py, b| {
            b.call_method1("load_group_records", (shard,))
                .and_then(|r| r.extract::<Vec<Vec<u8>>>())
                .map_err(|e| bridge_error(py, "load_group_records", e))
        })
    }

    fn append_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()> {
        self.call(move |py, b| {
            let records: Vec<_> = records.iter().map(|r| PyBytes::new(py, r)).collect();
            b.call_method1("append_group_records", (shard, records))
                .map(drop)
                .map_err(|e| bridge_error(py, "append_group_records", e))
        })
    }

    fn release_group_records(&self, shard: i32) -> io::Result<()> {
        self.call(move |py, b| {
            b.call_method1("release_group_records", (shard,))
                .map(drop)
                .map_err(|e| bridge_error(py, "release_group_records", e))
        })
    }

    fn rewrite_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()> {
        self.call(move |py, b| {
            let records: Vec<_> = records.iter().map(|r| PyBytes::new(py, r)).collect();
            b.call_method1("rewrite_group_records", (shard, records))
                .map(drop)
                .map_err(|e| bridge_error(py, "rewrite_group_records", e))
        })
    }
}
