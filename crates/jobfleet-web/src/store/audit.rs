//! The audit log: every operator's action (who, what, on which jobs, when, with what outcome),
//! newest first, capped so that it never grows without bound.

use serde::{Deserialize, Serialize};

use super::{Result, WebStore};

/// The most job ids one entry names; the rest are counted in `more_jobs`.
pub const MAX_IDS: usize = 100;

/// One operator's action.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, in ms since the epoch.
    pub at: i64,
    /// Who: a user's name, or `token:<name>` for an API token.
    pub actor: String,
    /// What: `retry`, `delete`, `kill`, `pause`, `enqueue-now`, `sign-in`, ...
    pub action: String,
    /// On what: a queue, a queue's state, a job or a schedule.
    pub target: String,
    /// The jobs acted on, at most [`MAX_IDS`].
    pub jobs: Vec<String>,
    /// Jobs acted on beyond those named.
    pub more_jobs: u64,
    /// What happened, in words.
    pub outcome: String,
}

impl AuditEntry {
    /// An entry for an action on the jobs `ids`, keeping at most [`MAX_IDS`] of them.
    pub fn new(actor: &str, action: &str, target: &str, ids: &[String], outcome: String) -> Self {
        Self {
            at: jobfleet_engine::queue::now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            jobs: ids.iter().take(MAX_IDS).cloned().collect(),
            more_jobs: ids.len().saturating_sub(MAX_IDS) as u64,
            outcome,
        }
    }
}

impl WebStore {
    /// Appends an entry and drops the oldest beyond `max`.
    pub async fn audit(&self, entry: &AuditEntry, max: u64) -> Result<()> {
        let json =
            serde_json::to_string(entry).map_err(|e| super::StoreError::Invalid(e.to_string()))?;
        let key = self.keys.audit();
        let _: () = redis::pipe()
            .lpush(&key, json)
            .ignore()
            .ltrim(
                &key,
                0,
                isize::try_from(max.max(1) - 1).unwrap_or(isize::MAX),
            )
            .ignore()
            .query_async(&mut self.con())
            .await?;
        Ok(())
    }

    /// A page of the log, newest first, and the total kept.
    pub async fn audit_page(&self, offset: u64, limit: u64) -> Result<(Vec<AuditEntry>, u64)> {
        let key = self.keys.audit();
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = start.saturating_add(isize::try_from(limit.max(1)).unwrap_or(1000) - 1);
        let (raw, total): (Vec<Vec<u8>>, u64) = redis::pipe()
            .lrange(&key, start, stop)
            .llen(&key)
            .query_async(&mut self.con())
            .await?;
        Ok((
            raw.iter()
                .filter_map(|r| serde_json::from_slice(r).ok())
                .collect(),
            total,
        ))
    }
}
