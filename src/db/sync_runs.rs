//! Balance sync runs: what each batch of a run did (`sync_batches`), and the run's one row
//! (`sync_runs`), summed from its batches by the callback of the run's flow.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One run, as `sync_runs` keeps it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SyncRun {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub batches: i32,
    pub failed_batches: i32,
    pub wallets: i64,
    pub changed: i64,
    pub block_number: Option<i64>,
}

/// Records what one batch of `run` did; a batch run again adds the balances it changed.
pub async fn record_batch(
    pool: &PgPool,
    run: &str,
    from_id: i64,
    wallets: u32,
    changed: u32,
    block: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_batches (run_id, from_id, wallets, changed, block_number)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (run_id, from_id) DO UPDATE SET
             wallets = EXCLUDED.wallets,
             changed = sync_batches.changed + EXCLUDED.changed,
             block_number = GREATEST(sync_batches.block_number, EXCLUDED.block_number),
             synced_at = now()",
    )
    .bind(run)
    .bind(from_id)
    .bind(i32::try_from(wallets).unwrap_or(i32::MAX))
    .bind(i32::try_from(changed).unwrap_or(i32::MAX))
    .bind(i64::try_from(block).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Writes the row of `run` from its batches, once: None when it was written before.
pub async fn record_run(
    pool: &PgPool,
    run: &str,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    batches: u64,
    failed: u64,
) -> Result<Option<SyncRun>, sqlx::Error> {
    let finished_at = finished_at.max(started_at);
    sqlx::query_as(
        "INSERT INTO sync_runs (run_id, started_at, finished_at, duration_ms, batches,
                                failed_batches, wallets, changed, block_number)
         SELECT $1, $2, $3, $4, $5, $6, coalesce(sum(wallets), 0), coalesce(sum(changed), 0),
                max(block_number)
         FROM sync_batches WHERE run_id = $1
         ON CONFLICT (run_id) DO NOTHING
         RETURNING *",
    )
    .bind(run)
    .bind(started_at)
    .bind(finished_at)
    .bind((finished_at - started_at).num_milliseconds())
    .bind(i32::try_from(batches).unwrap_or(i32::MAX))
    .bind(i32::try_from(failed.min(batches)).unwrap_or(i32::MAX))
    .fetch_optional(pool)
    .await
}

/// The newest runs, newest first.
pub async fn latest(pool: &PgPool, limit: i64) -> Result<Vec<SyncRun>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM sync_runs ORDER BY started_at DESC LIMIT $1")
        .bind(limit)
        .fetch_all(pool)
        .await
}
