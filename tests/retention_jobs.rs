//! The retention jobs as workers and operators run them, against a real PostgreSQL and a
//! private Redis: `platform_stats` writes one row per tick with the figures of its period,
//! whatever the number of runs; `prune_records` takes its cutoffs from the tick (never from a
//! tick ahead of the clock), and `jobfleet run prune_records --args '{"dry_run": true}'` prints
//! the counts per table and deletes nothing.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jobfleet::db::stats::{self, StatsPeriod};
use jobfleet::job::{Attempt, Client, Specs};
use jobfleet::jobs::platform_stats::PlatformStats;
use jobfleet::jobs::prune_records::PruneRecords;
use jobfleet::jobs::{Job, JobContext, Resources};
use serde_json::json;
use sqlx::PgPool;
use support::TestRedis;
use support::retention::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

/// Three users, two wallets, three markets, votes and points around the 10:00 to 10:15
/// period of 2026-12-02, two outbox rows and two notifications.
async fn platform(pool: &PgPool) {
    exec(
        pool,
        "INSERT INTO users (id, handle) VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')",
    )
    .await;
    exec(
        pool,
        "INSERT INTO wallets (id, user_id, address, chain_id) VALUES
             (1, 1, '0x0000000000000000000000000000000000000001', 1),
             (2, 2, '0x0000000000000000000000000000000000000002', 1)",
    )
    .await;
    exec(
        pool,
        "INSERT INTO markets (id, proposer_id, title, state, resolves_at) VALUES
             (1, 1, 'a', 'PROPOSED', '2027-01-01'), (2, 1, 'b', 'PROPOSED', '2027-01-01'),
             (3, 2, 'c', 'ACTIVE', '2027-01-01')",
    )
    .await;
    // In the hour before 10:15, before it, and at 10:15 itself (the next period's).
    exec(
        pool,
        "INSERT INTO proposal_votes (market_id, wallet_id, likes, created_at) VALUES
             (1, 1, true, '2026-12-02T09:45:00Z'), (1, 2, false, '2026-12-02T09:14:59Z'),
             (2, 1, true, '2026-12-02T10:15:00Z')",
    )
    .await;
    exec(
        pool,
        "INSERT INTO disputes (id, market_id, raised_by, reason) VALUES (1, 3, 2, 'wrong')",
    )
    .await;
    exec(
        pool,
        "INSERT INTO dispute_votes (dispute_id, juror_id, uphold, created_at)
             VALUES (1, 3, true, '2026-12-02T10:10:00Z')",
    )
    .await;
    // Earned in the period (its start included), earned at its end (excluded), burned in it.
    exec(
        pool,
        "INSERT INTO points_transactions (user_id, kind, amount, reason, created_at) VALUES
             (1, 'EARNED', 10, 'vote', '2026-12-02T10:00:00Z'),
             (2, 'EARNED', 5, 'vote', '2026-12-02T10:14:59Z'),
             (2, 'EARNED', 100, 'vote', '2026-12-02T10:15:00Z'),
             (1, 'BURNED', 7, 'trade', '2026-12-02T10:05:00Z')",
    )
    .await;
    exec(
        pool,
        "INSERT INTO chain_outbox (idempotency_key, kind, target, args, status) VALUES
             ('a', 'approveMarket', 'markets', '{}', 'PENDING'),
             ('b', 'approveMarket', 'markets', '{}', 'FAILED')",
    )
    .await;
    exec(
        pool,
        "INSERT INTO notifications (user_id, event, payload, dedupe_key, dispatched_at) VALUES
             (1, 'market.resolved', '{}', 'x', NULL), (2, 'market.resolved', '{}', 'y', now())",
    )
    .await;
}

#[sqlx::test]
async fn platform_stats_records_its_period_once(pool: PgPool) {
    platform(&pool).await;
    let period = StatsPeriod::ending_at(at("2026-12-02T10:15:00Z"));
    assert!(stats::record(&pool, period).await.unwrap());
    let row = stats::get(&pool, period.start).await.unwrap().unwrap();
    assert_eq!(row.period_end, at("2026-12-02T10:15:00Z"));
    assert_eq!((row.users, row.wallets), (3, 2));
    assert_eq!(
        row.markets_by_state,
        json!({"PROPOSED": 2, "APPROVED": 0, "REJECTED": 0, "ACTIVE": 1, "RESOLVING": 0,
               "DISPUTED": 0, "RESOLVED": 0, "CANCELLED": 0})
    );
    assert_eq!(
        (row.proposal_votes_last_hour, row.dispute_votes_last_hour),
        (1, 1)
    );
    assert_eq!(
        row.outbox_by_status,
        json!({"PENDING": 1, "SIGNED": 0, "SUBMITTED": 0, "CONFIRMED": 0, "FAILED": 1})
    );
    assert_eq!((row.notifications_pending, row.points_issued), (1, 15));

    // A late run of the same tick changes nothing, even with the platform changed meanwhile.
    exec(&pool, "INSERT INTO users (id, handle) VALUES (4, 'dee')").await;
    let late = StatsPeriod::ending_at(at("2026-12-02T10:29:59Z"));
    assert!(!stats::record(&pool, late).await.unwrap());
    assert_eq!(count(&pool, "platform_stats").await, 1);
    assert_eq!(stats::get(&pool, period.start).await.unwrap().unwrap(), row);
    // The next tick is the next row.
    let next = StatsPeriod::ending_at(at("2026-12-02T10:30:00Z"));
    assert!(stats::record(&pool, next).await.unwrap());
    let row = stats::get(&pool, next.start).await.unwrap().unwrap();
    assert_eq!((row.users, row.points_issued), (4, 100));
}

/// A job context whose tick is `tick`, on the test settings and this database.
async fn ctx(redis: &TestRedis, pool: &PgPool, tick: DateTime<Utc>) -> JobContext<Resources> {
    let settings = support::app::settings(&redis.url());
    let queue = support::app::client(&redis.url()).await;
    let resources = Arc::new(Resources::with_pool(queue.clone(), settings, pool.clone()));
    let attempt = Attempt {
        id: "test".into(),
        queue: "default".into(),
        attempt: 1,
        max_attempts: 5,
        enqueued_at_ms: tick.timestamp_millis(),
    };
    JobContext::new(
        attempt,
        resources,
        Client::new(queue, Arc::new(Specs::default())),
    )
}

#[sqlx::test]
async fn platform_stats_writes_one_row_per_tick_however_often_it_runs(pool: PgPool) {
    platform(&pool).await;
    let redis = TestRedis::start();
    let tick = ctx(&redis, &pool, at("2026-12-02T10:15:00Z")).await;
    // The tick's job, a retry of it and an `enqueue-now` copy running at once.
    let (a, b) = tokio::join!(
        PlatformStats {}.run(tick.clone()),
        PlatformStats {}.run(tick.clone())
    );
    a.unwrap();
    b.unwrap();
    PlatformStats {}.run(tick).await.unwrap();
    assert_eq!(count(&pool, "platform_stats").await, 1);
    let next = ctx(&redis, &pool, at("2026-12-02T10:30:00Z")).await;
    PlatformStats {}.run(next).await.unwrap();
    let starts: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT period_start FROM platform_stats ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        starts,
        [at("2026-12-02T10:00:00Z"), at("2026-12-02T10:15:00Z")]
    );
}

#[sqlx::test]
async fn prune_records_counts_from_its_tick_but_never_from_a_tick_ahead_of_the_clock(pool: PgPool) {
    let redis = TestRedis::start();
    let u = user(&pool, "ann").await;
    let real = Utc::now();
    let old = notification(&pool, u, "old", Some(real - days(31))).await;
    delivery(&pool, old, "email", real - days(31)).await;
    let recent = notification(&pool, u, "recent", Some(real - days(25))).await;

    // A dry run through the job deletes nothing.
    let now = ctx(&redis, &pool, real).await;
    PruneRecords { dry_run: true }.run(now).await.unwrap();
    assert_eq!(ids(&pool, "notifications").await, [old, recent]);
    // A late retry of a tick five days ago counts from the tick: the 31-day-old row was 26
    // days old then, and stays.
    let late = ctx(&redis, &pool, real - days(5)).await;
    PruneRecords::default().run(late).await.unwrap();
    assert_eq!(ids(&pool, "notifications").await, [old, recent]);
    // A tick ten days ahead (a scheduler whose clock is wrong) deletes only what the clock
    // allows: the 31-day-old row goes, the 25-day-old one stays.
    let ahead = ctx(&redis, &pool, real + days(10)).await;
    PruneRecords::default().run(ahead).await.unwrap();
    assert_eq!(ids(&pool, "notifications").await, [recent]);
    assert_eq!(count(&pool, "notification_deliveries").await, 0);
}

#[sqlx::test]
async fn jobfleet_run_prints_a_dry_runs_counts_and_deletes_nothing(pool: PgPool) {
    let redis = TestRedis::start();
    let u = user(&pool, "ann").await;
    let real = Utc::now();
    for key in ["a", "b"] {
        let n = notification(&pool, u, key, Some(real - days(40))).await;
        delivery(&pool, n, "email", real - days(40)).await;
        delivery(&pool, n, "webhook", real - days(40)).await;
    }
    outbox_row(&pool, "f", "FAILED", None, real - days(200)).await;
    let url = redis.url();
    let db = support::chain::database_url(&pool);
    let cli = move |args: &'static [&'static str]| {
        let (url, db) = (url.clone(), db.clone());
        tokio::task::spawn_blocking(move || {
            support::cli::run_env(
                &url,
                &[
                    ("DATABASE_URL", db.as_str()),
                    ("JOBFLEET__TELEMETRY__LOG_FILTER", "info"),
                ],
                args,
            )
        })
    };
    let dry = cli(&["run", "prune_records", "--args", r#"{"dry_run": true}"#])
        .await
        .unwrap();
    assert!(dry.status.success(), "{dry:?}");
    assert_eq!(dry.stdout.trim(), "prune_records: done");
    let line = dry
        .stderr_lines()
        .into_iter()
        .find(|l| l.contains("records past their retention (dry run: nothing deleted)"))
        .unwrap_or_else(|| panic!("no counts in {:?}", dry.stderr));
    for count in [
        "notification_deliveries=4",
        "notifications=2",
        "chain_outbox=1",
        "chain_events=0",
        "platform_stats=0",
    ] {
        assert!(line.contains(count), "{count} in {line}");
    }
    assert_eq!(count(&pool, "notification_deliveries").await, 4);
    assert_eq!(count(&pool, "notifications").await, 2);
    assert_eq!(count(&pool, "chain_outbox").await, 1);

    // Args it does not know are refused rather than ignored.
    let typo = cli(&["run", "prune_records", "--args", r#"{"dryrun": true}"#])
        .await
        .unwrap();
    assert_eq!(typo.status.code(), Some(1), "{typo:?}");
    assert!(typo.stderr.contains("dryrun"), "{}", typo.stderr);
    assert_eq!(count(&pool, "notifications").await, 2);

    let run = cli(&["run", "prune_records"]).await.unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(run.stderr.contains("records pruned"), "{}", run.stderr);
    assert_eq!(count(&pool, "notifications").await, 0);
    assert_eq!(count(&pool, "chain_outbox").await, 0);
}
