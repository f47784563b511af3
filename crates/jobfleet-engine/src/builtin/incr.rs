//! `incr`: one Redis `INCR` on the store's own connection, then success, or failure for its
//! first attempts when asked. The benchmark uses it as a small real job: a handler whose body
//! is one round trip to Redis, as most jobs' bodies are one round trip to something.

use serde::{Deserialize, Serialize};

use crate::job::{Job, JobArgs, JobContext, JobError};

/// The args of the built-in `incr` kind. Other fields are ignored: the benchmark adds some, so
/// that its jobs are as long as a small real job's.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Incr {
    /// The counter to increment, a key of its own (the benchmark's is inside its namespace).
    pub key: String,
    /// Fail only the first N attempts, after the increment (the benchmark's "retry" is 1).
    #[serde(default)]
    pub fail_attempts: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("incr job asked to fail")]
struct AskedToFail;

#[derive(Debug, thiserror::Error)]
#[error("INCR failed")]
struct IncrFailed(#[source] redis::RedisError);

impl JobArgs for Incr {
    const KIND: &'static str = "incr";
}

impl<S: Send + Sync + 'static> Job<S> for Incr {
    async fn run(self, ctx: JobContext<S>) -> Result<(), JobError> {
        let mut con = ctx.client().queue_client().connection();
        let _: i64 = redis::cmd("INCR")
            .arg(&self.key)
            .query_async(&mut con)
            .await
            .map_err(|e| JobError::retry(IncrFailed(e)))?;
        if ctx.attempt <= self.fail_attempts {
            return Err(JobError::retry(AskedToFail));
        }
        Ok(())
    }
}
