//! The points ledger: per-user totals kept up to date from the append-only ledger of points
//! transactions (only the users with new transactions), and the ranked leaderboards, each
//! built beside the old one and swapped in, with set-based SQL.

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
                // A board's name is its partition's name too, so it must keep the stored
                // form `YYYY-Www` (four digits).
                if !(1000..=9999).contains(&year) {
                    return Err(format!("period {other:?}: the year must have four digits"));
                }
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

/// The upsert both ledger rebuilds end with: one row per user of `targets`, from that user's
/// sums in `sums` (none: a zero ledger). Rows that would not change are not written, so a
/// re-run changes nothing and the count it returns is what changed.
const UPSERT_LEDGERS: &str = r#"
    INSERT INTO points_ledgers (user_id, balance, total_earned, total_burned, locked, tx_count, updated_at)
    SELECT u.id,
           coalesce(s.earned - s.burned - s.locked, 0),
           coalesce(s.earned, 0), coalesce(s.burned, 0), coalesce(s.locked, 0), coalesce(s.n, 0), $1
    FROM targets u LEFT JOIN sums s ON s.user_id = u.id
    ON CONFLICT (user_id) DO UPDATE SET
        balance = EXCLUDED.balance, total_earned = EXCLUDED.total_earned,
        total_burned = EXCLUDED.total_burned, locked = EXCLUDED.locked,
        tx_count = EXCLUDED.tx_count, updated_at = EXCLUDED.updated_at
    WHERE (points_ledgers.balance, points_ledgers.total_earned, points_ledgers.total_burned,
           points_ledgers.locked, points_ledgers.tx_count)
          IS DISTINCT FROM
          (EXCLUDED.balance, EXCLUDED.total_earned, EXCLUDED.total_burned,
           EXCLUDED.locked, EXCLUDED.tx_count)
"#;

/// One user's totals, summed over the transactions the statement can see.
const SUMS: &str = r#"
    SELECT user_id,
           coalesce(sum(amount) FILTER (WHERE kind = 'EARNED'), 0)::bigint AS earned,
           coalesce(sum(amount) FILTER (WHERE kind = 'BURNED'), 0)::bigint AS burned,
           (coalesce(sum(amount) FILTER (WHERE kind = 'LOCKED'), 0)
            - coalesce(sum(amount) FILTER (WHERE kind = 'UNLOCKED'), 0))::bigint AS locked,
           count(*) AS n
    FROM points_transactions
"#;

/// Folds the new transactions into the ledgers: recomputes the ledgers of the users that
/// `points_ledger_dirty` lists, and only those. Returns how many ledger rows changed.
///
/// Why a dirty list and not "every transaction above the last folded id": the API servers
/// insert transactions in their own transactions, which can commit out of id order, so an id
/// below the last one folded can still appear. The triggers of the migration
/// `20261203000001_leaderboard_incremental.sql` add the user ids of each insert into
/// `points_transactions` (and of each new user, who gets a zero ledger) to the list in the
/// writer's transaction, so a listed user's transactions are visible whenever the row that
/// lists them is (they commit together). The fold deletes the rows it can see, then sums
/// those users' transactions in a later statement, whose snapshot sees at least as much; a
/// writer that has not committed yet keeps its row for the next fold. The list has no unique
/// key, so writers never wait for each other on it; a user listed twice is folded once.
/// A one-row state of folded id ranges would also be exact, but must keep the gaps of
/// uncommitted ids until the transaction horizon passes them; the list needs no such
/// bookkeeping.
pub async fn fold_ledgers(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    write_ledgers(pool, now, false).await
}

/// Recomputes every user's ledger from all the transactions, the repair for a ledger that was
/// changed by hand or a dirty list that lost rows (job args `{"full": true}`). It empties the
/// dirty list first, so what it removes is folded here. Returns how many ledger rows changed.
pub async fn rebuild_ledgers(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    write_ledgers(pool, now, true).await
}

async fn write_ledgers(pool: &PgPool, now: DateTime<Utc>, full: bool) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Two folds at once could each sum a user from its own snapshot, and the older one could
    // commit last; taking turns makes the later fold see everything the earlier one wrote
    // (each statement of READ COMMITTED takes a new snapshot after the lock is granted).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('jobfleet:points_ledgers'))")
        .execute(&mut *tx)
        .await?;
    let mut dirty: Vec<i64> =
        sqlx::query_scalar("DELETE FROM points_ledger_dirty RETURNING user_id")
            .fetch_all(&mut *tx)
            .await?;
    let changed = if full {
        let sql = format!(
            "WITH targets AS (SELECT id FROM users), sums AS ({SUMS} GROUP BY user_id)
             {UPSERT_LEDGERS}"
        );
        sqlx::query(&sql)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
    } else if dirty.is_empty() {
        0
    } else {
        dirty.sort_unstable();
        dirty.dedup();
        // The ids are passed in rather than read from the list in this statement: the planner
        // then knows how many there are (the list's statistics are of whenever it was last
        // analysed) and reads a few thousand users through the index, not the whole table.
        let sql = format!(
            "WITH targets AS (SELECT id FROM users WHERE id = ANY($2)),
                  sums AS ({SUMS} WHERE user_id = ANY($2) GROUP BY user_id)
             {UPSERT_LEDGERS}"
        );
        sqlx::query(&sql)
            .bind(now)
            .bind(&dirty)
            .execute(&mut *tx)
            .await?
            .rows_affected()
    };
    if changed > 0 {
        // The all-time board is built from the ledgers: a new generation tells it to rebuild.
        sqlx::query("UPDATE points_ledger_state SET generation = generation + 1")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// What one run of a board did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardBuild {
    /// Entries on the board after the run.
    pub entries: u64,
    /// The board's inputs had not changed since it was built, so it was left as it was.
    pub skipped: bool,
}

/// Rebuilds one board whatever its inputs; returns the number of entries. See
/// [`refresh_board`].
pub async fn rebuild_board(
    pool: &PgPool,
    period: &Period,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(build_board(pool, period, now, true).await?.entries)
}

/// Rebuilds one board unless its inputs are the ones it was last built from (recorded in
/// `leaderboard_builds`): the ledgers' generation for all time, the count and highest id of
/// the week's transactions for a week (the table is append-only, so any new transaction
/// changes the count).
///
/// Standard competition ranking by points (1, 2, 2, 4), positions ordered by points then user
/// id. The board is filled into a fresh table beside the old one, which is then swapped in as
/// the period's partition of `leaderboard_entries` in the same transaction: deleting and
/// inserting 100,000 rows of a period, with their index entries, took most of the run. A READ
/// COMMITTED reader sees the old board or the new one; docs/database.md says what a
/// REPEATABLE READ reader may see.
pub async fn refresh_board(
    pool: &PgPool,
    period: &Period,
    now: DateTime<Utc>,
) -> Result<BoardBuild, sqlx::Error> {
    build_board(pool, period, now, false).await
}

/// Rebuilds one board, or with `force` false leaves it as it was when its inputs are
/// unchanged ([`refresh_board`]); `force` true is [`rebuild_board`], the repair's path.
pub async fn build_board(
    pool: &PgPool,
    period: &Period,
    now: DateTime<Utc>,
    force: bool,
) -> Result<BoardBuild, sqlx::Error> {
    let name = period.name();
    // The name is `all-time` or `YYYY-Www` (Period::parse checks it), so it is safe to spell
    // into the DDL, which takes no parameters.
    let table = format!(
        "leaderboard_entries_{}",
        name.replace('-', "_").to_lowercase()
    );
    let next = format!("{table}_next");
    let mut tx = pool.begin().await?;
    // One lock for every board, not one per period: each build holds a lock on the parent
    // table from `CREATE TABLE ... LIKE` on and then needs it alone to drop its old
    // partition, so two periods built at once (the hourly and the weekly board both start at
    // Monday 00:00) would deadlock. A build takes a fraction of a second; they take turns.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('jobfleet:leaderboards'))")
        .execute(&mut *tx)
        .await?;
    // Read before the board, so that inputs changed in between make the next run build again
    // rather than be skipped.
    let source: String = match period.range() {
        None => {
            sqlx::query_scalar("SELECT 'ledgers:' || generation FROM points_ledger_state")
                .fetch_one(&mut *tx)
                .await?
        }
        Some((from, to)) => {
            sqlx::query_scalar(
                "SELECT 'transactions:' || count(*) || ':' || coalesce(max(id), 0)
                 FROM points_transactions WHERE created_at >= $1 AND created_at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    if !force {
        let built: Option<(String, i64, bool)> = sqlx::query_as(
            "SELECT source, entries, to_regclass($2) IS NOT NULL FROM leaderboard_builds WHERE period = $1",
        )
        .bind(&name)
        .bind(&table)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((built_from, entries, true)) = built
            && built_from == source
        {
            tx.commit().await?;
            return Ok(BoardBuild {
                entries: entries.try_into().unwrap_or(0),
                skipped: true,
            });
        }
    }
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
    // The ranking sorts every entry; in memory rather than in files on disk.
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(&mut *tx)
        .await?;
    // The checks come from the parent; the keys are the partition's own (see the migration)
    // and are built after the fill, which is faster than keeping them up row by row.
    sqlx::query(&format!(
        r#"CREATE TABLE "{next}" (LIKE leaderboard_entries INCLUDING CONSTRAINTS)"#
    ))
    .execute(&mut *tx)
    .await?;
    let fill = format!(
        r#"INSERT INTO "{next}" (period, position, rank, user_id, points, built_at)
           SELECT $1, row_number() OVER (ORDER BY points DESC, user_id),
                  rank() OVER (ORDER BY points DESC), user_id, points, $2
           FROM ({scores}) s"#
    );
    let mut query = sqlx::query(&fill).bind(&name).bind(now);
    if let Some((from, to)) = period.range() {
        query = query.bind(from).bind(to);
    }
    let entries = query.execute(&mut *tx).await?.rows_affected();
    // The CHECK matching the partition bound lets ATTACH skip scanning the table for it.
    sqlx::query(&format!(
        r#"ALTER TABLE "{next}"
             ADD CONSTRAINT "{next}_pkey" PRIMARY KEY (position),
             ADD CONSTRAINT "{next}_user" UNIQUE (user_id),
             ADD CONSTRAINT leaderboard_entries_bound CHECK (period = '{name}')"#
    ))
    .execute(&mut *tx)
    .await?;
    // The swap. Dropping the old partition locks the whole of leaderboard_entries until
    // commit, so it comes last, after the slow part, and readers wait milliseconds. While the
    // drop waits for a long reader, readers that come after queue behind it; the timeout fails
    // the attempt (the job is retried) instead of stalling them.
    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *tx)
        .await?;
    for step in [
        format!(r#"DROP TABLE IF EXISTS "{table}""#),
        format!(r#"ALTER TABLE "{next}" RENAME TO "{table}""#),
        format!(r#"ALTER TABLE "{table}" RENAME CONSTRAINT "{next}_pkey" TO "{table}_pkey""#),
        format!(
            r#"ALTER TABLE "{table}" RENAME CONSTRAINT "{next}_user" TO "{table}_user_id_key""#
        ),
        format!(
            r#"ALTER TABLE leaderboard_entries ATTACH PARTITION "{table}" FOR VALUES IN ('{name}')"#
        ),
    ] {
        sqlx::query(&step).execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO leaderboard_builds (period, source, entries, built_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (period) DO UPDATE SET
             source = EXCLUDED.source, entries = EXCLUDED.entries, built_at = EXCLUDED.built_at",
    )
    .bind(&name)
    .bind(&source)
    .bind(i64::try_from(entries).unwrap_or(i64::MAX))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(BoardBuild {
        entries,
        skipped: false,
    })
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
        assert!(Period::parse("999-W01", now).is_err());
    }
}
