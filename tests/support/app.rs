//! Building jobfleet pieces against a test's own Redis: clients, registries with test-only job
//! kinds, and in-process workers that stop on demand.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobfleet::config::{Settings, Sources};
use jobfleet::jobs::{HandlerSet, Registry, Resources};
use jobfleet::queue::{QueueClient, StoreSettings};
use jobfleet::worker::{QueueSelection, Worker, WorkerConfig, WorkerReport};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The settings of the `test` environment, pointed at a test's Redis.
pub fn settings(redis_url: &str) -> Settings {
    Settings::load_from(&Sources {
        config_dir: manifest_dir().join("config"),
        env: Some("test".into()),
        vars: vec![("REDIS_URL".into(), redis_url.into())],
    })
    .expect("the test configuration loads")
}

pub async fn client(redis_url: &str) -> QueueClient {
    client_with(redis_url, StoreSettings::default()).await
}

pub async fn client_with(redis_url: &str, store: StoreSettings) -> QueueClient {
    QueueClient::connect(redis_url, "jobfleet", store)
        .await
        .expect("connects to the test Redis")
}

/// Writes spec files into a temporary folder: (kind, queue, timeout, max_attempts, base).
pub fn spec_dir(specs: &[(&str, &str, &str, u32, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (kind, queue, timeout, attempts, base) in specs {
        let text = format!(
            "queue = \"{queue}\"\ntimeout = \"{timeout}\"\n[retry]\nmax_attempts = {attempts}\nbase = \"{base}\"\ncap = \"10s\"\njitter = 0.0\n"
        );
        std::fs::write(dir.path().join(format!("{kind}.toml")), text).expect("write spec");
    }
    dir
}

pub fn registry(dir: &Path, handlers: HandlerSet<Resources>) -> Arc<Registry> {
    Arc::new(Registry::load(dir, handlers).expect("specs match handlers"))
}

/// Options of an in-process worker.
#[derive(Clone, Debug)]
pub struct WorkerOpts {
    pub queues: String,
    pub strict: bool,
    pub concurrency: usize,
    pub prefetch: usize,
    pub lease: Duration,
    pub shutdown_timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for WorkerOpts {
    fn default() -> Self {
        Self {
            queues: "default".into(),
            strict: false,
            concurrency: 4,
            prefetch: 4,
            lease: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            // Long on purpose: a test that sees a job start quickly proves the wake-up works
            // (with a lease long enough that lease / 3 is longer too).
            poll_interval: Duration::from_secs(30),
        }
    }
}

/// A worker running in this process until `stop`.
pub struct RunningWorker {
    pub id: String,
    stop: CancellationToken,
    handle: JoinHandle<WorkerReport>,
}

impl RunningWorker {
    pub async fn stop(self) -> WorkerReport {
        self.stop.cancel();
        self.handle.await.expect("worker task")
    }
}

pub fn start_worker(
    client: &QueueClient,
    registry: Arc<Registry>,
    redis_url: &str,
    opts: WorkerOpts,
) -> RunningWorker {
    let resources =
        Arc::new(Resources::new(client.clone(), settings(redis_url)).expect("resources"));
    start_worker_with(client, registry, resources, opts)
}

/// `start_worker` with resources of the test's own (a database pool, settings).
pub fn start_worker_with(
    client: &QueueClient,
    registry: Arc<Registry>,
    resources: Arc<Resources>,
    opts: WorkerOpts,
) -> RunningWorker {
    let cfg = WorkerConfig {
        id: jobfleet::queue::workers::new_worker_id(),
        queues: QueueSelection::parse(&opts.queues, opts.strict).expect("queues"),
        concurrency: opts.concurrency,
        prefetch: opts.prefetch,
        lease: opts.lease,
        shutdown_timeout: opts.shutdown_timeout,
        poll_interval: opts.poll_interval,
    };
    let id = cfg.id.clone();
    let worker = Worker::builder(client.clone(), registry, resources)
        .config(cfg)
        .build();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move {
        worker
            .run(async move { token.cancelled().await })
            .await
            .expect("worker runs")
    });
    RunningWorker { id, stop, handle }
}

/// Polls `check` every 10 ms until it returns true or `limit` passes; returns whether it did.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
