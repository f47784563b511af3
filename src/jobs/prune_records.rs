//! `prune_records`: deletes the records past their retention (`[retention]`): dispatched
//! notifications with their delivery attempts, CONFIRMED and FAILED chain outbox rows, chain
//! events below the reorg window, and old `platform_stats` rows.
//!
//! Args: `{"dry_run": true}` counts, per table, what a run would delete and deletes nothing.
//! What is never deleted, whatever its age, and why, is in `db::retention`'s documentation.
//!
//! Each table is pruned in statements of at most `BATCH` rows, each in its own transaction and
//! skipping rows another transaction holds, so the prune never waits on a writer and never
//! holds long locks. The cutoffs come from the job's tick (`ctx.enqueued_at`), so a retry,
//! however late, deletes nothing the tick's run would have kept. Idempotent: a re-run finds
//! nothing left past the same cutoffs, and two runs at once skip each other's locked rows. A
//! database error fails the run with a retryable error; what it deleted stays deleted, and
//! the retry goes on from there.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::resources::Resources;
use crate::db::retention::{self, Plan, Pruned, Table};
use crate::job::{Job, JobArgs, JobContext, JobError};

/// Rows deleted per statement: large enough that a million rows take a hundred statements,
/// small enough that one statement takes a fraction of a second (see docs/benchmark.md).
pub const BATCH: i64 = 10_000;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRecords {
    /// Count what would be deleted, per table, and delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// sqlx's error is shown in the message and not chained, so that its cause is said once.
    #[error("database, pruning {table}: {}", crate::job::error_chain(.error))]
    Db {
        table: &'static str,
        error: sqlx::Error,
    },
}

impl PruneError {
    /// A database error is retried with the spec's backoff: the next attempt starts again
    /// from the oldest rows left.
    pub fn into_job_error(self) -> JobError {
        JobError::retry(self)
    }
}

/// What one run did (or, for a dry run, would do), table by table in the order pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneReport {
    pub dry_run: bool,
    pub tables: Vec<Pruned>,
}

impl PruneReport {
    /// The rows of `table` deleted (or counted, for a dry run).
    pub fn rows(&self, table: Table) -> u64 {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map_or(0, |t| t.rows)
    }

    /// The slowest statement of the run, which is the longest any of its locks was held.
    pub fn longest(&self) -> Duration {
        self.tables
            .iter()
            .map(|t| t.longest)
            .max()
            .unwrap_or_default()
    }
}

impl JobArgs for PruneRecords {
    const KIND: &'static str = "prune_records";
}

impl Job<Resources> for PruneRecords {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let settings = &ctx.state().settings;
        // A tick stamped by a scheduler whose clock runs ahead must not delete early.
        let now = ctx.enqueued_at.min(Utc::now());
        let plan = Plan::new(&settings.retention, settings.chain.reorg_depth, now);
        let report = prune(&ctx.state().db, &plan, BATCH, self.dry_run)
            .await
            .map_err(PruneError::into_job_error)?;
        log(&report);
        Ok(())
    }
}

/// Prunes every table past `plan`'s cutoffs, `batch` rows per statement, or only counts them
/// for a dry run.
pub async fn prune(
    pool: &PgPool,
    plan: &Plan,
    batch: i64,
    dry_run: bool,
) -> Result<PruneReport, PruneError> {
    let mut tables = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        let done = if dry_run {
            count(pool, table, plan).await
        } else {
            retention::prune_table(pool, table, plan, batch).await
        };
        tables.push(done.map_err(|error| PruneError::Db {
            table: table.name(),
            error,
        })?);
    }
    Ok(PruneReport { dry_run, tables })
}

/// A dry run's figures for one table, timed like a batch.
async fn count(pool: &PgPool, table: Table, plan: &Plan) -> Result<Pruned, sqlx::Error> {
    let started = Instant::now();
    let rows = retention::count_table(pool, table, plan).await?;
    Ok(Pruned {
        table,
        rows,
        statements: 1,
        longest: started.elapsed(),
        elapsed: started.elapsed(),
    })
}

/// One line per table, then the counts of all tables in one line.
fn log(report: &PruneReport) {
    for t in &report.tables {
        tracing::debug!(
            table = t.table.name(),
            rows = t.rows,
            statements = t.statements,
            longest_ms = t.longest.as_millis() as u64,
            dry_run = report.dry_run,
            "table pruned"
        );
    }
    let rows = |table| report.rows(table);
    let message = if report.dry_run {
        "records past their retention (dry run: nothing deleted)"
    } else {
        "records pruned"
    };
    tracing::info!(
        notification_deliveries = rows(Table::NotificationDeliveries),
        notifications = rows(Table::Notifications),
        chain_outbox = rows(Table::ChainOutbox),
        chain_events = rows(Table::ChainEvents),
        platform_stats = rows(Table::PlatformStats),
        sync_batches = rows(Table::SyncBatches),
        sync_runs = rows(Table::SyncRuns),
        longest_statement_ms = report.longest().as_millis() as u64,
        "{message}"
    );
}
