//! `rebuild_leaderboard`: recomputes the points ledgers and one leaderboard.
//!
//! Args: `{"period": "all-time" | "current-week" | "previous-week" | "YYYY-Www"}`; relative
//! weeks are resolved against the time the job was enqueued (its tick). Idempotent:
//! the ledgers are recomputed from the append-only transactions (unchanged rows are not
//! written), and the board is replaced in one transaction under an advisory lock.

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::db::points::{self, Period};
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildLeaderboard {
    #[serde(default = "all_time")]
    pub period: String,
}

fn all_time() -> String {
    "all-time".to_owned()
}

impl JobArgs for RebuildLeaderboard {
    const KIND: &'static str = "rebuild_leaderboard";
}

impl Job<Resources> for RebuildLeaderboard {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let now = chrono::Utc::now();
        let period = Period::parse(&self.period, ctx.enqueued_at).map_err(JobError::fatal)?;
        let pool = &ctx.state().db;
        let changed = points::rebuild_ledgers(pool, now)
            .await
            .map_err(JobError::retry)?;
        let entries = points::rebuild_board(pool, &period, now)
            .await
            .map_err(JobError::retry)?;
        tracing::info!(period = %period.name(), ledgers_changed = changed, entries, "leaderboard rebuilt");
        Ok(())
    }
}
