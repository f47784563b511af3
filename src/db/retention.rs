//! Retention: `[retention]` of the configuration, and the deletes of `prune_records`.
//!
//! Each table is pruned in batches: one statement locks up to `batch` ids past their retention
//! (`FOR UPDATE SKIP LOCKED` in a CTE, so a row another transaction holds is left for the next
//! run instead of being waited for) and deletes exactly those, in its own transaction. No
//! statement locks more than one batch of rows (and, for deliveries, their notifications), or
//! holds the locks for longer than it runs.
//!
//! A row is past its retention when its time is at or before `now - retention`, as for the
//! snapshots. What is never deleted, whatever its age, and why:
//!
//! - a notification not yet dispatched (`dispatch_notifications` still has to turn it into
//!   jobs), or one with a delivery attempt inside the retention (its `send_notification` job
//!   may still be retried, and reads the row and its `sent` deliveries to stay idempotent);
//! - a delivery of such a notification: deliveries go with their notification, never before
//!   it, because `already_sent` reads them to avoid sending twice;
//! - an outbox row that is PENDING, SIGNED or SUBMITTED (in flight), and the row with the
//!   highest nonce of each signer on each chain. The sender takes nonces from `chain_signers`
//!   and the node's count (`outbox::take_nonce`), not from the outbox, so that row is not
//!   needed for the sequence; it is kept as the sequence's last record, and so that the unique
//!   index on (signer, chain, nonce) still refuses that nonce if `chain_signers` is ever lost;
//! - a chain event at or above its chain's cursor less `chain.reorg_depth` (a rewind after a
//!   reorg re-reads that range, `events::rewind`), and every event of a chain without a cursor
//!   (a chain that is not followed here, or not yet adopted; `chain reset` forgets those).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jobfleet_engine::settings::duration;
use jobfleet_engine::settings::{ConfigError, invalid};
use serde::Deserialize;
use sqlx::{PgPool, Row};

/// How long each kind of record is kept (`[retention]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Dispatched notifications and their delivery attempts, counted from the dispatch and
    /// from the last attempt.
    #[serde(with = "duration")]
    pub notifications: Duration,
    /// CONFIRMED chain outbox rows, counted from the confirmation.
    #[serde(with = "duration")]
    pub outbox_confirmed: Duration,
    /// FAILED chain outbox rows, counted from the failure: longer, as an operator may still
    /// send one again (`jobfleet chain retry`).
    #[serde(with = "duration")]
    pub outbox_failed: Duration,
    /// Indexed chain events, counted from when they were recorded.
    #[serde(with = "duration")]
    pub chain_events: Duration,
    /// Rows of `platform_stats`, counted from the start of their period.
    #[serde(with = "duration")]
    pub platform_stats: Duration,
    /// Balance sync runs (`sync_runs`, from their start) and their batches (`sync_batches`,
    /// from when each was written).
    #[serde(with = "duration")]
    pub sync_runs: Duration,
}

impl RetentionSettings {
    /// Every retention is at least a day: a shorter one would cut off `send_notification`
    /// jobs still being retried (about ten hours) and leave operators no time to look.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("retention.notifications", self.notifications),
            ("retention.outbox_confirmed", self.outbox_confirmed),
            ("retention.outbox_failed", self.outbox_failed),
            ("retention.chain_events", self.chain_events),
            ("retention.platform_stats", self.platform_stats),
            ("retention.sync_runs", self.sync_runs),
        ] {
            if value < Duration::from_secs(86_400) {
                return Err(invalid(key, "must be at least 1day"));
            }
        }
        Ok(())
    }
}

/// The time at or before which a record is past `retention` at `now`.
pub fn cutoff(now: DateTime<Utc>, retention: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// What one run deletes: the cutoffs at its `now`, and the indexer's reorg depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub notifications: DateTime<Utc>,
    pub outbox_confirmed: DateTime<Utc>,
    pub outbox_failed: DateTime<Utc>,
    pub chain_events: DateTime<Utc>,
    pub platform_stats: DateTime<Utc>,
    pub sync_runs: DateTime<Utc>,
    /// Blocks below a cursor that a rewind may re-read (at least 1, as `indexer::rewind`).
    pub reorg_depth: i64,
}

impl Plan {
    pub fn new(settings: &RetentionSettings, reorg_depth: u64, now: DateTime<Utc>) -> Self {
        Self {
            notifications: cutoff(now, settings.notifications),
            outbox_confirmed: cutoff(now, settings.outbox_confirmed),
            outbox_failed: cutoff(now, settings.outbox_failed),
            chain_events: cutoff(now, settings.chain_events),
            platform_stats: cutoff(now, settings.platform_stats),
            sync_runs: cutoff(now, settings.sync_runs),
            reorg_depth: i64::try_from(reorg_depth.max(1)).unwrap_or(i64::MAX),
        }
    }
}

/// The tables pruned, in the order they are pruned: deliveries before their notifications, so
/// that deleting a notification never cascades to an unbounded number of deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    NotificationDeliveries,
    Notifications,
    ChainOutbox,
    ChainEvents,
    PlatformStats,
    SyncBatches,
    SyncRuns,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::NotificationDeliveries,
        Table::Notifications,
        Table::ChainOutbox,
        Table::ChainEvents,
        Table::PlatformStats,
        Table::SyncBatches,
        Table::SyncRuns,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::NotificationDeliveries => "notification_deliveries",
            Table::Notifications => "notifications",
            Table::ChainOutbox => "chain_outbox",
            Table::ChainEvents => "chain_events",
            Table::PlatformStats => "platform_stats",
            Table::SyncBatches => "sync_batches",
            Table::SyncRuns => "sync_runs",
        }
    }

    /// The keys of the rows past retention, as `id`, under the alias the batch locks. `$1` is
    /// the batch's size, `$2` (and `$3`) the table's cutoffs, bound by `bind`.
    ///
    /// Every correlated subquery ends in `OFFSET 0`, which keeps PostgreSQL from turning it
    /// into a join: it stays a probe of one index per candidate, walked oldest first until the
    /// batch is full. As a join, the planner, working from statistics taken before the previous
    /// step's deletes, reads the whole other table (a month of deliveries) to hash it, in every
    /// statement; the benchmark's notifications statements took up to a second that way.
    fn candidates(self) -> &'static str {
        match self {
            Table::NotificationDeliveries => {
                "SELECT x.id FROM notification_deliveries x
                 JOIN notifications n ON n.id = x.notification_id
                 WHERE x.created_at <= $2 AND n.dispatched_at <= $2
                   AND NOT EXISTS (SELECT 1 FROM notification_deliveries y
                                   WHERE y.notification_id = n.id AND y.created_at > $2
                                   OFFSET 0)"
            }
            Table::Notifications => {
                "SELECT n.id FROM notifications n
                 WHERE n.dispatched_at <= $2
                   AND NOT EXISTS (SELECT 1 FROM notification_deliveries y
                                   WHERE y.notification_id = n.id AND y.created_at > $2
                                   OFFSET 0)"
            }
            // `greatest` lets the partial index find both statuses' rows in one range.
            Table::ChainOutbox => {
                "SELECT o.id FROM chain_outbox o
                 WHERE o.status IN ('CONFIRMED', 'FAILED')
                   AND o.updated_at <= greatest($2, $3)
                   AND o.updated_at <= CASE WHEN o.status = 'CONFIRMED' THEN $2 ELSE $3 END
                   AND (o.nonce IS NULL OR EXISTS (
                        SELECT 1 FROM chain_outbox h
                        WHERE h.signer = o.signer AND h.chain_id = o.chain_id
                          AND h.genesis_hash = o.genesis_hash AND h.nonce > o.nonce
                        OFFSET 0))"
            }
            // No cursor for the event's chain: min() is NULL and the row is kept.
            Table::ChainEvents => {
                "SELECT e.id FROM chain_events e
                 WHERE e.created_at <= $2
                   AND e.block_number < (SELECT min(c.block_number) FROM chain_cursors c
                                         WHERE c.chain_id = e.chain_id
                                           AND c.genesis_hash = e.genesis_hash) - $3"
            }
            Table::PlatformStats => {
                "SELECT s.period_start AS id FROM platform_stats s WHERE s.period_start <= $2"
            }
            Table::SyncBatches => "SELECT b.id FROM sync_batches b WHERE b.synced_at <= $2",
            Table::SyncRuns => "SELECT r.run_id AS id FROM sync_runs r WHERE r.started_at <= $2",
        }
    }

    /// What a batch adds to `candidates`: a notification whose deliveries are not all gone
    /// (one was locked by another transaction) waits for the next run, so that its delete
    /// cascades to nothing. A count leaves it out: a dry run deletes no deliveries first.
    fn batch_only(self) -> &'static str {
        match self {
            Table::Notifications => {
                "AND NOT EXISTS (SELECT 1 FROM notification_deliveries x
                                 WHERE x.notification_id = n.id OFFSET 0)"
            }
            _ => "",
        }
    }

    /// The locked aliases, the oldest-first order (an indexed column), and the table's key.
    /// A delivery locks its notification too: `send_notification` logging an attempt holds a
    /// key-share lock on the notification (the foreign key), so the deliveries of a
    /// notification being delivered right now are skipped, not deleted under it.
    fn shape(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Table::NotificationDeliveries => ("x, n", "x.created_at", "id"),
            Table::Notifications => ("n", "n.dispatched_at", "id"),
            Table::ChainOutbox => ("o", "o.updated_at", "id"),
            Table::ChainEvents => ("e", "e.created_at", "id"),
            Table::PlatformStats => ("s", "s.period_start", "period_start"),
            Table::SyncBatches => ("b", "b.synced_at", "id"),
            Table::SyncRuns => ("r", "r.started_at", "run_id"),
        }
    }

    /// One batch: lock up to `$1` candidates, skipping rows locked elsewhere, and delete them.
    pub fn delete_sql(self) -> String {
        let (alias, order, key) = self.shape();
        format!(
            "WITH doomed AS ({} {} ORDER BY {order} LIMIT $1 FOR UPDATE OF {alias} SKIP LOCKED)
             DELETE FROM {} WHERE {key} IN (SELECT id FROM doomed)",
            self.candidates(),
            self.batch_only(),
            self.name()
        )
    }

    /// How many rows a run would delete now, locking nothing.
    pub fn count_sql(self) -> String {
        format!("SELECT count(*) FROM ({} LIMIT $1) c", self.candidates())
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `table`'s cutoffs after the batch size (`$1`).
fn bind<'q>(q: PgQuery<'q>, table: Table, plan: &Plan) -> PgQuery<'q> {
    match table {
        Table::NotificationDeliveries | Table::Notifications => q.bind(plan.notifications),
        Table::ChainOutbox => q.bind(plan.outbox_confirmed).bind(plan.outbox_failed),
        Table::ChainEvents => q.bind(plan.chain_events).bind(plan.reorg_depth),
        Table::PlatformStats => q.bind(plan.platform_stats),
        Table::SyncBatches | Table::SyncRuns => q.bind(plan.sync_runs),
    }
}

/// What pruning one table did, with the timings the benchmark reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    pub table: Table,
    pub rows: u64,
    pub statements: u32,
    /// The slowest statement: each commits on its own, so this is also the longest time any
    /// row lock of the prune was held.
    pub longest: Duration,
    pub elapsed: Duration,
}

/// Deletes `table`'s rows past retention, `batch` per statement, each in a transaction of its
/// own, until a statement finds fewer than `batch` (none left that is not locked by another
/// transaction). A statement's time is counted from its start to its commit: its locks.
pub async fn prune_table(
    pool: &PgPool,
    table: Table,
    plan: &Plan,
    batch: i64,
) -> Result<Pruned, sqlx::Error> {
    let sql = table.delete_sql();
    let batch = batch.max(1);
    let started = Instant::now();
    let mut done = Pruned {
        table,
        rows: 0,
        statements: 0,
        longest: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    loop {
        let mut tx = without_jit(pool).await?;
        let t = Instant::now();
        let deleted = bind(sqlx::query(&sql).bind(batch), table, plan)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        done.longest = done.longest.max(t.elapsed());
        done.statements += 1;
        done.rows += deleted;
        if deleted < batch as u64 {
            done.elapsed = started.elapsed();
            return Ok(done);
        }
    }
}

/// How many of `table`'s rows a run would delete now (a dry run).
pub async fn count_table(pool: &PgPool, table: Table, plan: &Plan) -> Result<u64, sqlx::Error> {
    let sql = table.count_sql();
    let mut tx = without_jit(pool).await?;
    let row = bind(sqlx::query(&sql).bind(i64::MAX), table, plan)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let n: i64 = row.try_get(0)?;
    Ok(n.max(0) as u64)
}

/// A transaction for one statement, without JIT compilation: the planner's cost of a batch
/// over a big table passes `jit_above_cost`, and compiling it takes longer (about 150 ms in
/// the benchmark) than running it. `SET LOCAL` ends with the transaction, so the pooled
/// connection is handed back as it was.
async fn without_jit(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    Ok(tx)
}
