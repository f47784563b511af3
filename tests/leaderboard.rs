//! rebuild_leaderboard against a real PostgreSQL (a fresh database per test, migrated).

use chrono::{TimeZone, Utc};
use jobfleet::db::points::{
    BoardBuild, Period, fold_ledgers, rebuild_board, rebuild_ledgers, refresh_board,
};
use jobfleet::jobs::rebuild_leaderboard::RebuildLeaderboard;
use sqlx::{Connection, PgPool};

async fn users(pool: &PgPool, n: i64) {
    sqlx::query("INSERT INTO users (handle) SELECT 'user' || i FROM generate_series(1, $1) i")
        .bind(n)
        .execute(pool)
        .await
        .unwrap();
}

async fn points(pool: &PgPool, user: i64, kind: &str, amount: i64, at: chrono::DateTime<Utc>) {
    sqlx::query("INSERT INTO points_transactions (user_id, kind, amount, reason, created_at) VALUES ($1, $2::points_kind, $3, 'test', $4)")
        .bind(user)
        .bind(kind)
        .bind(amount)
        .bind(at)
        .execute(pool)
        .await
        .unwrap();
}

async fn board(pool: &PgPool, period: &str) -> Vec<(i32, i32, i64, i64)> {
    sqlx::query_as("SELECT position, rank, user_id, points FROM leaderboard_entries WHERE period = $1 ORDER BY position")
        .bind(period)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn ledgers_and_ranks_with_ties(pool: PgPool) {
    users(&pool, 5).await;
    let t = Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap();
    points(&pool, 1, "EARNED", 100, t).await;
    points(&pool, 2, "EARNED", 150, t).await;
    points(&pool, 2, "BURNED", 50, t).await;
    points(&pool, 3, "EARNED", 300, t).await;
    points(&pool, 4, "EARNED", 40, t).await;
    points(&pool, 4, "LOCKED", 30, t).await;
    points(&pool, 4, "UNLOCKED", 10, t).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    assert_eq!(
        rebuild_ledgers(&pool, now).await.unwrap(),
        5,
        "every user gets a ledger"
    );
    let l4: (i64, i64, i64, i64, i64) = sqlx::query_as("SELECT balance, total_earned, total_burned, locked, tx_count FROM points_ledgers WHERE user_id = 4")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(l4, (20, 40, 0, 20, 3));
    assert_eq!(
        rebuild_ledgers(&pool, now).await.unwrap(),
        0,
        "a re-run writes nothing"
    );

    assert_eq!(
        rebuild_board(&pool, &Period::AllTime, now).await.unwrap(),
        4
    );
    // Users 1 and 2 tie at 100: competition ranking 1, 2, 2, 4; ties ordered by user id.
    assert_eq!(
        board(&pool, "all-time").await,
        [
            (1, 1, 3, 300),
            (2, 2, 1, 100),
            (3, 2, 2, 100),
            (4, 4, 4, 40)
        ]
    );
    let week = Period::parse("previous-week", now).unwrap();
    assert_eq!(week.name(), "2026-W47");
    points(
        &pool,
        5,
        "EARNED",
        999,
        Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(),
    )
    .await;
    rebuild_board(&pool, &week, now).await.unwrap();
    let w = board(&pool, "2026-W47").await;
    assert_eq!(w.len(), 4, "the next week's points do not count");
    assert_eq!(
        rebuild_board(&pool, &Period::AllTime, now).await.unwrap(),
        4,
        "rebuilt the same"
    );
}

#[sqlx::test]
async fn readers_see_the_old_board_or_the_new_one_never_a_mix(pool: PgPool) {
    users(&pool, 3000).await;
    sqlx::query("INSERT INTO points_transactions (user_id, kind, amount, reason) SELECT id, 'EARNED', id % 97 + 1, 'seed' FROM users WHERE id <= 1000")
        .execute(&pool)
        .await
        .unwrap();
    let now = Utc::now();
    rebuild_ledgers(&pool, now).await.unwrap();
    assert_eq!(
        rebuild_board(&pool, &Period::AllTime, now).await.unwrap(),
        1000
    );
    sqlx::query("INSERT INTO points_transactions (user_id, kind, amount, reason) SELECT id, 'EARNED', id % 89 + 1, 'seed' FROM users WHERE id > 1000")
        .execute(&pool)
        .await
        .unwrap();
    rebuild_ledgers(&pool, now).await.unwrap();
    let reader = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..300 {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM leaderboard_entries WHERE period = 'all-time'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                seen.insert(n);
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for _ in 0..5 {
        rebuild_board(&pool, &Period::AllTime, Utc::now())
            .await
            .unwrap();
    }
    let seen = reader.await.unwrap();
    assert!(
        seen.iter().all(|n| *n == 1000 || *n == 3000),
        "a reader saw a half-built board: {seen:?}"
    );
    // Two rebuilds at once serialise on the advisory lock and agree.
    let (a, b) = tokio::join!(
        rebuild_board(&pool, &Period::AllTime, now),
        rebuild_board(&pool, &Period::AllTime, now)
    );
    assert_eq!((a.unwrap(), b.unwrap()), (3000, 3000));
}

type Ledger = (i64, i64, i64, i64, i64, i64);

async fn ledgers(pool: &PgPool) -> Vec<Ledger> {
    sqlx::query_as("SELECT user_id, balance, total_earned, total_burned, locked, tx_count FROM points_ledgers ORDER BY user_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// What a full recompute would change; zero when the folded ledgers are exact.
async fn drift(pool: &PgPool) -> u64 {
    rebuild_ledgers(pool, Utc::now()).await.unwrap()
}

/// `n` transactions of every kind over users 1..=users, amounts varying with `salt`.
async fn spread(pool: &PgPool, n: i64, users: i64, salt: i64) {
    sqlx::query(
        "INSERT INTO points_transactions (user_id, kind, amount, reason)
         SELECT 1 + (i * 7 + $3) % $2,
                (ARRAY['EARNED', 'EARNED', 'BURNED', 'LOCKED', 'UNLOCKED']::points_kind[])[1 + i % 5],
                1 + (i * $3) % 50, 'test'
         FROM generate_series(1, $1) i",
    )
    .bind(n)
    .bind(users)
    .bind(salt)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test]
async fn an_incremental_fold_equals_a_full_recompute(pool: PgPool) {
    users(&pool, 200).await;
    spread(&pool, 2000, 150, 3).await;
    let now = Utc::now();
    assert_eq!(
        fold_ledgers(&pool, now).await.unwrap(),
        200,
        "every user, with or without points"
    );
    assert_eq!(drift(&pool).await, 0);
    // New transactions for some users, and a new user with none.
    spread(&pool, 300, 40, 11).await;
    sqlx::query("INSERT INTO users (handle) VALUES ('late')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        fold_ledgers(&pool, now).await.unwrap(),
        41,
        "the 40 users with points and the new one"
    );
    let folded = ledgers(&pool).await;
    assert_eq!(folded.len(), 201);
    assert_eq!(
        folded[200],
        (201, 0, 0, 0, 0, 0),
        "a user without points has a zero ledger"
    );
    assert_eq!(
        drift(&pool).await,
        0,
        "the fold left what a full recompute computes"
    );
    assert_eq!(ledgers(&pool).await, folded);
    assert_eq!(
        fold_ledgers(&pool, now).await.unwrap(),
        0,
        "nothing new, nothing written"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM points_ledger_dirty")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test]
async fn a_transaction_committed_out_of_id_order_is_folded(pool: PgPool) {
    users(&pool, 2).await;
    let now = Utc::now();
    fold_ledgers(&pool, now).await.unwrap();
    // A writer takes the lower id and commits last, as an API server can.
    let mut slow = pool.acquire().await.unwrap().detach();
    let mut open = slow.begin().await.unwrap();
    let low: i64 = sqlx::query_scalar("INSERT INTO points_transactions (user_id, kind, amount, reason) VALUES (1, 'EARNED', 10, 'slow') RETURNING id")
        .fetch_one(&mut *open)
        .await
        .unwrap();
    let high: i64 = sqlx::query_scalar("INSERT INTO points_transactions (user_id, kind, amount, reason) VALUES (2, 'EARNED', 20, 'fast') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(low < high);
    assert_eq!(
        fold_ledgers(&pool, now).await.unwrap(),
        1,
        "only the committed one"
    );
    assert_eq!(
        ledgers(&pool).await,
        [(1, 0, 0, 0, 0, 0), (2, 20, 20, 0, 0, 1)]
    );
    open.commit().await.unwrap();
    assert_eq!(
        fold_ledgers(&pool, now).await.unwrap(),
        1,
        "the late one, below the highest folded id"
    );
    assert_eq!(
        ledgers(&pool).await,
        [(1, 10, 10, 0, 0, 1), (2, 20, 20, 0, 0, 1)]
    );
    assert_eq!(drift(&pool).await, 0);
}

#[sqlx::test]
async fn folds_at_once_with_writers_stay_correct(pool: PgPool) {
    users(&pool, 300).await;
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    spread(&pool, 25, 300, w * 1000 + i).await;
                }
            })
        })
        .collect();
    let folders: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut changed = 0_u64;
                for _ in 0..30 {
                    changed += fold_ledgers(&pool, Utc::now()).await.unwrap();
                }
                changed
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut changed = 0;
    for f in folders {
        changed += f.await.unwrap();
    }
    assert!(changed > 0, "the folds ran beside the writers");
    fold_ledgers(&pool, Utc::now()).await.unwrap();
    assert_eq!(
        drift(&pool).await,
        0,
        "folds at once lost or overwrote a user's transactions"
    );
    let (a, b) = tokio::join!(
        fold_ledgers(&pool, Utc::now()),
        fold_ledgers(&pool, Utc::now())
    );
    assert_eq!((a.unwrap(), b.unwrap()), (0, 0));
}

#[sqlx::test]
async fn full_repairs_a_ledger_changed_by_hand(pool: PgPool) {
    users(&pool, 3).await;
    spread(&pool, 30, 3, 5).await;
    let now = Utc::now();
    fold_ledgers(&pool, now).await.unwrap();
    let right = ledgers(&pool).await;
    sqlx::query("UPDATE points_ledgers SET balance = 999999, tx_count = 1 WHERE user_id = 2")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        fold_ledgers(&pool, now).await.unwrap(),
        0,
        "a fold only looks at new transactions"
    );
    assert_eq!(rebuild_ledgers(&pool, now).await.unwrap(), 1);
    assert_eq!(ledgers(&pool).await, right);
    // The job's args: `full` defaults to false and unknown fields are still refused.
    let args: RebuildLeaderboard = serde_json::from_str(r#"{"full": true}"#).unwrap();
    assert!(args.full);
    assert_eq!(args.period, "all-time");
    let args: RebuildLeaderboard = serde_json::from_str(r#"{"period": "2026-W47"}"#).unwrap();
    assert!(!args.full);
    assert!(serde_json::from_str::<RebuildLeaderboard>(r#"{"fulll": true}"#).is_err());
}

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
