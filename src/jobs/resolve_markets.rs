//! `resolve_markets`: ACTIVE markets past `resolves_at` read the oracle; a reported outcome
//! moves the market to RESOLVING with a `resolveMarket` outbox row and opens the dispute window
//! (`chain.dispute_window`); when the window closes with no dispute open, the market is
//! RESOLVED and paid out (see `payouts` for the rule) with points and notifications.
//!
//! The periodic run settles the markets whose window closed in a flow: one `settle_market`
//! child per market (payouts, points and notifications in one transaction), and
//! `dispatch_notifications` as its `on_complete`, so the stakers hear of their payouts as soon
//! as every payout of the run is written instead of at the dispatcher's next tick.
//!
//! Args: `{}` for the periodic run over every market. A market whose outcome is not reported
//! yet gets a job of its own, `{"market_id": N}` with the id `resolve-market:N`, which snoozes
//! (`chain::ORACLE_SNOOZE`, no attempt used) until the oracle reports: one waiting job per
//! market, however many periodic runs see it.
//!
//! Idempotent: every move is guarded by the market's state, the outbox row by its key, and
//! the settlement (state, payouts, points, notifications) is one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::dispatch_notifications::DispatchNotifications;
use super::resources::{Resources, chain_job};
use super::settle_market::SettleMarket;
use crate::chain::{ORACLE_SNOOZE, resolution};
use crate::db::markets;
use crate::job::{Job, JobArgs, JobContext, JobError};
use crate::queue::NewJob;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveMarkets {
    /// One market waiting for its oracle; absent for the periodic run.
    #[serde(default)]
    pub market_id: Option<i64>,
}

impl JobArgs for ResolveMarkets {
    const KIND: &'static str = "resolve_markets";
}

impl Job<Resources> for ResolveMarkets {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let r = ctx.state();
        let now = Utc::now();
        let only = self.market_id;
        let report = chain_job(Self::KIND, async {
            resolution::advance(r.chain()?, &r.db, only, now).await
        })
        .await?;
        let Some(report) = report else { return Ok(()) };
        if only.is_some() {
            if !report.unreported.is_empty() {
                return Err(JobError::snooze(ORACLE_SNOOZE));
            }
            return Ok(());
        }
        let settling = settle_closing(&ctx, now).await?;
        tracing::info!(
            resolving = report.resolving,
            unreported = report.unreported.len(),
            disputed = report.disputed,
            settling,
            "markets resolved"
        );
        // One job per market still waiting for its oracle, on this run's queue and with its
        // attempts, due when the oracle may have answered.
        let waiting: Vec<NewJob> = report
            .unreported
            .iter()
            .map(|&id| {
                let one = ResolveMarkets {
                    market_id: Some(id),
                };
                ctx.client()
                    .enqueue(one)
                    .queue(&ctx.queue)
                    .max_attempts(ctx.max_attempts)
                    .id(format!("resolve-market:{id}"))
                    .at_ms((now + ORACLE_SNOOZE).timestamp_millis())
                    .into_new_job()
            })
            .collect::<Result<_, _>>()?;
        if !waiting.is_empty() {
            ctx.client().enqueue_jobs(waiting).await?;
        }
        Ok(())
    }
}

/// Starts the flow that settles every market whose dispute window closed, one child each,
/// then dispatches their notifications; answers how many markets it holds. The flow's id is
/// the run's id and attempt: a market in two runs' flows is settled by the first, and the
/// second's child finds it settled and changes nothing.
async fn settle_closing(
    ctx: &JobContext<Resources>,
    now: DateTime<Utc>,
) -> Result<usize, JobError> {
    let closing = markets::closing(&ctx.state().db, now)
        .await
        .map_err(JobError::retry)?;
    if closing.is_empty() {
        return Ok(0);
    }
    let client = ctx.client();
    let children: Vec<NewJob> = closing
        .iter()
        .map(|m| {
            client
                .enqueue(SettleMarket { market_id: m.id })
                .queue(&ctx.queue)
                .into_new_job()
        })
        .collect::<Result<_, _>>()?;
    let started = client
        .flow()
        .id(format!("{}:{}:settle", ctx.id, ctx.attempt))
        .jobs(children)
        .on_complete(DispatchNotifications {})
        .await?;
    tracing::info!(flow = %started.id, markets = closing.len(), "settling markets");
    Ok(closing.len())
}
