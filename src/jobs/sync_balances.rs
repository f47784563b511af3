//! `sync_balances`: the native and ERC-20 balances of every wallet.
//!
//! Args: `{}` fans out: one child job per `chain.balance_batch` wallets (in id order), each
//! `{"from_id": <first wallet id>, "limit": <batch>}`, enqueued in one call on the parent's
//! queue with ids derived from the parent's, so a retried parent enqueues no second set.
//! A child reads its wallets' balances at one block through Multicall3 and writes only the
//! ones that changed (see `chain::balances`). Idempotent: a re-run reads the same or newer
//! balances and writes nothing that did not change; a balance is never overwritten by one
//! read at an older block.

use serde::{Deserialize, Serialize};

use super::resources::{Resources, chain_job};
use crate::chain::balances;
use crate::db;
use crate::job::{Job, JobArgs, JobContext, JobError};
use crate::queue::NewJob;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBalances {
    /// The first wallet id of a child's batch; absent for the fan-out.
    #[serde(default)]
    pub from_id: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

impl JobArgs for SyncBalances {
    const KIND: &'static str = "sync_balances";
}

impl Job<Resources> for SyncBalances {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let r = ctx.state();
        let batch = self.limit.unwrap_or(r.settings.chain.balance_batch).max(1);
        let Some(from) = self.from_id else {
            return fan_out(&ctx, batch).await;
        };
        let report = chain_job(Self::KIND, async {
            let chain = r.chain()?;
            let wallets = db::balances::wallets(&r.db, from, i64::from(batch)).await?;
            balances::sync_batch(chain, &r.db, &wallets).await
        })
        .await?;
        if let Some(report) = report {
            tracing::info!(
                from_id = from,
                wallets = report.wallets,
                read = report.read,
                changed = report.changed,
                notified = report.notified,
                block = report.block,
                "balances synced"
            );
        }
        Ok(())
    }
}

async fn fan_out(ctx: &JobContext<Resources>, batch: u32) -> Result<(), JobError> {
    let starts = db::balances::batch_starts(&ctx.state().db, i64::from(batch))
        .await
        .map_err(JobError::retry)?;
    // The children follow their parent: its queue, its attempts, an id made of its id.
    let jobs: Vec<NewJob> = starts
        .iter()
        .map(|&from| {
            let child = SyncBalances {
                from_id: Some(from),
                limit: Some(batch),
            };
            ctx.client()
                .enqueue(child)
                .queue(&ctx.queue)
                .max_attempts(ctx.max_attempts)
                .id(format!("{}:{from}", ctx.id))
                .into_new_job()
        })
        .collect::<Result<_, _>>()?;
    let n = jobs.len();
    for chunk in jobs.chunks(1000) {
        ctx.client().enqueue_jobs(chunk.to_vec()).await?;
    }
    tracing::info!(batches = n, batch, "balance sync fanned out");
    Ok(())
}
