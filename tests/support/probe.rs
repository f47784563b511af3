//! The `probe` job kind of the worker-runtime tests: a handler that does what its args say
//! (fail some attempts, fail for good, snooze, panic, hang, sleep) and records every run.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobfleet::jobs::{HandlerSet, Job, JobArgs, JobContext, JobError, Registry};
use jobfleet::queue::{NewJob, QueueClient};
use serde::{Deserialize, Serialize};

use super::TestRedis;
use super::app::{client, eventually, registry, spec_dir};

/// What the test handlers did: (tag, attempt), in order.
pub static EVENTS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

pub fn record(tag: &str, attempt: u32) {
    EVENTS.lock().unwrap().push((tag.to_owned(), attempt));
}

pub fn events(prefix: &str) -> Vec<(String, u32)> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.starts_with(prefix))
        .cloned()
        .collect()
}

/// A handler that does what its args say: fail some attempts, fail for good, snooze, panic,
/// hang, or sleep, and records every run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Probe {
    pub tag: String,
    #[serde(default)]
    pub fail_attempts: u32,
    #[serde(default)]
    pub fatal: bool,
    #[serde(default)]
    pub snooze_ms: Option<u64>,
    #[serde(default)]
    pub panic: bool,
    #[serde(default)]
    pub sleep_ms: u64,
}

impl JobArgs for Probe {
    const KIND: &'static str = "probe";
}

impl<S: Send + Sync + 'static> Job<S> for Probe {
    async fn run(self, ctx: JobContext<S>) -> Result<(), JobError> {
        record(&self.tag, ctx.attempt);
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        if self.panic {
            panic!("probe panics on purpose");
        }
        if self.fatal {
            return Err(JobError::fatal("bad input"));
        }
        if let Some(ms) = self.snooze_ms
            && ctx.attempt == 1
            && events(&self.tag).len() == 1
        {
            return Err(JobError::snooze(Duration::from_millis(ms)));
        }
        if ctx.attempt <= self.fail_attempts {
            return Err(JobError::retry(std::io::Error::other("flaky")));
        }
        Ok(())
    }
}

pub struct Setup {
    pub _redis: TestRedis,
    pub _specs: tempfile::TempDir,
    pub url: String,
    pub client: QueueClient,
    pub registry: Arc<Registry>,
}

/// The `probe` kind with this timeout and attempts, and 50 ms backoff. The folder must live
/// as long as the registry is loaded from it, so it is returned too.
pub fn probe_registry(timeout: &str, attempts: u32) -> (tempfile::TempDir, Arc<Registry>) {
    let specs = spec_dir(&[("probe", "default", timeout, attempts, "50ms")]);
    let registry = registry(specs.path(), HandlerSet::new().register::<Probe>());
    (specs, registry)
}

/// A Redis, a client, and the `probe` kind with a 1 s timeout, 3 attempts and 50 ms backoff.
pub async fn setup() -> Setup {
    let redis = TestRedis::start();
    let url = redis.url();
    let client = client(&url).await;
    let (specs, registry) = probe_registry("1s", 3);
    Setup {
        _redis: redis,
        _specs: specs,
        url,
        client,
        registry,
    }
}

pub fn probe(args: serde_json::Value) -> NewJob {
    NewJob::new("probe", "default", args).max_attempts(3)
}

pub async fn settled(c: &QueueClient, processed: u64, dead: u64) -> bool {
    eventually(Duration::from_secs(10), || async {
        let s = c.stats("default").await.unwrap();
        s.processed == processed && s.dead == dead && s.active == 0
    })
    .await
}
