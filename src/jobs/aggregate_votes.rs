//! `aggregate_votes`: decides proposed markets and open disputes from their votes.
//!
//! Thresholds, minimum turnout and windows come from `[governance]` in the configuration.
//! Idempotent: see `db::governance`.

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::db::governance::{self, Rule};
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateVotes {}

impl JobArgs for AggregateVotes {
    const KIND: &'static str = "aggregate_votes";
}

impl Job<Resources> for AggregateVotes {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let g = &ctx.state().settings.governance;
        let now = chrono::Utc::now();
        let pool = &ctx.state().db;
        let proposals = Rule {
            threshold_bp: g.proposal_threshold_bp,
            min_votes: g.proposal_min_votes,
            window: g.proposal_window,
        };
        let disputes = Rule {
            threshold_bp: g.dispute_threshold_bp,
            min_votes: g.dispute_min_votes,
            window: g.dispute_window,
        };
        let p = governance::decide_proposals(pool, proposals, now)
            .await
            .map_err(JobError::retry)?;
        let d = governance::decide_disputes(pool, disputes, now)
            .await
            .map_err(JobError::retry)?;
        tracing::info!(
            approved = p.approved,
            rejected = p.rejected,
            disputes_upheld = d.approved,
            disputes_rejected = d.rejected,
            outbox_rows = p.outbox_rows + d.outbox_rows,
            "votes aggregated"
        );
        Ok(())
    }
}
