//! `send_transactions`: signs and broadcasts the chain outbox's PENDING rows, and broadcasts
//! again what a crash left SIGNED (see `chain::sender` for the crash-safety argument).
//!
//! Args: `{"limit": 100}` (optional): rows per run. Idempotent: a row is signed once (its
//! status guards the move), re-broadcasting the same signed bytes cannot send twice, and one
//! run per signer holds the sender's advisory lock at a time.

use serde::{Deserialize, Serialize};

use super::resources::{Resources, chain_job};
use crate::chain::sender::Sender;
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendTransactions {
    #[serde(default)]
    pub limit: Option<u32>,
}

impl JobArgs for SendTransactions {
    const KIND: &'static str = "send_transactions";
}

impl Job<Resources> for SendTransactions {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let r = ctx.state();
        let limit = i64::from(self.limit.unwrap_or(100).max(1));
        let report = chain_job(Self::KIND, async {
            let sender = Sender::new(r.chain()?, &r.db).await?;
            sender.run(limit).await
        })
        .await?;
        if let Some(report) = report {
            if report.busy {
                tracing::debug!("another sender holds the signer's lock");
            } else if report != Default::default() {
                tracing::info!(
                    sent = report.sent,
                    rebroadcast = report.rebroadcast,
                    failed = report.failed,
                    requeued = report.requeued,
                    waiting = report.waiting,
                    elsewhere = report.elsewhere,
                    "outbox sent"
                );
            }
        }
        Ok(())
    }
}
