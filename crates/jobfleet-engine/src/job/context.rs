//! What running a job kind means (`Job<S>`) and what a handler is told (`JobContext<S>`).

use std::future::Future;
use std::sync::Arc;

use super::args::JobArgs;
use super::cancel::JobCancel;
use super::client::Client;
use super::error::JobError;
use crate::queue::FlowOutcome;

/// What running a job kind means, given the application's state `S`.
pub trait Job<S>: JobArgs {
    /// Runs one attempt. The error says what happens next (see [`JobError`]).
    fn run(self, ctx: JobContext<S>) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// What a handler knows about the job it runs, and what it may use: the application's state
/// and a client that enqueues further jobs with their specs applied.
#[derive(Debug)]
pub struct JobContext<S> {
    /// The job's id.
    pub id: String,
    /// The queue it was taken from.
    pub queue: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// Runs in all, the first included.
    pub max_attempts: u32,
    /// When the job was enqueued (for a scheduled job, its tick): relative periods such as
    /// "previous week" are resolved against it, not against the clock of the worker that
    /// happens to run it, maybe late.
    pub enqueued_at: chrono::DateTime<chrono::Utc>,
    /// When this run started: for a kind with `[limits]`, the moment its limits counted the
    /// start (by Redis's clock, the one every worker's limits share); otherwise when the
    /// worker began the run.
    pub started_at: chrono::DateTime<chrono::Utc>,
    state: Arc<S>,
    client: Client,
    cancel: JobCancel,
    flow: Option<Arc<FlowOutcome>>,
}

// Written out rather than derived: a derive would require `S: Clone`, but only the `Arc` is
// cloned.
impl<S> Clone for JobContext<S> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            queue: self.queue.clone(),
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            enqueued_at: self.enqueued_at,
            started_at: self.started_at,
            state: self.state.clone(),
            client: self.client.clone(),
            cancel: self.cancel.clone(),
            flow: self.flow.clone(),
        }
    }
}

/// Where a job stands, as the worker tells its handler.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The job's id.
    pub id: String,
    /// The queue it was taken from.
    pub queue: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// Runs in all, the first included.
    pub max_attempts: u32,
    /// When the job was enqueued, in ms since the Unix epoch.
    pub enqueued_at_ms: i64,
}

impl<S> JobContext<S> {
    /// The context of one attempt.
    pub fn new(attempt: Attempt, state: Arc<S>, client: Client) -> Self {
        Self {
            id: attempt.id,
            queue: attempt.queue,
            attempt: attempt.attempt,
            max_attempts: attempt.max_attempts,
            enqueued_at: chrono::DateTime::from_timestamp_millis(attempt.enqueued_at_ms)
                .unwrap_or_else(chrono::Utc::now),
            started_at: chrono::Utc::now(),
            state,
            client,
            cancel: JobCancel::new(),
            flow: None,
        }
    }

    /// This context with what the job's flow came to, for a flow's callback.
    pub fn with_flow_result(mut self, outcome: Option<FlowOutcome>) -> Self {
        self.flow = outcome.map(Arc::new);
        self
    }

    /// For a flow's callback (`on_success`, `on_complete`), what its flow came to: the counts
    /// of its children and the ids of the failed ones. None for any other job.
    pub fn flow_result(&self) -> Option<&FlowOutcome> {
        self.flow.as_deref()
    }

    /// This context with the start its kind's limits counted, in ms since the Unix epoch.
    pub fn with_started_at(mut self, at_ms: i64) -> Self {
        if let Some(at) = chrono::DateTime::from_timestamp_millis(at_ms) {
            self.started_at = at;
        }
        self
    }

    /// This context with the cancellation the worker signals when an operator cancels the
    /// running job.
    pub fn with_cancel(mut self, cancel: JobCancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Completes when an operator cancels this run (`jobfleet jobs cancel`). Stopping is up
    /// to the handler: one that then returns an error ends as cancelled (dead, not retried);
    /// one that finishes its work has succeeded.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether an operator cancelled this run.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports how far the run is: `fraction` from 0 to 1 and a short message (at most 200
    /// characters), shown by `jobfleet jobs show`, `jobfleet workers` and the board. A report
    /// that cannot be stored is logged and otherwise ignored: progress never fails a job.
    /// Call it when something changed, a few times a second at most.
    pub async fn progress(&self, fraction: f64, message: &str) {
        let report = crate::queue::progress::Progress::new(fraction, message, self.attempt);
        let store = self.client.queue_client();
        if let Err(e) = store.set_progress(&self.queue, &self.id, &report).await {
            tracing::debug!(error = %e, "cannot store the job's progress");
        }
    }

    /// The application's state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The application's state, shared.
    pub fn state_arc(&self) -> &Arc<S> {
        &self.state
    }

    /// The client that enqueues further jobs (their specs apply).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether this run is the job's last attempt: a failure sends it to dead.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}
