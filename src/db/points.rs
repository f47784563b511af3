//! The points ledger: per-user totals and the ranked leaderboards, rebuilt from the append-only
//! ledger of points transactions with set-based SQL.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use sqlx::PgPool;

/// Which board to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Period {
    /// Lifetime net points (earned less burned).
    AllTime,
    /// Net points earned within one ISO week (Monday 00:00 UTC to the next Monday).
    Week { year: i32, week: u32 },
}

impl Period {
    /// Parses `all-time`, `current-week`, `previous-week` or `YYYY-Www`, relative to `now`.
    pub fn parse(s: &str, now: DateTime<Utc>) -> Result<Self, String> {
        let week_of = |t: DateTime<Utc>| {
            let w = t.iso_week();
            Period::Week {
                year: w.year(),
                week: w.week(),
            }
        };
        match s {
            "all-time" => Ok(Period::AllTime),
            "current-week" => Ok(week_of(now)),
            "previous-week" => Ok(week_of(now - Duration::days(7))),
            other => {
                let (y, w) = other.split_once("-W").ok_or_else(|| {
                    format!(
                        "period {other:?}: use all-time, current-week, previous-week or YYYY-Www"
                    )
                })?;
                let (year, week) = (
                    y.parse()
                        .map_err(|_| format!("period {other:?}: bad year"))?,
                    w.parse()
                        .map_err(|_| format!("period {other:?}: bad week"))?,
                );
                NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon)
                    .ok_or_else(|| format!("period {other:?}: no such ISO week"))?;
                Ok(Period::Week { year, week })
            }
        }
    }

    /// The name stored in `leaderboard_entries.period`.
    pub fn name(&self) -> String {
        match self {
            Period::AllTime => "all-time".to_owned(),
            Period::Week { year, week } => format!("{year}-W{week:02}"),
        }
    }

    /// The half-open time range of a week; None for all time.
    pub fn range(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match self {
            Period::AllTime => None,
            Period::Week { year, week } => {
                let monday = NaiveDate::from_isoywd_opt(*year, *week, chrono::Weekday::Mon)?;
                let start = Utc.from_utc_datetime(&monday.and_hms_opt(0, 0, 0)?);
                Some((start, start + Duration::days(7)))
            }
        }
    }
}

/// Recomputes every user's ledger totals; rows that did not change are not written.
/// Returns how many rows changed.
pub async fn rebuild_ledgers(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Two rebuilds at once would do the same work twice; the second waits and finds nothing
    // to change.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('jobfleet:points_ledgers'))")
        .execute(&mut *tx)
        .await?;
    let changed = sqlx::query(
        r#"
        WITH sums AS (
            SELECT user_id,
                   coalesce(sum(amount) FILTER (WHERE kind = 'EARNED'), 0)::bigint AS earned,
                   coalesce(sum(amount) FILTER (WHERE kind = 'BURNED'), 0)::bigint AS burned,
                   (coalesce(sum(amount) FILTER (WHERE kind = 'LOCKED'), 0)
                    - coalesce(sum(amount) FILTER (WHERE kind = 'UNLOCKED'), 0))::bigint AS locked,
                   count(*) AS n
            FROM points_transactions
            GROUP BY user_id
        )
        INSERT INTO points_ledgers (user_id, balance, total_earned, total_burned, locked, tx_count, updated_at)
        SELECT u.id,
               coalesce(s.earned - s.burned - s.locked, 0),
               coalesce(s.earned, 0), coalesce(s.burned, 0), coalesce(s.locked, 0), coalesce(s.n, 0), $1
        FROM users u LEFT JOIN sums s ON s.user_id = u.id
        ON CONFLICT (user_id) DO UPDATE SET
            balance = EXCLUDED.balance, total_earned = EXCLUDED.total_earned,
            total_burned = EXCLUDED.total_burned, locked = EXCLUDED.locked,
            tx_count = EXCLUDED.tx_count, updated_at = EXCLUDED.updated_at
        WHERE (points_ledgers.balance, points_ledgers.total_earned, points_ledgers.total_burned,
               points_ledgers.locked, points_ledgers.tx_count)
              IS DISTINCT FROM
              (EXCLUDED.balance, EXCLUDED.total_earned, EXCLUDED.total_burned,
               EXCLUDED.locked, EXCLUDED.tx_count)
        "#,
    )
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(changed)
}

/// Rebuilds one board: standard competition ranking by points (1, 2, 2, 4), positions
/// ordered by points then user id. The old rows are replaced in the same transaction, so a
/// reader sees the old board or the new one. Returns the number of entries.
pub async fn rebuild_board(
    pool: &PgPool,
    period: &Period,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let name = period.name();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('jobfleet:leaderboard:' || $1))")
        .bind(&name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM leaderboard_entries WHERE period = $1")
        .bind(&name)
        .execute(&mut *tx)
        .await?;
    let scores = match period.range() {
        None => {
            "SELECT user_id, total_earned - total_burned AS points FROM points_ledgers WHERE tx_count > 0"
        }
        Some(_) => {
            "SELECT user_id,
                    (coalesce(sum(amount) FILTER (WHERE kind = 'EARNED'), 0)
                     - coalesce(sum(amount) FILTER (WHERE kind = 'BURNED'), 0))::bigint AS points
             FROM points_transactions
             WHERE created_at >= $3 AND created_at < $4 AND kind IN ('EARNED', 'BURNED')
             GROUP BY user_id"
        }
    };
    let sql = format!(
        "INSERT INTO leaderboard_entries (period, position, rank, user_id, points, built_at)
         SELECT $1, row_number() OVER (ORDER BY points DESC, user_id),
                rank() OVER (ORDER BY points DESC), user_id, points, $2
         FROM ({scores}) s"
    );
    let mut query = sqlx::query(&sql).bind(&name).bind(now);
    if let Some((from, to)) = period.range() {
        query = query.bind(from).bind(to);
    }
    let entries = query.execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_relative_to_now() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(); // a Monday, ISO week 48
        assert_eq!(
            Period::parse("current-week", now).unwrap().name(),
            "2026-W48"
        );
        assert_eq!(
            Period::parse("previous-week", now).unwrap().name(),
            "2026-W47"
        );
        assert_eq!(Period::parse("all-time", now).unwrap(), Period::AllTime);
        let w = Period::parse("2026-W47", now).unwrap();
        let (from, to) = w.range().unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap());
        assert_eq!(to, now);
        assert!(Period::parse("2026-W54", now).is_err());
        assert!(Period::parse("weekly", now).is_err());
    }
}
