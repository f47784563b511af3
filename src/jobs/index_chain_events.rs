//! `index_chain_events`: the markets and oracle contracts' events from the cursor to the head
//! less `chain.confirmations`, with reorg detection (see `chain::indexer`).
//!
//! Idempotent: events are unique by (tx hash, log index), effects keep the first record, and
//! the cursor moves by compare-and-set in the same transaction as the range's events.

use serde::{Deserialize, Serialize};

use super::resources::{Resources, chain_job};
use crate::chain::indexer;
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexChainEvents {}

impl JobArgs for IndexChainEvents {
    const KIND: &'static str = "index_chain_events";
}

impl Job<Resources> for IndexChainEvents {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let r = ctx.state();
        let report = chain_job(Self::KIND, async {
            indexer::index(r.chain()?, &r.db).await
        })
        .await?;
        if let Some(report) = report {
            let lag = report.indexed_to.map(|n| report.head.saturating_sub(n));
            if report.events > 0 || report.reorg_to.is_some() {
                tracing::info!(events = report.events, indexed_to = ?report.indexed_to,
                    head = report.head, lag = ?lag, reorg_to = ?report.reorg_to, "chain events indexed");
            } else {
                tracing::debug!(indexed_to = ?report.indexed_to, head = report.head, "no new events");
            }
        }
        Ok(())
    }
}
