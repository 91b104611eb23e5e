//! The one pool of OS threads that run Rust's calls into Python: the hook hand-offs
//! (`hooks.rs`) and the Pulsar bridge (`pulsar.rs`).
//!
//! Tokio workers never attach to the interpreter; they queue a job here. A worker attaches
//! once when it starts, runs queued jobs one after the other without letting go of the
//! interpreter, and detaches only to park when nothing it may take is queued. A job queued while
//! a worker is between jobs is left to that worker (no wake-up); otherwise a parked worker is
//! woken, or one more started, up to `MAX_WORKERS`. Idle workers stay parked. Jobs are queued
//! in three lanes:
//!
//! - quick: hand-offs that return at once (a hook's `submit`); taken first, by any worker.
//! - ordered: appends, which must reach Python in the order they were queued; one worker at a
//!   time runs this lane.
//! - blocking: calls that wait on Pulsar (takeover, cold reads, documents); at most
//!   `BLOCKING_LIMIT` at once, so that slow calls always leave workers for the other lanes.
//!
//! `stats()` reports the queue depth, the workers and the jobs done (`NativeServer.bridge_stats`).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;

/// Work for a worker, run attached to the interpreter.
pub type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// Threads in the pool, at most.
const MAX_WORKERS: usize = 6;
/// Blocking calls running at once, at most: as many as the Pulsar bridge had threads before
/// the pool (one slow cold read doesn't hold up a takeover), leaving two workers for hook
/// hand-offs and appends.
const BLOCKING_LIMIT: usize = 4;
/// Jobs a worker runs in a row before it lets other Python threads have the interpreter.
const JOBS_PER_ATTACH: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Quick,
    Ordered,
    Blocking,
}

/// A snapshot of the pool, for `NativeServer.bridge_stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStats {
    /// Jobs waiting for a worker.
    pub queued: usize,
    /// Worker threads started (parked or busy).
    pub workers: usize,
    /// Workers running a job.
    pub busy: usize,
    /// Jobs finished since the pool started.
    pub done: u64,
}

#[derive(Default)]
struct State {
    quick: VecDeque<Job>,
    ordered: VecDeque<Job>,
    blocking: VecDeque<Job>,
    /// A worker is running an ordered job: the next one waits for it.
    ordered_running: bool,
    blocking_running: usize,
    /// Every worker is busy (running a job), searching (started, or done with a job, and about
    /// to take the next one or park) or parked.
    workers: usize,
    busy: usize,
    searching: usize,
    parked: usize,
    closed: bool,
}

impl State {
    fn pop(&mut self) -> Option<(Lane, Job)> {
        if let Some(job) = self.quick.pop_front() {
            return Some((Lane::Quick, job));
        }
        if !self.ordered_running {
            if let Some(job) = self.ordered.pop_front() {
                self.ordered_running = true;
                return Some((Lane::Ordered, job));
            }
        }
        if self.blocking_running < BLOCKING_LIMIT {
            if let Some(job) = self.blocking.pop_front() {
                self.blocking_running += 1;
                return Some((Lane::Blocking, job));
            }
        }
        None
    }

    fn finished(&mut self, lane: Lane) {
        self.busy -= 1;
        self.searching += 1;
        match lane {
            Lane::Quick => {}
            Lane::Ordered => self.ordered_running = false,
            Lane::Blocking => self.blocking_running -= 1,
        }
    }

    /// Jobs a worker could start right now.
    fn startable(&self) -> usize {
        let ordered = usize::from(!self.ordered_running && !self.ordered.is_empty());
        let blocking = self
            .blocking
            .len()
            .min(BLOCKING_LIMIT.saturating_sub(self.blocking_running));
        self.quick.len() + ordered + blocking
    }

    fn queued(&self) -> usize {
        self.quick.len() + self.ordered.len() + self.blocking.len()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Parked workers wait here for startable work (or the pool closing).
    work: Condvar,
    done: AtomicU64,
}

impl Shared {
    /// Releases the lane of the job this worker finished (if any), then takes the next job it
    /// may start; with `park`, waits for one (None: the pool closed and nothing is left).
    fn next(&self, finished: Option<Lane>, park: bool) -> Option<(Lane, Job)> {
        let mut state = self.state.lock();
        if let Some(lane) = finished {
            state.finished(lane);
        }
        loop {
            if let Some(next) = state.pop() {
                state.searching -= 1;
                state.busy += 1;
                // A released lane can leave work this worker does not take: hand it on.
                if state.parked > 0 && state.startable() > state.searching {
                    self.work.notify_one();
                }
                return Some(next);
            }
            if !park {
                return None;
            }
            state.searching -= 1;
            if state.closed && state.queued() == 0 {
                state.workers -= 1;
                self.work.notify_all(); // workers parked behind a lane's last job end too
                return None;
            }
            state.parked += 1;
            self.work.wait(&mut state);
            state.parked -= 1;
            state.searching += 1;
        }
    }

    fn worker(self: Arc<Self>) {
        Python::attach(|py| {
            let mut finished = None;
            let mut in_a_row = 0;
            loop {
                // Stay attached while there is work; detach to park (or after a long run of
                // jobs, so that Python threads waiting for the interpreter get it).
                let ready = if in_a_row < JOBS_PER_ATTACH {
                    self.next(finished.take(), false)
                } else {
                    None
                };
                let next = match ready {
                    Some(job) => Some(job),
                    None => {
                        in_a_row = 0;
                        let finished = finished.take();
                        py.detach(|| self.next(finished, true))
                    }
                };
                let Some((lane, job)) = next else { break };
                if catch_unwind(AssertUnwindSafe(|| job(py))).is_err() {
                    tracing::error!("a Python bridge job panicked");
                }
                self.done.fetch_add(1, Ordering::Relaxed);
                finished = Some(lane);
                in_a_row += 1;
            }
        });
    }
}

/// The pool; dropping it lets the workers finish what is queued and end.
pub struct WorkerPool {
    shared: Arc<Shared>,
}

/// The pool has closed (or dropped the job): no answer will come.
#[derive(Debug)]
pub struct PoolClosed;

impl WorkerPool {
    pub fn new() -> WorkerPool {
        WorkerPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                done: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `job`; never blocks. A job of a closed pool is dropped.
    pub fn submit(&self, lane: Lane, job: Job) {
        let mut state = self.shared.state.lock();
        if state.closed {
            return;
        }
        match lane {
            Lane::Quick => state.quick.push_back(job),
            Lane::Ordered => state.ordered.push_back(job),
            Lane::Blocking => state.blocking.push_back(job),
        }
        // Not startable yet (its lane is full): the worker that frees the lane takes it next.
        // Startable: a worker between jobs takes it, else a parked or a new one.
        let startable = state.startable();
        if startable <= state.searching {
            return;
        }
        if state.parked > 0 {
            self.shared.work.notify_one();
        }
        if startable > state.parked + state.searching && state.workers < MAX_WORKERS {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("kop-py-{}", state.workers))
                .spawn(move || shared.worker());
            match spawned {
                Ok(_) => {
                    state.workers += 1;
                    state.searching += 1;
                }
                // The workers already running take the job later.
                Err(e) => tracing::warn!(error = %e, "cannot start a Python bridge thread"),
            }
        }
    }

    /// Runs `f` on a worker in the blocking lane and waits for its result (the caller is a
    /// blocking thread, or a tokio worker inside `block_in_place`).
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(Python<'_>) -> T + Send + 'static,
    ) -> Result<T, PoolClosed> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            Lane::Blocking,
            Box::new(move |py| {
                let _ = tx.send(f(py));
            }),
        );
        rx.recv().map_err(|_| PoolClosed)
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.shared.state.lock();
        PoolStats {
            queued: state.queued(),
            workers: state.workers,
            busy: state.busy,
            done: self.shared.done.load(Ordering::Relaxed),
        }
    }
}

impl Default for WorkerPool {
    fn default() -> Self {
        WorkerPool::new()
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shared.state.lock().closed = true;
        self.shared.work.notify_all();
    }
}
