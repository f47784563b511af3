//! `dispatch_notifications`: turns undispatched rows of the `notifications` outbox into
//! `send_notification` jobs, one per (row, channel), then marks the rows dispatched.
//!
//! Crash-safe and idempotent: a batch is claimed with row locks (`FOR UPDATE SKIP LOCKED`, so
//! concurrent runs split the work), enqueued, and only then marked, in the same transaction.
//! A crash after the enqueue leaves the rows undispatched; the next run enqueues them again
//! with the same job ids (`notify:<id>:<channel>`), which the queue deduplicates while the
//! first job exists, and `send_notification` skips a delivery that was already sent.

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use super::send_notification::SendNotification;
use crate::config::NotifySettings;
use crate::db::notifications::{self, Pending};
use crate::job::{Job, JobArgs, JobContext, JobError};
use crate::job::{RegistryError, Specs};
use crate::notify::{Channel, Event};
use crate::queue::NewJob;

/// Batches per run: a backlog is worked through over several ticks rather than in one run that
/// could outlast its timeout.
const MAX_BATCHES: usize = 20;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchNotifications {}

impl JobArgs for DispatchNotifications {
    const KIND: &'static str = "dispatch_notifications";
}

impl Job<Resources> for DispatchNotifications {
    async fn run(self, ctx: JobContext<Resources>) -> Result<(), JobError> {
        let res = ctx.state();
        let limit = i64::from(res.settings.notify.dispatch_batch);
        let (mut rows, mut jobs) = (0, 0);
        for _ in 0..MAX_BATCHES {
            let (claimed, enqueued) = dispatch_batch(&ctx, limit).await?;
            rows += claimed;
            jobs += enqueued;
            if (claimed as i64) < limit {
                break;
            }
        }
        if rows > 0 {
            tracing::info!(rows, jobs, "notifications dispatched");
        }
        Ok(())
    }
}

/// One batch: claim, enqueue, mark, commit. Returns (rows, jobs enqueued or found queued).
async fn dispatch_batch(
    ctx: &JobContext<Resources>,
    limit: i64,
) -> Result<(usize, usize), JobError> {
    let res = ctx.state();
    let mut tx = res.db.begin().await.map_err(JobError::retry)?;
    let claimed = notifications::claim(&mut tx, limit)
        .await
        .map_err(JobError::retry)?;
    if claimed.is_empty() {
        return Ok((0, 0));
    }
    let specs = ctx.client().specs();
    let jobs: Vec<NewJob> = claimed
        .iter()
        .flat_map(|row| {
            channels(row, &res.settings.notify)
                .into_iter()
                .map(move |channel| {
                    let host = receiver_host(row, channel, &res.settings.notify);
                    send_job(row.id, channel, host, specs)
                })
        })
        .collect::<Result<_, _>>()
        .map_err(JobError::fatal)?;
    let count = jobs.len();
    if !jobs.is_empty() {
        // On an error the transaction is dropped, rolled back: the rows stay undispatched and
        // the retry enqueues them again under the same ids.
        ctx.client().enqueue_jobs(jobs).await?;
    }
    let ids: Vec<i64> = claimed.iter().map(|r| r.id).collect();
    notifications::mark_dispatched(&mut tx, &ids, chrono::Utc::now())
        .await
        .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)?;
    Ok((claimed.len(), count))
}

/// The job that delivers one row on one channel, with its kind's spec and a deterministic id.
/// `host` is the receiver's host, which the kind's limits are kept per.
pub fn send_job(
    id: i64,
    channel: Channel,
    host: Option<String>,
    specs: &Specs,
) -> Result<NewJob, RegistryError> {
    let job = SendNotification {
        notification_id: id,
        channel,
        host,
    };
    Ok(specs.job(&job)?.id(format!("notify:{id}:{channel}")))
}

/// The host a channel delivers to: the SMTP server for email, the host of the configured
/// feed URL for Discord and Slack, the host of the user's endpoint for a webhook.
pub fn receiver_host(row: &Pending, channel: Channel, settings: &NotifySettings) -> Option<String> {
    match channel {
        Channel::Email => Some(settings.smtp.host.clone()).filter(|h| !h.is_empty()),
        Channel::Discord => host_of(settings.discord_webhook_url.expose()),
        Channel::Slack => host_of(settings.slack_webhook_url.expose()),
        Channel::Webhook => row.webhook_url.as_deref().and_then(host_of),
    }
}

/// The host of an http(s) URL, without credentials or port; the URL's path (where a feed's
/// token is) never leaves this function.
fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// The channels a row goes to. Pure, so the routing rules are unit tests: the user's channels
/// as the user chose them (when this deployment can send email at all); the platform feeds
/// that are configured, for public events, once per subject. An event this program does not
/// know goes to the user's channels, where `send_notification` sends it to dead with the
/// reason, so it is seen rather than dropped.
pub fn channels(row: &Pending, settings: &NotifySettings) -> Vec<Channel> {
    let mut out = Vec::new();
    if row.email && !settings.smtp.host.is_empty() {
        out.push(Channel::Email);
    }
    if row.webhook {
        out.push(Channel::Webhook);
    }
    if row.first_of_subject && Event::is_public_name(&row.event) {
        if !settings.discord_webhook_url.is_empty() {
            out.push(Channel::Discord);
        }
        if !settings.slack_webhook_url.is_empty() {
            out.push(Channel::Slack);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings(smtp: bool, discord: bool, slack: bool) -> NotifySettings {
        let s = crate::config::Settings::load_from(&crate::config::Sources {
            config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            env: Some("test".into()),
            vars: Vec::new(),
        })
        .unwrap();
        let mut n = s.notify;
        n.smtp.host = if smtp {
            "127.0.0.1".into()
        } else {
            String::new()
        };
        n.discord_webhook_url = Secret::new(if discord { "http://127.0.0.1:1/d" } else { "" });
        n.slack_webhook_url = Secret::new(if slack { "http://127.0.0.1:1/s" } else { "" });
        n
    }

    fn row(event: &str, email: bool, webhook: bool, first: bool) -> Pending {
        Pending {
            id: 1,
            event: event.into(),
            email,
            webhook,
            first_of_subject: first,
            webhook_url: webhook.then(|| "https://User:pw@Hooks.Example.com:8443/in/x".into()),
        }
    }

    #[test]
    fn each_channel_is_limited_by_its_receivers_host() {
        let mut s = settings(true, true, true);
        s.discord_webhook_url = Secret::new("https://discord.com/api/webhooks/1/token");
        let r = row("market.resolved", true, true, true);
        assert_eq!(
            receiver_host(&r, Channel::Webhook, &s).as_deref(),
            Some("hooks.example.com")
        );
        assert_eq!(
            receiver_host(&r, Channel::Discord, &s).as_deref(),
            Some("discord.com")
        );
        let none = row("market.resolved", true, false, true);
        assert_eq!(receiver_host(&none, Channel::Webhook, &s), None);
    }

    #[test]
    fn users_channels_follow_their_choices_and_feeds_their_config() {
        let all = settings(true, true, true);
        use Channel::*;
        assert_eq!(
            channels(&row("dispute.raised", true, true, true), &all),
            vec![Email, Webhook, Discord, Slack]
        );
        // Opted out of email, no webhook: the feeds only.
        assert_eq!(
            channels(&row("market.approved", false, false, true), &all),
            vec![Discord, Slack]
        );
        // A second row of the same subject does not post again.
        assert_eq!(
            channels(&row("market.approved", true, false, false), &all),
            vec![Email]
        );
        // Private events never reach the feeds.
        assert_eq!(
            channels(&row("balance.changed", false, true, true), &all),
            vec![Webhook]
        );
        // No SMTP server configured: no email jobs that could only die.
        assert_eq!(
            channels(
                &row("dispute.resolved", true, false, true),
                &settings(false, false, true)
            ),
            vec![Slack]
        );
        // Unknown events go where a user's delivery will report them.
        assert_eq!(
            channels(&row("market.exploded", true, false, true), &all),
            vec![Email]
        );
    }

    #[test]
    fn job_ids_are_deterministic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
        let specs = Specs::load(&[&dir]).unwrap();
        let job = send_job(42, Channel::Slack, Some("hooks.slack.com".into()), &specs).unwrap();
        assert_eq!(
            job.max_attempts,
            specs.spec("send_notification").unwrap().retry.max_attempts
        );
        assert_eq!(job.id.as_deref(), Some("notify:42:slack"));
        assert_eq!(job.queue, "notifications");
        assert_eq!(
            job.args,
            serde_json::json!({"notification_id": 42, "channel": "slack", "host": "hooks.slack.com"})
        );
    }
}
