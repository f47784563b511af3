//! `[notify]` of the configuration: the SMTP server, the platform's Discord and Slack
//! channels and the HTTP limits, validated here.

use std::time::Duration;

use serde::Deserialize;

use jobfleet_engine::settings::duration;
use jobfleet_engine::settings::secret::Secret;
use jobfleet_engine::settings::{ConfigError, invalid, is_http_url};

/// Notifications: the SMTP server, the platform's Discord and Slack channels, HTTP limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Discord's webhook URL carries its token, so it is a secret; "" turns Discord off.
    pub discord_webhook_url: Secret,
    /// Slack's incoming-webhook URL is a secret too; "" turns Slack off.
    pub slack_webhook_url: Secret,
    /// The whole of one webhook request (connect, send, answer).
    #[serde(with = "duration")]
    pub http_timeout: Duration,
    /// Notification rows handed to the queue per dispatch batch.
    pub dispatch_batch: u32,
    /// Lets users' webhooks reach loopback and private addresses (development and demos
    /// only: in production that would let a user probe the platform's network). Off unless set
    /// explicitly: no environment's file turns it on, and a worker with it on warns at start.
    pub allow_private_webhooks: bool,
    pub smtp: SmtpSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// "" turns email off.
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// "" sends without authenticating.
    pub username: String,
    pub password: Secret,
    /// The From header, e.g. "Jobfleet <noreply@example.com>".
    pub from: String,
    #[serde(with = "duration")]
    pub timeout: Duration,
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or the demo sink.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl NotifySettings {
    /// Checks the URLs and the SMTP settings; the error names the key (never the secret).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, url) in [
            ("notify.discord_webhook_url", &self.discord_webhook_url),
            ("notify.slack_webhook_url", &self.slack_webhook_url),
        ] {
            if !url.is_empty() && !is_http_url(url.expose()) {
                return Err(invalid(key, "must be an http:// or https:// URL, or \"\""));
            }
        }
        if self.http_timeout < Duration::from_millis(100) {
            return Err(invalid("notify.http_timeout", "must be at least 100ms"));
        }
        if self.dispatch_batch == 0 || self.dispatch_batch > 1_000 {
            return Err(invalid(
                "notify.dispatch_batch",
                "must be between 1 and 1000",
            ));
        }
        let smtp = &self.smtp;
        if smtp.host.is_empty() {
            return Ok(());
        }
        if smtp.port == 0 {
            return Err(invalid("notify.smtp.port", "must not be 0"));
        }
        if smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "notify.smtp.from",
                format!("{:?} is not an address like \"Name <a@b.c>\"", smtp.from),
            ));
        }
        if smtp.username.is_empty() != smtp.password.is_empty() {
            return Err(invalid(
                "notify.smtp.password",
                "username and password go together: set both or neither",
            ));
        }
        Ok(())
    }
}
