//! `record_sync_run`: the `on_complete` callback of a balance sync's flow (see
//! `sync_balances`). Once every batch of the run finished, it writes the run's row in
//! `sync_runs`: its batches and how many failed (from the flow), the wallets read and the
//! balances changed (summed from `sync_batches`), the newest block read and the duration.
//!
//! Args: `{"run": <the flow's id>, "started_at_ms": <when the fan-out ran>}`. Idempotent: the
//! row is written once, a second run finds it taken.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::db;
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSyncRun {
    /// The run's flow id.
    pub run: String,
    /// When the fan-out started the run, in ms since the Unix epoch.
    pub started_at_ms: i64,
}

impl JobArgs for RecordSyncRun {
    const KIND: &'static str = "record_sync_run";
}

/// A callback run without its flow's outcome was enqueued by hand.
#[derive(Debug, thiserror::Error)]
#[error(
    "record_sync_run runs as the callback of a balance sync's flow, which tells it the batches' counts; this job has none"
)]
struct NoFlow;

impl Job<Resources> for RecordSyncRun {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let Some(outcome) = ctx.flow_result() else {
            return Err(JobError::fatal(NoFlow));
        };
        let started = DateTime::from_timestamp_millis(self.started_at_ms).unwrap_or_else(Utc::now);
        let recorded = db::sync_runs::record_run(
            &ctx.state().db,
            &self.run,
            started,
            Utc::now(),
            outcome.total,
            outcome.failed,
        )
        .await
        .map_err(JobError::retry)?;
        match recorded {
            Some(run) => tracing::info!(
                run = %run.run_id,
                batches = run.batches,
                failed = run.failed_batches,
                wallets = run.wallets,
                changed = run.changed,
                block = ?run.block_number,
                duration_ms = run.duration_ms,
                "balance sync run recorded"
            ),
            None => tracing::info!(run = %self.run, "balance sync run was recorded before"),
        }
        Ok(())
    }
}
