//! Typed enqueue: a job kind's args in, its spec applied (queue, attempts, uniqueness), the
//! caller's overrides on top.
//!
//! `client.enqueue(MyJob { .. }).await` stores one job; the builder it returns overrides the
//! spec (`.queue`, `.max_attempts`, `.priority`, `.delay`, `.at_ms`, `.unique_key`, `.not_unique`, `.id`,
//! `.backoff`). `new_job` builds the `NewJob` for bulk calls. The retry backoff is not copied
//! into the job: the worker reads it from the spec when the job fails, so a spec change applies
//! to jobs already queued, unless one was given here.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha1::{Digest, Sha1};

use super::args::JobArgs;
use super::error::JobError;
use super::registry_error::RegistryError;
use super::specs::Specs;
use crate::queue::priority::Priority;
use crate::queue::{Backoff, Enqueued, NewJob, QueueClient, QueueError, now_ms};

/// Why a job was not enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The kind has no spec in this program, or its args do not serialize: fix the caller.
    #[error(transparent)]
    Kind(#[from] RegistryError),
    /// The store refused the job or could not be reached; `QueueError::Partial` says what a
    /// bulk call stored.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Enqueues typed jobs with their kind's spec applied. Cheap to clone: two reference counts,
/// since every run's context gets a clone (a `QueueClient`'s own clone copies its namespace
/// and connection details).
#[derive(Clone, Debug)]
pub struct Client {
    queue: Arc<QueueClient>,
    specs: Arc<Specs>,
}

impl Client {
    /// A client over a store connection and the specs of the kinds it may enqueue.
    pub fn new(queue: QueueClient, specs: Arc<Specs>) -> Self {
        Self {
            queue: Arc::new(queue),
            specs,
        }
    }

    /// The store underneath, for untyped and operators' calls.
    pub fn queue_client(&self) -> &QueueClient {
        &self.queue
    }

    /// The specs this client applies.
    pub fn specs(&self) -> &Arc<Specs> {
        &self.specs
    }

    /// Starts an enqueue of one job; `.await` it, after any overrides.
    pub fn enqueue<J: JobArgs>(&self, job: J) -> Enqueue<'_> {
        Enqueue {
            client: self,
            job: self.new_job(&job),
        }
    }

    /// The `NewJob` of a typed job with its spec applied, for `enqueue_bulk` and friends.
    pub fn new_job<J: JobArgs>(&self, job: &J) -> Result<NewJob, EnqueueError> {
        Ok(self.specs.job(job)?)
    }

    /// Enqueues many typed jobs of one kind with their spec applied, results in input order
    /// (see [`QueueClient::enqueue_bulk`] for what a failure part-way says).
    pub async fn enqueue_bulk<J: JobArgs>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        let jobs = jobs
            .into_iter()
            .map(|j| self.new_job(&j))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.queue.enqueue_bulk(jobs).await?)
    }

    /// Enqueues prepared jobs (from [`Self::new_job`], maybe changed) in bulk.
    pub async fn enqueue_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, EnqueueError> {
        Ok(self.queue.enqueue_bulk(jobs).await?)
    }
}

impl From<EnqueueError> for JobError {
    /// A kind without a spec or args that do not serialize cannot be fixed by a retry; a
    /// store that failed may answer the next attempt.
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Kind(e) => JobError::fatal(e),
            EnqueueError::Queue(e) => JobError::retry(e),
        }
    }
}

impl Specs {
    /// The `NewJob` of a typed job with its kind's spec applied (see [`Self::new_job`]).
    pub fn job<J: JobArgs>(&self, job: &J) -> Result<NewJob, RegistryError> {
        let args = serde_json::to_value(job).map_err(|e| {
            RegistryError::BadArgs(format!("args of {} do not serialize: {e}", J::KIND))
        })?;
        self.new_job(J::KIND, args)
    }

    /// A job of `kind` with its spec applied: the spec's queue and attempts, and when the spec
    /// has `[unique]`, a unique key made of the kind and a hash of the args, held for the
    /// spec's ttl. The untyped path (the CLI, a schedule) and the typed one both come here.
    pub fn new_job(&self, kind: &str, args: Value) -> Result<NewJob, RegistryError> {
        let spec = self.spec(kind)?;
        let mut job = NewJob::new(kind, &spec.queue, args)
            .max_attempts(spec.retry.max_attempts)
            .priority(spec.priority);
        if let Some(unique) = &spec.unique {
            let key = args_key(kind, &job.args);
            job = job.unique(key, unique.ttl);
        }
        Ok(job)
    }
}

/// `kind:<sha1 of the args' JSON>`. serde_json's maps are sorted by key, so equal args give
/// equal keys whatever order their fields were written in.
fn args_key(kind: &str, args: &Value) -> String {
    let digest = Sha1::digest(args.to_string().as_bytes());
    format!("{kind}:{}", hex::encode(&digest[..10]))
}

/// One job about to be enqueued: override its spec's defaults, then `.await` it.
#[derive(Debug)]
#[must_use = "an enqueue does nothing until it is awaited"]
pub struct Enqueue<'a> {
    client: &'a Client,
    job: Result<NewJob, EnqueueError>,
}

impl Enqueue<'_> {
    fn map(mut self, f: impl FnOnce(NewJob) -> NewJob) -> Self {
        self.job = self.job.map(f);
        self
    }

    /// Another queue than the spec's.
    pub fn queue(self, queue: impl Into<String>) -> Self {
        self.map(|j| j.on_queue(queue))
    }

    /// Another number of runs than the spec's (at least 1).
    pub fn max_attempts(self, n: u32) -> Self {
        self.map(|j| j.max_attempts(n))
    }

    /// Another priority than the spec's: 0 runs before every other level of the queue, 3 after.
    pub fn priority(self, priority: Priority) -> Self {
        self.map(|j| j.priority(priority))
    }

    /// Runs no earlier than `delay` from now.
    pub fn delay(self, delay: Duration) -> Self {
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.map(|j| j.run_at(now_ms().saturating_add(ms)))
    }

    /// Runs no earlier than `at_ms` (milliseconds since the Unix epoch).
    pub fn at_ms(self, at_ms: i64) -> Self {
        self.map(|j| j.run_at(at_ms))
    }

    /// A job id of the caller's: a second enqueue with the same id is a duplicate.
    pub fn id(self, id: impl Into<String>) -> Self {
        self.map(|j| j.id(id))
    }

    /// A unique key of the caller's, held for the spec's ttl (one hour without `[unique]`).
    pub fn unique_key(self, key: impl Into<String>) -> Self {
        let ttl = self.ttl();
        self.map(|j| j.unique(key, ttl))
    }

    /// No unique key, even when the spec has `[unique]`.
    pub fn not_unique(self) -> Self {
        self.map(|mut j| {
            j.unique = None;
            j
        })
    }

    /// A retry backoff of its own instead of the spec's.
    pub fn backoff(self, backoff: Backoff) -> Self {
        self.map(|j| j.backoff(backoff))
    }

    /// The job as it would be stored, for a caller that wants to inspect or batch it.
    pub fn into_new_job(self) -> Result<NewJob, EnqueueError> {
        self.job
    }

    fn ttl(&self) -> Duration {
        let kind = self.job.as_ref().map(|j| j.kind.as_str()).unwrap_or("");
        self.client.specs.unique_ttl(kind)
    }
}

impl<'a> IntoFuture for Enqueue<'a> {
    type Output = Result<Enqueued, EnqueueError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { Ok(self.client.queue.enqueue(self.job?).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_args_give_equal_keys_whatever_their_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":[2,3]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":[2,3],"a":1}"#).unwrap();
        assert_eq!(args_key("k", &a), args_key("k", &b));
        assert_ne!(
            args_key("k", &a),
            args_key("k", &serde_json::json!({"a": 2}))
        );
        assert_ne!(args_key("k", &a), args_key("j", &a));
        assert!(args_key("k", &a).starts_with("k:"));
    }
}
