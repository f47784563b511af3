//! Operators' actions on many jobs at once, as a board offers them: on jobs picked by id from
//! a page of one state (retry now, delete, kill to dead), and on every job of one state
//! ("retry all", "delete all").
//!
//! Like every repair they move exact stored jobs with `replace.lua`, which skips a job that a
//! worker took in the meantime, so an action never runs a job twice. Nothing here scans a
//! whole queue in one command: jobs picked from a page are looked for around the ranks the
//! operator saw them at, and "all" works from the head in batches of [`BATCH`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::admin::{Holder, Move, location};
use super::client::QueueClient;
use super::envelope::JobState;
use super::listing::JobInfo;
use super::payload::Header;
use super::{QueueError, Result, now_ms};

/// Jobs moved by one script call of an action on a whole state.
pub const BATCH: u64 = 1000;

/// What an operator does to jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Run now: a dead job with a fresh set of attempts, a retrying or scheduled job at once.
    Retry,
    /// Remove for good.
    Delete,
    /// Move to the dead set without running it again.
    Kill,
}

impl Action {
    /// The action's name, as forms and the audit log write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Delete => "delete",
            Action::Kill => "kill",
        }
    }

    /// Whether the action applies to jobs in `state`: retry to dead, retry and scheduled jobs;
    /// kill to pending, scheduled and retry jobs; delete to any.
    pub fn applies_to(self, state: JobState) -> bool {
        match self {
            Action::Retry => matches!(
                state,
                JobState::Dead | JobState::Retry | JobState::Scheduled
            ),
            Action::Kill => matches!(
                state,
                JobState::Pending | JobState::Scheduled | JobState::Retry
            ),
            Action::Delete => true,
        }
    }

    fn destination(self) -> Move {
        match self {
            Action::Retry => Move::Pending,
            Action::Delete => Move::Delete,
            Action::Kill => Move::Dead,
        }
    }

    fn refused(self, state: JobState) -> QueueError {
        QueueError::Invalid(format!("{} does not apply to {state} jobs", self.as_str()))
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "retry" => Ok(Action::Retry),
            "delete" => Ok(Action::Delete),
            "kill" => Ok(Action::Kill),
            _ => Err(format!("unknown action {s:?} (retry, delete or kill)")),
        }
    }
}

/// The outcome of an action on picked jobs.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ActReport {
    /// Jobs the action was carried out on.
    pub done: u64,
    /// Ids that are no longer in the state they were picked in (finished, moved or removed),
    /// or that a worker took while the action ran; nothing was done to them.
    pub missed: Vec<String>,
}

/// The stored job an action leaves behind: a dead job made new, a killed job marked so, or
/// None to move the job unchanged.
fn replacement(action: Action, job: &JobInfo) -> Option<Vec<u8>> {
    match (action, job.state) {
        (Action::Retry, JobState::Dead) => QueueClient::revived(job),
        (Action::Kill, _) => killed(job, "killed by an operator"),
        _ => None,
    }
}

/// A job's stored bytes as it goes to dead for `reason`, which its header then carries.
fn killed(job: &JobInfo, reason: &str) -> Option<Vec<u8>> {
    let (h, body) = Header::decode(&job.stored).ok()?;
    let header = Header {
        error: reason.to_owned(),
        failed_at: now_ms(),
        ..h
    };
    Some(header.encode_bytes(body))
}

impl QueueClient {
    /// Carries out `action` on the jobs with `ids` in `queue`'s `state`. `near` is the rank
    /// range (`cursor`, `limit`) of the page they were picked from: they are looked for there
    /// first, and one by one only when they moved away from it.
    pub async fn act(
        &self,
        queue: &str,
        state: JobState,
        ids: &[String],
        action: Action,
        near: Option<(u64, u64)>,
    ) -> Result<ActReport> {
        if !action.applies_to(state) {
            return Err(action.refused(state));
        }
        let mut found: BTreeMap<String, JobInfo> = BTreeMap::new();
        if let Some((cursor, limit)) = near {
            // Jobs shift by a page or so while the operator reads it: look a page either side.
            let page = self
                .list(
                    queue,
                    state,
                    cursor.saturating_sub(limit),
                    limit.saturating_mul(3),
                )
                .await?;
            for job in page.jobs {
                if ids.contains(&job.id) {
                    found.insert(job.id.clone(), job);
                }
            }
        }
        let mut report = ActReport::default();
        for id in ids {
            if found.contains_key(id) {
                continue;
            }
            match self.find_in(queue, id).await? {
                Some(job) if job.state == state => {
                    found.insert(id.clone(), job);
                }
                _ => report.missed.push(id.clone()),
            }
        }
        // Active jobs sit in their workers' lists: one call per list.
        let k = self.queue(queue)?;
        let mut by_place: BTreeMap<(String, Holder), Vec<&JobInfo>> = BTreeMap::new();
        for job in found.values() {
            by_place.entry(location(&k, job)).or_default().push(job);
        }
        for ((key, holder), jobs) in by_place {
            let pairs: Vec<(&JobInfo, Option<Vec<u8>>)> =
                jobs.iter().map(|j| (*j, replacement(action, j))).collect();
            let moved = self
                .replace(queue, (&key, holder), action.destination(), &pairs)
                .await?;
            report.done += moved;
            if moved < pairs.len() as u64 {
                // The script does not say which ones a worker took; find them to name them.
                for (job, _) in &pairs {
                    if self
                        .find_in(queue, &job.id)
                        .await?
                        .is_some_and(|j| j.state == state)
                    {
                        continue;
                    }
                    report.missed.push(job.id.clone());
                }
            }
        }
        Ok(report)
    }

    /// Carries out `action` on every job of `queue` in `state` (not active jobs: they belong
    /// to running workers), in batches from the head, as many as the state held when the call
    /// began. Returns how many jobs it acted on.
    pub async fn act_all(&self, queue: &str, state: JobState, action: Action) -> Result<u64> {
        if !action.applies_to(state) || state == JobState::Active {
            return Err(action.refused(state));
        }
        match (action, state) {
            (Action::Retry, JobState::Dead) => {
                return Ok(self.retry_dead(queue, None, false).await?.matched);
            }
            (Action::Delete, JobState::Dead) => return self.purge_dead(queue, 0).await,
            _ => {}
        }
        let k = self.queue(queue)?;
        let total = self.stats(queue).await?.count(state);
        let mut done = 0;
        while done < total {
            let page = self.list(queue, state, 0, BATCH.min(total - done)).await?;
            if page.jobs.is_empty() {
                break;
            }
            let (key, holder) = location(&k, &page.jobs[0]);
            let pairs: Vec<(&JobInfo, Option<Vec<u8>>)> = page
                .jobs
                .iter()
                .map(|j| (j, replacement(action, j)))
                .collect();
            let moved = self
                .replace(queue, (&key, holder), action.destination(), &pairs)
                .await?;
            if moved == 0 {
                break;
            }
            done += moved;
        }
        Ok(done)
    }

    /// Moves one job to the dead set without running it again; returns the state it was in.
    pub async fn kill(&self, id: &str) -> Result<JobState> {
        self.kill_because(id, "killed by an operator").await
    }

    /// Moves one job to dead for `reason`, as `kill` does; returns the state it was in.
    pub async fn kill_because(&self, id: &str, reason: &str) -> Result<JobState> {
        let job = self.show(id).await?;
        if !Action::Kill.applies_to(job.state) {
            return Err(Action::Kill.refused(job.state));
        }
        let k = self.keys.queue(&job.queue);
        let new = killed(&job, reason);
        let (key, holder) = location(&k, &job);
        if self
            .replace(&job.queue, (&key, holder), Move::Dead, &[(&job, new)])
            .await?
            == 0
        {
            return Err(QueueError::Invalid(format!(
                "job {id} moved while it was being killed"
            )));
        }
        Ok(job.state)
    }
}
