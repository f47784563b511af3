//! Building a worker: its store connection, its kinds and the application's state are
//! required; everything else has a default that can be overridden one setting at a time.

use std::sync::Arc;
use std::time::Duration;

use super::config::WorkerConfig;
use super::queues::QueueSelection;
use super::runner::Runtime;
use super::state::{JobObserver, Worker};
use crate::job::{Client, Registry};
use crate::queue::QueueClient;
use crate::telemetry::Metrics;
use crate::telemetry::http::Health;

impl Default for WorkerConfig {
    /// The defaults of `config/default.toml`'s `[worker]`, serving the queue `default`.
    fn default() -> Self {
        Self {
            id: crate::queue::workers::new_worker_id(),
            queues: QueueSelection::parse("default", false).expect("a valid queue name"),
            concurrency: 16,
            prefetch: 16,
            lease: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(25),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// A worker being built; see [`Worker::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct WorkerBuilder<S> {
    client: QueueClient,
    registry: Arc<Registry<S>>,
    state: Arc<S>,
    cfg: WorkerConfig,
    /// Whether the caller chose the queues; if not, the worker serves its kinds' queues.
    queues_chosen: bool,
    metrics: Option<Metrics>,
    health: Option<Arc<Health>>,
    observer: Option<JobObserverSlot>,
    metrics_addr: Option<String>,
}

/// `JobObserver` is a closure, which has no `Debug`; this names it in the builder's.
struct JobObserverSlot(JobObserver);

impl std::fmt::Debug for JobObserverSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobObserver")
    }
}

impl<S: Send + Sync + 'static> Worker<S> {
    /// Starts building a worker that runs the kinds of `registry` with `state`, over the
    /// store connection `client`, with the defaults of [`WorkerConfig::default`].
    pub fn builder(
        client: QueueClient,
        registry: Arc<Registry<S>>,
        state: Arc<S>,
    ) -> WorkerBuilder<S> {
        WorkerBuilder {
            client,
            registry,
            state,
            cfg: WorkerConfig::default(),
            queues_chosen: false,
            metrics: None,
            health: None,
            observer: None,
            metrics_addr: None,
        }
    }
}

impl<S: Send + Sync + 'static> WorkerBuilder<S> {
    /// Every setting at once (e.g. from the configuration, see `config::WorkerSettings::worker_config`).
    pub fn config(mut self, cfg: WorkerConfig) -> Self {
        self.cfg = cfg;
        self.queues_chosen = true;
        self
    }

    /// The queues served (default: every queue named by the registry's specs, weight 1 each).
    pub fn queues(mut self, queues: QueueSelection) -> Self {
        self.cfg.queues = queues;
        self.queues_chosen = true;
        self
    }

    /// Jobs run at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.cfg.concurrency = n.max(1);
        self
    }

    /// Jobs leased beyond `concurrency` and kept ready in memory.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.cfg.prefetch = n;
        self
    }

    /// A job's lease; it is renewed every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.cfg.lease = lease;
        self
    }

    /// How long running jobs get to finish after the shutdown signal.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.shutdown_timeout = timeout;
        self
    }

    /// How often an idle worker looks for jobs when it missed a wake-up.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.cfg.poll_interval = interval;
        self
    }

    /// The metrics the worker counts into (default: a registry of its own).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The health that `/readyz` reports (default: its own, with a 60 s limit).
    pub fn health(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    /// Called just before each job starts running.
    pub fn observer(mut self, observer: JobObserver) -> Self {
        self.observer = Some(JobObserverSlot(observer));
        self
    }

    /// Where this process's `/metrics` is served (`host:port`), published in its description.
    pub fn metrics_addr(mut self, target: Option<String>) -> Self {
        self.metrics_addr = target;
        self
    }

    /// The worker; `run` it until a shutdown signal.
    pub fn build(mut self) -> Worker<S> {
        if !self.queues_chosen
            && let Some(queues) = kinds_queues(&self.registry)
        {
            self.cfg.queues = queues;
        }
        let client = Client::new(self.client.clone(), self.registry.shared_specs().clone());
        Worker {
            client: self.client,
            rt: Runtime {
                registry: self.registry,
                state: self.state,
                client,
            },
            cfg: self.cfg,
            metrics: self.metrics.unwrap_or_default(),
            health: self
                .health
                .unwrap_or_else(|| Arc::new(Health::new(Duration::from_secs(60)))),
            observer: self.observer.map(|o| o.0),
            metrics_addr: self.metrics_addr,
        }
    }
}

/// The queues the registry's specs name, weight 1 each; None for a registry without kinds.
fn kinds_queues<S>(registry: &Registry<S>) -> Option<QueueSelection> {
    let mut names: Vec<&str> = registry.specs().map(|s| s.queue.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    // Spec queues were checked when the specs were read, so the list parses.
    QueueSelection::parse(&names.join(","), false).ok()
}
