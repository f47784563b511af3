//! Market resolution: markets due for the oracle, the move to RESOLVING with its outbox row,
//! disputes raised during the window, and the settlement (RESOLVED, payouts, points,
//! notifications) in one transaction guarded by the market's state.

use alloy::primitives::U256;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::notifications::record;
use crate::notify::Event;
use crate::payouts::{Settlement, Stake};

/// An ACTIVE market whose resolution time has passed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub on_chain_id: Option<i64>,
}

pub async fn due(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, on_chain_id FROM markets WHERE state = 'ACTIVE' AND resolves_at <= $1 ORDER BY resolves_at, id",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}

/// The oracle reported: RESOLVING with the reported outcome, the dispute window open until
/// `window_ends`, and the `resolveMarket` outbox row, in one statement.
pub async fn start_resolving(
    pool: &PgPool,
    id: i64,
    outcome: bool,
    now: DateTime<Utc>,
    window_ends: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let moved: i64 = sqlx::query_scalar(
        "WITH moved AS (
             UPDATE markets SET state = 'RESOLVING', outcome = $2, reported_outcome = $2,
                 reported_at = $3, dispute_window_ends_at = $4
             WHERE id = $1 AND state = 'ACTIVE'
             RETURNING id, on_chain_id
         ), outbox AS (
             INSERT INTO chain_outbox (idempotency_key, kind, target, args)
             SELECT 'resolveMarket:' || id, 'resolveMarket', 'markets',
                    jsonb_build_object('marketId', id, 'onChainId', on_chain_id, 'outcome', $2)
             FROM moved
             ON CONFLICT (idempotency_key) DO NOTHING
         )
         SELECT count(*) FROM moved",
    )
    .bind(id)
    .bind(outcome)
    .bind(now)
    .bind(window_ends)
    .fetch_one(pool)
    .await?;
    Ok(moved == 1)
}

/// RESOLVING markets with an open dispute become DISPUTED, and the market's proposer and
/// stakers hear of it. Returns the number of markets moved.
pub async fn mark_disputed(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let moved: Vec<(i64, String, i64, String)> = sqlx::query_as(
        "UPDATE markets m SET state = 'DISPUTED'
         FROM disputes d
         WHERE d.market_id = m.id AND d.state = 'OPEN' AND m.state = 'RESOLVING'
         RETURNING m.id, m.title, d.id, d.reason",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (market, title, dispute, reason) in &moved {
        let people: Vec<i64> = sqlx::query_scalar(
            "SELECT proposer_id FROM markets WHERE id = $1
             UNION SELECT user_id FROM positions WHERE market_id = $1",
        )
        .bind(market)
        .fetch_all(&mut *tx)
        .await?;
        for user in people {
            let event = Event::DisputeRaised {
                dispute_id: *dispute,
                market_id: *market,
                title: title.clone(),
                reason: reason.clone(),
            };
            record(
                &mut tx,
                user,
                &event,
                &format!("dispute.raised:{dispute}:{user}"),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(moved.len() as u64)
}

/// A market ready to settle: its window closed and no dispute is open.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Closing {
    pub id: i64,
    pub title: String,
    /// The outcome to pay out: the reported one, flipped by an upheld dispute.
    pub outcome: bool,
}

pub async fn closing(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<Closing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.title,
                m.reported_outcome <> EXISTS (SELECT 1 FROM disputes d
                                              WHERE d.market_id = m.id AND d.state = 'UPHELD') AS outcome
         FROM markets m
         WHERE m.state IN ('RESOLVING', 'DISPUTED') AND m.dispute_window_ends_at <= $1
           AND m.reported_outcome IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.market_id = m.id AND d.state = 'OPEN')
         ORDER BY m.dispute_window_ends_at, m.id",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}

/// A market's positions as stakes.
pub async fn stakes(pool: &PgPool, market: i64) -> Result<Vec<Stake>, sqlx::Error> {
    let rows: Vec<(i64, bool, String)> = sqlx::query_as(
        "SELECT id, outcome, stake::text FROM positions WHERE market_id = $1 ORDER BY id",
    )
    .bind(market)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        // NUMERIC(78,0) with CHECK (stake > 0) always parses as a U256.
        .filter_map(|(id, outcome, stake)| {
            let stake = U256::from_str_radix(&stake, 10).ok()?;
            Some(Stake {
                position_id: id,
                outcome,
                stake,
            })
        })
        .collect())
}

/// Settles a market: RESOLVED with its final outcome, pool and fee; each position's payout;
/// `win_points` EARNED for each winner; a `market.resolved` notification per staker. All in
/// one transaction, guarded by the market's state, so a second run changes nothing.
pub async fn settle(
    pool: &PgPool,
    market: &Closing,
    settlement: &Settlement,
    win_points: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let moved = sqlx::query(
        "UPDATE markets SET state = 'RESOLVED', outcome = $2, resolved_at = $3,
             pool = $4::numeric, fee = $5::numeric
         WHERE id = $1 AND state IN ('RESOLVING', 'DISPUTED')
           -- Re-checked here, in the settling transaction: a dispute opened, or upheld, since
           -- the market was picked changes what is paid, so the market waits for a next run.
           AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.market_id = $1 AND d.state = 'OPEN')
           AND (reported_outcome <> EXISTS (SELECT 1 FROM disputes d
                                            WHERE d.market_id = $1 AND d.state = 'UPHELD')) = $2",
    )
    .bind(market.id)
    .bind(market.outcome)
    .bind(now)
    .bind(settlement.pool.to_string())
    .bind(settlement.fee.to_string())
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        return Ok(false);
    }
    let ids: Vec<i64> = settlement.payouts.iter().map(|(id, _)| *id).collect();
    let amounts: Vec<String> = settlement
        .payouts
        .iter()
        .map(|(_, p)| p.to_string())
        .collect();
    sqlx::query(
        "UPDATE positions p SET payout = t.payout
         FROM unnest($1::bigint[], $2::numeric[]) AS t(id, payout)
         WHERE p.id = t.id AND p.market_id = $3",
    )
    .bind(&ids)
    .bind(&amounts)
    .bind(market.id)
    .execute(&mut *tx)
    .await?;
    // Per staker: stakes and payouts summed over their positions.
    let people: Vec<(i64, String, String, bool)> = sqlx::query_as(
        "SELECT user_id, sum(stake)::text, sum(payout)::text, bool_or(outcome = $2)
         FROM positions WHERE market_id = $1 GROUP BY user_id ORDER BY user_id",
    )
    .bind(market.id)
    .bind(market.outcome)
    .fetch_all(&mut *tx)
    .await?;
    for (user, stake, payout, won) in people {
        if won && win_points > 0 && !settlement.refunded {
            sqlx::query(
                "INSERT INTO points_transactions (user_id, kind, amount, reason, created_at)
                 VALUES ($1, 'EARNED', $2, $3, $4)",
            )
            .bind(user)
            .bind(win_points)
            .bind(format!("market {} won", market.id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // Sums of one market's NUMERIC(78,0) stakes, so they fit a U256.
        let stake = U256::from_str_radix(&stake, 10).unwrap_or_default();
        let payout = U256::from_str_radix(&payout, 10).unwrap_or_default();
        let event = Event::MarketResolved {
            market_id: market.id,
            title: market.title.clone(),
            outcome: market.outcome,
            stake: stake.into(),
            payout: payout.into(),
            winnings: payout.saturating_sub(stake).into(),
        };
        record(
            &mut tx,
            user,
            &event,
            &format!("market.resolved:{}:{user}", market.id),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
