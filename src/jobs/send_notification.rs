//! `send_notification`: delivers one notification on one channel and logs the attempt.
//!
//! Args: `{"notification_id": 12, "channel": "email" | "discord" | "slack" | "webhook"}`.
//! Each run loads the row and the user's addresses and choices as they are now, renders the
//! event, sends it once and writes one `notification_deliveries` row (sent, retrying or
//! failed). It never waits in a loop: a failure goes back to the queue, which retries with the
//! kind's backoff, after Retry-After for a 429, or moves it to dead for a refusal (other 4xx, a
//! 5xx SMTP reply) or a row that does not decode.
//!
//! Idempotent: a delivery already logged as sent (for the platform feeds, any of the same
//! subject) is skipped. Two runs of one delivery at the very same moment could both send; the
//! deterministic job id makes that rare, and receivers get a stable id to deduplicate on (the
//! `X-Jobfleet-Delivery` header, the email's Message-ID).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use crate::db::notifications::{self, Attempt, Delivery, Status};
use crate::job::{Job, JobArgs, JobContext, JobError};
use crate::notify::guard;
use crate::notify::webhook::{self, Post};
use crate::notify::{Channel, Event, Notifier, NotifyError, Rendered};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendNotification {
    pub notification_id: i64,
    pub channel: Channel,
    /// The receiving host (the SMTP server, Discord's, Slack's, the user's endpoint's), which
    /// the kind's fleet-wide limits are kept per (`[limits] key = "host"`). Absent in jobs
    /// enqueued before it existed: those share one budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// What a run did when it did not fail.
enum Done {
    /// Delivered: the receiver's status code and the start of its answer.
    Sent(i32, String),
    /// Nothing to do, and why.
    Skipped(&'static str),
}

impl JobArgs for SendNotification {
    const KIND: &'static str = "send_notification";
}

impl Job<Resources> for SendNotification {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let pool = &ctx.state().db;
        let Some(row) = notifications::load(pool, self.notification_id)
            .await
            .map_err(JobError::retry)?
        else {
            // The row went with its user (ON DELETE CASCADE): nobody is left to tell.
            tracing::info!(
                id = self.notification_id,
                "notification is gone, nothing to send"
            );
            return Ok(());
        };
        if notifications::already_sent(pool, &row, self.channel)
            .await
            .map_err(JobError::retry)?
        {
            tracing::info!(id = row.id, channel = %self.channel, "already delivered, skipped");
            return Ok(());
        }
        let notifier = ctx
            .state()
            .notifier
            .get_or_try_init(|| async { Notifier::new(&ctx.state().settings.notify) })
            .await
            .map_err(|e| e.into_job_error())?;
        let started = Instant::now();
        let result = deliver(notifier, &row, self.channel).await;
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let mut attempt = Attempt {
            notification_id: row.id,
            channel: self.channel,
            attempt: ctx.attempt,
            status: Status::Sent,
            response_code: None,
            error: None,
            excerpt: None,
            duration_ms,
        };
        match result {
            Ok(Done::Skipped(why)) => {
                tracing::info!(id = row.id, channel = %self.channel, why, "not delivered");
                Ok(())
            }
            Ok(Done::Sent(code, answer)) => {
                attempt.response_code = Some(code);
                attempt.excerpt = Some(&answer);
                // The delivery happened: a failure to log it must not send it again.
                if let Err(e) = notifications::log_attempt(pool, &attempt).await {
                    tracing::warn!(id = row.id, error = %e, "delivered, but the attempt was not logged");
                }
                tracing::info!(id = row.id, channel = %self.channel, event = %row.event, code, "notification delivered");
                Ok(())
            }
            Err(e) => {
                let last = ctx.attempt >= ctx.max_attempts;
                attempt.status = if e.is_retryable() && !last {
                    Status::Retrying
                } else {
                    Status::Failed
                };
                attempt.response_code = e.response_code();
                attempt.excerpt = e.excerpt();
                attempt.error = Some(crate::job::error_chain(&e));
                if let Err(log) = notifications::log_attempt(pool, &attempt).await {
                    tracing::warn!(id = row.id, error = %log, "the failed attempt was not logged");
                }
                Err(e.into_job_error())
            }
        }
    }
}

/// Renders and sends one row on one channel.
async fn deliver(n: &Arc<Notifier>, row: &Delivery, channel: Channel) -> Result<Done, NotifyError> {
    // Decoded first, whatever the channel: a row that cannot be rendered is reported as
    // such, not as a missing address.
    let event = Event::from_row(&row.event, row.payload.clone())?;
    let rendered = Rendered::of(&event);
    let created_at = row
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match channel {
        Channel::Email => {
            let (Some(to), true) = (row.email.as_deref(), row.email_enabled) else {
                return Ok(Done::Skipped(
                    "no email address, or email turned off since dispatch",
                ));
            };
            let mailer = n
                .mailer
                .as_ref()
                .ok_or_else(|| NotifyError::Unconfigured("notify.smtp.host is not set".into()))?;
            let reply = mailer.send(mailer.message(row.id, to, &rendered)?).await?;
            Ok(Done::Sent(250, reply))
        }
        Channel::Discord | Channel::Slack => {
            if !event.is_public() {
                return Err(NotifyError::Unconfigured(format!(
                    "{} is private and never goes to the {channel} feed",
                    event.name()
                )));
            }
            let (url, body) = if channel == Channel::Discord {
                (
                    &n.settings.discord_webhook_url,
                    webhook::discord_body(&rendered, &created_at),
                )
            } else {
                (
                    &n.settings.slack_webhook_url,
                    webhook::slack_body(&rendered),
                )
            };
            if url.is_empty() {
                return Err(NotifyError::Unconfigured(format!(
                    "notify.{channel}_webhook_url is not set"
                )));
            }
            let (code, answer) = webhook::send(&n.http, Post::json(url.expose(), &body)).await?;
            Ok(Done::Sent(i32::from(code), answer))
        }
        Channel::Webhook => {
            let (Some(url), Some(secret), true) = (
                row.webhook_url.as_deref(),
                row.webhook_secret.as_deref(),
                row.webhook_enabled,
            ) else {
                return Ok(Done::Skipped(
                    "no webhook endpoint, or turned off since dispatch",
                ));
            };
            if !n.settings.allow_private_webhooks {
                guard::check_url(url).map_err(NotifyError::Unconfigured)?;
            }
            let body = webhook::generic_body(row.id, event.name(), &row.payload, &created_at);
            let mut post =
                Post::json(url, &body).signed(secret.as_bytes(), chrono::Utc::now().timestamp());
            post.headers
                .push(("X-Jobfleet-Event", event.name().to_owned()));
            post.headers
                .push(("X-Jobfleet-Delivery", row.id.to_string()));
            let (code, answer) = webhook::send(&n.user_http, post).await?;
            Ok(Done::Sent(i32::from(code), answer))
        }
    }
}
