//! `platform_stats`: records the platform's figures of the quarter hour that ends at the job's
//! tick in `platform_stats`, one row per period, for operators' charts.
//!
//! The period comes from the tick (`ctx.enqueued_at`), not the clock, so a retry, `enqueue-now`
//! beside the tick's job or two workers at once write one row: the first wins, the others find
//! its key taken (`db::stats`). The rows are deleted after `retention.platform_stats` by
//! `prune_records`.

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::db::stats::{self, StatsPeriod};
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformStats {}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// sqlx's error is shown in the message and not chained, so that its cause is said once.
    #[error("database: {}", crate::job::error_chain(.0))]
    Db(sqlx::Error),
}

impl StatsError {
    /// A database error is retried: the period is the tick's, so a late retry still fills it.
    pub fn into_job_error(self) -> JobError {
        JobError::retry(self)
    }
}

impl JobArgs for PlatformStats {
    const KIND: &'static str = "platform_stats";
}

impl Job<Resources> for PlatformStats {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let period = StatsPeriod::ending_at(ctx.enqueued_at);
        let recorded = stats::record(&ctx.state().db, period)
            .await
            .map_err(|e| StatsError::Db(e).into_job_error())?;
        if recorded {
            tracing::info!(period_start = %period.start, period_end = %period.end, "platform stats recorded");
        } else {
            tracing::info!(period_start = %period.start, "platform stats of this period recorded already");
        }
        Ok(())
    }
}
