//! Demo data: a realistic platform in a few set-based statements, for the demo fleet and the
//! database benchmark.
//!
//! Distributions are skewed like real ones: a few markets draw most votes, each market leans
//! its own way, a few users earn most points. Seeding adds to what is there; it never deletes.

use sqlx::PgPool;

/// How much to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedSize {
    pub users: i64,
    pub markets: i64,
    /// Share of markets left PROPOSED, in percent (the rest spread over the other states).
    pub proposed_pct: i64,
    /// Proposal votes, spread over the proposed markets with a long tail.
    pub votes: i64,
    pub points: i64,
}

/// What was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Seeded {
    pub users: u64,
    pub markets: u64,
    pub votes: u64,
    pub disputes: u64,
    pub points: u64,
    pub discussions: u64,
}

/// Fills the database. Runs in one transaction: all of it or nothing.
pub async fn seed(pool: &PgPool, size: SeedSize) -> Result<Seeded, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut out = Seeded::default();
    // Random handles and the ids the database hands out: nothing assumes ids without gaps
    // (a rolled-back seed leaves gaps in the sequence).
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO users (handle, email)
         SELECT h, h || '@example.com'
         FROM (SELECT 'trader-' || substr(md5(random()::text || i::text), 1, 12) AS h
               FROM generate_series(1, $1) i) s
         ON CONFLICT (handle) DO NOTHING
         RETURNING id",
    )
    .bind(size.users)
    .fetch_all(&mut *tx)
    .await?;
    out.users = ids.len() as u64;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(out);
    }
    sqlx::query(
        "INSERT INTO wallets (user_id, address, chain_id, is_primary)
         SELECT id, '0x' || lpad(to_hex(id), 40, '0'), 31337, true FROM unnest($1::bigint[]) id",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let first_market: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM markets")
        .fetch_one(&mut *tx)
        .await?;
    // States: `proposed_pct` percent PROPOSED, the rest over every other state. Proposed
    // markets are up to four days old, so some of their 72-hour windows have closed.
    out.markets = sqlx::query(
        "INSERT INTO markets (on_chain_id, proposer_id, title, state, created_at, resolves_at, outcome)
         SELECT (SELECT coalesce(max(on_chain_id), 0) FROM markets) + i,
                ($2::bigint[])[1 + floor(random() * cardinality($2::bigint[]))::int],
                'Market #' || ($1 + i) || ': will the event happen?',
                s.state, now() - random() * interval '4 days', now() + random() * interval '30 days',
                CASE WHEN s.state IN ('RESOLVING', 'DISPUTED', 'RESOLVED') THEN random() < 0.5 END
         FROM generate_series(1, $3) i
         CROSS JOIN LATERAL (SELECT CASE
             WHEN random() * 100 < $4 THEN 'PROPOSED'::market_state
             ELSE (ARRAY['APPROVED', 'REJECTED', 'ACTIVE', 'RESOLVING', 'DISPUTED', 'RESOLVED',
                         'CANCELLED']::market_state[])[1 + floor(random() * 7)::int]
             END AS state, i AS k) s",
    )
    .bind(first_market)
    .bind(&ids)
    .bind(size.markets)
    .bind(size.proposed_pct)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    out.votes = seed_votes(&mut tx, first_market, size.votes).await?;
    out.disputes = sqlx::query(
        "WITH d AS (
             INSERT INTO disputes (market_id, raised_by, reason, created_at)
             SELECT id, proposer_id, 'the reported outcome is wrong', now() - random() * interval '30 hours'
             FROM markets WHERE state = 'DISPUTED' AND id > $1
             ON CONFLICT DO NOTHING RETURNING id)
         INSERT INTO dispute_votes (dispute_id, juror_id, uphold)
         SELECT d.id, u.id, random() < 0.6 FROM d
         CROSS JOIN LATERAL (
             SELECT id FROM users WHERE id >= 1 + (d.id * 104729) % greatest(1, (SELECT max(id) FROM users) - 20)
             ORDER BY id LIMIT 5 + d.id % 16) u",
    )
    .bind(first_market)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    out.points = seed_points(&mut tx, &ids, size.points).await?;
    out.discussions = sqlx::query(
        "INSERT INTO discussions (market_id, author_id, content, created_at)
         SELECT m.id, ($2::bigint[])[1 + floor(random() * cardinality($2::bigint[]))::int],
                'I think the odds are ' || (random() * 100)::int || '%',
                now() - random() * interval '36 hours'
         FROM markets m CROSS JOIN generate_series(1, 3)
         WHERE m.id > $1 AND m.state IN ('ACTIVE', 'RESOLVING', 'DISPUTED')",
    )
    .bind(first_market)
    .bind(&ids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(out)
}

/// Votes on the new proposed markets: market i draws `1 + 299 * u^2` voters (mean ~100, a long
/// tail of busy markets), scaled to about `votes` in all, each leaning its own way.
async fn seed_votes(
    tx: &mut sqlx::PgConnection,
    first_market: i64,
    votes: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "WITH m AS (
             SELECT id, random() AS lean,
                    greatest(1, (random() ^ 2 * 299 * $2 / greatest(1, 100 *
                        (SELECT count(*) FROM markets WHERE state = 'PROPOSED' AND id > $1)))::bigint) AS voters
             FROM markets WHERE state = 'PROPOSED' AND id > $1)
         INSERT INTO proposal_votes (market_id, wallet_id, likes)
         SELECT m.id, w.id, random() < 0.35 + 0.6 * m.lean
         FROM m CROSS JOIN LATERAL (
             SELECT id FROM wallets WHERE id >= 1 + (m.id * 7919) % greatest(1, (SELECT max(id) FROM wallets) - m.voters)
             ORDER BY id LIMIT m.voters) w
         ON CONFLICT DO NOTHING",
    )
    .bind(first_market)
    .bind(votes)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Points with a long tail: the user is `ids[n * u^3]` (a few earn most), amounts 1 to ~1000.
async fn seed_points(
    tx: &mut sqlx::PgConnection,
    ids: &[i64],
    points: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO points_transactions (user_id, kind, amount, reason, created_at)
         SELECT ($1::bigint[])[1 + floor(random() ^ 3 * cardinality($1::bigint[]))::int],
                (ARRAY['EARNED', 'EARNED', 'EARNED', 'EARNED', 'EARNED', 'EARNED', 'BURNED',
                       'LOCKED', 'UNLOCKED']::points_kind[])[1 + floor(random() * 9)::int],
                1 + floor(exp(random() * 7))::bigint,
                (ARRAY['vote', 'trade', 'referral', 'dispute jury', 'market resolved'])[1 + floor(random() * 5)::int],
                now() - random() * interval '21 days'
         FROM generate_series(1, $2)",
    )
    .bind(ids)
    .bind(points)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}
