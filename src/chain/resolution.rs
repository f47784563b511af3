//! Market resolution: the oracle's report, the dispute window, and the settlement (see
//! `crate::payouts` for the payout rule and `db::markets` for the writes).

use alloy::primitives::U256;
use chrono::{DateTime, Utc};

use super::contracts::Oracle;
use super::settings::ChainSettings;
use super::{Chain, ChainError};
use crate::db::markets::{self, Closing, Due};
use crate::payouts;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Markets moved to RESOLVING (the oracle reported).
    pub resolving: u32,
    /// Due markets whose outcome is not reported yet.
    pub unreported: Vec<i64>,
    /// Markets moved to DISPUTED.
    pub disputed: u64,
    /// Markets settled.
    pub resolved: u32,
}

/// One pass: every due ACTIVE market (or only `only`) reads the oracle; with `only` unset,
/// disputed markets are marked and closed windows are settled, one after the other.
pub async fn resolve(
    chain: &Chain,
    pool: &sqlx::PgPool,
    only: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Report, ChainError> {
    let mut report = advance(chain, pool, only, now).await?;
    if only.is_some() {
        return Ok(report);
    }
    for market in markets::closing(pool, now).await? {
        if settle_market(&chain.settings, pool, &market, now).await? {
            report.resolved += 1;
        }
    }
    Ok(report)
}

/// The pass of `resolve` without the settling: the oracle is read and disputes are marked; the
/// markets whose window closed are left to `settle_market` (the `resolve_markets` job settles
/// each in a child job of a flow).
pub async fn advance(
    chain: &Chain,
    pool: &sqlx::PgPool,
    only: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Report, ChainError> {
    let mut report = Report::default();
    let oracle = Oracle::new(chain.oracle()?, &chain.provider);
    let window = chrono::Duration::from_std(chain.settings.dispute_window)
        .map_err(|e| ChainError::Fatal(format!("chain.dispute_window: {e}")))?;
    let due = markets::due(pool, now).await?;
    for Due { id, on_chain_id } in due.into_iter().filter(|m| only.is_none_or(|o| o == m.id)) {
        let Some(on_chain) = on_chain_id else {
            tracing::warn!(
                market_id = id,
                "market has no on-chain id: the oracle cannot be read"
            );
            continue;
        };
        let answer = oracle
            .outcomeOf(U256::from(on_chain as u64))
            .call()
            .await
            .map_err(ChainError::from_contract)?;
        if !answer.reported {
            report.unreported.push(id);
            continue;
        }
        if markets::start_resolving(pool, id, answer.outcome, now, now + window).await? {
            tracing::info!(
                market_id = id,
                outcome = answer.outcome,
                "oracle reported: market resolving"
            );
            report.resolving += 1;
        }
    }
    if only.is_some() {
        return Ok(report);
    }
    report.disputed = markets::mark_disputed(pool).await?;
    Ok(report)
}

/// Settles one market whose dispute window closed: RESOLVED, its payouts, points and
/// notifications in one transaction (`db::markets::settle`). False when it was settled before
/// (or is disputed again): the transaction's guard changed nothing.
pub async fn settle_market(
    settings: &ChainSettings,
    pool: &sqlx::PgPool,
    market: &Closing,
    now: DateTime<Utc>,
) -> Result<bool, ChainError> {
    let stakes = markets::stakes(pool, market.id).await?;
    let settlement = payouts::settle(&stakes, market.outcome, settings.fee_bp)
        .map_err(|e| ChainError::Fatal(format!("market {}: {e}", market.id)))?;
    let settled = markets::settle(pool, market, &settlement, settings.win_points, now).await?;
    if settled {
        tracing::info!(market_id = market.id, outcome = market.outcome, pool = %settlement.pool,
            fee = %settlement.fee, refunded = settlement.refunded, "market resolved and paid out");
    }
    Ok(settled)
}
