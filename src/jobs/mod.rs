//! Job kinds: the `Job` trait, the errors a handler returns, and the registry that pairs every
//! handler with its spec in the top-level `jobs/` folder.
//!
//! A handler lives in `src/jobs/<kind>.rs`; its policy (queue, retries, timeout, uniqueness) in
//! `jobs/<kind>.toml`. `registry::handlers()` is the one place where kinds are registered.

pub mod aggregate_votes;
pub mod confirm_transactions;
pub mod dispatch_notifications;
pub mod error;
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

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::chain::{Chain, ChainError};
use crate::config::Settings;
use crate::queue::QueueClient;

pub use error::{JobError, error_chain};
pub use registry::{HandlerSet, Registry, RegistryError};
pub use spec::JobSpec;

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
