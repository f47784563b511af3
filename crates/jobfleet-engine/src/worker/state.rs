//! The state a worker's tasks share: the worker's parts, the jobs it holds and what it did.
//!
//! It sits below the loops that use it (`pool`, `acker`, `background`), so that they import it
//! and not each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::WorkerConfig;
use super::runner::Runtime;
use crate::job::JobCancel;
use crate::queue::{Leased, QueueClient};
use crate::telemetry::Metrics;
use crate::telemetry::http::Health;

/// Called just before a job starts running (the benchmark measures start latency with it).
pub type JobObserver = Arc<dyn Fn(&Leased) + Send + Sync>;

/// Most jobs leased by one fetch call.
pub(super) const MAX_BATCH: usize = 1000;

/// What a worker did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Jobs that succeeded.
    pub completed: u64,
    /// Jobs that failed and were scheduled for another attempt.
    pub retried: u64,
    /// Jobs that went to the dead set.
    pub dead: u64,
    /// Jobs snoozed without counting an attempt.
    pub snoozed: u64,
    /// Handed back to pending at shutdown, or found in flight unknown to the process.
    pub requeued: u64,
    /// Settlements ignored because the lease had moved on.
    pub stale: u64,
}

impl WorkerReport {
    pub(super) fn add(&mut self, r: WorkerReport) {
        self.completed += r.completed;
        self.retried += r.retried;
        self.dead += r.dead;
        self.snoozed += r.snoozed;
        self.requeued += r.requeued;
        self.stale += r.stale;
    }
}

/// A job this process holds a lease on. Jobs are keyed by a sequence number per lease, not by
/// job id: the same job can come back to this worker (after the reaper took it from a stalled
/// run) while the first run is still finishing.
pub(super) struct Held {
    pub job: Arc<Leased>,
    pub kind: String,
    pub started_at: Option<i64>,
    /// Signalled when an operator cancels the running job.
    pub cancel: JobCancel,
}

/// A worker process; build it, then `run` it until a shutdown signal.
pub struct Worker<S> {
    pub(super) client: QueueClient,
    pub(super) rt: Runtime<S>,
    pub(super) cfg: WorkerConfig,
    pub(super) metrics: Metrics,
    pub(super) health: Arc<Health>,
    pub(super) observer: Option<JobObserver>,
    /// The scrape target of the process's telemetry server, published in the registry.
    pub(super) metrics_addr: Option<String>,
}

impl<S> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

pub(super) struct Shared<S> {
    pub w: Worker<S>,
    pub held: Mutex<HashMap<u64, Held>>,
    pub wake: Notify,
    /// Stop fetching and starting jobs.
    pub stop: CancellationToken,
    /// Stop the background loops, once the jobs are drained.
    pub halt: CancellationToken,
    pub report: Mutex<WorkerReport>,
}

impl<S> Shared<S> {
    pub fn held(&self) -> MutexGuard<'_, HashMap<u64, Held>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The jobs held, grouped by queue.
    pub fn held_by_queue(&self) -> HashMap<String, Vec<(u64, Arc<Leased>)>> {
        let mut by_queue: HashMap<String, Vec<(u64, Arc<Leased>)>> = HashMap::new();
        for (seq, h) in self.held().iter() {
            by_queue
                .entry(h.job.queue.clone())
                .or_default()
                .push((*seq, h.job.clone()));
        }
        by_queue
    }

    pub fn add_report(&self, r: WorkerReport) {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(r);
    }
}
