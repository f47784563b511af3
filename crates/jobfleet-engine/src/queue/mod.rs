//! The queue engine: jobs in Redis, moved between states by Lua scripts.
//!
//! # The data model
//!
//! Every key of a queue `q` in namespace `ns` starts with `ns:{q}:` (one Cluster hash tag, so
//! one slot; the full table is in `keys`). A queue holds its jobs in five structures, and a
//! job's state is the structure that holds it:
//!
//! - `pending`, one list per priority (`pending:0`, `pending:1`, `pending`, `pending:3`): jobs
//!   ready to run, taken from the head of the most urgent non-empty list by `fetch`;
//! - `scheduled`, a sorted set scored by due time (ms): delayed and snoozed jobs;
//! - `retry`, a sorted set scored by due time (ms): jobs waiting for their next attempt;
//! - `inflight:<worker>`, one hash per worker: the jobs leased to it by lease token, with the
//!   worker's lease deadline in the `leases` sorted set (scored by Redis's clock);
//! - `dead`, a sorted set scored by time of death (ms), capped by age and count.
//!
//! Beside them: `stats` (lifetime counters) and `stats:<minute>` (per-minute counts),
//! `unique:<key>` (the id of the job holding a unique key), `paused`, `ticks` (the last tick
//! of each schedule), `completed` (an opt-in history), `reaped:<worker>` and
//! `reply:<worker>:<lane>` (what a retried call must answer), and the `wake` channel. The
//! namespace has `ns:queues`, and the registries of live workers and schedulers.
//!
//! A stored job is one string, a header the scripts read and rewrite followed by the envelope
//! JSON only Rust decodes (see `payload` for the header and `envelope` for the JSON):
//!
//! ```text
//! jf|0|5|01J9ZK7R3M4X|0|0:0:\n{"id":"01J9ZK7R3M4X","kind":"send_receipt","queue":"receipts",...}
//! ```
//!
//! Every change of state moves that exact string from one structure to another inside one
//! Lua script (`scripts`), which also keeps the counters; a worker's later calls name the
//! job's lease token and apply only while that token is still in its in-flight hash, which
//! fences out a worker whose lease expired (a process never hands out a token twice: `tokens`).
//!
//! # The modules
//!
//! `client` holds the calls on a worker's path (enqueue, fetch, ack, settle, extend, reap),
//! `admin` the operators' calls (stats, listings, retry, delete, purge, pause), `operate` their
//! actions on many jobs at once (a board's bulk retry, delete and kill), `remove` the
//! removal of a whole queue, `workers` the registry of live worker processes. Every key comes
//! from `keys`, every script from `scripts`.

pub mod admin;
pub mod backoff;
mod calls;
pub mod cancel;
pub mod client;
mod connect;
pub mod connection;
mod enqueue;
pub mod envelope;
pub mod find;
pub mod flow;
pub mod flows;
pub mod keys;
pub mod limits;
pub mod listing;
pub mod operate;
pub mod payload;
pub mod priority;
pub mod progress;
pub mod pubsub;
pub mod remove;
pub mod scripts;
mod sentinel;
pub mod target;
pub mod tokens;
pub mod workers;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use backoff::Backoff;
pub use client::{
    AckReport, Call, Fetched, QueueClient, ReapReport, Settle, SettleAction, SettleReport,
};
pub use connection::Connection;
pub use enqueue::{LATEST_MS, PartialEnqueue, TICK_HISTORY};
pub use envelope::{Enqueued, Envelope, JobState, Leased, NewJob};
pub use flow::{Flow, FlowChild, FlowOutcome, FlowRef, FlowStarted};
pub use flows::{FlowState, FlowStatus};
pub use keys::{Keys, QueueKeys, WebKeys, validate_queue_name};
pub use operate::{ActReport, Action};
pub use scripts::Durability;
pub use target::Target;

/// What can go wrong talking to the queue store.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The Redis error is shown in the message, not chained as a source, because its own
    /// display already includes its causes and a chain would print them twice.
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    /// A queue name that cannot be used (empty, too long, or with a character that breaks keys).
    #[error(transparent)]
    InvalidQueue(#[from] keys::InvalidQueueName),
    /// A script answered something the client cannot read; a bug or a foreign script.
    #[error("unexpected reply from {script}: {detail}")]
    Reply {
        /// The script that answered.
        script: &'static str,
        /// What was wrong with the answer.
        detail: String,
    },
    /// serde_json's error is in the message, not chained, for the same reason as Redis's.
    #[error("could not encode job: {0}")]
    Encode(serde_json::Error),
    /// No job with this id exists in any queue (it may have finished).
    #[error("no job with id {0}")]
    NotFound(String),
    /// A request that cannot be carried out; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// A bulk enqueue failed part-way; it says which jobs were stored.
    #[error(transparent)]
    Partial(Box<PartialEnqueue>),
    /// A flow's start failed after it was recorded: what went in, then the failure (in the
    /// message, as `Partial` does).
    #[error(
        "flow {flow} was recorded, but {done}: {error}; start it again with the same flow id to finish it"
    )]
    FlowIncomplete {
        /// The flow's id.
        flow: String,
        /// What went in.
        done: String,
        /// The failure that stopped the start.
        error: Box<QueueError>,
    },
    /// A write the master took but too few replicas confirmed in time
    /// (`Durability::Replicated`): it stands unless the master fails before they catch up.
    #[error(
        "{what} was stored on the master, but {confirmed} of {wanted} replicas confirmed it \
         within {}; it is lost if the master fails before they catch up",
        connect::shown(*timeout)
    )]
    NotReplicated {
        /// The call: `enqueue`, `ack`, `settle`, `enqueue_tick`.
        what: &'static str,
        /// Replicas that confirmed.
        confirmed: u32,
        /// Replicas that were asked for.
        wanted: u32,
        /// How long they were waited for.
        timeout: Duration,
    },
    /// A limit of the connection settings passed: which one, its value, and what was waited
    /// for (with the address, password masked).
    #[error("{setting} ({}) expired {during}", connect::shown(*limit))]
    Timeout {
        /// The setting whose limit passed.
        setting: &'static str,
        /// Its value.
        limit: Duration,
        /// What was waited for.
        during: String,
    },
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        QueueError::Redis(e)
    }
}

impl From<serde_json::Error> for QueueError {
    fn from(e: serde_json::Error) -> Self {
        QueueError::Encode(e)
    }
}

/// The result of a queue store call.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// Settings of the store that every process shares.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Dead set cap by count (Sidekiq's default: 10,000).
    pub dead_max_jobs: u64,
    /// Dead set cap by age (Sidekiq's default: 180 days).
    pub dead_max_age: Duration,
    /// Completed jobs kept as a capped history; 0 keeps none.
    pub completed_history: u64,
    /// Keep each job's last 25 failed attempts (`attempts:<id>`), which the board shows; it
    /// costs about 15% of the drain rate of jobs that fail and then succeed.
    pub attempt_history: bool,
    /// How long per-minute statistics are kept.
    pub minute_stats_ttl: Duration,
    /// Most delayed jobs promoted per set by one fetch.
    pub promote_batch: usize,
    /// How long an id chosen by the producer protects against a second enqueue with that id.
    pub id_dedupe_ttl: Duration,
    /// Whether enqueue, ack and settle wait for replicas to have their writes.
    pub durability: Durability,
    /// Limit of one connection attempt: TCP, TLS and the Redis handshake.
    pub connect_timeout: Duration,
    /// Limit of one call's answer; `None` waits as long as the connection lives (the
    /// scheduler's tick calls, whose outcome must never be left unknown).
    pub response_timeout: Option<Duration>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            dead_max_jobs: 10_000,
            dead_max_age: Duration::from_secs(180 * 24 * 3600),
            completed_history: 0,
            attempt_history: true,
            minute_stats_ttl: Duration::from_secs(24 * 3600),
            promote_batch: 1000,
            id_dedupe_ttl: Duration::from_secs(24 * 3600),
            durability: Durability::Fast,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Some(Duration::from_secs(5)),
        }
    }
}

/// Milliseconds since the Unix epoch by the system clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Reads an integer out of a script reply.
pub(crate) fn int(v: &redis::Value, script: &'static str) -> Result<i64> {
    redis::from_redis_value_ref::<i64>(v).map_err(|e| QueueError::Reply {
        script,
        detail: e.to_string(),
    })
}

/// Reads bytes out of a script reply: stored jobs, which need not be UTF-8.
pub(crate) fn bytes(v: &redis::Value, script: &'static str) -> Result<Vec<u8>> {
    redis::from_redis_value_ref::<Vec<u8>>(v).map_err(|e| QueueError::Reply {
        script,
        detail: e.to_string(),
    })
}
