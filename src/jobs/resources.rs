//! What the marketplace's handlers share (`Resources`, the `S` of their `Job<S>`), and how a
//! chain job's errors become what happens next (`chain_job`).

use std::future::Future;
use std::sync::Arc;

use crate::chain::{Chain, ChainError};
use crate::config::Settings;
use crate::job::JobError;
use crate::queue::QueueClient;

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
