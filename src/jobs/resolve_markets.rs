//! `resolve_markets`: ACTIVE markets past `resolves_at` read the oracle; a reported outcome
//! moves the market to RESOLVING with a `resolveMarket` outbox row and opens the dispute window
//! (`chain.dispute_window`); when the window closes with no dispute open, the market is
//! RESOLVED and paid out (see `chain::payouts` for the rule) with points and notifications.
//!
//! Args: `{}` for the periodic run over every market. A market whose outcome is not reported
//! yet gets a job of its own, `{"market_id": N}` with the id `resolve-market:N`, which snoozes
//! (`chain::ORACLE_SNOOZE`, no attempt used) until the oracle reports: one waiting job per
//! market, however many periodic runs see it.
//!
//! Idempotent: every move is guarded by the market's state, the outbox row by its key, and
//! the settlement (state, payouts, points, notifications) is one transaction.

use alloy::primitives::U256;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Job, JobContext, JobError, chain_job};
use crate::chain::contracts::Oracle;
use crate::chain::{Chain, ChainError, ORACLE_SNOOZE, payouts};
use crate::db::markets::{self, Due};
use crate::queue::NewJob;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveMarkets {
    /// One market waiting for its oracle; absent for the periodic run.
    #[serde(default)]
    pub market_id: Option<i64>,
}

/// What a run did.
#[derive(Debug, Default)]
struct Report {
    resolving: u32,
    unreported: Vec<i64>,
    disputed: u64,
    resolved: u32,
}

impl Job for ResolveMarkets {
    const KIND: &'static str = "resolve_markets";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let r = &ctx.resources;
        let now = Utc::now();
        let only = self.market_id;
        let report = chain_job(Self::KIND, async { run(r.chain()?, &r.db, only, now).await }).await?;
        let Some(report) = report else { return Ok(()) };
        if only.is_some() {
            if !report.unreported.is_empty() {
                return Err(JobError::snooze(ORACLE_SNOOZE));
            }
            return Ok(());
        }
        tracing::info!(resolving = report.resolving, unreported = report.unreported.len(),
            disputed = report.disputed, resolved = report.resolved, "markets resolved");
        let waiting: Vec<NewJob> = report
            .unreported
            .iter()
            .map(|id| {
                NewJob::new(Self::KIND, &ctx.queue, json!({"market_id": id}))
                    .id(format!("resolve-market:{id}"))
                    .max_attempts(ctx.max_attempts)
                    .run_at((now + ORACLE_SNOOZE).timestamp_millis())
            })
            .collect();
        if !waiting.is_empty() {
            r.queue.enqueue_bulk(waiting).await.map_err(JobError::retry)?;
        }
        Ok(())
    }
}

async fn run(chain: &Chain, pool: &sqlx::PgPool, only: Option<i64>, now: DateTime<Utc>) -> Result<Report, ChainError> {
    let mut report = Report::default();
    let oracle = Oracle::new(chain.oracle()?, &chain.provider);
    let window = chrono::Duration::from_std(chain.settings.dispute_window)
        .map_err(|e| ChainError::Fatal(format!("chain.dispute_window: {e}")))?;
    let due = markets::due(pool, now).await?;
    for Due { id, on_chain_id } in due.into_iter().filter(|m| only.is_none_or(|o| o == m.id)) {
        let Some(on_chain) = on_chain_id else {
            tracing::warn!(market_id = id, "market has no on-chain id: the oracle cannot be read");
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
            tracing::info!(market_id = id, outcome = answer.outcome, "oracle reported: market resolving");
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

