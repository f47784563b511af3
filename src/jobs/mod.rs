//! Job kinds: the `Job` trait, the errors a handler returns, and the registry that pairs every
//! handler with its spec in the top-level `jobs/` folder.
//!
//! A handler lives in `src/jobs/<kind>.rs`; its policy (queue, retries, timeout, uniqueness) in
//! `jobs/<kind>.toml`. `registry::handlers()` is the one place where kinds are registered.

pub mod aggregate_votes;
pub mod confirm_transactions;
pub mod dispatch_notifications;
pub mod index_chain_events;
pub mod noop;
pub mod prune_snapshots;
pub mod rebuild_leaderboard;
pub mod registry;
pub mod resolve_markets;
pub mod send_notification;
pub mod send_transactions;
pub mod sleep;
pub mod snapshot_discussions;
pub mod spec;
pub mod sync_balances;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::chain::{Chain, ChainError};
use crate::config::Settings;
use crate::queue::QueueClient;

pub use registry::{HandlerSet, Registry, RegistryError};
pub use spec::JobSpec;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler says when it did not succeed; each variant says what happens next.
#[derive(Debug)]
pub enum JobError {
    /// Try again after the kind's backoff, until its attempts are used up, then dead.
    Retry(BoxError),
    /// Do not try again: straight to dead.
    Fatal(BoxError),
    /// Not a failure: run again after this delay, without consuming an attempt.
    Snooze(Duration),
    /// A failure that must not be retried before this delay (an HTTP 429's Retry-After): it
    /// consumes an attempt like `Retry`, and the retry waits the longer of the delay and the
    /// kind's backoff.
    RetryAfter(BoxError, Duration),
}

impl JobError {
    pub fn retry(e: impl Into<BoxError>) -> Self {
        JobError::Retry(e.into())
    }
    pub fn fatal(e: impl Into<BoxError>) -> Self {
        JobError::Fatal(e.into())
    }
    pub fn snooze(after: Duration) -> Self {
        JobError::Snooze(after)
    }
    pub fn retry_after(e: impl Into<BoxError>, after: Duration) -> Self {
        JobError::RetryAfter(e.into(), after)
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Retry(e) => write!(f, "retryable: {}", error_chain(e.as_ref())),
            JobError::Fatal(e) => write!(f, "fatal: {}", error_chain(e.as_ref())),
            JobError::Snooze(d) => write!(f, "snoozed for {}", humantime::format_duration(*d)),
            JobError::RetryAfter(e, d) => write!(
                f,
                "retryable after {}: {}",
                humantime::format_duration(*d),
                error_chain(e.as_ref())
            ),
        }
    }
}

impl std::error::Error for JobError {}

/// An error and all its sources, joined by ": ", so the stored last error keeps the chain.
///
/// A source whose text the line already holds is left out. Our own error types put a cause
/// in their message or in `source()`, never both, but some libraries' errors do both (sqlx's
/// `error returned from database: {0}` with the same error as its source, alloy's transport
/// errors), and printing those whole would say every such cause twice.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// What the process shares with every handler: connections and configuration.
#[derive(Debug)]
pub struct Resources {
    pub queue: QueueClient,
    /// Connects on first use (see `db::lazy_pool`).
    pub db: sqlx::PgPool,
    pub settings: Settings,
    /// Built on first use (see `chain()`).
    chain: std::sync::OnceLock<Chain>,
    /// The notification clients (HTTP, SMTP), built on first use and shared so that their
    /// connections are pooled (see `notify::Notifier`).
    pub notifier: tokio::sync::OnceCell<Arc<crate::notify::Notifier>>,
}

impl Resources {
    /// The resources of a process: the queue client it has, a lazy database pool.
    pub fn new(queue: QueueClient, settings: Settings) -> Result<Self, crate::db::DbError> {
        Ok(Self {
            db: crate::db::lazy_pool(&settings.database)?,
            queue,
            settings,
            chain: std::sync::OnceLock::new(),
            notifier: tokio::sync::OnceCell::new(),
        })
    }

    /// Resources around a pool the caller has (tests use their own database's pool).
    pub fn with_pool(queue: QueueClient, settings: Settings, db: sqlx::PgPool) -> Self {
        Self {
            queue,
            db,
            settings,
            chain: std::sync::OnceLock::new(),
            notifier: tokio::sync::OnceCell::new(),
        }
    }

    /// The chain connection, built on first use (building it sends nothing).
    pub fn chain(&self) -> Result<&Chain, ChainError> {
        if let Some(chain) = self.chain.get() {
            return Ok(chain);
        }
        let chain = Chain::new(&self.settings.chain)?;
        Ok(self.chain.get_or_init(|| chain))
    }
}

/// Runs a chain job's body, mapping its errors to what happens next. A setting the job needs
/// that is empty is not a failure of the job: the deployment does not use that part of the
/// chain yet, so the run logs a warning and succeeds.
pub(crate) async fn chain_job<T>(
    kind: &str,
    body: impl Future<Output = Result<T, ChainError>>,
) -> Result<Option<T>, JobError> {
    match body.await {
        Ok(v) => Ok(Some(v)),
        Err(ChainError::NotConfigured(key)) => {
            tracing::warn!(kind, "chain.{key} is not configured: nothing to do");
            Ok(None)
        }
        Err(e) => Err(e.into_job_error()),
    }
}

/// What a handler knows about the job it runs.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub id: String,
    pub queue: String,
    /// 1 for the first run.
    pub attempt: u32,
    pub max_attempts: u32,
    /// When the job was enqueued (for a scheduled job, its tick): relative periods such as
    /// "previous week" are resolved against it, not against the clock of the worker that
    /// happens to run it, maybe late.
    pub enqueued_at: chrono::DateTime<chrono::Utc>,
    pub resources: Arc<Resources>,
}

/// A job kind: typed args with a stable kind name, and what running it means.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The stable name stored with every job; renaming it orphans queued jobs.
    const KIND: &'static str;

    fn run(self, ctx: JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_chain_says_each_cause_once() {
        let e = Repeats(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&e), "wrapper: disk full");
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }

    #[test]
    fn errors_keep_their_chain() {
        let e = JobError::retry(Outer(std::io::Error::other("inner")));
        assert_eq!(e.to_string(), "retryable: outer: inner");
        assert_eq!(
            JobError::snooze(Duration::from_secs(90)).to_string(),
            "snoozed for 1m 30s"
        );
        assert_eq!(
            JobError::retry_after("429", Duration::from_secs(30)).to_string(),
            "retryable after 30s: 429"
        );
    }
}
