//! The boards against a real PostgreSQL: swaps under readers, skipped unchanged boards, weeks,
//! and the migration of the boards an earlier release built.

use super::{board, drift, fold_ledgers, points, spread, users};
use chrono::{TimeZone, Utc};
use jobfleet::db::points::{BoardBuild, Period, refresh_board};
use sqlx::PgPool;

#[sqlx::test]
async fn read_committed_readers_see_a_whole_board_across_swaps(pool: PgPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    users(&pool, 2000).await;
    let now = Utc::now();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, done) = (pool.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let (n, distinct, max): (i64, i64, Option<i32>) = sqlx::query_as(
                        "SELECT count(*), count(DISTINCT position), max(position) FROM leaderboard_entries WHERE period = 'all-time'",
                    )
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    assert_eq!((n, distinct), (i64::from(max.unwrap_or(0)), n), "positions 1..n");
                    seen.push(n);
                    tokio::task::yield_now().await;
                }
                seen
            })
        })
        .collect();
    // Each round adds 200 users with points, so every board has a size of its own.
    for round in 1..=6_i64 {
        sqlx::query("INSERT INTO points_transactions (user_id, kind, amount, reason) SELECT id, 'EARNED', id % 13 + 1, 'seed' FROM users WHERE id > $1 AND id <= $2")
            .bind((round - 1) * 200)
            .bind(round * 200)
            .execute(&pool)
            .await
            .unwrap();
        fold_ledgers(&pool, now).await.unwrap();
        let built = refresh_board(&pool, &Period::AllTime, now).await.unwrap();
        assert_eq!(
            built,
            BoardBuild {
                entries: round as u64 * 200,
                skipped: false
            }
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        let seen = r.await.unwrap();
        assert!(
            seen.iter().all(|n| n % 200 == 0),
            "a reader saw a partial board: {seen:?}"
        );
        // Boards only grow here, so a reader that saw one shrink saw it vanish in a swap.
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "a board went back: {seen:?}"
        );
        assert!(
            seen.iter().filter(|n| **n > 0).count() > 1,
            "the readers ran beside the swaps"
        );
    }
}

#[sqlx::test]
async fn an_unchanged_board_is_skipped(pool: PgPool) {
    users(&pool, 10).await;
    spread(&pool, 40, 10, 2).await;
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    fold_ledgers(&pool, now).await.unwrap();
    let first = refresh_board(&pool, &Period::AllTime, now).await.unwrap();
    assert!(!first.skipped);
    let later = now + chrono::Duration::hours(1);
    assert_eq!(
        refresh_board(&pool, &Period::AllTime, later).await.unwrap(),
        BoardBuild {
            entries: first.entries,
            skipped: true
        }
    );
    let built_at: chrono::DateTime<Utc> = sqlx::query_scalar(
        "SELECT max(built_at) FROM leaderboard_entries WHERE period = 'all-time'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(built_at, now, "the board was not rewritten");
    // A fold that changes nothing leaves the board skipped; one that changes a ledger does not.
    fold_ledgers(&pool, later).await.unwrap();
    assert!(
        refresh_board(&pool, &Period::AllTime, later)
            .await
            .unwrap()
            .skipped
    );
    points(&pool, 10, "EARNED", 100_000, later).await;
    fold_ledgers(&pool, later).await.unwrap();
    let rebuilt = refresh_board(&pool, &Period::AllTime, later).await.unwrap();
    assert!(!rebuilt.skipped);
    assert_eq!(
        board(&pool, "all-time").await[0].2,
        10,
        "the new points are on the board"
    );
    // A board whose partition went missing is built again, whatever its record says.
    sqlx::query("DROP TABLE leaderboard_entries_all_time")
        .execute(&pool)
        .await
        .unwrap();
    let again = refresh_board(&pool, &Period::AllTime, later).await.unwrap();
    assert_eq!(
        again,
        BoardBuild {
            entries: rebuilt.entries,
            skipped: false
        }
    );
}

#[sqlx::test]
async fn weekly_boards_count_their_week_and_see_late_transactions(pool: PgPool) {
    users(&pool, 4).await;
    let monday = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap(); // ISO week 47
    points(&pool, 1, "EARNED", 50, monday).await;
    points(&pool, 2, "EARNED", 80, monday + chrono::Duration::days(3)).await;
    points(&pool, 2, "BURNED", 40, monday + chrono::Duration::days(6)).await;
    points(&pool, 3, "LOCKED", 500, monday + chrono::Duration::days(1)).await;
    points(
        &pool,
        4,
        "EARNED",
        900,
        monday - chrono::Duration::seconds(1),
    )
    .await;
    points(&pool, 4, "EARNED", 900, monday + chrono::Duration::days(7)).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    let week = Period::parse("previous-week", now).unwrap();
    fold_ledgers(&pool, now).await.unwrap();
    refresh_board(&pool, &Period::AllTime, now).await.unwrap();
    let built = refresh_board(&pool, &week, now).await.unwrap();
    assert_eq!(
        built,
        BoardBuild {
            entries: 2,
            skipped: false
        }
    );
    assert_eq!(
        board(&pool, "2026-W47").await,
        [(1, 1, 1, 50), (2, 2, 2, 40)]
    );
    assert!(refresh_board(&pool, &week, now).await.unwrap().skipped);
    // A transaction of the week written late (committed after the board was built).
    points(&pool, 3, "EARNED", 45, monday + chrono::Duration::days(2)).await;
    assert!(!refresh_board(&pool, &week, now).await.unwrap().skipped);
    assert_eq!(
        board(&pool, "2026-W47").await,
        [(1, 1, 1, 50), (2, 2, 3, 45), (3, 3, 2, 40)]
    );
    // The all-time board is a partition of its own and was not touched.
    assert_eq!(board(&pool, "all-time").await.len(), 4);
}

#[sqlx::test(migrations = false)]
async fn the_migration_keeps_existing_ledgers_and_boards(pool: PgPool) {
    // The migrations before this change, then data as the full rebuild left it, then the rest.
    let incremental = 20261203000001;
    let before = sqlx::migrate::Migrator {
        migrations: jobfleet::db::MIGRATOR
            .iter()
            .filter(|m| m.version < incremental)
            .cloned()
            .collect(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&pool).await.unwrap();
    users(&pool, 4).await;
    let t = Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap();
    points(&pool, 1, "EARNED", 30, t).await;
    points(&pool, 2, "EARNED", 70, t).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    sqlx::query("INSERT INTO points_ledgers (user_id, balance, total_earned, total_burned, locked, tx_count) VALUES (1, 30, 30, 0, 0, 1), (2, 70, 70, 0, 0, 1), (3, 0, 0, 0, 0, 0), (4, 0, 0, 0, 0, 0)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO leaderboard_entries (period, position, rank, user_id, points, built_at) VALUES ('all-time', 1, 1, 2, 70, $1), ('all-time', 2, 2, 1, 30, $1), ('2026-W47', 1, 1, 2, 70, $1)")
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
    // Written after the last rebuild, before the migration: not in the ledgers yet.
    points(&pool, 3, "EARNED", 50, t).await;
    jobfleet::db::MIGRATOR.run(&pool).await.unwrap();

    assert_eq!(
        board(&pool, "all-time").await,
        [(1, 1, 2, 70), (2, 2, 1, 30)]
    );
    assert_eq!(board(&pool, "2026-W47").await, [(1, 1, 2, 70)]);
    assert_eq!(
        fold_ledgers(&pool, now).await.unwrap(),
        1,
        "the first fold looks at every user"
    );
    assert_eq!(drift(&pool).await, 0);
    let week = Period::parse("2026-W47", now).unwrap();
    assert_eq!(refresh_board(&pool, &week, now).await.unwrap().entries, 3);
    assert_eq!(
        refresh_board(&pool, &Period::AllTime, now)
            .await
            .unwrap()
            .entries,
        3
    );
    assert_eq!(
        board(&pool, "all-time").await,
        [(1, 1, 2, 70), (2, 2, 3, 50), (3, 3, 1, 30)]
    );
}

#[sqlx::test]
async fn boards_of_different_periods_build_at_once(pool: PgPool) {
    // The scheduler starts the hourly all-time board and the weekly board at the same minute
    // (Monday 00:00), and each build swaps a partition of the same table.
    users(&pool, 300).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap(); // in ISO week 47
    sqlx::query("INSERT INTO points_transactions (user_id, kind, amount, reason, created_at) SELECT id, 'EARNED', id % 7 + 1, 'seed', $1 FROM users")
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
    fold_ledgers(&pool, now).await.unwrap();
    let week = Period::parse("2026-W47", now).unwrap();
    for _ in 0..15 {
        let (a, b) = tokio::join!(
            jobfleet::db::points::rebuild_board(&pool, &Period::AllTime, now),
            jobfleet::db::points::rebuild_board(&pool, &week, now),
        );
        assert_eq!((a.unwrap(), b.unwrap()), (300, 300));
    }
    assert_eq!(board(&pool, "all-time").await.len(), 300);
    assert_eq!(board(&pool, "2026-W47").await.len(), 300);
}
