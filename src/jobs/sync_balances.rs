//! `sync_balances`: the native and ERC-20 balances of every wallet.
//!
//! Args: `{}` fans out: a flow (see the engine's `queue::flow`) of one child job per
//! `chain.balance_batch` wallets (in id order), each `{"from_id": <first wallet id>,
//! "limit": <batch>, "run": <the flow's id>}`, on the parent's queue, with `record_sync_run`
//! as its `on_complete`: once every batch finished, that callback writes the run's one row
//! in `sync_runs` (block, wallets, changed, duration). The flow's id is the parent's id and
//! attempt, and a parent whose earlier attempt started its flow (it lost its lease after)
//! starts no second one.
//!
//! A child reads its wallets' balances at one block through Multicall3, writes only the ones
//! that changed (see `chain::balances`), and records what it did in `sync_batches`.
//! Idempotent: a re-run reads the same or newer balances and writes nothing that did not
//! change; a balance is never overwritten by one read at an older block.

use serde::{Deserialize, Serialize};

use super::record_sync_run::RecordSyncRun;
use super::resources::{Resources, chain_job};
use crate::chain::balances;
use crate::db;
use crate::job::{Job, JobArgs, JobContext, JobError};
use crate::queue::{FlowStatus, NewJob};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBalances {
    /// The first wallet id of a child's batch; absent for the fan-out.
    #[serde(default)]
    pub from_id: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
    /// The run (its flow's id) a child's batch counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
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
            if let Some(run) = &self.run {
                db::sync_runs::record_batch(
                    &r.db,
                    run,
                    from,
                    report.wallets,
                    report.changed,
                    report.block,
                )
                .await
                .map_err(JobError::retry)?;
            }
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
    let client = ctx.client();
    for earlier in 1..ctx.attempt {
        let id = format!("{}:{earlier}", ctx.id);
        let started = client
            .queue_client()
            .flow(None, &id)
            .await
            .map_err(JobError::retry)?;
        if started.is_some_and(|f| f.status != FlowStatus::Building) {
            tracing::info!(flow = %id, "an earlier attempt started this run's flow");
            return Ok(());
        }
    }
    let starts = db::balances::batch_starts(&ctx.state().db, i64::from(batch))
        .await
        .map_err(JobError::retry)?;
    let run = format!("{}:{}", ctx.id, ctx.attempt);
    // The children follow their parent: its queue and its attempts.
    let children: Vec<NewJob> = starts
        .iter()
        .map(|&from| {
            let child = SyncBalances {
                from_id: Some(from),
                limit: Some(batch),
                run: Some(run.clone()),
            };
            client
                .enqueue(child)
                .queue(&ctx.queue)
                .max_attempts(ctx.max_attempts)
                .into_new_job()
        })
        .collect::<Result<_, _>>()?;
    let n = children.len();
    let record = RecordSyncRun {
        run: run.clone(),
        started_at_ms: ctx.started_at.timestamp_millis(),
    };
    let started = client
        .flow()
        .id(&run)
        .jobs(children)
        .on_complete(record)
        .await?;
    tracing::info!(batches = n, batch, flow = %started.id, "balance sync fanned out");
    Ok(())
}
