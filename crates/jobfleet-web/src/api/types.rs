//! The API's request and response bodies, with their OpenAPI schemas. They are the API's own
//! types, not the engine's: the engine's may change without changing the API.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use jobfleet_engine::queue::admin::QueueStats;
use jobfleet_engine::queue::listing::{AttemptRecord, JobInfo};

/// An error: what was wrong, in words.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// What went wrong and, where it helps, what to do.
    pub error: String,
}

/// A job to enqueue. The kind's spec gives its queue, attempts and uniqueness unless this
/// says otherwise.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The job's kind, as its spec in `jobs/` names it.
    #[schema(example = "send_notification")]
    pub kind: String,
    /// The job's args, a JSON object the kind's handler accepts (default `{}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: Option<Value>,
    /// Another queue than the spec's; it must be a queue the fleet knows.
    #[serde(default)]
    pub queue: Option<String>,
    /// Run after this delay: seconds as a number, or a duration like `"30s"`, `"5m"`.
    #[serde(default, rename = "in")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub delay: Option<Value>,
    /// Run at this time (RFC 3339).
    #[serde(default)]
    #[schema(example = "2026-12-01T10:00:00Z")]
    pub at: Option<String>,
    /// Another priority than the spec's: 0 (or `"critical"`) runs before every other level of
    /// the queue, then 1 (`"high"`), 2 (`"normal"`, the default) and 3 (`"low"`).
    #[serde(default)]
    #[schema(value_type = Option<u8>, minimum = 0, maximum = 3, example = 1)]
    pub priority: Option<Value>,
    /// A unique key: while a job holding it exists, enqueueing another returns that job.
    #[serde(default)]
    pub unique: Option<String>,
    /// The job's id, chosen by the producer so that a retried request stores one job.
    #[serde(default)]
    pub id: Option<String>,
}

/// A job that was enqueued, or found already enqueued.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnqueueResponse {
    /// The job's id (for a duplicate, the id of the job that was there).
    pub id: String,
    /// The kind.
    pub kind: String,
    /// The queue it went to.
    pub queue: String,
    /// False when the id or the unique key was taken: nothing new was stored.
    pub created: bool,
}

/// Many jobs to enqueue in one request (at most 10,000).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// The jobs, each as for `POST /api/v1/jobs`.
    pub jobs: Vec<EnqueueRequest>,
}

/// The outcome of each job of a bulk request, in the request's order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResponse {
    /// Jobs stored by this request.
    pub created: u64,
    /// Jobs found already enqueued (their id or unique key was taken).
    pub existing: u64,
    /// Jobs refused or not stored.
    pub failed: u64,
    /// One result per job.
    pub results: Vec<BulkResult>,
}

/// One job's outcome in a bulk request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    /// Its position in the request, from 0.
    pub index: usize,
    /// 201 stored, 200 already enqueued, 422 refused (see `error`), 503 not stored, or of
    /// unknown outcome, because the store failed: the error says which.
    pub status: u16,
    /// The job's id, when it was stored or found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why it was refused or not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A queue's counters and depths.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// The queue's name.
    pub name: String,
    /// True while workers take no jobs of it.
    pub paused: bool,
    /// Jobs ready to run.
    pub pending: u64,
    /// Jobs delayed until a time.
    pub scheduled: u64,
    /// Jobs running on workers.
    pub active: u64,
    /// Jobs waiting for their next attempt.
    pub retry: u64,
    /// Jobs that used up their attempts.
    pub dead: u64,
    /// Jobs that succeeded, since the counters began.
    pub processed: u64,
    /// Failed attempts, since the counters began.
    pub failed: u64,
    /// Jobs enqueued, since the counters began.
    pub enqueued: u64,
    /// Age of the oldest pending job, in ms.
    pub oldest_pending_ms: Option<i64>,
}

impl From<QueueStats> for QueueView {
    fn from(s: QueueStats) -> Self {
        Self {
            name: s.queue,
            paused: s.paused,
            pending: s.pending,
            scheduled: s.scheduled,
            active: s.active,
            retry: s.retry,
            dead: s.dead,
            processed: s.processed,
            failed: s.failed,
            enqueued: s.enqueued,
            oldest_pending_ms: s.oldest_pending_ms,
        }
    }
}

/// Everything stored about one job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its kind (`?` when the stored job cannot be decoded).
    pub kind: String,
    /// `pending`, `scheduled`, `active`, `retry`, `dead`, or `completed` (then only `id`,
    /// `queue` and `at`, the finish time, are known).
    #[schema(example = "pending")]
    pub state: String,
    /// Runs that ended in failure.
    pub attempts: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
    /// Its level within the queue, 0 (runs first) to 3; absent for a completed job.
    pub priority: Option<u8>,
    /// Its args.
    #[schema(value_type = Option<Object>)]
    pub args: Option<Value>,
    /// When it was enqueued, in ms since the epoch.
    pub created_at: Option<i64>,
    /// When it is due (scheduled, retry), died (dead) or finished (completed), in ms since the
    /// epoch.
    pub at: Option<i64>,
    /// The error of its last failed run.
    pub error: Option<String>,
    /// When its last run failed, in ms since the epoch.
    pub failed_at: Option<i64>,
    /// The worker running it, for an active job.
    pub worker: Option<String>,
    /// Why the stored job cannot be decoded, for one that cannot.
    pub undecodable: Option<String>,
    /// Its failed attempts, newest first (the last 25).
    pub failures: Vec<FailureView>,
}

/// One failed attempt of a job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FailureView {
    /// Which attempt it was, from 1.
    pub attempt: u32,
    /// When it failed, in ms since the epoch.
    pub failed_at: i64,
    /// The worker that ran it.
    pub worker: String,
    /// Its error.
    pub error: String,
}

impl From<AttemptRecord> for FailureView {
    fn from(a: AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            failed_at: a.failed_at,
            worker: a.worker,
            error: a.error,
        }
    }
}

impl JobView {
    /// A stored job and its failed attempts.
    pub fn new(j: JobInfo, failures: Vec<AttemptRecord>) -> Self {
        Self {
            failures: failures.into_iter().map(FailureView::from).collect(),
            state: j.state.as_str().to_owned(),
            args: j.envelope.as_ref().map(|e| e.args.clone()),
            created_at: j.envelope.as_ref().map(|e| e.created_at),
            id: j.id,
            queue: j.queue,
            kind: j.kind,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            priority: Some(j.priority.level()),
            at: j.score,
            error: j.error,
            failed_at: j.failed_at,
            worker: j.worker,
            undecodable: j.undecodable,
        }
    }

    /// A job that succeeded and is kept only in the history of completed jobs: its id, queue
    /// and finish time are all that is known.
    pub fn completed(id: String, queue: String, at: i64) -> Self {
        Self {
            id,
            queue,
            kind: String::new(),
            state: "completed".to_owned(),
            attempts: 0,
            max_attempts: 0,
            priority: None,
            args: None,
            created_at: None,
            at: Some(at),
            error: None,
            failed_at: None,
            worker: None,
            undecodable: None,
            failures: Vec::new(),
        }
    }
}

/// The outcome of cancelling a job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    /// The job's id.
    pub id: String,
    /// The state it was in: `pending`, `scheduled` or `retry` (it is dead now), or `active`.
    pub previous_state: String,
    /// `dead` when the waiting job went to the dead set, `signalled` when its worker was asked
    /// to stop the running job (it ends as cancelled unless it finishes first).
    pub outcome: String,
}

/// The outcome of an action on one job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionResponse {
    /// The job's id.
    pub id: String,
    /// The state it was in before the action.
    pub previous_state: String,
}
