//! `rebuild_leaderboard`: folds new points transactions into the ledgers and refreshes one
//! leaderboard.
//!
//! Args: `{"period": "all-time" | "current-week" | "previous-week" | "YYYY-Www", "full":
//! false}`; relative weeks are resolved against the time the job was enqueued (its tick).
//!
//! A run recomputes only the ledgers of users with transactions since the last run (the
//! `points_ledger_dirty` list the insert triggers keep, see `db::points::fold_ledgers`), then
//! rebuilds the board unless its inputs are unchanged since it was last built. With `"full":
//! true` it is the repair: every ledger is recomputed from all the transactions and the board
//! is rebuilt regardless, for a ledger row changed by hand or after restoring a backup.
//! Operators run it with `jobfleet enqueue rebuild_leaderboard --args '{"full":true}'` or in the
//! foreground with `jobfleet run rebuild_leaderboard --args '{"full":true}'`.
//!
//! Idempotent: the ledgers are recomputed from the append-only transactions under an advisory
//! lock (unchanged rows are not written), and the board is swapped in whole in one transaction
//! under the boards' advisory lock (one for every period, so that two builds never deadlock).

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::db::points::{self, Period};
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildLeaderboard {
    #[serde(default = "all_time")]
    pub period: String,
    /// Recompute every ledger and rebuild the board even if nothing changed: the repair.
    #[serde(default)]
    pub full: bool,
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
        let changed = if self.full {
            points::rebuild_ledgers(pool, now).await
        } else {
            points::fold_ledgers(pool, now).await
        }
        .map_err(JobError::retry)?;
        let board = points::build_board(pool, &period, now, self.full)
            .await
            .map_err(JobError::retry)?;
        tracing::info!(
            period = %period.name(),
            full = self.full,
            ledgers_changed = changed,
            entries = board.entries,
            board_skipped = board.skipped,
            "leaderboard rebuilt"
        );
        Ok(())
    }
}
