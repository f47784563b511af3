//! The queue engine: jobs in Redis, moved between states by Lua scripts.
//!
//! `client` holds the calls on a worker's path (enqueue, fetch, ack, settle, extend, reap),
//! `admin` the operators' calls (stats, listings, retry, delete, purge, pause), `remove` the
//! removal of a whole queue, `workers` the registry of live worker processes. Every key comes
//! from `keys`, every script from `scripts`.

pub mod admin;
pub mod backoff;
pub mod client;
mod connect;
mod enqueue;
pub mod envelope;
pub mod keys;
pub mod listing;
pub mod payload;
pub mod remove;
pub mod scripts;
pub mod workers;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use backoff::Backoff;
pub use client::{
    AckReport, Call, Fetched, QueueClient, ReapReport, Settle, SettleAction, SettleReport,
};
pub use enqueue::{LATEST_MS, PartialEnqueue};
pub use envelope::{Enqueued, Envelope, JobState, Leased, NewJob};
pub use keys::{Keys, QueueKeys, validate_queue_name};

/// What can go wrong talking to the queue store.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The Redis error is shown in the message, not chained as a source, because its own
    /// display already includes its causes and a chain would print them twice.
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error(transparent)]
    InvalidQueue(#[from] keys::InvalidQueueName),
    #[error("unexpected reply from {script}: {detail}")]
    Reply {
        script: &'static str,
        detail: String,
    },
    /// serde_json's error is in the message, not chained, for the same reason as Redis's.
    #[error("could not encode job: {0}")]
    Encode(serde_json::Error),
    #[error("no job with id {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A bulk enqueue failed part-way; it says which jobs were stored.
    #[error(transparent)]
    Partial(Box<PartialEnqueue>),
    /// A limit of the connection settings passed: which one, its value, and what was waited
    /// for (with the address, password masked).
    #[error("{setting} ({}) expired {during}", connect::shown(*limit))]
    Timeout {
        setting: &'static str,
        limit: Duration,
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
    /// How long per-minute statistics are kept.
    pub minute_stats_ttl: Duration,
    /// Most delayed jobs promoted per set by one fetch.
    pub promote_batch: usize,
    /// How long an id chosen by the producer protects against a second enqueue with that id.
    pub id_dedupe_ttl: Duration,
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
            minute_stats_ttl: Duration::from_secs(24 * 3600),
            promote_batch: 1000,
            id_dedupe_ttl: Duration::from_secs(24 * 3600),
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
