//! Community votes: proposals approved or rejected, disputes upheld or rejected.
//!
//! Each decision is one statement: the tally (one GROUP BY over all open items), the state
//! change guarded by the current state, and the outbox row with its idempotency key, all in
//! one transaction. A second run finds nothing in the old state; a concurrent run waits on the
//! row locks, re-checks the guard and skips; a retry after a crash finds the outbox key taken.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobfleet_engine::settings::duration;
use serde::Deserialize;
use sqlx::PgPool;

/// Thresholds of the community votes (from the platform's design notes).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSettings {
    /// Share of likes, in basis points, that approves a proposed market (7000 = 70%).
    pub proposal_threshold_bp: u32,
    pub proposal_min_votes: u32,
    #[serde(with = "duration")]
    pub proposal_window: Duration,
    /// Share of uphold votes, in basis points, that upholds a dispute (6000 = 60%).
    pub dispute_threshold_bp: u32,
    pub dispute_min_votes: u32,
    #[serde(with = "duration")]
    pub dispute_window: Duration,
}

/// The rule of one vote: a share in basis points, a minimum turnout and a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub threshold_bp: u32,
    pub min_votes: u32,
    pub window: Duration,
}

/// What one aggregation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Decisions {
    pub approved: i64,
    pub rejected: i64,
    pub outbox_rows: i64,
}

pub const PROPOSALS: &str = r#"
WITH tallies AS (
    SELECT m.id, m.on_chain_id, m.created_at,
           count(v.market_id) FILTER (WHERE v.likes) AS yes,
           count(v.market_id) FILTER (WHERE NOT v.likes) AS no
    FROM markets m
    LEFT JOIN proposal_votes v ON v.market_id = m.id
    WHERE m.state = 'PROPOSED'
    GROUP BY m.id
), verdicts AS (
    SELECT id, on_chain_id, yes, no,
           CASE
               WHEN yes + no >= $3 AND yes * 10000 >= $2 * (yes + no) THEN 'APPROVED'::market_state
               WHEN created_at + make_interval(secs => $4) <= $1 THEN 'REJECTED'::market_state
           END AS verdict
    FROM tallies
), moved AS (
    UPDATE markets m SET state = v.verdict, decided_at = $1
    FROM verdicts v
    WHERE m.id = v.id AND v.verdict IS NOT NULL AND m.state = 'PROPOSED'
    RETURNING m.id, m.state, v.on_chain_id, v.yes, v.no
), outbox AS (
    INSERT INTO chain_outbox (idempotency_key, kind, target, args)
    SELECT 'approveMarket:' || id, 'approveMarket', 'markets',
           jsonb_build_object('marketId', id, 'onChainId', on_chain_id, 'likes', yes, 'dislikes', no)
    FROM moved WHERE state = 'APPROVED'
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM moved WHERE state = 'APPROVED'),
       (SELECT count(*) FROM moved WHERE state = 'REJECTED'),
       (SELECT count(*) FROM outbox)
"#;

const DISPUTES: &str = r#"
WITH tallies AS (
    SELECT d.id, d.market_id, d.created_at,
           count(v.dispute_id) FILTER (WHERE v.uphold) AS yes,
           count(v.dispute_id) FILTER (WHERE NOT v.uphold) AS no
    FROM disputes d
    LEFT JOIN dispute_votes v ON v.dispute_id = d.id
    WHERE d.state = 'OPEN'
    GROUP BY d.id
), verdicts AS (
    SELECT id, market_id, yes, no,
           CASE
               WHEN yes + no >= $3 AND yes * 10000 >= $2 * (yes + no) THEN 'UPHELD'::dispute_state
               WHEN created_at + make_interval(secs => $4) <= $1 THEN 'REJECTED'::dispute_state
           END AS verdict
    FROM tallies
), moved AS (
    UPDATE disputes d SET state = v.verdict, decided_at = $1
    FROM verdicts v
    WHERE d.id = v.id AND v.verdict IS NOT NULL AND d.state = 'OPEN'
    RETURNING d.id, d.state, v.market_id, v.yes, v.no
), outbox AS (
    INSERT INTO chain_outbox (idempotency_key, kind, target, args)
    SELECT 'resolveDispute:' || id, 'resolveDispute', 'markets',
           jsonb_build_object('disputeId', id, 'marketId', market_id,
                              'upheld', state = 'UPHELD', 'uphold', yes, 'reject', no)
    FROM moved
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM moved WHERE state = 'UPHELD'),
       (SELECT count(*) FROM moved WHERE state = 'REJECTED'),
       (SELECT count(*) FROM outbox)
"#;

async fn decide(
    pool: &PgPool,
    sql: &str,
    rule: Rule,
    now: DateTime<Utc>,
) -> Result<Decisions, sqlx::Error> {
    let (approved, rejected, outbox_rows): (i64, i64, i64) = sqlx::query_as(sql)
        .bind(now)
        .bind(i64::from(rule.threshold_bp))
        .bind(i64::from(rule.min_votes))
        .bind(rule.window.as_secs_f64())
        .fetch_one(pool)
        .await?;
    Ok(Decisions {
        approved,
        rejected,
        outbox_rows,
    })
}

/// Approves or rejects every proposed market whose vote is decided at `now`.
pub async fn decide_proposals(
    pool: &PgPool,
    rule: Rule,
    now: DateTime<Utc>,
) -> Result<Decisions, sqlx::Error> {
    decide(pool, PROPOSALS, rule, now).await
}

/// Upholds or rejects every open dispute whose vote is decided at `now` (approved counts
/// upheld disputes).
pub async fn decide_disputes(
    pool: &PgPool,
    rule: Rule,
    now: DateTime<Utc>,
) -> Result<Decisions, sqlx::Error> {
    decide(pool, DISPUTES, rule, now).await
}
