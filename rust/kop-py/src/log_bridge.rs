//! Rust `tracing` records into Python's `logging` (loggers `kop.<module>`).
//!
//! Tokio workers never touch the interpreter for a log line: the layer below turns an event
//! into a plain `Record` and `try_send`s it into a bounded channel. A Python thread
//! (`kop.logs`) drains it with `take_log_records` and hands each record to `logging`, so the
//! host application's handlers, levels and formatters apply. When the channel is full the
//! record is dropped and counted (`log_record_counts`) rather than blocking a worker.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kop_core::log_names::{
    is_kop_target, logger_name, parse_level, py_level, PY_DEBUG, PY_INFO, PY_TRACE, PY_WARNING,
};
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

/// Records waiting for the Python thread. About 2 MB at ~128 bytes each; a burst larger than
/// this while Python is busy is what the drop counter is for.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// The least severe Python level kop's own crates log at; other crates log warnings and up.
static KOP_LEVEL: AtomicU8 = AtomicU8::new(PY_INFO);
static QUEUED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static RECEIVER: OnceLock<Mutex<Receiver<Record>>> = OnceLock::new();

/// A field value as Python will see it (ints and bools stay typed for JSON output).
enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Text(String),
}

struct Record {
    level: u8,
    target: &'static str,
    message: String,
    fields: Vec<(&'static str, Value)>,
    time: SystemTime,
    file: Option<&'static str>,
    line: Option<u32>,
    thread: Option<String>,
}

fn enabled(meta: &Metadata<'_>) -> bool {
    let floor = if is_kop_target(meta.target()) {
        KOP_LEVEL.load(Ordering::Relaxed)
    } else {
        PY_WARNING
    };
    py_level(meta.level()) >= floor
}

struct BridgeLayer {
    tx: SyncSender<Record>,
}

impl<S: tracing::Subscriber> Layer<S> for BridgeLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Re-evaluated by `rebuild_interest_cache` when the level changes.
        if enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        enabled(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match KOP_LEVEL.load(Ordering::Relaxed) {
            PY_TRACE => LevelFilter::TRACE,
            PY_DEBUG => LevelFilter::DEBUG,
            PY_INFO => LevelFilter::INFO,
            PY_WARNING => LevelFilter::WARN,
            _ => LevelFilter::WARN, // other crates' warnings still pass
        })
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let record = Record {
            level: py_level(meta.level()),
            target: meta.target(),
            message: visitor.message,
            fields: visitor.fields,
            time: SystemTime::now(),
            file: meta.file(),
            line: meta.line(),
            thread: std::thread::current().name().map(str::to_string),
        };
        match self.tx.try_send(record) {
            Ok(()) => {
                QUEUED.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: Vec<(&'static str, Value)>,
}

impl Visit for FieldVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), Value::Int(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), Value::UInt(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), Value::Float(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), Value::Bool(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields
                .push((field.name(), Value::Text(value.to_string())));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `info!("x {y}")` and `%display` fields arrive here already formatted.
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .push((field.name(), Value::Text(format!("{value:?}"))));
        }
    }
}

/// Installs the bridge (once per process) and sets the level of kop's Rust records; a later
/// call changes the level. Records wait in the queue until `take_log_records` collects them.
#[pyfunction]
pub fn init_logging(level: &str) -> PyResult<()> {
    let level = parse_level(level).map_err(PyValueError::new_err)?;
    KOP_LEVEL.store(level, Ordering::Relaxed);
    RECEIVER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let subscriber = tracing_subscriber::registry().with(BridgeLayer { tx });
        // Fails only if the host process installed a global subscriber of its own: then its
        // subscriber gets kop's records, and this queue stays empty.
        let _ = tracing::subscriber::set_global_default(subscriber);
        Mutex::new(rx)
    });
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

/// One record as `kop.logs` takes it: (logger name, level number, message, [(field, value)],
/// time in seconds since the epoch, source file, line, thread name).
type PyLogRecord = (
    String,
    u8,
    String,
    Vec<(&'static str, Py<PyAny>)>,
    f64,
    Option<&'static str>,
    Option<u32>,
    Option<String>,
);

fn to_py(py: Python<'_>, record: Record) -> PyResult<PyLogRecord> {
    let mut fields = Vec::with_capacity(record.fields.len());
    for (name, value) in record.fields {
        let value = match value {
            Value::Int(v) => v.into_pyobject(py)?.into_any().unbind(),
            Value::UInt(v) => v.into_pyobject(py)?.into_any().unbind(),
            Value::Float(v) => v.into_pyobject(py)?.into_any().unbind(),
            Value::Bool(v) => v.into_pyobject(py)?.to_owned().into_any().unbind(),
            Value::Text(v) => v.into_pyobject(py)?.into_any().unbind(),
        };
        fields.push((name, value));
    }
    let time = record
        .time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Ok((
        logger_name(record.target),
        record.level,
        record.message,
        fields,
        time,
        record.file,
        record.line,
        record.thread,
    ))
}

/// Up to `max_records` queued records; waits (without the GIL) up to `timeout_secs` for the
/// first. Empty on timeout, or if `init_logging` was never called.
#[pyfunction]
pub fn take_log_records(
    py: Python<'_>,
    timeout_secs: f64,
    max_records: usize,
) -> PyResult<Vec<PyLogRecord>> {
    let Some(rx) = RECEIVER.get() else {
        return Ok(Vec::new());
    };
    let timeout = Duration::from_secs_f64(timeout_secs.max(0.0));
    let batch = py.detach(|| {
        // One Python thread drains; the lock is only contended if the host starts a second.
        let rx = rx.lock();
        let mut batch = Vec::new();
        if let Ok(first) = rx.recv_timeout(timeout) {
            batch.push(first);
            while batch.len() < max_records.max(1) {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
        }
        batch
    });
    batch.into_iter().map(|r| to_py(py, r)).collect()
}

/// (records queued so far, records dropped because the queue was full). `kop.logs` waits for
/// the first to be emitted when it flushes, and reports the second.
#[pyfunction]
pub fn log_record_counts() -> (u64, u64) {
    (
        QUEUED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    )
}
