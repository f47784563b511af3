//! `confirm_transactions`: receipts of the submitted outbox rows; confirmed after
//! `chain.confirmations` blocks with their effect applied, reverted ones failed with the
//! reason, stuck ones replaced with higher fees (see `chain::receipts`).
//!
//! Idempotent: every move is guarded by the row's status (SUBMITTED), and effects keep the
//! first record and notify through dedupe keys.

use serde::{Deserialize, Serialize};

use super::resources::{Resources, chain_job};
use crate::chain::receipts;
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTransactions {}

impl JobArgs for ConfirmTransactions {
    const KIND: &'static str = "confirm_transactions";
}

impl Job<Resources> for ConfirmTransactions {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let r = ctx.state();
        let now = chrono::Utc::now();
        let report = chain_job(Self::KIND, async {
            receipts::confirm(r.chain()?, &r.db, now).await
        })
        .await?;
        if let Some(report) = report.filter(|r| *r != Default::default()) {
            tracing::info!(
                confirmed = report.confirmed,
                reverted = report.reverted,
                waiting = report.waiting,
                replaced = report.replaced,
                elsewhere = report.elsewhere,
                "transactions checked"
            );
        }
        Ok(())
    }
}
