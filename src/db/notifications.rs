//! The notifications outbox: producers `record` events in their own transaction,
//! `dispatch_notifications` claims undispatched rows with each user's channels resolved, and
//! `send_notification` loads a row, checks it was not delivered already and logs each attempt.
//!
//! Channels: `email` (the user's address) and `webhook` (the user's endpoint in
//! `notification_webhooks`) are the user's, on unless opted out in `notification_preferences`
//! (the SQL function `notification_enabled`). `discord` and `slack` are the platform's feeds,
//! on when configured, for public events only, one post per subject (the generated column
//! `notifications.subject`, e.g. `dispute.raised:17`) however many users are notified.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::notify::{Channel, Event};

/// Queues a notification for a user inside the caller's transaction. Returns false when a row
/// with this dedupe key exists already (a re-run of the producer), which is not an error.
pub async fn record(
    conn: &mut PgConnection,
    user_id: i64,
    event: &Event,
    dedupe_key: &str,
) -> Result<bool, sqlx::Error> {
    let (name, payload) = event.to_row();
    let done = sqlx::query(
        "INSERT INTO notifications (user_id, event, payload, dedupe_key) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(user_id)
    .bind(name)
    .bind(payload)
    .bind(dedupe_key)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An undispatched row and where its user wants it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Pending {
    pub id: i64,
    pub event: String,
    /// The user has an email address and has not opted out of this event by email.
    pub email: bool,
    /// The user has a webhook endpoint and has not opted out of this event on it.
    pub webhook: bool,
    /// No earlier row has the same subject, so this one carries the platform feeds' post.
    pub first_of_subject: bool,
    /// The URL of the user's webhook endpoint, if they have one.
    pub webhook_url: Option<String>,
}

/// Locks up to `limit` undispatched rows, oldest first, for the caller's transaction. Rows
/// locked by a concurrent dispatch are skipped, so two dispatches share the work instead of
/// doing it twice; the locks last until the caller marks the rows and commits.
pub async fn claim(conn: &mut PgConnection, limit: i64) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.id, n.event,
                u.email IS NOT NULL AND notification_enabled(n.user_id, 'email', n.event) AS email,
                w.user_id IS NOT NULL AND notification_enabled(n.user_id, 'webhook', n.event) AS webhook,
                NOT EXISTS (SELECT 1 FROM notifications o
                            WHERE o.subject = n.subject AND o.id < n.id) AS first_of_subject,
                w.url AS webhook_url
         FROM notifications n
         JOIN users u ON u.id = n.user_id
         LEFT JOIN notification_webhooks w ON w.user_id = n.user_id
         WHERE n.dispatched_at IS NULL
         ORDER BY n.id
         LIMIT $1
         FOR UPDATE OF n SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Marks rows dispatched (after their jobs are enqueued).
pub async fn mark_dispatched(
    conn: &mut PgConnection,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE notifications SET dispatched_at = $2 WHERE id = ANY($1) AND dispatched_at IS NULL",
    )
    .bind(ids)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A row to deliver, with the user's addresses and choices as they are now.
#[derive(Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub user_id: i64,
    pub event: String,
    pub payload: serde_json::Value,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub email: Option<String>,
    pub email_enabled: bool,
    pub webhook_url: Option<String>,
    /// The endpoint's HMAC key: never logged (see the `Debug` below).
    pub webhook_secret: Option<String>,
    pub webhook_enabled: bool,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("event", &self.event)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

pub async fn load(pool: &PgPool, id: i64) -> Result<Option<Delivery>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.id, n.user_id, n.event, n.payload, n.subject, n.created_at,
                u.email, notification_enabled(n.user_id, 'email', n.event) AS email_enabled,
                w.url AS webhook_url, w.secret AS webhook_secret,
                notification_enabled(n.user_id, 'webhook', n.event) AS webhook_enabled
         FROM notifications n
         JOIN users u ON u.id = n.user_id
         LEFT JOIN notification_webhooks w ON w.user_id = n.user_id
         WHERE n.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Whether this delivery happened already: for a user's channel, this row on this channel;
/// for a platform feed, any row of the same subject on this feed.
pub async fn already_sent(
    pool: &PgPool,
    d: &Delivery,
    channel: Channel,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM notification_deliveries x
             JOIN notifications n ON n.id = x.notification_id
             WHERE x.channel = $2 AND x.status = 'sent'
               AND (x.notification_id = $1 OR ($3 AND n.subject = $4)))",
    )
    .bind(d.id)
    .bind(channel.as_str())
    .bind(channel.is_platform())
    .bind(&d.subject)
    .fetch_one(pool)
    .await
}

/// How one attempt ended, for the deliveries log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Sent,
    /// Failed, and the queue will try again.
    Retrying,
    /// Failed for good: fatal, or the last attempt.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
        }
    }
}

/// One row of `notification_deliveries`.
#[derive(Clone, Debug)]
pub struct Attempt<'a> {
    pub notification_id: i64,
    pub channel: Channel,
    pub attempt: u32,
    pub status: Status,
    pub response_code: Option<i32>,
    pub error: Option<String>,
    pub excerpt: Option<&'a str>,
    pub duration_ms: i32,
}

pub async fn log_attempt(pool: &PgPool, a: &Attempt<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_deliveries
             (notification_id, channel, attempt, status, response_code, error, response_excerpt,
              duration_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(a.notification_id)
    .bind(a.channel.as_str())
    .bind(i32::try_from(a.attempt).unwrap_or(i32::MAX))
    .bind(a.status.as_str())
    .bind(a.response_code)
    .bind(&a.error)
    .bind(a.excerpt)
    .bind(a.duration_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// One delivery attempt as operators see it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub notification_id: i64,
    pub subject: String,
    pub channel: String,
    pub attempt: i32,
    pub status: String,
    pub response_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: Option<i32>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The newest delivery attempts, of one status when given (`sent`, `failed`, `retrying`).
pub async fn recent_deliveries(
    pool: &PgPool,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT x.id, x.notification_id, n.subject, x.channel, x.attempt, x.status,
                x.response_code, x.error, x.duration_ms, x.created_at
         FROM notification_deliveries x JOIN notifications n ON n.id = x.notification_id
         WHERE $1::text IS NULL OR x.status = $1
         ORDER BY x.id DESC LIMIT $2",
    )
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await
}
