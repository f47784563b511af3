//! The `[web]` section: where the board and the API listen, and how sign-in behaves.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use jobfleet_engine::settings::{ConfigError, duration, invalid};
use serde::Deserialize;

/// The `[web]` section, every key optional (the defaults are those of [`Default`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Where `jobfleet web` serves the board, the API, `/metrics`, `/livez` and `/readyz`.
    pub http_addr: String,
    /// How long a sign-in lasts; the session ends then, whatever the user is doing.
    #[serde(with = "duration")]
    pub session_ttl: Duration,
    /// Marks the session cookie `Secure`: set it when the board is reached over HTTPS.
    pub secure_cookies: bool,
    /// The address of an authenticating proxy (oauth2-proxy style) whose user header is
    /// trusted; empty trusts no header.
    pub trusted_proxy: String,
    /// The header in which that proxy names the signed-in user.
    pub proxy_user_header: String,
    /// Failed sign-ins of one user name within `failure_window` before sign-in is refused for
    /// the rest of the window.
    pub max_failed_logins: u32,
    /// The window over which failed sign-ins are counted.
    #[serde(with = "duration")]
    pub failure_window: Duration,
    /// Operators' actions kept in the audit log.
    pub audit_max: u64,
    /// Jobs per page of a queue's listing.
    pub page_size: u64,
    /// Seconds between refreshes of a page that refreshes itself; 0 turns it off.
    pub refresh_seconds: u64,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            http_addr: "127.0.0.1:9470".to_owned(),
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            trusted_proxy: String::new(),
            proxy_user_header: "X-Forwarded-User".to_owned(),
            max_failed_logins: 10,
            failure_window: Duration::from_secs(15 * 60),
            audit_max: 10_000,
            page_size: 50,
            refresh_seconds: 5,
        }
    }
}

impl WebSettings {
    /// Checks values that parse but make no sense; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.http_addr.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "web.http_addr",
                format!("{:?} is not host:port", self.http_addr),
            ));
        }
        if self.session_ttl < Duration::from_secs(1) {
            return Err(invalid("web.session_ttl", "must be at least 1s"));
        }
        if !self.trusted_proxy.is_empty() && self.trusted_proxy.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "web.trusted_proxy",
                format!(
                    "{:?} is not an IP address (or \"\" for none)",
                    self.trusted_proxy
                ),
            ));
        }
        if axum::http::HeaderName::try_from(self.proxy_user_header.as_str()).is_err() {
            return Err(invalid("web.proxy_user_header", "is not a header name"));
        }
        if self.max_failed_logins == 0 {
            return Err(invalid("web.max_failed_logins", "must be at least 1"));
        }
        if self.failure_window < Duration::from_secs(1) {
            return Err(invalid("web.failure_window", "must be at least 1s"));
        }
        if self.audit_max == 0 {
            return Err(invalid("web.audit_max", "must be at least 1"));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(invalid("web.page_size", "must be between 1 and 1000"));
        }
        Ok(())
    }

    /// The proxy whose user header is trusted, if any (checked by `validate`).
    pub fn proxy(&self) -> Option<IpAddr> {
        self.trusted_proxy.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        WebSettings::default().validate().unwrap();
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let bad = WebSettings {
            http_addr: "nowhere".into(),
            ..WebSettings::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("web.http_addr")
        );
        let bad = WebSettings {
            trusted_proxy: "proxy.local".into(),
            ..WebSettings::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("web.trusted_proxy")
        );
    }
}
