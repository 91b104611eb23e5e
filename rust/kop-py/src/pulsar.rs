//! `RemoteBackend` over the Python Pulsar bridge (`kop.pulsar.PulsarBackend`; the contract is
//! docs/pulsar-storage.md).
//!
//! Tokio workers never touch the interpreter. Every method but `append` is one generic `invoke`:
//! the named bridge method, called in the blocking lane of the worker pool (`blocking.rs`)
//! while the caller waits (inside `block_in_place`, see `kop_core::storage::remote::blocking`);
//! a Python exception becomes an `io::Error` with its message. Appends are queued here in the
//! order they came; one job of the pool's ordered lane takes everything queued and hands it to
//! the bridge's non-blocking `append_batches` in one call (a produce request's batches of all
//! its partitions, and whatever other connections queued meanwhile, cross into Python once);
//! each batch's receipt completes a oneshot from a client thread.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kop_core::records::batch::BatchHeader;
use kop_core::storage::remote::{OpenedPartition, RemoteBackend};
use kop_core::storage::Member;
use kop_core::storage::{AppendFailure, ClusterState, ExternalEnd, Receipt};
use parking_lot::Mutex;
use pyo3::call::PyCallArgs;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::sync::oneshot;

use crate::blocking::{Lane, WorkerPool};

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

/// Reports the new end offset of a partition Pulsar producers write (`follow_partition`):
/// the bridge's follower calls it with the offset the next message will get.
#[pyclass(module = "kop._native", frozen)]
pub struct PartitionEnd {
    end: Arc<ExternalEnd>,
}

#[pymethods]
impl PartitionEnd {
    fn __call__(&self, next_offset: i64) {
        self.end.advance(next_offset);
    }
}

pub struct PyRemoteBackend {
    bridge: Arc<Py<PyAny>>,
    pool: Arc<WorkerPool>,
    /// Appends not handed to Python yet, oldest first. Non-empty: a job to hand them over is
    /// queued in the ordered lane (the one that empties it queues the next).
    appends: Arc<Mutex<Vec<Append>>>,
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
    /// `bridge` is a started `kop.pulsar.PulsarBackend`; `pool` runs the calls.
    pub fn start(
        py: Python<'_>,
        bridge: Py<PyAny>,
        pool: Arc<WorkerPool>,
    ) -> io::Result<PyRemoteBackend> {
        let max_batch = bridge
            .call_method0(py, "max_batch_bytes")
            .and_then(|r| r.extract::<usize>(py))
            .map_err(|e| bridge_error(py, "max_batch_bytes", e))?;
        Ok(PyRemoteBackend {
            bridge: Arc::new(bridge),
            pool,
            appends: Arc::new(Mutex::new(Vec::new())),
            max_batch: Arc::new(AtomicUsize::new(max_batch)),
        })
    }

    /// Calls the bridge's `method` with `args` on a worker and waits for its converted result.
    fn invoke<R>(
        &self,
        method: &'static str,
        args: impl for<'py> PyCallArgs<'py> + Send + 'static,
    ) -> io::Result<R>
    where
        R: for<'py> FromPyObjectOwned<'py> + Send + 'static,
    {
        let bridge = self.bridge.clone();
        self.pool
            .call(move |py| {
                bridge
                    .bind(py)
                    .call_method1(method, args)
                    .and_then(|r| r.extract::<R>().map_err(Into::into))
                    .map_err(|e| bridge_error(py, method, e))
            })
            .map_err(|_| io::Error::other("the pulsar bridge has stopped"))?
    }

    /// `invoke` for a method that returns nothing.
    fn run(
        &self,
        method: &'static str,
        args: impl for<'py> PyCallArgs<'py> + Send + 'static,
    ) -> io::Result<()> {
        self.invoke::<Done>(method, args).map(drop)
    }
}

/// Bytes handed to Python as `bytes` (a `Vec<u8>` would become a list of ints).
struct Blob(Vec<u8>);

impl<'py> IntoPyObject<'py> for Blob {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

fn blob(data: Option<&[u8]>) -> Option<Blob> {
    data.map(|d| Blob(d.to_vec()))
}

fn blobs(records: Vec<Vec<u8>>) -> Vec<Blob> {
    records.into_iter().map(Blob).collect()
}

/// The result of a bridge method that returns None (whatever it returns is ignored).
struct Done;

impl<'a, 'py> FromPyObject<'a, 'py> for Done {
    type Error = PyErr;

    fn extract(_: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Done)
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

impl Append {
    /// The bridge's view of the batch, `(topic, partition, epoch, base_offset, record_count,
    /// max_timestamp, payload, done)`, and its `done`; None (the dropped sender fails the
    /// receipt) if they cannot be made.
    fn into_py<'py>(
        self,
        py: Python<'py>,
        max_batch: &Arc<AtomicUsize>,
    ) -> Option<(Bound<'py, PyTuple>, Bound<'py, AppendDone>)> {
        let done = AppendDone {
            tx: Mutex::new(Some(self.done)),
            size: self.payload.len(),
            max_batch: max_batch.clone(),
        };
        let made = Bound::new(py, done).and_then(|done| {
            let args = (
                self.topic,
                self.partition,
                self.epoch,
                self.base_offset,
                self.record_count,
                self.max_timestamp,
                PyBytes::new(py, &self.payload),
                done.clone(),
            );
            Ok((args.into_pyobject(py)?, done))
        });
        made.map_err(|e| tracing::error!(error = %e, "cannot hand an append to Python"))
            .ok()
    }
}

/// Hands every queued append to the bridge's `append_batches` in one call. Dropped without
/// running (the pool has closed, so no later job runs either), it drops the queued appends,
/// which fails their receipts.
struct AppendJob {
    appends: Arc<Mutex<Vec<Append>>>,
    bridge: Arc<Py<PyAny>>,
    max_batch: Arc<AtomicUsize>,
    ran: bool,
}

impl AppendJob {
    fn run(mut self, py: Python<'_>) {
        self.ran = true;
        let queued = std::mem::take(&mut *self.appends.lock());
        let (batches, dones): (Vec<_>, Vec<_>) = queued
            .into_iter()
            .filter_map(|a| a.into_py(py, &self.max_batch))
            .unzip();
        if batches.is_empty() {
            return;
        }
        let called = PyList::new(py, batches)
            .and_then(|list| self.bridge.call_method1(py, "append_batches", (list,)));
        if let Err(e) = called {
            // What the bridge completed stays completed (a done answers once); the rest fails.
            let why = bridge_error(py, "append_batches", e).to_string();
            for done in dones {
                done.get().__call__(Some(why.clone()), false);
            }
        }
    }
}

impl Drop for AppendJob {
    fn drop(&mut self) {
        if !self.ran {
            self.appends.lock().clear();
        }
    }
}

/// Members as the bridge returns them (the JSON `join` was given); a malformed one is skipped.
fn parse_members(docs: &[String]) -> Vec<Member> {
    docs.iter()
        .filter_map(|d| match serde_json::from_str(d) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, member = %d, "skipping an unreadable member announcement");
                None
            }
        })
        .collect()
}

fn bytes_list(v: Vec<Vec<u8>>) -> Vec<Bytes> {
    v.into_iter().map(Bytes::from).collect()
}

/// `open_partition`'s answer: (epoch, log_start, next_offset, headers, tail).
type Opened = (i32, i64, i64, Vec<Vec<u8>>, Vec<Vec<u8>>);

impl RemoteBackend for PyRemoteBackend {
    fn load_doc(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.invoke("load_doc", (name.to_string(),))
    }

    fn save_doc(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        self.run("save_doc", (name.to_string(), blob(data)))
    }

    fn save_doc_if(
        &self,
        name: &str,
        data: Option<&[u8]>,
        expected: Option<&[u8]>,
    ) -> io::Result<bool> {
        self.invoke(
            "save_doc_if",
            (name.to_string(), blob(data), blob(expected)),
        )
    }

    fn doc_names(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.invoke("doc_names", (prefix.to_string(),))
    }

    fn create_topic(&self, topic: &str, partitions: i32) -> io::Result<()> {
        self.run("create_topic", (topic.to_string(), partitions))
    }

    fn delete_topic(&self, topic: &str) -> io::Result<()> {
        self.run("delete_topic", (topic.to_string(),))
    }

    fn apply_retention(
        &self,
        topic: &str,
        partition: i32,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> io::Result<i64> {
        let args = (topic.to_string(), partition, retention_ms, retention_bytes);
        self.invoke("apply_retention", args)
    }

    fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        tail_bytes: usize,
    ) -> io::Result<OpenedPartition> {
        let (epoch, log_start, next_offset, headers, tail) =
            self.invoke::<Opened>("open_partition", (topic.to_string(), partition, tail_bytes))?;
        Ok(OpenedPartition {
            epoch,
            log_start,
            next_offset,
            headers: bytes_list(headers),
            tail: bytes_list(tail),
        })
    }

    fn follow_partition(
        &self,
        topic: &str,
        partition: i32,
        end: Arc<ExternalEnd>,
    ) -> io::Result<bool> {
        let bridge = self.bridge.clone();
        let topic = topic.to_string();
        self.pool
            .call(move |py| {
                let method = "follow_partition";
                Py::new(py, PartitionEnd { end })
                    .and_then(|end| {
                        bridge
                            .bind(py)
                            .call_method1(method, (topic, partition, end))?
                            .extract::<bool>()
                    })
                    .map_err(|e| bridge_error(py, method, e))
            })
            .map_err(|_| io::Error::other("the pulsar bridge has stopped"))?
    }

    fn close_partition(&self, topic: &str, partition: i32) -> io::Result<()> {
        self.run("close_partition", (topic.to_string(), partition))
    }

    fn join(&self, me: &Member) -> io::Result<Vec<Member>> {
        let me = serde_json::to_string(me).map_err(io::Error::other)?;
        let live: Vec<String> = self.invoke("join", (me,))?;
        Ok(parse_members(&live))
    }

    fn cluster_state(&self) -> io::Result<ClusterState> {
        let (members, metadata_version): (Vec<String>, u64) = self.invoke("cluster_state", ())?;
        Ok(ClusterState {
            members: parse_members(&members),
            metadata_version,
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
        let append = Append {
            topic: topic.to_string(),
            partition,
            epoch,
            base_offset: header.base_offset,
            record_count: header.records_count,
            max_timestamp: header.max_timestamp,
            payload,
            done,
        };
        let first = {
            let mut queued = self.appends.lock();
            queued.push(append);
            queued.len() == 1
        };
        // Queued behind others: the job already queued for them takes this one too.
        if first {
            let job = AppendJob {
                appends: self.appends.clone(),
                bridge: self.bridge.clone(),
                max_batch: self.max_batch.clone(),
                ran: false,
            };
            self.pool
                .submit(Lane::Ordered, Box::new(move |py| job.run(py)));
        }
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
        let args = (topic.to_string(), partition, offset, max_bytes, upper);
        self.invoke("read", args).map(bytes_list)
    }

    fn batch_at_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> io::Result<Option<Bytes>> {
        let args = (topic.to_string(), partition, timestamp);
        let batch: Option<Vec<u8>> = self.invoke("batch_at_timestamp", args)?;
        Ok(batch.map(Bytes::from))
    }

    fn batch_with_max_timestamp(&self, topic: &str, partition: i32) -> io::Result<Option<Bytes>> {
        let args = (topic.to_string(), partition);
        let batch: Option<Vec<u8>> = self.invoke("batch_with_max_timestamp", args)?;
        Ok(batch.map(Bytes::from))
    }

    fn storage_size(&self, topic: &str, partition: i32) -> io::Result<Option<u64>> {
        let size: i64 = self.invoke("storage_size", (topic.to_string(), partition))?;
        Ok(u64::try_from(size).ok())
    }

    fn compacted_end(&self, topic: &str, partition: i32) -> io::Result<i64> {
        self.invoke("compacted_end", (topic.to_string(), partition))
    }

    fn write_compacted(
        &self,
        topic: &str,
        partition: i32,
        epoch: i32,
        end: i64,
        batches: Vec<Bytes>,
        delete_delay_ms: i64,
    ) -> io::Result<bool> {
        let batches: Vec<Blob> = batches.into_iter().map(|b| Blob(b.to_vec())).collect();
        let args = (
            topic.to_string(),
            partition,
            epoch,
            end,
            batches,
            delete_delay_ms,
        );
        self.invoke("write_compacted", args)
    }

    fn load_group_records(&self, shard: i32) -> io::Result<Vec<Vec<u8>>> {
        self.invoke("load_group_records", (shard,))
    }

    fn append_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()> {
        self.run("append_group_records", (shard, blobs(records)))
    }

    fn rewrite_group_records(&self, shard: i32, records: Vec<Vec<u8>>) -> io::Result<()> {
        self.run("rewrite_group_records", (shard, blobs(records)))
    }

    fn release_group_records(&self, shard: i32) -> io::Result<()> {
        self.run("release_group_records", (shard,))
    }
}
