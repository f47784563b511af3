//! Cancelling a job (`jobfleet jobs cancel`, the board, the API). A job that waits (pending,
//! scheduled, retry) goes straight to dead with the reason `cancelled by <who>`. A running job
//! cannot be taken from its worker: a mark `cancel:<id>` (with a day's TTL) asks it to stop,
//! the worker that holds the job reads the marks of its jobs every half second and signals the
//! run's `JobContext`, and the run ends as cancelled (see `job::cancel`).

use std::time::Duration;

use redis::AsyncCommands;

use super::client::QueueClient;
use super::envelope::JobState;
use super::keys::QueueKeys;
use super::{QueueError, Result};

/// How long a cancel mark waits for the worker of a running job: longer than any lease, so
/// that a job taken back by the reaper is still cancelled on its next run.
const MARK_TTL: Duration = Duration::from_secs(24 * 3600);

/// What `cancel` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The job was waiting in this state and is now dead.
    Removed(JobState),
    /// The job is running: its worker was asked to stop it.
    Signalled,
}

impl QueueClient {
    /// Cancels a job on behalf of `who` (a user name, shown in the job's reason).
    pub async fn cancel(&self, id: &str, who: &str) -> Result<Cancelled> {
        let job = self.show(id).await?;
        match job.state {
            JobState::Pending | JobState::Scheduled | JobState::Retry => {
                let was = self
                    .kill_because(id, &format!("cancelled by {who}"))
                    .await?;
                Ok(Cancelled::Removed(was))
            }
            JobState::Active => {
                let key = self.queue(&job.queue)?.cancel(id);
                let _: () = self
                    .connection()
                    .set_ex(key, who, MARK_TTL.as_secs())
                    .await?;
                Ok(Cancelled::Signalled)
            }
            JobState::Dead => Err(QueueError::Invalid(format!(
                "job {id} is dead already; nothing to cancel"
            ))),
        }
    }

    /// Who asked each of these running jobs of one queue to stop, if anybody did.
    pub async fn cancel_requests(
        &self,
        queue: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>> {
        let names: Vec<&str> = ids.iter().map(String::as_str).collect();
        let raw = self.per_job(queue, &names, QueueKeys::cancel).await?;
        Ok(raw
            .into_iter()
            .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .collect())
    }

    /// Forgets the cancel mark of a job whose run has ended.
    pub async fn clear_cancel(&self, queue: &str, id: &str) -> Result<()> {
        let key = self.queue(queue)?.cancel(id);
        let _: () = self.connection().del(key).await?;
        Ok(())
    }
}
