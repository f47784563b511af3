//! Notifications: the five platform events, what they say on each channel, and the error that
//! tells the queue what to do when a delivery fails.
//!
//! Producers record an `Event` in the `notifications` outbox (`db::notifications::record`)
//! inside their own transaction. `dispatch_notifications` turns each row into one
//! `send_notification` job per channel, and that job renders the event here and delivers it
//! with `email` (SMTP) or `webhook` (Discord, Slack, signed JSON). `sink` is the demo receiver.

pub mod email;
pub mod guard;
pub mod render;
pub mod settings;
pub mod signature;
pub mod webhook;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::error::JobError;
use settings::NotifySettings;

pub use render::Rendered;

/// A wei (or token base unit) amount as a decimal string: a uint256 does not fit any integer
/// type serde_json would give us, and a float would round it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Wei(String);

impl Wei {
    /// Decimal digits only (no sign, point or exponent), at most a uint256's 78; leading zeros
    /// are dropped, so "007" is 7.
    pub fn new(digits: &str) -> Result<Self, String> {
        let trimmed = digits.trim_start_matches('0');
        let ok =
            !digits.is_empty() && trimmed.len() <= 78 && digits.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(
                if trimmed.is_empty() { "0" } else { trimmed }.to_owned(),
            ))
        } else {
            Err(format!(
                "{digits:?} is not a wei amount (decimal digits, no sign)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<alloy::primitives::U256> for Wei {
    fn from(v: alloy::primitives::U256) -> Self {
        Self(v.to_string())
    }
}

impl<'de> Deserialize<'de> for Wei {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Wei::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The events users are told about; the tag and field names are the outbox's contract with
/// the producers (`event` column, `payload` column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "payload")]
pub enum Event {
    #[serde(rename = "market.approved")]
    MarketApproved {
        market_id: i64,
        title: String,
        tx_hash: String,
        block: i64,
    },
    /// `winnings` is `payout - stake` (may be "0"); a loser's payout is "0".
    #[serde(rename = "market.resolved")]
    MarketResolved {
        market_id: i64,
        title: String,
        outcome: bool,
        stake: Wei,
        payout: Wei,
        winnings: Wei,
    },
    #[serde(rename = "dispute.raised")]
    DisputeRaised {
        dispute_id: i64,
        market_id: i64,
        title: String,
        reason: String,
    },
    #[serde(rename = "dispute.resolved")]
    DisputeResolved {
        dispute_id: i64,
        market_id: i64,
        title: String,
        upheld: bool,
        votes_for: i64,
        votes_against: i64,
    },
    /// `token` is "native" or an ERC-20 contract address.
    #[serde(rename = "balance.changed")]
    BalanceChanged {
        wallet: String,
        token: String,
        symbol: String,
        old: Wei,
        new: Wei,
        block: i64,
    },
}

impl Event {
    /// Every event name, as stored in `notifications.event`.
    pub const NAMES: [&'static str; 5] = [
        "market.approved",
        "market.resolved",
        "dispute.raised",
        "dispute.resolved",
        "balance.changed",
    ];

    /// Decodes an outbox row. An unknown event or a payload that does not fit is an error
    /// naming what is wrong, never a panic.
    pub fn from_row(event: &str, payload: serde_json::Value) -> Result<Self, NotifyError> {
        let tagged = serde_json::json!({ "event": event, "payload": payload });
        serde_path_to_error::deserialize(tagged)
            .map_err(|e| NotifyError::Undecodable(format!("event {event:?}: {e}")))
    }

    /// The (event, payload) columns of the outbox row.
    pub fn to_row(&self) -> (String, serde_json::Value) {
        let mut v = serde_json::to_value(self).expect("an Event always serialises");
        let payload = v["payload"].take();
        let event = v["event"].as_str().unwrap_or_default().to_owned();
        (event, payload)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::MarketApproved { .. } => "market.approved",
            Event::MarketResolved { .. } => "market.resolved",
            Event::DisputeRaised { .. } => "dispute.raised",
            Event::DisputeResolved { .. } => "dispute.resolved",
            Event::BalanceChanged { .. } => "balance.changed",
        }
    }

    /// Whether the platform's public channels (Discord, Slack) announce this event. A user's
    /// winnings and balances are private, so they only go to the user's own channels.
    pub fn is_public(&self) -> bool {
        Self::is_public_name(self.name())
    }

    pub fn is_public_name(name: &str) -> bool {
        matches!(
            name,
            "market.approved" | "dispute.raised" | "dispute.resolved"
        )
    }
}

/// Where a notification is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The user's email address, over SMTP.
    Email,
    /// The platform's Discord channel (an embed).
    Discord,
    /// The platform's Slack channel (blocks).
    Slack,
    /// The user's own endpoint: JSON signed with the endpoint's secret.
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Email,
        Channel::Discord,
        Channel::Slack,
        Channel::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Discord => "discord",
            Channel::Slack => "slack",
            Channel::Webhook => "webhook",
        }
    }

    /// Discord and Slack are the platform's channels: one post per subject, not per user.
    pub fn is_platform(self) -> bool {
        matches!(self, Channel::Discord | Channel::Slack)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown channel {s:?} (email, discord, slack, webhook)"))
    }
}

/// Why a delivery did not happen; `into_job_error` says what the queue does next.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The row cannot be rendered: retrying cannot fix it.
    #[error("undecodable notification: {0}")]
    Undecodable(String),
    /// The channel is not configured, or the user has no address for it any more.
    #[error("not deliverable: {0}")]
    Unconfigured(String),
    /// A 4xx other than 429 (or a redirect): the receiver refuses this request as it is.
    #[error("HTTP {status}, not retried: {excerpt}")]
    Rejected { status: u16, excerpt: String },
    /// A 429: retried no sooner than `after` when the receiver said when.
    #[error("HTTP 429, rate limited: {excerpt}")]
    RateLimited {
        after: Option<Duration>,
        excerpt: String,
    },
    /// A 5xx (or 408): the receiver has trouble; retried with backoff.
    #[error("HTTP {status}, will retry: {excerpt}")]
    Unavailable { status: u16, excerpt: String },
    /// Connection refused, DNS, TLS or timeout: retried with backoff.
    #[error("request failed")]
    Transport(#[source] reqwest::Error),
    /// The SMTP server refused or failed; `permanent` for a 5xx reply.
    #[error("SMTP {}", if *.permanent { "refused" } else { "failed" })]
    Smtp {
        permanent: bool,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The message could not be built (an address that does not parse).
    #[error("cannot build the email")]
    Message(#[source] lettre::error::Error),
    #[error("bad address {0}")]
    Address(String),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

impl NotifyError {
    /// What the queue does next: receiver refusals and bad rows are fatal, rate limits wait
    /// for Retry-After, everything transient retries with the kind's backoff.
    pub fn into_job_error(self) -> JobError {
        if !self.is_retryable() {
            return JobError::fatal(self);
        }
        if let NotifyError::RateLimited {
            after: Some(after), ..
        } = &self
        {
            let after = *after;
            return JobError::retry_after(self, after);
        }
        JobError::retry(self)
    }

    /// Whether the queue will try again (for the status of the deliveries row).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            NotifyError::Undecodable(_)
                | NotifyError::Unconfigured(_)
                | NotifyError::Rejected { .. }
                | NotifyError::Message(_)
                | NotifyError::Address(_)
                | NotifyError::Smtp {
                    permanent: true,
                    ..
                }
        )
    }

    /// The receiver's status code, when it answered.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            NotifyError::Rejected { status, .. } | NotifyError::Unavailable { status, .. } => {
                Some(i32::from(*status))
            }
            NotifyError::RateLimited { .. } => Some(429),
            NotifyError::Smtp { source, .. } => source.status().map(|c| i32::from(u16::from(c))),
            _ => None,
        }
    }

    /// The start of the receiver's answer, when there was one.
    pub fn excerpt(&self) -> Option<&str> {
        match self {
            NotifyError::Rejected { excerpt, .. }
            | NotifyError::Unavailable { excerpt, .. }
            | NotifyError::RateLimited { excerpt, .. } => Some(excerpt),
            _ => None,
        }
    }
}

/// The delivery clients of a process, built once from `[notify]` and shared by every
/// `send_notification` run so that HTTP connections are pooled.
#[derive(Debug)]
pub struct Notifier {
    pub settings: NotifySettings,
    /// For the platform's feeds, whose URLs come from the configuration; it goes through the
    /// proxy of the environment (`HTTPS_PROXY`...) when one is set.
    pub http: reqwest::Client,
    /// For users' endpoints: never through a proxy, and to public addresses only unless
    /// `notify.allow_private_webhooks`.
    pub user_http: reqwest::Client,
    /// None when `notify.smtp.host` is "".
    pub mailer: Option<email::Mailer>,
}

impl Notifier {
    pub fn new(settings: &NotifySettings) -> Result<Arc<Self>, NotifyError> {
        // reqwest is built without a crypto provider of its own (so that aws-lc is not pulled
        // in) and uses the process default: make it ring, unless something installed one
        // already, which is then kept.
        crate::install_tls_provider();
        let builder = || {
            reqwest::Client::builder()
                .timeout(settings.http_timeout)
                // A webhook that redirects is misconfigured; following it would turn the POST
                // into a GET somewhere else (and could lead a guarded request inside), so a
                // 3xx is reported instead (see `webhook::judge`).
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("jobfleet/", env!("CARGO_PKG_VERSION")))
        };
        let http = builder().build().map_err(NotifyError::Transport)?;
        // Through a proxy the client would only resolve (and the guard only judge) the proxy's
        // address, and the proxy would connect to the user's host wherever it is: users'
        // webhooks never take the environment's proxy.
        let user_http = builder().no_proxy();
        let user_http = if settings.allow_private_webhooks {
            user_http
        } else {
            user_http.dns_resolver(Arc::new(guard::PublicOnly))
        };
        let user_http = user_http.build().map_err(NotifyError::Transport)?;
        let mailer = if settings.smtp.host.is_empty() {
            None
        } else {
            Some(email::Mailer::new(&settings.smtp)?)
        };
        Ok(Arc::new(Self {
            settings: settings.clone(),
            http,
            user_http,
            mailer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_the_outbox_columns() {
        let e = Event::MarketResolved {
            market_id: 7,
            title: "Rain?".into(),
            outcome: true,
            stake: Wei::new("1000000000000000000").unwrap(),
            payout: Wei::new("1500000000000000000").unwrap(),
            winnings: Wei::new("500000000000000000").unwrap(),
        };
        let (name, payload) = e.to_row();
        assert_eq!(name, "market.resolved");
        assert_eq!(payload["stake"], "1000000000000000000");
        assert_eq!(Event::from_row(&name, payload).unwrap(), e);
    }

    #[test]
    fn bad_rows_are_errors_that_say_why() {
        let e = Event::from_row("market.exploded", serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("market.exploded"), "{e}");
        let e = Event::from_row(
            "balance.changed",
            serde_json::json!({"wallet": "0x1", "token": "native", "symbol": "ETH",
                               "old": 12, "new": "3", "block": 1}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("payload.old"), "{e}");
        assert!(matches!(
            e.into_job_error(),
            crate::job::error::JobError::Fatal(_)
        ));
        // A uint256 far beyond u64 is fine; a sign, a point or nothing is not.
        assert!(Wei::new(&"9".repeat(78)).is_ok());
        assert!(Wei::new(&"9".repeat(79)).is_err());
        assert_eq!(Wei::new("007").unwrap().as_str(), "7");
        assert_eq!(Wei::new("000").unwrap().as_str(), "0");
        for bad in ["-1", "1.5", "1e18", "", " 1"] {
            assert!(Wei::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_map_to_what_the_queue_does() {
        let after = Duration::from_secs(30);
        let limited = NotifyError::RateLimited {
            after: Some(after),
            excerpt: "slow down".into(),
        };
        assert!(matches!(limited.into_job_error(), JobError::RetryAfter(_, d) if d == after));
        let limited = NotifyError::RateLimited {
            after: None,
            excerpt: String::new(),
        };
        assert!(matches!(limited.into_job_error(), JobError::Retry(_)));
        let rejected = NotifyError::Rejected {
            status: 400,
            excerpt: "bad embed".into(),
        };
        assert!(!rejected.is_retryable());
        assert_eq!(rejected.response_code(), Some(400));
        assert!(
            matches!(rejected.into_job_error(), JobError::Fatal(e) if e.to_string().contains("bad embed"))
        );
        let down = NotifyError::Unavailable {
            status: 503,
            excerpt: String::new(),
        };
        assert!(down.is_retryable());
        assert!(matches!(down.into_job_error(), JobError::Retry(_)));
    }
}
