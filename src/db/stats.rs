//! `platform_stats`: one row of the platform's figures per 15-minute period, for operators'
//! charts (users, wallets, markets by state, votes in the last hour, the chain outbox by status,
//! notifications waiting for dispatch, points issued in the period).
//!
//! The period is the quarter hour that ends at the job's tick, so every run of one tick (a
//! retry, `enqueue-now` beside the tick's job, two workers at once) writes the same key, and
//! the first write wins: the insert is skipped when the row exists and is `ON CONFLICT DO
//! NOTHING` for a race. The points and votes are counted over the period's own times, so they
//! do not depend on when the run happens; the totals (users, markets, outbox, pending
//! notifications) are what the tables hold when it runs.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::PgPool;

/// The length of a period, in seconds: the schedule's 15 minutes (`jobs/platform_stats.toml`).
pub const PERIOD_SECS: i64 = 15 * 60;

/// A half-open period `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl StatsPeriod {
    /// The quarter hour (UTC) that ends at `tick` floored to a quarter hour: the 10:15 tick,
    /// and a run of it at 10:29, both give 10:00 to 10:15.
    pub fn ending_at(tick: DateTime<Utc>) -> Self {
        let secs = tick.timestamp();
        let end = secs - secs.rem_euclid(PERIOD_SECS);
        let at = |s: i64| {
            Utc.timestamp_opt(s, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        Self {
            start: at(end - PERIOD_SECS),
            end: at(end),
        }
    }
}

/// One row of `platform_stats`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct StatsRow {
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub users: i64,
    pub wallets: i64,
    /// Every market state with its count, zeros included.
    pub markets_by_state: Value,
    pub proposal_votes_last_hour: i64,
    pub dispute_votes_last_hour: i64,
    /// Every outbox status with its count, zeros included.
    pub outbox_by_status: Value,
    pub notifications_pending: i64,
    pub points_issued: i64,
    pub recorded_at: DateTime<Utc>,
}

/// One statement: the totals are plain counts, the period's votes and points indexed range
/// reads (by `created_at`); nothing is locked.
const RECORD: &str = "
INSERT INTO platform_stats (period_start, period_end, users, wallets, markets_by_state,
                            proposal_votes_last_hour, dispute_votes_last_hour, outbox_by_status,
                            notifications_pending, points_issued)
SELECT $1, $2,
       (SELECT count(*) FROM users),
       (SELECT count(*) FROM wallets),
       (SELECT jsonb_object_agg(s.state::text, coalesce(c.n, 0))
        FROM unnest(enum_range(NULL::market_state)) AS s (state)
        LEFT JOIN (SELECT state, count(*) AS n FROM markets GROUP BY state) c USING (state)),
       (SELECT count(*) FROM proposal_votes
        WHERE created_at >= $2 - interval '1 hour' AND created_at < $2),
       (SELECT count(*) FROM dispute_votes
        WHERE created_at >= $2 - interval '1 hour' AND created_at < $2),
       (SELECT jsonb_object_agg(s.status::text, coalesce(c.n, 0))
        FROM unnest(enum_range(NULL::outbox_status)) AS s (status)
        LEFT JOIN (SELECT status, count(*) AS n FROM chain_outbox GROUP BY status) c USING (status)),
       (SELECT count(*) FROM notifications WHERE dispatched_at IS NULL),
       (SELECT coalesce(sum(amount), 0)::bigint FROM points_transactions
        WHERE kind = 'EARNED' AND created_at >= $1 AND created_at < $2)
WHERE NOT EXISTS (SELECT 1 FROM platform_stats WHERE period_start = $1)
ON CONFLICT (period_start) DO NOTHING";

/// Records the figures of `period`; false when a run of the same tick recorded them first.
pub async fn record(pool: &PgPool, period: StatsPeriod) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(RECORD)
        .bind(period.start)
        .bind(period.end)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The row of the period that starts at `start`.
pub async fn get(pool: &PgPool, start: DateTime<Utc>) -> Result<Option<StatsRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT period_start, period_end, users, wallets, markets_by_state,
                proposal_votes_last_hour, dispute_votes_last_hour, outbox_by_status,
                notifications_pending, points_issued, recorded_at
         FROM platform_stats WHERE period_start = $1",
    )
    .bind(start)
    .fetch_optional(pool)
    .await
}

/// The newest `limit` rows, newest first, for the board's page.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<StatsRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT period_start, period_end, users, wallets, markets_by_state,
                proposal_votes_last_hour, dispute_votes_last_hour, outbox_by_status,
                notifications_pending, points_issued, recorded_at
         FROM platform_stats ORDER BY period_start DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_tick_and_its_late_runs_name_one_period() {
        let p = StatsPeriod::ending_at(at("2026-12-02T10:15:00Z"));
        assert_eq!(
            (p.start, p.end),
            (at("2026-12-02T10:00:00Z"), at("2026-12-02T10:15:00Z"))
        );
        // A retry of the 10:15 tick, however late within the quarter, writes the same row.
        assert_eq!(StatsPeriod::ending_at(at("2026-12-02T10:29:59.999Z")), p);
        assert_ne!(StatsPeriod::ending_at(at("2026-12-02T10:30:00Z")), p);
        // Across midnight and the epoch's sign, the floor is still a quarter hour.
        let m = StatsPeriod::ending_at(at("2026-12-03T00:05:00Z"));
        assert_eq!(m.start, at("2026-12-02T23:45:00Z"));
        let before = StatsPeriod::ending_at(at("1969-12-31T23:59:00Z"));
        assert_eq!(before.end, at("1969-12-31T23:45:00Z"));
    }
}
