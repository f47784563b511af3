//! Configuration in layers: the built-in `config/default.toml`, then `config/<env>.toml`, then
//! environment variables (`JOBFLEET__SECTION__KEY`, and the usual `REDIS_URL`).
//!
//! Everything is validated at start; an error names the bad key. Secrets (passwords, keys,
//! the webhook URLs) and secret URLs (Redis, the database, the chain's RPC node, the Kubo
//! nodes) are redacted from `Debug`, errors and logs (see `secret`). Values from the
//! environment are taken as the text they are.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::ipfs::settings::IpfsSettings;
pub use crate::notify::settings::{NotifySettings, SmtpSettings, SmtpTls};
pub mod checks;
pub mod duration;
pub(crate) use checks::invalid;
pub use checks::{ConfigError, is_http_url};
pub use secret::{Secret, SecretUrl, redact_urls};

pub mod secret;

/// The built-in defaults, so the binary runs even where no config folder exists.
const DEFAULTS: &str = include_str!("../../config/default.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub redis: RedisSettings,
    pub worker: WorkerSettings,
    pub dead: DeadSettings,
    pub telemetry: TelemetrySettings,
    pub scheduler: SchedulerSettings,
    pub database: DatabaseSettings,
    pub governance: GovernanceSettings,
    pub jobs: JobsSettings,
    pub chain: crate::chain::settings::ChainSettings,
    pub ipfs: IpfsSettings,
    pub notify: NotifySettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretUrl,
    pub max_connections: u32,
}

/// Thresholds of the community votes (from the platform's design notes).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSettings {
    /// Share of likes, in basis points, that approves a proposed market (7000 = 70%).
    pub proposal_threshold_bp: u32,
    pub proposal_min_votes: u32,
    #[serde(with = "duration")]
    pub proposal_window: Duration,
    /// Share of uphold votes, in basis points, that upholds a dispute (6000 = 60%).
    pub dispute_threshold_bp: u32,
    pub dispute_min_votes: u32,
    #[serde(with = "duration")]
    pub dispute_window: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Schedule names not to run here.
    pub disabled: Vec<String>,
    pub http_addr: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: SecretUrl,
    pub namespace: String,
    /// One connection attempt: TCP, TLS and the Redis handshake.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// The answer to one call.
    #[serde(with = "duration")]
    pub response_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub queues: String,
    pub strict: bool,
    pub concurrency: usize,
    pub prefetch: usize,
    #[serde(with = "duration")]
    pub lease: Duration,
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    pub completed_history: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadSettings {
    pub max_jobs: u64,
    #[serde(with = "duration")]
    pub max_age: Duration,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_filter: String,
    pub http_addr: String,
    /// `/readyz` fails once the last answer from Redis is older than this.
    #[serde(with = "duration")]
    pub ready_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    pub dir: PathBuf,
}

/// Where the layers come from; `from_env` reads the process environment.
#[derive(Clone, Debug)]
pub struct Sources {
    pub config_dir: PathBuf,
    /// None means the default environment, "development", whose file is optional.
    pub env: Option<String>,
    /// Environment variables to apply (normally the process's).
    pub vars: Vec<(String, String)>,
}

impl Sources {
    pub fn from_env() -> Self {
        Self {
            config_dir: std::env::var_os("JOBFLEET_CONFIG_DIR")
                .map_or_else(|| PathBuf::from("config"), PathBuf::from),
            env: std::env::var("JOBFLEET_ENV").ok().filter(|e| !e.is_empty()),
            vars: std::env::vars().collect(),
        }
    }
}

impl Settings {
    /// Loads and validates the configuration of this process.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&Sources::from_env())
    }

    pub fn load_from(sources: &Sources) -> Result<Self, ConfigError> {
        let env_name = sources.env.as_deref().unwrap_or("development");
        let env_file = sources.config_dir.join(format!("{env_name}.toml"));
        if sources.env.is_some() && !env_file.exists() {
            return Err(ConfigError::MissingEnv {
                env: env_name.to_owned(),
                path: env_file,
            });
        }
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        let default_file = sources.config_dir.join("default.toml");
        for file in [default_file.as_path(), env_file.as_path()] {
            builder = builder.add_source(config_file(file));
        }
        // Values stay text as written: the config crate's `try_parsing` would turn a namespace
        // or a password "00123" into 123 and "1e2" into 100. Numbers and booleans are read from
        // the text when the settings are deserialized, and the list settings are split here.
        let (lists, vars): (Vec<_>, Vec<_>) = sources
            .vars
            .iter()
            .filter(|(k, _)| k.starts_with("JOBFLEET__"))
            .cloned()
            .partition(|(k, _)| LIST_KEYS.contains(&env_key(k).as_str()));
        builder = builder.add_source(
            config::Environment::with_prefix("JOBFLEET")
                .prefix_separator("__")
                .separator("__")
                .source(Some(vars.into_iter().collect())),
        );
        for (name, value) in lists {
            let items: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .collect();
            builder = builder.set_override(env_key(&name), items)?;
        }
        if let Some((_, url)) = sources.vars.iter().find(|(k, _)| k == "REDIS_URL") {
            builder = builder.set_override("redis.url", url.as_str())?;
        }
        if let Some((_, url)) = sources.vars.iter().find(|(k, _)| k == "DATABASE_URL") {
            builder = builder.set_override("database.url", url.as_str())?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        settings.chain.validate_for(env_name)?;
        if settings.jobs.dir.is_relative()
            && let Some(root) = project_root(&sources.config_dir)
        {
            settings.jobs.dir = root.join(&settings.jobs.dir);
        }
        Ok(settings)
    }

    /// Checks values that parse but make no sense; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.redis.url.expose();
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("redis+unix://")
            || url.starts_with("unix://"))
        {
            return Err(invalid(
                "redis.url",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        if redis::Client::open(url).is_err() {
            return Err(invalid(
                "redis.url",
                format!("cannot parse {}", self.redis.url),
            ));
        }
        for (key, limit) in [
            ("redis.connect_timeout", self.redis.connect_timeout),
            ("redis.response_timeout", self.redis.response_timeout),
            ("telemetry.ready_timeout", self.telemetry.ready_timeout),
        ] {
            if limit < Duration::from_millis(100) {
                return Err(invalid(key, "must be at least 100ms"));
            }
        }
        let ns = &self.redis.namespace;
        if ns.is_empty() || ns.contains(['{', '}', ' ']) {
            return Err(invalid(
                "redis.namespace",
                "must be non-empty, without braces or spaces",
            ));
        }
        let w = &self.worker;
        // An ack removes a job from its worker's in-flight list with LREM, which scans that
        // list: the bounds keep it short.
        if w.concurrency == 0 || w.concurrency > 1_000 {
            return Err(invalid("worker.concurrency", "must be between 1 and 1000"));
        }
        if w.prefetch > 1_000 {
            return Err(invalid("worker.prefetch", "must be at most 1000"));
        }
        if w.lease < Duration::from_secs(1) {
            return Err(invalid("worker.lease", "must be at least 1s"));
        }
        if w.poll_interval < Duration::from_millis(10) {
            return Err(invalid("worker.poll_interval", "must be at least 10ms"));
        }
        crate::worker::queues::QueueSelection::parse(&w.queues, w.strict)
            .map_err(|e| invalid("worker.queues", e))?;
        let db = self.database.url.expose();
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(invalid("database.url", "must start with postgres://"));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        let g = &self.governance;
        for (key, bp) in [
            ("governance.proposal_threshold_bp", g.proposal_threshold_bp),
            ("governance.dispute_threshold_bp", g.dispute_threshold_bp),
        ] {
            if bp == 0 || bp > 10_000 {
                return Err(invalid(key, "must be between 1 and 10000 (basis points)"));
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
        self.ipfs.validate()?;
        if tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_filter).is_err() {
            return Err(invalid("telemetry.log_filter", "is not a valid filter"));
        }
        self.notify.validate()?;
        self.chain.validate()
    }

    /// The store settings shared by every process.
    pub fn store(&self) -> crate::queue::StoreSettings {
        crate::queue::StoreSettings {
            dead_max_jobs: self.dead.max_jobs,
            dead_max_age: self.dead.max_age,
            completed_history: self.worker.completed_history,
            connect_timeout: self.redis.connect_timeout,
            response_timeout: Some(self.redis.response_timeout),
            ..crate::queue::StoreSettings::default()
        }
    }
}

/// The settings an environment variable gives as a comma-separated list.
const LIST_KEYS: [&str; 2] = ["scheduler.disabled", "ipfs.endpoints"];

/// The key a `JOBFLEET__SECTION__KEY` variable sets ("section.key"), as the config crate
/// derives it.
fn env_key(var: &str) -> String {
    var.trim_start_matches("JOBFLEET__")
        .to_lowercase()
        .replace("__", ".")
}

/// The folder a relative `jobs.dir` is taken from: the one above the config folder (the
/// project's root when the config folder is its `config/`), so that a command run from another
/// folder with `JOBFLEET_CONFIG_DIR=/srv/app/config` finds `/srv/app/jobs`. None when the
/// config folder does not exist, in which case `jobs.dir` stays relative to the working folder.
fn project_root(config_dir: &Path) -> Option<PathBuf> {
    if !config_dir.is_dir() {
        return None;
    }
    match config_dir.components().next_back() {
        // `config` or `/srv/app/config`: the parent is the path without its last part (""
        // for a bare `config`, which keeps `jobs` relative to the working folder, as before).
        Some(Component::Normal(_)) => config_dir.parent().map(Path::to_path_buf),
        // `.`, `..` or `/`: only the real path says what is above it.
        _ => std::fs::canonicalize(config_dir)
            .ok()?
            .parent()
            .map(Path::to_path_buf),
    }
}

fn config_file(path: &Path) -> config::File<config::FileSourceFile, config::FileFormat> {
    config::File::from(path)
        .format(config::FileFormat::Toml)
        .required(false)
}

#[cfg(test)]
mod tests;
