//! `sleep`: sleeps, then succeeds or fails as asked. Crash tests and benchmarks use it to have
//! jobs that take time, fail, or panic without any domain code.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{Job, JobArgs, JobContext, JobError};

/// The args of the built-in `sleep` kind: a job that waits, then succeeds or fails as told, for
/// benchmarks and for trying out retries, timeouts and shutdown by hand.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sleep {
    /// How long to sleep, in milliseconds.
    #[serde(default)]
    pub ms: u64,
    /// Fail every attempt after sleeping.
    #[serde(default)]
    pub fail: bool,
    /// Fail only the first N attempts, then succeed (the benchmark's "fails once" is 1).
    #[serde(default)]
    pub fail_attempts: u32,
    /// Panic instead of returning, to exercise the worker's panic handling.
    #[serde(default)]
    pub panic: bool,
    /// Ignored by the sleep: a value for a spec's `[limits] key = "key"` to pick a budget by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When it has slept, report `ran <start>..<end>` (ms since the epoch; the start as the
    /// kind's limits counted it) as the run's progress, so that a test can check the limits
    /// against the runs' own times.
    #[serde(default)]
    pub report_run: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("sleep job asked to fail")]
struct AskedToFail;

#[derive(Debug, thiserror::Error)]
#[error("sleep job cancelled while it slept")]
struct CancelledWhileAsleep;

/// How often a long sleep reports its progress.
const PROGRESS_EVERY_MS: u64 = 1000;

impl JobArgs for Sleep {
    const KIND: &'static str = "sleep";
}

impl<S: Send + Sync + 'static> Job<S> for Sleep {
    async fn run(self, ctx: JobContext<S>) -> Result<(), JobError> {
        // A sleep of a second or more reports its progress every second; a cancelled run
        // stops sleeping at once, as a real handler stops its work.
        let mut slept = 0;
        while slept < self.ms {
            let step = (self.ms - slept).min(PROGRESS_EVERY_MS);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(step)) => {}
                () = ctx.cancelled() => return Err(JobError::fatal(CancelledWhileAsleep)),
            }
            slept += step;
            if self.ms >= PROGRESS_EVERY_MS {
                let message = format!("slept {}s of {}s", slept / 1000, self.ms / 1000);
                ctx.progress(slept as f64 / self.ms as f64, &message).await;
            }
        }
        if self.report_run {
            let ran = format!(
                "ran {}..{}",
                ctx.started_at.timestamp_millis(),
                crate::queue::now_ms()
            );
            ctx.progress(1.0, &ran).await;
        }
        if self.panic {
            panic!("sleep job asked to panic");
        }
        if self.fail || ctx.attempt <= self.fail_attempts {
            return Err(JobError::retry(AskedToFail));
        }
        Ok(())
    }
}
