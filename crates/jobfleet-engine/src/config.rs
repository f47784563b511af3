//! The engine's sections of a configuration (`[redis]`, `[worker]`, `[dead]`, `[telemetry]`,
//! `[scheduler]`, `[jobs]`), gathered as [`EngineSettings`], with their checks and their
//! built-in defaults (the crate's `default.toml`).
//!
//! It stands above the modules whose settings it turns into their own values (the store's
//! `StoreSettings`, a worker's `WorkerConfig`, the telemetry section), so none of them imports
//! it back. An application's own configuration embeds these sections next to its own and
//! hands them to the engine with `EngineSettings { .. }`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::settings::secret::SecretUrl;
use crate::settings::{ConfigError, Layers, Sources, duration, invalid, load};
pub use crate::telemetry::{LogFormat, TelemetrySettings};
use crate::worker::{QueueSelection, WorkerConfig};

/// The `[scheduler]` section: which schedules this process leaves out, and where it serves
/// its metrics and health.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Schedule names not to run here.
    pub disabled: Vec<String>,
    /// Where the scheduler serves `/metrics`, `/livez` and `/readyz`; empty for none.
    pub http_addr: String,
}

/// The `[redis]` section: where the store is and the limits of talking to it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Where the store is, which may carry passwords: one node (`redis://`, `rediss://`), a
    /// cluster (`redis+cluster://h1:p1,h2:p2`) or Sentinel (`redis+sentinel://s1,s2/<master>`).
    pub url: SecretUrl,
    /// The prefix of every key, so that several deployments can share one Redis.
    pub namespace: String,
    /// One connection attempt: TCP, TLS and the Redis handshake.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// The answer to one call.
    #[serde(with = "duration")]
    pub response_timeout: Duration,
    /// `fast` (a write counts once the master has it) or `replicated` (enqueue, ack and settle
    /// wait until `replicas` replicas have it, and fail after `replication_timeout`).
    pub durability: DurabilityMode,
    /// Replicas that must confirm a write under `durability = "replicated"`.
    pub replicas: u32,
    /// The longest wait for them.
    #[serde(with = "duration")]
    pub replication_timeout: Duration,
}

/// The `redis.durability` setting.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// A write counts once the master has it.
    Fast,
    /// A write counts once enough replicas have it.
    Replicated,
}

/// The `[worker]` section: what a worker process serves and how.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// The queues served, weighted (`emails=3,default=1`) or plain (`emails,default`), parsed
    /// when the configuration is read.
    #[serde(deserialize_with = "queue_selection")]
    pub queues: QueueSelection,
    /// Fetch the queues in the listed order instead of at random by weight.
    pub strict: bool,
    /// How many jobs run at once.
    pub concurrency: usize,
    /// How many jobs are leased ahead of a free slot.
    pub prefetch: usize,
    /// How long a lease lasts unless renewed; a worker that stops renewing loses its jobs to the
    /// reaper after this.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// How long running jobs get to finish at shutdown before they are handed back.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// How often an idle worker fetches when no wake-up arrives.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Completed jobs kept per queue as a capped history; 0 keeps none.
    pub completed_history: u64,
    /// Keep each job's last failed attempts for the board and the API.
    pub attempt_history: bool,
}

/// The `[dead]` section: the caps of every queue's dead set.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadSettings {
    /// At most this many dead jobs are kept per queue; the oldest are evicted first.
    pub max_jobs: u64,
    /// Dead jobs older than this are evicted.
    #[serde(with = "duration")]
    pub max_age: Duration,
}

/// The `[jobs]` section: where the job specs are.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// The folder of `<kind>.toml` spec files.
    pub dir: PathBuf,
}

/// The engine's sections of a configuration, validated.
#[derive(Clone, Debug, Deserialize)]
pub struct EngineSettings {
    /// `[redis]`
    pub redis: RedisSettings,
    /// `[worker]`
    pub worker: WorkerSettings,
    /// `[dead]`
    pub dead: DeadSettings,
    /// `[telemetry]`
    pub telemetry: TelemetrySettings,
    /// `[scheduler]`
    pub scheduler: SchedulerSettings,
    /// `[jobs]`
    pub jobs: JobsSettings,
}

/// The engine's built-in defaults (the crate's `default.toml`).
pub const DEFAULTS: &str = include_str!("../default.toml");

impl EngineSettings {
    /// Loads and validates the engine's settings of this process: the built-in defaults,
    /// then the layers of [`Sources::from_env`]. Other sections of the files are ignored (they
    /// are the application's).
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&Sources::from_env())
    }

    /// `load` from the given layers.
    pub fn load_from(sources: &Sources) -> Result<Self, ConfigError> {
        let layers = Layers {
            defaults: DEFAULTS,
            list_keys: &["scheduler.disabled"],
            url_vars: &[],
        };
        let mut settings: Self = load(sources, layers)?;
        settings.validate()?;
        if settings.jobs.dir.is_relative()
            && let Some(root) = sources.project_root()
        {
            settings.jobs.dir = root.join(&settings.jobs.dir);
        }
        Ok(settings)
    }

    /// Checks values that parse but make no sense; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.validate()?;
        self.worker.validate()?;
        for (key, limit) in [
            ("redis.connect_timeout", self.redis.connect_timeout),
            ("redis.response_timeout", self.redis.response_timeout),
            ("telemetry.ready_timeout", self.telemetry.ready_timeout),
        ] {
            if limit < Duration::from_millis(100) {
                return Err(invalid(key, "must be at least 100ms"));
            }
        }
        if self.dead.max_jobs == 0 {
            return Err(invalid("dead.max_jobs", "must be at least 1"));
        }
        for (key, addr) in [
            ("telemetry.http_addr", &self.telemetry.http_addr),
            ("scheduler.http_addr", &self.scheduler.http_addr),
        ] {
            if !addr.is_empty() && addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    key,
                    format!("{addr:?} is not host:port (or \"\" to disable)"),
                ));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_filter).is_err() {
            return Err(invalid("telemetry.log_filter", "is not a valid filter"));
        }
        Ok(())
    }

    /// The store settings shared by every process.
    pub fn store(&self) -> crate::queue::StoreSettings {
        crate::queue::StoreSettings {
            dead_max_jobs: self.dead.max_jobs,
            dead_max_age: self.dead.max_age,
            completed_history: self.worker.completed_history,
            attempt_history: self.worker.attempt_history,
            connect_timeout: self.redis.connect_timeout,
            response_timeout: Some(self.redis.response_timeout),
            durability: self.redis.durability(),
            ..crate::queue::StoreSettings::default()
        }
    }
}

impl RedisSettings {
    /// The durability the store's writes are made with.
    pub fn durability(&self) -> crate::queue::Durability {
        match self.durability {
            DurabilityMode::Fast => crate::queue::Durability::Fast,
            DurabilityMode::Replicated => crate::queue::Durability::Replicated {
                replicas: self.replicas,
                timeout: self.replication_timeout,
            },
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = crate::queue::Target::parse(self.url.expose()) {
            return Err(invalid("redis.url", format!("{}: {e}", self.url)));
        }
        if self.durability == DurabilityMode::Replicated {
            if self.replicas == 0 {
                return Err(invalid(
                    "redis.replicas",
                    "must be at least 1 with durability = \"replicated\"",
                ));
            }
            if self.replication_timeout < Duration::from_millis(1) {
                return Err(invalid("redis.replication_timeout", "must be at least 1ms"));
            }
        }
        let ns = &self.namespace;
        if ns.is_empty() || ns.contains(['{', '}', ' ']) {
            return Err(invalid(
                "redis.namespace",
                "must be non-empty, without braces or spaces",
            ));
        }
        Ok(())
    }
}

impl WorkerSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        // A fetch leases up to concurrency + prefetch jobs in one script call, which blocks
        // Redis while it runs: the bounds keep one call short.
        if self.concurrency == 0 || self.concurrency > 1_000 {
            return Err(invalid("worker.concurrency", "must be between 1 and 1000"));
        }
        if self.prefetch > 1_000 {
            return Err(invalid("worker.prefetch", "must be at most 1000"));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(invalid("worker.lease", "must be at least 1s"));
        }
        if self.poll_interval < Duration::from_millis(10) {
            return Err(invalid("worker.poll_interval", "must be at least 10ms"));
        }
        Ok(())
    }
}

impl WorkerSettings {
    /// A worker's settings from this section, with the command line's overrides
    /// (`--queues`, `--strict`, `--concurrency`).
    pub fn worker_config(
        &self,
        queues: Option<&str>,
        strict: Option<bool>,
        concurrency: Option<usize>,
    ) -> Result<WorkerConfig, String> {
        let strict = strict.unwrap_or(self.strict);
        Ok(WorkerConfig {
            id: crate::queue::workers::new_worker_id(),
            queues: match queues {
                Some(list) => QueueSelection::parse(list, strict)?,
                None => self.queues.clone().with_strict(strict),
            },
            concurrency: concurrency.unwrap_or(self.concurrency).max(1),
            prefetch: self.prefetch,
            lease: self.lease,
            shutdown_timeout: self.shutdown_timeout,
            poll_interval: self.poll_interval,
        })
    }
}

/// `worker.queues` parsed as it is read (the config crate's error adds the key).
fn queue_selection<'de, D: serde::Deserializer<'de>>(d: D) -> Result<QueueSelection, D::Error> {
    let text = String::deserialize(d)?;
    QueueSelection::parse(&text, false).map_err(serde::de::Error::custom)
}
