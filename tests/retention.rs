//! Retention against a real PostgreSQL (a fresh database per test): `prune_records` deletes
//! exactly the rows past each retention, to the second, in batches; never what another job
//! still needs (undispatched notifications, rows in flight, a signer's last nonce, events a
//! rewind may re-read); skips rows other transactions hold instead of waiting; deletes nothing
//! on a re-run or in a dry run. The job runs and `platform_stats` are in `retention_jobs.rs`.

mod support;

use std::time::Duration;

use jobfleet::db::retention::Table;
use jobfleet::jobs::prune_records::{PruneReport, prune};
use sqlx::PgPool;
use support::retention::*;

async fn run(pool: &PgPool, batch: i64) -> PruneReport {
    let report = prune(pool, &plan(), batch, false).await.unwrap();
    assert!(!report.dry_run);
    report
}

fn rows(report: &PruneReport) -> [u64; 7] {
    Table::ALL.map(|t| report.rows(t))
}

#[sqlx::test]
async fn notifications_go_with_their_deliveries_once_both_are_past_retention(pool: PgPool) {
    let u = user(&pool, "ann").await;
    let cutoff = now() - days(30);
    // Dispatched an hour before the cutoff, its last attempt exactly at it: past.
    let past = notification(&pool, u, "past", Some(cutoff - chrono::Duration::hours(1))).await;
    delivery(&pool, past, "email", cutoff - chrono::Duration::hours(1)).await;
    delivery(&pool, past, "webhook", cutoff).await;
    // Dispatched long ago, retried until a second inside the retention: all of it stays,
    // since its job may still be retried and reads its earlier attempts.
    let retried = notification(&pool, u, "retried", Some(now() - days(40))).await;
    let early = delivery(&pool, retried, "webhook", now() - days(40)).await;
    let late = delivery(&pool, retried, "webhook", cutoff + secs(1)).await;
    // Without deliveries (no channel on): the dispatch time decides, to the second.
    let at_cutoff = notification(&pool, u, "at-cutoff", Some(cutoff)).await;
    let inside = notification(&pool, u, "inside", Some(cutoff + secs(1))).await;
    // Never dispatched: kept whatever its age, with anything logged against it.
    let undispatched = notification(&pool, u, "undispatched", None).await;
    let orphan = delivery(&pool, undispatched, "email", now() - days(400)).await;

    // Batches of one: every row is its own statement, and the loop goes on until none is left.
    let report = run(&pool, 1).await;
    assert_eq!(rows(&report), [2, 2, 0, 0, 0, 0, 0]);
    let deliveries = &report.tables[0];
    assert_eq!(deliveries.table, Table::NotificationDeliveries);
    assert_eq!(deliveries.statements, 3, "two rows, then one empty batch");
    assert_eq!(
        ids(&pool, "notifications").await,
        [retried, inside, undispatched]
    );
    assert_eq!(
        ids(&pool, "notification_deliveries").await,
        [early, late, orphan]
    );
    assert!(!ids(&pool, "notifications").await.contains(&at_cutoff));

    // A re-run at the same tick finds nothing.
    assert_eq!(rows(&run(&pool, 1).await), [0; 7]);
}

#[sqlx::test]
async fn settled_outbox_rows_go_but_never_in_flight_rows_or_a_signers_last_nonce(pool: PgPool) {
    let (g1, g2) = (genesis(1), genesis(2));
    let a = |nonce| Some((SIGNER, 31337, g1.as_str(), nonce));
    let confirmed = now() - days(90);
    let failed = now() - days(180);
    let past = outbox_row(&pool, "c0", "CONFIRMED", a(0), confirmed).await;
    let inside = outbox_row(&pool, "c1", "CONFIRMED", a(1), confirmed + secs(1)).await;
    // Reverted on chain (its nonce used) at the failed retention: past.
    let reverted = outbox_row(&pool, "f2", "FAILED", a(2), failed).await;
    // The signer's highest nonce on this chain: kept however old.
    let last = outbox_row(&pool, "c3", "CONFIRMED", a(3), now() - days(400)).await;
    // The same key on another chain with the same id has its own sequence and its own last.
    let other_chain = outbox_row(
        &pool,
        "g2",
        "CONFIRMED",
        Some((SIGNER, 31337, g2.as_str(), 0)),
        now() - days(400),
    )
    .await;
    // Refused at estimation (no nonce taken): the failed retention, to the second.
    let refused = outbox_row(&pool, "f-old", "FAILED", None, failed).await;
    let refused_inside = outbox_row(&pool, "f-new", "FAILED", None, failed + secs(1)).await;
    // Past the confirmed retention, a failed row is still inside its own.
    let failed_recent = outbox_row(&pool, "f-recent", "FAILED", None, confirmed).await;
    // In flight, however old: never.
    let b = |nonce| Some((OTHER_SIGNER, 31337, g1.as_str(), nonce));
    let pending = outbox_row(&pool, "p", "PENDING", None, now() - days(400)).await;
    let signed = outbox_row(&pool, "s", "SIGNED", b(0), now() - days(400)).await;
    let submitted = outbox_row(&pool, "u", "SUBMITTED", b(1), now() - days(400)).await;

    let report = run(&pool, 2).await;
    assert_eq!(report.rows(Table::ChainOutbox), 3);
    assert_eq!(
        ids(&pool, "chain_outbox").await,
        [
            inside,
            last,
            other_chain,
            refused_inside,
            failed_recent,
            pending,
            signed,
            submitted
        ]
    );
    for gone in [past, reverted, refused] {
        assert!(!ids(&pool, "chain_outbox").await.contains(&gone));
    }
    assert_eq!(run(&pool, 2).await.rows(Table::ChainOutbox), 0);
}

#[sqlx::test]
async fn events_go_only_below_every_cursor_less_the_reorg_depth(pool: PgPool) {
    let g1 = genesis(1);
    let chain = (31337, g1.as_str());
    cursor(&pool, "contracts", chain, 1000).await;
    let old = now() - days(90);
    // 1000 - 64 = 936: a rewind re-reads above it, so 936 itself stays.
    let below = event(&pool, chain, 935, old).await;
    let at_window = event(&pool, chain, 936, now() - days(400)).await;
    let young = event(&pool, chain, 935, old + secs(1)).await;
    let ancient = event(&pool, chain, 10, now() - days(400)).await;
    // A chain without a cursor here: nothing of it is deleted.
    let g2 = genesis(2);
    let unfollowed = event(&pool, (31337, g2.as_str()), 1, now() - days(400)).await;
    // Two cursors on one chain: the lower one decides (950 - 64 = 886).
    let g3 = genesis(3);
    let two = (1, g3.as_str());
    cursor(&pool, "contracts", two, 1000).await;
    cursor(&pool, "other", two, 950).await;
    let under_both = event(&pool, two, 885, now() - days(400)).await;
    let under_one = event(&pool, two, 900, now() - days(400)).await;
    // Records from before chains were told apart (genesis ''), with their legacy cursor.
    cursor(&pool, "contracts", (0, ""), 500).await;
    let legacy_old = event(&pool, (0, ""), 100, now() - days(400)).await;
    let legacy_window = event(&pool, (0, ""), 480, now() - days(400)).await;

    let report = run(&pool, 10).await;
    assert_eq!(report.rows(Table::ChainEvents), 4);
    assert_eq!(
        ids(&pool, "chain_events").await,
        [at_window, young, unfollowed, under_one, legacy_window]
    );
    for gone in [below, ancient, under_both, legacy_old] {
        assert!(!ids(&pool, "chain_events").await.contains(&gone));
    }
    assert_eq!(run(&pool, 10).await.rows(Table::ChainEvents), 0);
}

#[sqlx::test]
async fn platform_stats_rows_have_their_own_retention(pool: PgPool) {
    let cutoff = now() - days(400);
    stats_row(&pool, cutoff).await;
    stats_row(&pool, cutoff + chrono::Duration::minutes(15)).await;
    stats_row(&pool, now() - days(1)).await;
    let report = run(&pool, 10).await;
    assert_eq!(rows(&report), [0, 0, 0, 0, 1, 0, 0]);
    let left: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT period_start FROM platform_stats ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        [cutoff + chrono::Duration::minutes(15), now() - days(1)]
    );
}

#[sqlx::test]
async fn balance_sync_runs_and_their_batches_have_their_own_retention(pool: PgPool) {
    let cutoff = now() - days(90);
    let later = cutoff + chrono::Duration::seconds(1);
    for (run, at) in [("old", cutoff), ("new", later)] {
        sqlx::query(
            "INSERT INTO sync_batches (run_id, from_id, wallets, changed, block_number, synced_at)
             VALUES ($1, 1, 3, 1, 7, $2)",
        )
        .bind(run)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
        jobfleet::db::sync_runs::record_run(&pool, run, at, at, 1, 0)
            .await
            .unwrap();
    }
    let report = run(&pool, 10).await;
    assert_eq!(rows(&report), [0, 0, 0, 0, 0, 1, 1]);
    for table in ["sync_batches", "sync_runs"] {
        let left: Vec<String> = sqlx::query_scalar(&format!("SELECT run_id FROM {table}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(left, ["new"], "{table}");
    }
}

#[sqlx::test]
async fn rows_held_by_other_transactions_are_skipped_and_the_prune_finishes(pool: PgPool) {
    let u = user(&pool, "ann").await;
    let old = now() - days(60);
    let held = notification(&pool, u, "held", Some(old)).await;
    let held_row = delivery(&pool, held, "email", old).await;
    delivery(&pool, held, "webhook", old).await;
    delivery(&pool, held, "slack", old).await;
    let busy = notification(&pool, u, "busy", Some(old)).await;
    let busy_rows = [
        delivery(&pool, busy, "email", old).await,
        delivery(&pool, busy, "webhook", old).await,
    ];
    let locked = outbox_row(&pool, "locked", "FAILED", None, old - days(190)).await;
    let free = outbox_row(&pool, "free", "FAILED", None, old - days(190)).await;

    // An operator's transaction holds one old delivery row and one outbox row.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM notification_deliveries WHERE id = $1 FOR UPDATE")
        .bind(held_row)
        .execute(&mut *holder)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM chain_outbox WHERE id = $1 FOR UPDATE")
        .bind(locked)
        .execute(&mut *holder)
        .await
        .unwrap();
    // `send_notification` is logging an attempt of the other one right now: its insert holds
    // the notification's key-share lock until it commits.
    let mut sender = pool.begin().await.unwrap();
    let attempt = delivery_in(&mut sender, busy, "slack").await;

    let report = tokio::time::timeout(Duration::from_secs(20), run(&pool, 10))
        .await
        .expect("the prune waits for no lock");
    // Of the held notification, the two free deliveries; it stays while one is left.
    assert_eq!(report.rows(Table::NotificationDeliveries), 2);
    assert_eq!(report.rows(Table::Notifications), 0);
    assert_eq!(report.rows(Table::ChainOutbox), 1);
    assert_eq!(ids(&pool, "chain_outbox").await, [locked]);
    let mut left = vec![held_row];
    left.extend(busy_rows);
    assert_eq!(ids(&pool, "notification_deliveries").await, left);
    assert!(!ids(&pool, "chain_outbox").await.contains(&free));

    // Once released, the next run takes what was held; the notification whose delivery was
    // logged meanwhile has an attempt inside the retention and stays, with its log.
    holder.rollback().await.unwrap();
    sender.commit().await.unwrap();
    let report = run(&pool, 10).await;
    assert_eq!(rows(&report), [1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(ids(&pool, "notifications").await, [busy]);
    let mut left = busy_rows.to_vec();
    left.push(attempt);
    assert_eq!(ids(&pool, "notification_deliveries").await, left);
    assert_eq!(count(&pool, "chain_outbox").await, 0);
}

/// A delivery attempt logged an hour before the tick inside `tx`, as `send_notification` logs
/// one.
async fn delivery_in(tx: &mut sqlx::PgConnection, notification: i64, channel: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO notification_deliveries (notification_id, channel, attempt, status, created_at)
         VALUES ($1, $2, 2, 'sent', $3) RETURNING id",
    )
    .bind(notification)
    .bind(channel)
    .bind(now() - chrono::Duration::hours(1))
    .fetch_one(tx)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_dry_run_counts_what_a_run_deletes_and_deletes_nothing(pool: PgPool) {
    let u = user(&pool, "ann").await;
    for i in 0..25 {
        let n = notification(&pool, u, &format!("n{i}"), Some(now() - days(31))).await;
        delivery(&pool, n, "email", now() - days(31)).await;
        delivery(&pool, n, "webhook", now() - days(31)).await;
    }
    let kept = notification(&pool, u, "kept", Some(now() - days(29))).await;
    delivery(&pool, kept, "email", now() - days(29)).await;
    outbox_row(&pool, "f", "FAILED", None, now() - days(200)).await;
    let g = genesis(1);
    cursor(&pool, "contracts", (1, g.as_str()), 1000).await;
    event(&pool, (1, g.as_str()), 1, now() - days(100)).await;
    stats_row(&pool, now() - days(500)).await;
    let tables = [
        "notification_deliveries",
        "notifications",
        "chain_outbox",
        "chain_events",
        "platform_stats",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(&pool, t).await);
    }

    let dry = prune(&pool, &plan(), 10, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(rows(&dry), [50, 25, 1, 1, 1, 0, 0]);
    let mut after = Vec::new();
    for t in tables {
        after.push(count(&pool, t).await);
    }
    assert_eq!(after, before, "a dry run deletes nothing");

    // The run deletes what the dry run counted, 10 rows per statement.
    let real = run(&pool, 10).await;
    assert_eq!(rows(&real), rows(&dry));
    assert_eq!(
        real.tables[0].statements, 6,
        "50 rows: five full batches and an empty one"
    );
    assert_eq!(ids(&pool, "notifications").await, [kept]);
    assert_eq!(
        rows(&prune(&pool, &plan(), 10, true).await.unwrap()),
        [0; 7]
    );
}
