//! Market resolution: the oracle's report, the dispute window, and the settlement (see
//! `crate::payouts` for the payout rule and `db::markets` for the writes).

use alloy::primitives::U256;
use chrono::{DateTime, Utc};

use super::contracts::Oracle;
use super::{Chain, ChainError};
use crate::db::markets::{self, Due};
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
/// disputed markets are marked and closed windows are settled.
pub async fn resolve(
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
    for market in markets::closing(pool, now).await? {
        let stakes = markets::stakes(pool, market.id).await?;
        let settlement = payouts::settle(&stakes, market.outcome, chain.settings.fee_bp)
            .map_err(|e| ChainError::Fatal(format!("market {}: {e}", market.id)))?;
        if markets::settle(pool, &market, &settlement, chain.settings.win_points, now).await? {
            tracing::info!(market_id = market.id, outcome = market.outcome, pool = %settlement.pool,
                fee = %settlement.fee, refunded = settlement.refunded, "market resolved and paid out");
            report.resolved += 1;
        }
    }
    Ok(report)
}
