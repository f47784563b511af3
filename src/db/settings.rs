//! The `[database]` section: where PostgreSQL is and how many connections a process opens.

use serde::Deserialize;

use jobfleet_engine::settings::secret::SecretUrl;

/// `[database]`; `DATABASE_URL` overrides its `url`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretUrl,
    pub max_connections: u32,
}
