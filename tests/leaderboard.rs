//! rebuild_leaderboard against a real PostgreSQL (a fresh database per test, migrated).

use chrono::{TimeZone, Utc};
use jobfleet::db::points::{Period, fold_ledgers, rebuild_board, rebuild_ledgers};
use jobfleet::jobs::rebuild_leaderboard::RebuildLeaderboard;
use sqlx::{Connection, PgPool};

/// The boards: swaps, skips, weeks and the migration of existing boards.
#[path = "leaderboard/boards.rs"]
mod boards;

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
    // Racing folds rarely interleave badly in a test, so check the guard itself: a fold waits
    // while another holds the ledgers' advisory lock.
    let mut other = pool.acquire().await.unwrap().detach();
    let mut holding = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('jobfleet:points_ledgers'))")
        .execute(&mut *holding)
        .await
        .unwrap();
    spread(&pool, 10, 300, 77).await;
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { fold_ledgers(&pool, Utc::now()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a fold ran beside one in progress");
    holding.rollback().await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 10);
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
