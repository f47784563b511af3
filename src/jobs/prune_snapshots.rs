//! `prune_snapshots`: unpins discussion snapshots older than `ipfs.snapshot_retention`.
//!
//! Each expired snapshot has its parts and its CID unpinned (`pin/rm`), then is marked pruned;
//! the row stays for the audit trail. Kubo's "not pinned or pinned indirectly" counts as done,
//! so a retry after a crash between the unpin and the update, or a pin removed by hand, is not
//! an error. A Kubo error fails the run with a retryable error, and the job's backoff spaces
//! the retries; the snapshots already marked are not visited again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::resources::Resources;
use crate::db::snapshots::{self, SnapshotRow};
use crate::ipfs::{IpfsError, KuboClient, Unpinned};
use crate::job::{Job, JobArgs, JobContext, JobError};

/// Snapshots read per query; the loop goes on until none is left.
const BATCH: i64 = 500;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSnapshots {}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Each error is shown in the message and not chained, so that its cause is said once.
    #[error("database: {}", crate::job::error_chain(.0))]
    Db(sqlx::Error),
    #[error("snapshot {id} of market {market_id}: {error}")]
    Ipfs {
        id: i64,
        market_id: i64,
        error: IpfsError,
    },
}

impl From<sqlx::Error> for PruneError {
    fn from(e: sqlx::Error) -> Self {
        PruneError::Db(e)
    }
}

impl PruneError {
    /// A database error or unreachable nodes are retried; a refused request is not.
    pub fn into_job_error(self) -> JobError {
        match self {
            PruneError::Ipfs { ref error, .. } if !error.is_retryable() => JobError::fatal(self),
            _ => JobError::retry(self),
        }
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Snapshots marked pruned by this run.
    pub pruned: usize,
    /// CIDs unpinned.
    pub unpinned: usize,
    /// CIDs the node said were not pinned any more.
    pub already_unpinned: usize,
}

impl JobArgs for PruneSnapshots {
    const KIND: &'static str = "prune_snapshots";
}

impl Job<Resources> for PruneSnapshots {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let settings = &ctx.state().settings.ipfs;
        let kubo = KuboClient::new(settings).map_err(JobError::fatal)?;
        let retention = settings.snapshot_retention;
        let report = prune(&ctx.state().db, &kubo, retention, Utc::now())
            .await
            .map_err(PruneError::into_job_error)?;
        tracing::info!(
            pruned = report.pruned,
            unpinned = report.unpinned,
            already_unpinned = report.already_unpinned,
            "snapshots pruned"
        );
        Ok(())
    }
}

/// Unpins and marks every snapshot past `retention` at `now`.
pub async fn prune(
    pool: &PgPool,
    kubo: &KuboClient,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<PruneReport, PruneError> {
    let mut report = PruneReport::default();
    loop {
        let due = snapshots::due_for_pruning(pool, now, retention, BATCH).await?;
        if due.is_empty() {
            return Ok(report);
        }
        for row in &due {
            unpin_all(kubo, row, &mut report).await?;
            if snapshots::mark_pruned(pool, row.id, now).await? {
                report.pruned += 1;
            }
        }
    }
}

/// Unpins a snapshot's parts, then the snapshot's own CID.
async fn unpin_all(
    kubo: &KuboClient,
    row: &SnapshotRow,
    report: &mut PruneReport,
) -> Result<(), PruneError> {
    for cid in row.part_cids.iter().chain(std::iter::once(&row.cid)) {
        let done = kubo.unpin(cid).await.map_err(|error| PruneError::Ipfs {
            id: row.id,
            market_id: row.market_id,
            error,
        })?;
        match done {
            Unpinned::Removed => report.unpinned += 1,
            Unpinned::AlreadyUnpinned => report.already_unpinned += 1,
        }
    }
    Ok(())
}
