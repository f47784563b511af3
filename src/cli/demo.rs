//! `jobfleet demo seed` fills the database with realistic data; `jobfleet demo bench` measures
//! the database jobs on the sizes of the speed goals (`--prune`: the pruning of a million old
//! delivery rows, `bench_prune.rs`), in a scratch database it drops after; `jobfleet demo
//! kubo` serves the Kubo RPC stand-in for the snapshot jobs.

use std::future::Future;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;

use super::App;
use super::output::{errln, outln};
use crate::db::governance::{self, Rule};
use crate::db::points::{self, Period};
use crate::dev::seed::{SeedSize, seed};

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Add realistic demo data to the configured database (migrating it first).
    Seed {
        #[command(flatten)]
        size: SizeArgs,
        /// Do nothing when the database has users already.
        #[arg(long)]
        if_empty: bool,
    },
    /// Time aggregate_votes and rebuild_leaderboard on the speed goals' sizes, or, with
    /// --prune, prune_records on a million delivery rows past their retention.
    Bench {
        #[command(flatten)]
        size: SizeArgs,
        /// Print the query plans (EXPLAIN ANALYZE) of the statements that matter.
        #[arg(long)]
        explain: bool,
        /// Time prune_records instead: the deletion of --deliveries old delivery rows.
        #[arg(long, conflicts_with_all = ["explain", "users", "markets", "votes", "points"])]
        prune: bool,
        /// With --prune: delivery rows past their retention (four per notification).
        #[arg(long, default_value_t = 1_000_000, requires = "prune")]
        deliveries: i64,
    },
    /// Serve the Kubo RPC stand-in (in memory) until SIGTERM or SIGINT, for the snapshot jobs.
    Kubo {
        /// Where to listen; the default is Kubo's own RPC address.
        #[arg(long, default_value = "127.0.0.1:5001")]
        addr: String,
    },
    /// Receive email (SMTP) and webhooks (HTTP) on loopback and print one line each.
    Sink(super::sink::SinkArgs),
}

#[derive(Debug, Args)]
pub struct SizeArgs {
    #[arg(long)]
    pub users: Option<i64>,
    #[arg(long)]
    pub markets: Option<i64>,
    #[arg(long)]
    pub votes: Option<i64>,
    #[arg(long)]
    pub points: Option<i64>,
}

impl SizeArgs {
    fn or(&self, users: i64, markets: i64, proposed_pct: i64, votes: i64, points: i64) -> SeedSize {
        SeedSize {
            users: self.users.unwrap_or(users).max(1),
            markets: self.markets.unwrap_or(markets).max(0),
            proposed_pct,
            votes: self.votes.unwrap_or(votes).max(0),
            points: self.points.unwrap_or(points).max(0),
        }
    }
}

pub async fn run(app: &App, cmd: DemoCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DemoCommand::Sink(args) => super::sink::run(args).await,
        DemoCommand::Seed { size, if_empty } => {
            let settings = &app.settings.database;
            crate::db::migrate(settings)
                .await
                .with_context(|| format!("cannot migrate {}", settings.url))?;
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect_with(crate::db::options(settings.url.expose())?)
                .await?;
            if if_empty {
                let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
                    .fetch_one(&pool)
                    .await?;
                if users > 0 {
                    outln!("the database has {users} users already; not seeding")?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let started = Instant::now();
            let done = seed(&pool, size.or(2_000, 500, 40, 20_000, 50_000)).await?;
            outln!(
                "seeded {} users, {} markets, {} votes, {} dispute votes, {} points transactions, {} discussions in {:.1}s",
                done.users,
                done.markets,
                done.votes,
                done.disputes,
                done.points,
                done.discussions,
                started.elapsed().as_secs_f64()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        DemoCommand::Kubo { addr } => {
            let running = crate::dev::kubo::KuboStandIn::start(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            outln!(
                "Kubo RPC stand-in on {} (in memory: blocks and pins are lost at exit)",
                running.url()
            )?;
            jobfleet_engine::cli::shutdown_signal().await;
            running.stop().await?;
            Ok(ExitCode::SUCCESS)
        }
        DemoCommand::Bench {
            prune: true,
            deliveries,
            ..
        } => {
            let settings = app.settings.retention.clone();
            in_scratch_database(app, |url| async move {
                super::bench_prune::bench_in(&url, &settings, deliveries.max(1)).await
            })
            .await
        }
        DemoCommand::Bench { size, explain, .. } => {
            let size = size.or(100_000, 10_000, 100, 1_000_000, 1_000_000);
            in_scratch_database(
                app,
                |url| async move { bench_in(&url, size, explain).await },
            )
            .await
        }
    }
}

/// Runs `body` on a scratch database `jobfleet_bench_<8 hex digits>` created on the configured
/// server, then drops it (ending other sessions on it), also when `body` failed.
async fn in_scratch_database<F, Fut>(app: &App, body: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let base = app.settings.database.url.expose();
    let (server, _) = base
        .rsplit_once('/')
        .context("database.url has no database name")?;
    let url = format!("{server}/jobfleet_bench_{:08x}", rand::random::<u32>());
    sqlx::Postgres::create_database(&url)
        .await
        .context("cannot create the scratch database")?;
    let result = body(url.clone()).await;
    if let Err(e) = sqlx::Postgres::force_drop_database(&url).await {
        errln!("warning: could not drop the scratch database: {e}");
    }
    result
}

async fn bench_in(url: &str, size: SeedSize, explain: bool) -> anyhow::Result<ExitCode> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(crate::db::options(url)?)
        .await?;
    crate::db::MIGRATOR.run(&pool).await?;
    let started = Instant::now();
    let seeded = seed(&pool, size).await?;
    // VACUUM too: by the hourly steady state autovacuum has set the visibility map, which the
    // ledger fold's index-only scan relies on.
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    outln!(
        "seeded {} users, {} proposed markets, {} votes, {} points transactions in {:.1}s",
        seeded.users,
        seeded.markets,
        seeded.votes,
        seeded.points,
        started.elapsed().as_secs_f64()
    )?;
    let g = crate::db::governance::GovernanceSettings {
        proposal_threshold_bp: 7000,
        proposal_min_votes: 10,
        proposal_window: std::time::Duration::from_secs(72 * 3600),
        dispute_threshold_bp: 6000,
        dispute_min_votes: 10,
        dispute_window: std::time::Duration::from_secs(24 * 3600),
    };
    let rule = Rule {
        threshold_bp: g.proposal_threshold_bp,
        min_votes: g.proposal_min_votes,
        window: g.proposal_window,
    };
    if explain {
        outln!(
            "\n-- plan of aggregate_votes (proposals), run in a transaction that is rolled back:"
        )?;
        let mut tx = pool.begin().await?;
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN (ANALYZE, COSTS OFF) {}",
            governance::PROPOSALS
        ))
        .bind(chrono::Utc::now())
        .bind(i64::from(rule.threshold_bp))
        .bind(i64::from(rule.min_votes))
        .bind(rule.window.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await?;
        outln!("{}\n", plan.join("\n"))?;
    }
    let now = chrono::Utc::now();
    let t = Instant::now();
    let d = governance::decide_proposals(&pool, rule, now).await?;
    outln!(
        "aggregate_votes:     {:>8.3}s  ({} proposed markets, {} votes: {} approved, {} rejected)",
        t.elapsed().as_secs_f64(),
        seeded.markets,
        seeded.votes,
        d.approved,
        d.rejected
    )?;
    // The first run after seeding folds every user (the seed's insert listed them all).
    let t = Instant::now();
    points::fold_ledgers(&pool, now).await?;
    let ledgers = t.elapsed();
    let board = points::refresh_board(&pool, &Period::AllTime, now).await?;
    outln!(
        "rebuild_leaderboard: {:>8.3}s  ({} users, {} transactions: ledgers {:.3}s, board of {} {:.3}s)",
        t.elapsed().as_secs_f64(),
        seeded.users,
        seeded.points,
        ledgers.as_secs_f64(),
        board.entries,
        (t.elapsed() - ledgers).as_secs_f64()
    )?;
    // The steady state: the hourly run after 10,000 new transactions spread over the users,
    // each insert its own statement as the API servers write them, in batches of 100 per
    // transaction to keep the seeding short.
    let new_tx = 10_000;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(&pool)
        .await?;
    for _ in 0..new_tx / 100 {
        let mut tx = pool.begin().await?;
        for _ in 0..100 {
            sqlx::query(
                "INSERT INTO points_transactions (user_id, kind, amount, reason)
                 VALUES ($1, 'EARNED', 1 + floor(random() * 100)::bigint, 'bench')",
            )
            .bind(ids[rand::random_range(0..ids.len())])
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    let t = Instant::now();
    let changed = points::fold_ledgers(&pool, now).await?;
    let ledgers = t.elapsed();
    let board = points::refresh_board(&pool, &Period::AllTime, now).await?;
    outln!(
        "rebuild_leaderboard: {:>8.3}s  (after {new_tx} new transactions: {changed} ledgers changed in {:.3}s, board of {} {:.3}s)",
        t.elapsed().as_secs_f64(),
        ledgers.as_secs_f64(),
        board.entries,
        (t.elapsed() - ledgers).as_secs_f64()
    )?;
    let t = Instant::now();
    let changed = points::fold_ledgers(&pool, now).await?;
    let board = points::refresh_board(&pool, &Period::AllTime, now).await?;
    outln!(
        "rebuild_leaderboard: {:>8.3}s  (again, nothing new: {changed} ledgers changed, board {})",
        t.elapsed().as_secs_f64(),
        if board.skipped { "skipped" } else { "rebuilt" }
    )?;
    // The repair (`{"full": true}`): every ledger from every transaction, the board regardless.
    let t = Instant::now();
    let changed = points::rebuild_ledgers(&pool, now).await?;
    let ledgers = t.elapsed();
    points::rebuild_board(&pool, &Period::AllTime, now).await?;
    outln!(
        "rebuild_leaderboard: {:>8.3}s  (full repair: {changed} ledgers changed, ledgers {:.3}s, board {:.3}s)",
        t.elapsed().as_secs_f64(),
        ledgers.as_secs_f64(),
        (t.elapsed() - ledgers).as_secs_f64()
    )?;
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}
