//! rebuild_leaderboard against a real PostgreSQL (a fresh database per test, migrated).

use chrono::{TimeZone, Utc};
use jobfleet::db::points::{Period, rebuild_board, rebuild_ledgers};
use sqlx::PgPool;

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
