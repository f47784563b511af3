//! `snapshot_discussions`: publishes each live market's discussions of one UTC day to IPFS.
//!
//! For every market in ACTIVE, RESOLVING or DISPUTED with messages in the window and no
//! snapshot of it yet, the messages (not deleted, oldest first) become one deterministic JSON
//! document (`ipfs::document`), or parts plus an index when they exceed one 256 KiB block; it
//! is added and pinned through Kubo, and the CID is recorded with the count and the window.
//! A market without messages that day gets no snapshot: an empty document would pin a block
//! per idle market per day and record nothing anyone could read.
//!
//! The window is the day before the job's tick (`ctx.enqueued_at` floored to UTC midnight),
//! or the `day` given in the args. Idempotent: a market already snapshotted for the window is
//! skipped; the same messages give the same bytes and CID, so a crash between the upload and
//! the insert only re-adds the same block; the insert is `ON CONFLICT DO NOTHING`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::resources::Resources;
use crate::db::snapshots;
use crate::ipfs::document::{self, DocumentError, Window};
use crate::ipfs::{IpfsError, KuboClient};
use crate::job::{Job, JobArgs, JobContext, JobError};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDiscussions {
    /// A UTC day (`YYYY-MM-DD`) to snapshot instead of the day before the tick, to fill a gap
    /// by hand.
    #[serde(default)]
    pub day: Option<NaiveDate>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// sqlx's error is shown in the message and not chained, so that its cause is said once.
    #[error("database: {}", crate::job::error_chain(.0))]
    Db(sqlx::Error),
    #[error(transparent)]
    Ipfs(#[from] IpfsError),
    #[error(transparent)]
    Document(#[from] DocumentError),
}

impl From<sqlx::Error> for SnapshotError {
    fn from(e: sqlx::Error) -> Self {
        SnapshotError::Db(e)
    }
}

impl SnapshotError {
    /// What happens next: a database or unreachable-IPFS error is retried; a refused request,
    /// a CID that is not ours, or a message too big for a block would fail the same way again.
    pub fn into_job_error(self) -> JobError {
        match self {
            SnapshotError::Db(_) => JobError::retry(self),
            SnapshotError::Ipfs(ref e) if e.is_retryable() => JobError::retry(self),
            _ => JobError::fatal(self),
        }
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotReport {
    /// Snapshots recorded by this run.
    pub snapshots: usize,
    pub messages: usize,
    /// Blocks added: one per snapshot, or its parts plus the index.
    pub blocks: usize,
    /// Snapshots a concurrent run recorded first (the same CID; nothing lost).
    pub raced: usize,
}

impl JobArgs for SnapshotDiscussions {
    const KIND: &'static str = "snapshot_discussions";
}

impl Job<Resources> for SnapshotDiscussions {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let window = self
            .day
            .map_or_else(|| Window::day_before(ctx.enqueued_at), Window::day);
        // A day still going on would be frozen half-way: its later messages never published.
        if window.end > Utc::now() {
            return Err(JobError::fatal(format!(
                "the day {} has not ended yet",
                window.start.format("%Y-%m-%d")
            )));
        }
        let kubo = KuboClient::new(&ctx.state().settings.ipfs)
            .map_err(|e| JobError::fatal(SnapshotError::Ipfs(e)))?;
        let report = snapshot_window(&ctx.state().db, &kubo, window, Utc::now())
            .await
            .map_err(SnapshotError::into_job_error)?;
        tracing::info!(
            window_start = %window.start,
            snapshots = report.snapshots,
            messages = report.messages,
            blocks = report.blocks,
            raced = report.raced,
            "discussions snapshotted"
        );
        Ok(())
    }
}

/// Snapshots every market due for `window`. A market whose one message is too big for a block
/// does not stop the others; the run then fails with that error after doing them.
pub async fn snapshot_window(
    pool: &PgPool,
    kubo: &KuboClient,
    window: Window,
    now: DateTime<Utc>,
) -> Result<SnapshotReport, SnapshotError> {
    let mut report = SnapshotReport::default();
    let mut refused = None;
    for market_id in snapshots::markets_to_snapshot(pool, window).await? {
        let messages = snapshots::messages(pool, market_id, window).await?;
        let docs = match document::build(market_id, window, &messages) {
            Ok(docs) => docs,
            Err(e) => {
                tracing::error!(market_id, error = %e, "discussions not snapshotted");
                refused.get_or_insert(e);
                continue;
            }
        };
        let (cid, parts) = upload(kubo, market_id, window, messages.len(), &docs).await?;
        report.blocks += docs.len() + usize::from(!parts.is_empty());
        if snapshots::record(pool, market_id, window, &cid, &parts, messages.len(), now).await? {
            report.snapshots += 1;
            report.messages += messages.len();
        } else {
            report.raced += 1;
        }
    }
    match refused {
        Some(e) => Err(e.into()),
        None => Ok(report),
    }
}

/// Adds a day's documents; returns the snapshot's CID and, for a split day, the parts' CIDs.
async fn upload(
    kubo: &KuboClient,
    market_id: i64,
    window: Window,
    count: usize,
    docs: &[Vec<u8>],
) -> Result<(String, Vec<String>), SnapshotError> {
    let name = format!("market-{market_id}-{}", window.start.format("%Y-%m-%d"));
    if let [whole] = docs {
        let cid = kubo.add(&format!("{name}.json"), whole).await?;
        return Ok((cid.to_string(), Vec::new()));
    }
    let mut parts = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        let cid = kubo
            .add(&format!("{name}-part-{}.json", i + 1), doc)
            .await?;
        parts.push(cid.to_string());
    }
    let index = document::index(market_id, window, count, &parts)?;
    let cid = kubo.add(&format!("{name}-index.json"), &index).await?;
    Ok((cid.to_string(), parts))
}
