//! Discussion snapshots: what to snapshot, what to record, what to prune.
//!
//! A snapshot row is written once per (market, window) through the unique key with
//! `ON CONFLICT DO NOTHING`, and marked pruned once through the guard `pruned_at IS NULL`.
//! Rows are never deleted: they are the audit trail of what was published, and when.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::ipfs::document::{Message, Window};

/// One snapshot as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct SnapshotRow {
    pub id: i64,
    pub market_id: i64,
    pub cid: String,
    /// The parts of a day split over several blocks; empty for a one-block day.
    pub part_cids: Vec<String>,
    pub message_count: i32,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub pruned_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, market_id, cid, part_cids, message_count, window_start, window_end, \
                       created_at, pruned_at";

/// Markets that are live for discussion (ACTIVE, RESOLVING, DISPUTED), have at least one
/// message in the window, and have no snapshot of it yet, by id.
pub async fn markets_to_snapshot(pool: &PgPool, window: Window) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT m.id FROM markets m
         WHERE m.state IN ('ACTIVE', 'RESOLVING', 'DISPUTED')
           AND EXISTS (SELECT 1 FROM discussions d
                       WHERE d.market_id = m.id AND d.deleted_at IS NULL
                         AND d.created_at >= $1 AND d.created_at < $2)
           AND NOT EXISTS (SELECT 1 FROM discussion_snapshots s
                           WHERE s.market_id = m.id AND s.window_start = $1)
         ORDER BY m.id",
    )
    .bind(window.start)
    .bind(window.end)
    .fetch_all(pool)
    .await
}

/// A market's messages of the window that are not deleted, oldest first (ties by id, so the
/// order, and the document's bytes, never depend on the plan).
pub async fn messages(
    pool: &PgPool,
    market_id: i64,
    window: Window,
) -> Result<Vec<Message>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, author_id, created_at, content FROM discussions
         WHERE market_id = $1 AND deleted_at IS NULL AND created_at >= $2 AND created_at < $3
         ORDER BY created_at, id",
    )
    .bind(market_id)
    .bind(window.start)
    .bind(window.end)
    .fetch_all(pool)
    .await
}

/// Records a snapshot; false when the window already had one (a concurrent run's).
pub async fn record(
    pool: &PgPool,
    market_id: i64,
    window: Window,
    cid: &str,
    part_cids: &[String],
    message_count: usize,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let count = i32::try_from(message_count).unwrap_or(i32::MAX);
    let done = sqlx::query(
        "INSERT INTO discussion_snapshots
             (market_id, cid, part_cids, message_count, window_start, window_end, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (market_id, window_start) DO NOTHING",
    )
    .bind(market_id)
    .bind(cid)
    .bind(part_cids)
    .bind(count)
    .bind(window.start)
    .bind(window.end)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a snapshot created at `created_at` is past the retention at `now`: exactly at the
/// retention it is (90 days old is pruned, 89 days 23 hours is kept).
pub fn is_expired(
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    retention: std::time::Duration,
) -> bool {
    chrono::Duration::from_std(retention).is_ok_and(|r| created_at <= now - r)
}

/// Up to `limit` snapshots still pinned and past the retention at `now`, oldest first; the
/// condition is `is_expired`'s.
pub async fn due_for_pruning(
    pool: &PgPool,
    now: DateTime<Utc>,
    retention: std::time::Duration,
    limit: i64,
) -> Result<Vec<SnapshotRow>, sqlx::Error> {
    let cutoff = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM discussion_snapshots
         WHERE pruned_at IS NULL AND created_at <= $1
         ORDER BY created_at, id LIMIT $2"
    ))
    .bind(cutoff)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Marks a snapshot pruned; false when it already was.
pub async fn mark_pruned(pool: &PgPool, id: i64, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE discussion_snapshots SET pruned_at = $2 WHERE id = $1 AND pruned_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A market's snapshots, newest window first.
pub async fn for_market(pool: &PgPool, market_id: i64) -> Result<Vec<SnapshotRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM discussion_snapshots WHERE market_id = $1
         ORDER BY window_start DESC"
    ))
    .bind(market_id)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_edge() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ninety = std::time::Duration::from_secs(90 * 86_400);
        let day = chrono::Duration::days(1);
        assert!(is_expired(now - day * 90, now, ninety));
        assert!(is_expired(now - day * 91, now, ninety));
        assert!(!is_expired(
            now - day * 89 - chrono::Duration::hours(23),
            now,
            ninety
        ));
        assert!(!is_expired(
            now - day * 90 + chrono::Duration::milliseconds(1),
            now,
            ninety
        ));
    }
}
