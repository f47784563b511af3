//! A running job's progress: a fraction and a short message its handler reports through its
//! context (`JobContext::progress`), kept beside the job as `progress:<id>` for an hour after
//! each report and shown by `jobfleet jobs show`, `jobfleet workers` and the board.
//!
//! Nothing is written for a job that reports nothing, so the fast path pays nothing. A report
//! carries the attempt it belongs to: the one of a run that ended is not shown for the next
//! run, and no key has to be deleted when a run ends.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::client::QueueClient;
use super::keys::QueueKeys;
use super::{Result, now_ms};

/// How long a report is kept: far longer than any pause between two reports of one run.
const KEPT: Duration = Duration::from_secs(3600);

/// The longest message kept, in characters.
pub const MESSAGE_MAX: usize = 200;

/// One progress report of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Done so far, from 0 to 1.
    pub fraction: f64,
    /// What the run is doing, at most `MESSAGE_MAX` characters.
    pub message: String,
    /// The attempt (1 for the first run) that reported it.
    pub attempt: u32,
    /// When it was reported, in ms since the epoch.
    pub at: i64,
}

impl Progress {
    /// A report made now: the fraction kept within 0 to 1 (NaN as 0), the message cut short.
    pub fn new(fraction: f64, message: &str, attempt: u32) -> Self {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Self {
            fraction,
            message: message.chars().take(MESSAGE_MAX).collect(),
            attempt,
            at: now_ms(),
        }
    }

    /// `42% reading wallets`, as the commands show it.
    pub fn describe(&self) -> String {
        let percent = (self.fraction * 100.0).floor();
        if self.message.is_empty() {
            format!("{percent}%")
        } else {
            format!("{percent}% {}", self.message)
        }
    }
}

impl QueueClient {
    /// Stores a run's progress report.
    pub async fn set_progress(&self, queue: &str, id: &str, progress: &Progress) -> Result<()> {
        let key = self.queue(queue)?.progress(id);
        let json = serde_json::to_string(progress)?;
        let _: () = self.connection().set_ex(key, json, KEPT.as_secs()).await?;
        Ok(())
    }

    /// The latest reports of these jobs of one queue, for the runs now going: `attempts[i]` is
    /// the number of failed runs of job `i`, so its running attempt is one more. A report of
    /// another run, or one that does not decode, is none.
    pub async fn progress_of(
        &self,
        queue: &str,
        ids: &[(String, u32)],
    ) -> Result<Vec<Option<Progress>>> {
        self.reports(queue, ids, |p, failed| {
            p.attempt == failed.saturating_add(1)
        })
        .await
    }

    /// The latest reports of these running jobs of one queue, each made since its run started
    /// (`started_at` in ms), as a worker's registry entry knows them.
    pub async fn progress_since(
        &self,
        queue: &str,
        ids: &[(String, i64)],
    ) -> Result<Vec<Option<Progress>>> {
        self.reports(queue, ids, |p, started| p.at >= *started)
            .await
    }

    /// The stored reports of jobs of one queue that `belongs` says are of the run each job
    /// is paired with; a report that does not decode is none.
    async fn reports<T>(
        &self,
        queue: &str,
        ids: &[(String, T)],
        belongs: impl Fn(&Progress, &T) -> bool,
    ) -> Result<Vec<Option<Progress>>> {
        let names: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
        let raw = self.per_job(queue, &names, QueueKeys::progress).await?;
        Ok(raw
            .into_iter()
            .zip(ids)
            .map(|(v, (_, run))| {
                v.and_then(|b| serde_json::from_slice::<Progress>(&b).ok())
                    .filter(|p| belongs(p, run))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_kept_within_bounds() {
        let p = Progress::new(1.7, &"x".repeat(500), 2);
        assert_eq!(p.fraction, 1.0);
        assert_eq!(p.message.chars().count(), MESSAGE_MAX);
        assert_eq!(Progress::new(f64::NAN, "", 1).fraction, 0.0);
        assert_eq!(Progress::new(-3.0, "", 1).fraction, 0.0);
        assert_eq!(Progress::new(0.428, "reading", 1).describe(), "42% reading");
        assert_eq!(Progress::new(0.5, "", 1).describe(), "50%");
    }
}
