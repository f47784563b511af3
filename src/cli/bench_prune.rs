//! `jobfleet demo bench --prune`: times `prune_records` on a million delivery rows past their
//! retention (`--deliveries`), in the scratch database `demo bench` makes and drops.
//!
//! The figure that matters beside the rate is the slowest statement: each batch commits on its
//! own, so no row lock of the prune is held longer than that, and a writer that touches a row
//! of the batch (or the cascade of a notification) waits at most that long.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::output::outln;
use crate::db::retention::{Plan, Pruned, RetentionSettings, Table, cutoff};
use crate::jobs::prune_records::{BATCH, prune};

/// Recent deliveries seeded beside the old ones, which the prune must leave alone.
const RECENT: i64 = 200_000;

pub async fn bench_in(
    url: &str,
    settings: &RetentionSettings,
    deliveries: i64,
) -> anyhow::Result<ExitCode> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(crate::db::options(url)?)
        .await?;
    crate::db::MIGRATOR.run(&pool).await?;
    let now = Utc::now();
    // A day past the retention, so the rows are old whatever `retention.notifications` says.
    let old = cutoff(now, settings.notifications) - chrono::Duration::days(1);
    let started = Instant::now();
    let user: i64 =
        sqlx::query_scalar("INSERT INTO users (handle) VALUES ('bench-prune') RETURNING id")
            .fetch_one(&pool)
            .await?;
    let (old_rows, old_notifications) = seed(&pool, user, "old", old, deliveries).await?;
    let (recent_rows, _) = seed(
        &pool,
        user,
        "recent",
        now - chrono::Duration::days(1),
        RECENT,
    )
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    outln!(
        "seeded {old_rows} delivery rows of {old_notifications} notifications past their retention, and {recent_rows} recent ones, in {:.1}s",
        started.elapsed().as_secs_f64()
    )?;
    let plan = Plan::new(settings, 64, now);

    let t = Instant::now();
    let counted = prune(&pool, &plan, BATCH, true).await?;
    outln!(
        "dry run:                 {:>8.3}s  (would delete {} deliveries, {} notifications)",
        t.elapsed().as_secs_f64(),
        counted.rows(Table::NotificationDeliveries),
        counted.rows(Table::Notifications)
    )?;

    let t = Instant::now();
    let report = prune(&pool, &plan, BATCH, false).await?;
    let total = t.elapsed();
    for p in &report.tables {
        if p.rows > 0 {
            print_table(p)?;
        }
    }
    let rows: u64 = report.tables.iter().map(|p| p.rows).sum();
    outln!(
        "prune_records:           {:>8.3}s  ({rows} rows, {:.0} rows/s; longest statement, the longest any lock was held: {})",
        total.as_secs_f64(),
        rate(rows, total),
        ms(report.longest())
    )?;

    let t = Instant::now();
    let again = prune(&pool, &plan, BATCH, false).await?;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_deliveries")
        .fetch_one(&pool)
        .await?;
    outln!(
        "again:                   {:>8.3}s  ({} rows deleted; {left} recent delivery rows kept)",
        t.elapsed().as_secs_f64(),
        again.tables.iter().map(|p| p.rows).sum::<u64>()
    )?;
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `rows` delivery rows (four channels per notification, the last one maybe fewer), each
/// notification dispatched at `at` plus up to an hour; returns (deliveries, notifications).
async fn seed(
    pool: &PgPool,
    user: i64,
    tag: &str,
    at: DateTime<Utc>,
    rows: i64,
) -> Result<(u64, u64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let notifications = sqlx::query(
        "INSERT INTO notifications (user_id, event, payload, dedupe_key, created_at, dispatched_at)
         SELECT $1, 'market.resolved', jsonb_build_object('market_id', i),
                'bench:' || $2 || ':' || i, $3, $3 + (i % 3600) * interval '1 second'
         FROM generate_series(1, ($4 + 3) / 4) i",
    )
    .bind(user)
    .bind(tag)
    .bind(at)
    .bind(rows)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let deliveries = sqlx::query(
        "INSERT INTO notification_deliveries
             (notification_id, channel, attempt, status, response_code, duration_ms, created_at)
         SELECT n.id, c.channel, 1, 'sent', 200, 40, n.dispatched_at + interval '2 seconds'
         FROM notifications n
         CROSS JOIN unnest(ARRAY['email', 'webhook', 'discord', 'slack']) AS c (channel)
         WHERE n.dedupe_key LIKE 'bench:' || $1 || ':%'
         LIMIT $2",
    )
    .bind(tag)
    .bind(rows)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok((deliveries, notifications))
}

fn print_table(p: &Pruned) -> anyhow::Result<()> {
    outln!(
        "{:<24} {:>8.3}s  ({} rows in {} statement{}, {:.0} rows/s, longest statement {})",
        format!("{}:", p.table.name()),
        p.elapsed.as_secs_f64(),
        p.rows,
        p.statements,
        if p.statements == 1 { "" } else { "s" },
        rate(p.rows, p.elapsed),
        ms(p.longest)
    )?;
    Ok(())
}

fn rate(rows: u64, took: Duration) -> f64 {
    rows as f64 / took.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
