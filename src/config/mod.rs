//! Configuration in layers: the built-in `config/default.toml`, then `config/<env>.toml`, then
//! environment variables (`JOBFLEET__SECTION__KEY`, and the usual `REDIS_URL`).
//!
//! Everything is validated at start; an error names the bad key. Secrets (passwords, keys,
//! the webhook URLs) and secret URLs (Redis, the database, the chain's RPC node, the Kubo
//! nodes) are redacted from `Debug`, errors and logs (see `secret`). Values from the
//! environment are taken as the text they are.

use serde::Deserialize;

pub use crate::db::governance::GovernanceSettings;
pub use crate::db::retention::RetentionSettings;
pub use crate::db::settings::DatabaseSettings;
pub use crate::ipfs::settings::IpfsSettings;
pub use crate::notify::settings::{NotifySettings, SmtpSettings, SmtpTls};
pub use jobfleet_engine::config::{
    DeadSettings, JobsSettings, LogFormat, RedisSettings, SchedulerSettings, TelemetrySettings,
    WorkerSettings,
};
pub use jobfleet_engine::settings::{ConfigError, duration, invalid, is_http_url, secret};
pub use secret::{Secret, SecretUrl, redact_urls};

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
    pub retention: RetentionSettings,
    /// `[web]`, the board and the API (`jobfleet web`); every key has a default.
    #[serde(default)]
    pub web: jobfleet_web::WebSettings,
}

pub use jobfleet_engine::config::EngineSettings;
pub use jobfleet_engine::settings::Sources;

/// The settings an environment variable gives as a comma-separated list.
const LIST_KEYS: [&str; 2] = ["scheduler.disabled", "ipfs.endpoints"];

impl Settings {
    /// Loads and validates the configuration of this process.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&Sources::from_env())
    }

    /// Loads and validates the configuration from the given layers.
    pub fn load_from(sources: &Sources) -> Result<Self, ConfigError> {
        let layers = jobfleet_engine::settings::Layers {
            defaults: DEFAULTS,
            list_keys: &LIST_KEYS,
            url_vars: &[("DATABASE_URL", "database.url")],
        };
        let mut settings: Settings = jobfleet_engine::settings::load(sources, layers)?;
        settings.validate()?;
        settings.chain.validate_for(sources.env_name())?;
        if settings.jobs.dir.is_relative()
            && let Some(root) = sources.project_root()
        {
            settings.jobs.dir = root.join(&settings.jobs.dir);
        }
        Ok(settings)
    }

    /// The engine's sections (redis, worker, dead, telemetry, scheduler, jobs).
    pub fn engine(&self) -> EngineSettings {
        EngineSettings {
            redis: self.redis.clone(),
            worker: self.worker.clone(),
            dead: self.dead.clone(),
            telemetry: self.telemetry.clone(),
            scheduler: self.scheduler.clone(),
            jobs: self.jobs.clone(),
        }
    }

    /// Checks values that parse but make no sense; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine().validate()?;
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
        self.ipfs.validate()?;
        self.web.validate()?;
        self.notify.validate()?;
        self.retention.validate()?;
        self.chain.validate()
    }

    /// The store settings shared by every process.
    pub fn store(&self) -> crate::queue::StoreSettings {
        self.engine().store()
    }
}

#[cfg(test)]
mod tests;
