//! aggregate_votes against a real PostgreSQL (a fresh database per test, migrated).

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobfleet::db::governance::{Decisions, Rule, decide_disputes, decide_proposals};
use sqlx::PgPool;

const PROPOSAL: Rule = Rule {
    threshold_bp: 7000,
    min_votes: 10,
    window: Duration::from_secs(72 * 3600),
};
const DISPUTE: Rule = Rule {
    threshold_bp: 6000,
    min_votes: 10,
    window: Duration::from_secs(24 * 3600),
};

/// `users` users, each with one wallet.
async fn people(pool: &PgPool, users: i64) {
    sqlx::query(
        "INSERT INTO users (handle) SELECT 'user' || i FROM generate_series(1, $1) i;
         ",
    )
    .bind(users)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO wallets (user_id, address, chain_id, is_primary)
         SELECT id, '0x' || lpad(to_hex(id), 40, '0'), 31337, true FROM users",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// A proposed market created `age` ago, with `likes` and `dislikes` from distinct wallets.
async fn market(pool: &PgPool, age: Duration, likes: i64, dislikes: i64) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO markets (on_chain_id, proposer_id, title, created_at, resolves_at)
         VALUES ((SELECT coalesce(max(on_chain_id), 0) + 1 FROM markets), 1, 'Will it rain?',
                 now() - make_interval(secs => $1), now() + interval '30 days')
         RETURNING id",
    )
    .bind(age.as_secs_f64())
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO proposal_votes (market_id, wallet_id, likes)
         SELECT $1, w.id, row_number() OVER (ORDER BY w.id) <= $2
         FROM wallets w ORDER BY w.id LIMIT $3",
    )
    .bind(id)
    .bind(likes)
    .bind(likes + dislikes)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn state(pool: &PgPool, market: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM markets WHERE id = $1")
        .bind(market)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn outbox(pool: &PgPool) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as("SELECT idempotency_key, args FROM chain_outbox ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

const HOUR: Duration = Duration::from_secs(3600);

#[sqlx::test]
async fn threshold_edges(pool: PgPool) {
    people(&pool, 1000).await;
    let nine_all_yes = market(&pool, HOUR, 9, 0).await;
    let ten_at_70 = market(&pool, HOUR, 7, 3).await;
    let at_69_9 = market(&pool, HOUR, 699, 301).await;
    let at_70_0 = market(&pool, HOUR, 700, 300).await;
    let d = decide_proposals(&pool, PROPOSAL, now()).await.unwrap();
    assert_eq!(
        d,
        Decisions {
            approved: 2,
            rejected: 0,
            outbox_rows: 2
        }
    );
    assert_eq!(
        state(&pool, nine_all_yes).await,
        "PROPOSED",
        "9 votes are too few, even at 100%"
    );
    assert_eq!(
        state(&pool, ten_at_70).await,
        "APPROVED",
        "10 votes at exactly 70%"
    );
    assert_eq!(
        state(&pool, at_69_9).await,
        "PROPOSED",
        "69.9% is below the threshold"
    );
    assert_eq!(state(&pool, at_70_0).await, "APPROVED");
    let rows = outbox(&pool).await;
    assert_eq!(rows[0].0, format!("approveMarket:{ten_at_70}"));
    assert_eq!(rows[0].1["likes"], 7);
    assert_eq!(rows[0].1["dislikes"], 3);
    assert!(rows[0].1["onChainId"].as_i64().is_some());
}

#[sqlx::test]
async fn a_closed_window_below_the_threshold_rejects(pool: PgPool) {
    people(&pool, 20).await;
    let expired = market(&pool, 73 * HOUR, 5, 5).await;
    let open = market(&pool, 71 * HOUR, 5, 5).await;
    let expired_but_passing = market(&pool, 80 * HOUR, 10, 0).await;
    let d = decide_proposals(&pool, PROPOSAL, now()).await.unwrap();
    assert_eq!((d.approved, d.rejected, d.outbox_rows), (1, 1, 1));
    assert_eq!(state(&pool, expired).await, "REJECTED");
    assert_eq!(state(&pool, open).await, "PROPOSED");
    assert_eq!(
        state(&pool, expired_but_passing).await,
        "APPROVED",
        "a passing vote wins over the clock"
    );
}

#[sqlx::test]
async fn re_runs_and_concurrent_runs_approve_once(pool: PgPool) {
    people(&pool, 50).await;
    for _ in 0..20 {
        market(&pool, HOUR, 40, 10).await;
    }
    let (a, b) = tokio::join!(
        decide_proposals(&pool, PROPOSAL, now()),
        decide_proposals(&pool, PROPOSAL, now())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.approved + b.approved, 20, "{a:?} {b:?}");
    assert_eq!(a.outbox_rows + b.outbox_rows, 20);
    let again = decide_proposals(&pool, PROPOSAL, now()).await.unwrap();
    assert_eq!(again, Decisions::default(), "a re-run changes nothing");
    assert_eq!(outbox(&pool).await.len(), 20);
}

#[sqlx::test]
async fn disputes_are_upheld_at_60_percent_or_rejected_when_the_window_closes(pool: PgPool) {
    people(&pool, 30).await;
    let m = market(&pool, HOUR, 10, 0).await;
    let dispute = |age: Duration| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO disputes (market_id, raised_by, reason, created_at, state)
                 VALUES ($1, 2, 'wrong outcome', now() - make_interval(secs => $2), 'OPEN') RETURNING id",
            )
            .bind(m)
            .bind(age.as_secs_f64())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let upheld = dispute(HOUR).await;
    sqlx::query(
        "INSERT INTO dispute_votes (dispute_id, juror_id, uphold)
         SELECT $1, id, id <= 6 FROM users WHERE id <= 10",
    )
    .bind(upheld)
    .execute(&pool)
    .await
    .unwrap();
    let d = decide_disputes(&pool, DISPUTE, now()).await.unwrap();
    assert_eq!((d.approved, d.rejected, d.outbox_rows), (1, 0, 1));
    // Only one open dispute per market: the next one can be raised now.
    let late = dispute(25 * HOUR).await;
    sqlx::query("INSERT INTO dispute_votes (dispute_id, juror_id, uphold) SELECT $1, id, id <= 5 FROM users WHERE id <= 10")
        .bind(late)
        .execute(&pool)
        .await
        .unwrap();
    let d = decide_disputes(&pool, DISPUTE, now()).await.unwrap();
    assert_eq!(
        (d.approved, d.rejected, d.outbox_rows),
        (0, 1, 1),
        "50% after the window: rejected"
    );
    let rows = outbox(&pool).await;
    let upheld_row = rows
        .iter()
        .find(|(k, _)| *k == format!("resolveDispute:{upheld}"))
        .unwrap();
    assert_eq!(upheld_row.1["upheld"], true);
    let late_row = rows
        .iter()
        .find(|(k, _)| *k == format!("resolveDispute:{late}"))
        .unwrap();
    assert_eq!(late_row.1["upheld"], false);
    assert_eq!(
        decide_disputes(&pool, DISPUTE, now()).await.unwrap(),
        Decisions::default()
    );
}

#[sqlx::test]
async fn the_schema_refuses_bad_rows(pool: PgPool) {
    people(&pool, 2).await;
    let m = market(&pool, HOUR, 1, 0).await;
    let unknown_market = sqlx::query(
        "INSERT INTO proposal_votes (market_id, wallet_id, likes) VALUES (999999, 1, true)",
    )
    .execute(&pool)
    .await;
    assert!(
        unknown_market
            .unwrap_err()
            .to_string()
            .contains("foreign key")
    );
    let twice = sqlx::query(
        "INSERT INTO proposal_votes (market_id, wallet_id, likes) VALUES ($1, 1, false)",
    )
    .bind(m)
    .execute(&pool)
    .await;
    assert!(
        twice.unwrap_err().to_string().contains("duplicate key"),
        "one vote per wallet"
    );
    let bad_address =
        sqlx::query("INSERT INTO wallets (user_id, address, chain_id) VALUES (1, '0xZZ', 1)")
            .execute(&pool)
            .await;
    assert!(bad_address.is_err());
    sqlx::query("INSERT INTO points_transactions (user_id, kind, amount, reason) VALUES (1, 'EARNED', 5, 'vote')")
        .execute(&pool)
        .await
        .unwrap();
    let rewrite = sqlx::query("UPDATE points_transactions SET amount = 500")
        .execute(&pool)
        .await;
    assert!(rewrite.unwrap_err().to_string().contains("append-only"));
    let negative = sqlx::query("INSERT INTO points_transactions (user_id, kind, amount, reason) VALUES (1, 'EARNED', -5, 'x')")
        .execute(&pool)
        .await;
    assert!(negative.is_err());
}
