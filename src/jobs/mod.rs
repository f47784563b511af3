//! The marketplace's job kinds, the state they share (`Resources`), and `handlers()`, the one
//! place where they are registered.
//!
//! A handler lives in `src/jobs/<kind>.rs`; its policy (queue, retries, timeout, uniqueness) in
//! `jobs/<kind>.toml`. What a kind is (`Job`, `JobArgs`, `JobContext`, `JobError`) and the
//! registry that pairs kinds with specs belong to the engine (`crate::job`).

pub mod aggregate_votes;
pub mod confirm_transactions;
pub mod dispatch_notifications;
pub mod index_chain_events;
pub mod prune_snapshots;
pub mod rebuild_leaderboard;
pub mod resolve_markets;
pub mod send_notification;
pub mod send_transactions;
pub mod snapshot_discussions;
pub mod sync_balances;

use std::future::Future;
use std::sync::Arc;

use crate::chain::{Chain, ChainError};
use crate::config::Settings;
use crate::queue::QueueClient;

/// The engine's own kinds, which the marketplace runs with specs of its own.
pub use jobfleet_engine::builtin::{Noop, Sleep};

pub use crate::job::{
    HandlerSet, Job, JobArgs, JobContext, JobError, JobSpec, RegistryError, error_chain,
};

/// The registry of the marketplace's kinds.
pub type Registry = crate::job::Registry<Resources>;

/// Every job kind this program knows. Add new kinds here, and a spec in `jobs/`.
pub fn handlers() -> HandlerSet<Resources> {
    HandlerSet::new()
        .register::<Noop>()
        .register::<Sleep>()
        .register::<aggregate_votes::AggregateVotes>()
        .register::<rebuild_leaderboard::RebuildLeaderboard>()
        .register::<send_transactions::SendTransactions>()
        .register::<confirm_transactions::ConfirmTransactions>()
        .register::<sync_balances::SyncBalances>()
        .register::<resolve_markets::ResolveMarkets>()
        .register::<index_chain_events::IndexChainEvents>()
        .register::<snapshot_discussions::SnapshotDiscussions>()
        .register::<prune_snapshots::PruneSnapshots>()
        .register::<dispatch_notifications::DispatchNotifications>()
        .register::<send_notification::SendNotification>()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_specs_match_the_handlers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
        let reg = Registry::load(&dir, handlers()).unwrap();
        assert_eq!(reg.spec("sleep").unwrap().queue, "default");
        let noop = reg.new_job("noop", serde_json::json!({})).unwrap();
        assert_eq!(noop.max_attempts, 3);
        let e = reg
            .new_job("sleep", serde_json::json!({"ms": "x"}))
            .unwrap_err();
        assert!(e.to_string().contains("sleep"), "{e}");
    }
}
