//! Fixtures of the retention tests: the tests' clock and retentions, rows of every pruned table
//! at a given time, and what is left of them.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobfleet::db::retention::{Plan, RetentionSettings};
use sqlx::PgPool;

/// The tick of the runs under test.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-02T04:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

pub fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// The shipped defaults, written out so that a test says which boundary it checks.
pub fn settings() -> RetentionSettings {
    let d = |n: u64| Duration::from_secs(n * 86_400);
    RetentionSettings {
        notifications: d(30),
        outbox_confirmed: d(90),
        outbox_failed: d(180),
        chain_events: d(90),
        platform_stats: d(400),
        sync_runs: d(90),
    }
}

/// The chain's reorg depth in the tests (the default).
pub const DEPTH: u64 = 64;

pub fn plan() -> Plan {
    Plan::new(&settings(), DEPTH, now())
}

pub async fn user(pool: &PgPool, handle: &str) -> i64 {
    sqlx::query_scalar("INSERT INTO users (handle) VALUES ($1) RETURNING id")
        .bind(handle)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A notification created a day before `dispatched` (or long ago, when never dispatched).
pub async fn notification(
    pool: &PgPool,
    user: i64,
    key: &str,
    dispatched: Option<DateTime<Utc>>,
) -> i64 {
    let created = dispatched.unwrap_or_else(now) - days(1);
    sqlx::query_scalar(
        "INSERT INTO notifications (user_id, event, payload, dedupe_key, created_at, dispatched_at)
         VALUES ($1, 'market.resolved', '{\"market_id\": 1}', $2, $3, $4) RETURNING id",
    )
    .bind(user)
    .bind(key)
    .bind(created)
    .bind(dispatched)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// One delivery attempt of a notification, logged at `at`.
pub async fn delivery(pool: &PgPool, notification: i64, channel: &str, at: DateTime<Utc>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO notification_deliveries (notification_id, channel, attempt, status, created_at)
         VALUES ($1, $2, 1, 'sent', $3) RETURNING id",
    )
    .bind(notification)
    .bind(channel)
    .bind(at)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A signed row's signer, chain (id, genesis) and nonce.
pub type Signed<'a> = (&'a str, i64, &'a str, i64);

pub const SIGNER: &str = "0x00000000000000000000000000000000000000aa";
pub const OTHER_SIGNER: &str = "0x00000000000000000000000000000000000000bb";
pub fn genesis(n: u8) -> String {
    format!("0x{:064x}", n)
}

/// An outbox row in `status`, last changed at `updated`.
pub async fn outbox_row(
    pool: &PgPool,
    key: &str,
    status: &str,
    signed: Option<Signed<'_>>,
    updated: DateTime<Utc>,
) -> i64 {
    let (signer, chain_id, genesis, nonce) = match signed {
        Some((s, c, g, n)) => (Some(s), Some(c), Some(g), Some(n)),
        None => (None, None, None, None),
    };
    sqlx::query_scalar(
        "INSERT INTO chain_outbox (idempotency_key, kind, target, args, status, signer, chain_id,
                                   genesis_hash, nonce, created_at, updated_at)
         VALUES ($1, 'approveMarket', 'markets', '{}', $2::outbox_status, $3, $4, $5, $6, $7, $7)
         RETURNING id",
    )
    .bind(key)
    .bind(status)
    .bind(signer)
    .bind(chain_id)
    .bind(genesis)
    .bind(nonce)
    .bind(updated)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The cursor `name` of `chain` at `block`.
pub async fn cursor(pool: &PgPool, name: &str, chain: (i64, &str), block: i64) {
    sqlx::query(
        "INSERT INTO chain_cursors (name, chain_id, genesis_hash, block_number, block_hash)
         VALUES ($4, $1, $2, $3, '0xabc')",
    )
    .bind(chain.0)
    .bind(chain.1)
    .bind(block)
    .bind(name)
    .execute(pool)
    .await
    .unwrap();
}

/// An event of `chain` in `block`, recorded at `created`.
pub async fn event(pool: &PgPool, chain: (i64, &str), block: i64, created: DateTime<Utc>) -> i64 {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM chain_events")
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "INSERT INTO chain_events (tx_hash, log_index, block_number, block_hash, contract, event,
                                   data, chain_id, genesis_hash, created_at)
         VALUES ($1, 0, $2, '0xabc', 'markets', 'MarketApproved', '{}', $3, $4, $5) RETURNING id",
    )
    .bind(format!("0x{:064x}", n + 1))
    .bind(block)
    .bind(chain.0)
    .bind(chain.1)
    .bind(created)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A `platform_stats` row of the period that starts at `start`, with zero figures.
pub async fn stats_row(pool: &PgPool, start: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO platform_stats (period_start, period_end, users, wallets, markets_by_state,
                                     proposal_votes_last_hour, dispute_votes_last_hour,
                                     outbox_by_status, notifications_pending, points_issued)
         VALUES ($1, $1 + interval '15 minutes', 0, 0, '{}', 0, 0, '{}', 0, 0)",
    )
    .bind(start)
    .execute(pool)
    .await
    .unwrap();
}

/// The ids left in `table` (its `id` column), in order.
pub async fn ids(pool: &PgPool, table: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!("SELECT id FROM {table} ORDER BY id"))
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Rows in `table`.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}
