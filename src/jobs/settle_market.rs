//! `settle_market`: settles one market whose dispute window closed (a child of the flow a
//! `resolve_markets` run starts): RESOLVED with its final outcome, each position's payout,
//! the winners' points and a `market.resolved` notification per staker, in one transaction
//! (see `chain::resolution::settle_market`).
//!
//! Args: `{"market_id": N}`. Idempotent: a market that is no longer closing (settled before,
//! or disputed since) is left as it is.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::chain::{ChainError, resolution};
use crate::db::markets;
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleMarket {
    pub market_id: i64,
}

impl JobArgs for SettleMarket {
    const KIND: &'static str = "settle_market";
}

impl Job<Resources> for SettleMarket {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let r = ctx.state();
        let now = Utc::now();
        let closing = markets::closing(&r.db, now)
            .await
            .map_err(JobError::retry)?;
        let Some(market) = closing.iter().find(|m| m.id == self.market_id) else {
            tracing::info!(
                market_id = self.market_id,
                "market is no longer closing: nothing to settle"
            );
            return Ok(());
        };
        resolution::settle_market(&r.settings.chain, &r.db, market, now)
            .await
            .map_err(ChainError::into_job_error)?;
        Ok(())
    }
}
