//! `[ipfs]` of the configuration: the Kubo nodes and the snapshots' retention, validated here.

use std::time::Duration;

use serde::Deserialize;

use jobfleet_engine::settings::duration;
use jobfleet_engine::settings::secret::SecretUrl;
use jobfleet_engine::settings::{ConfigError, invalid, is_http_url};

/// The Kubo nodes that store discussion snapshots, and how long snapshots stay pinned.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfsSettings {
    /// Kubo RPC API base URLs, tried in order. Secret URLs: a hosted node's URL carries its
    /// credentials (`user:pass@`, a key in the path).
    pub endpoints: Vec<SecretUrl>,
    /// The limit of one RPC call.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Snapshots older than this are unpinned by `prune_snapshots`.
    #[serde(with = "duration")]
    pub snapshot_retention: Duration,
}

impl IpfsSettings {
    /// Checks the endpoints and limits; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ipfs = self;
        if ipfs.endpoints.is_empty() {
            return Err(invalid(
                "ipfs.endpoints",
                "must list at least one Kubo RPC URL",
            ));
        }
        for e in &ipfs.endpoints {
            if !is_http_url(e.expose()) {
                return Err(invalid(
                    "ipfs.endpoints",
                    format!("{e} is not an http:// or https:// URL"),
                ));
            }
        }
        if ipfs.timeout < Duration::from_secs(1) {
            return Err(invalid("ipfs.timeout", "must be at least 1s"));
        }
        if ipfs.snapshot_retention < Duration::from_secs(86_400) {
            return Err(invalid("ipfs.snapshot_retention", "must be at least 1day"));
        }
        Ok(())
    }
}
