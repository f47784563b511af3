//! The command line: one file per command group. `anyhow` lives here and in `main`, the edges.

mod bench;
mod chain;
mod demo;
mod enqueue;
mod inspect;
mod output;
mod repair;
mod schedule;
mod sink;
mod snapshots;
mod worker;

pub use output::{StdoutClosed, is_stdout_closed};

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::jobs::{Registry, handlers};
use crate::queue::{JobState, QueueClient, QueueError, StoreSettings};
use output::outln;

#[derive(Debug, Parser)]
#[command(
    name = "jobfleet",
    version,
    about = "Background jobs on Redis: workers, queues and their operators' tools"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker process until SIGTERM or SIGINT.
    Worker(worker::WorkerArgs),
    /// Enqueue one job, or many from JSON lines.
    Enqueue(enqueue::EnqueueArgs),
    /// Show every queue's counters.
    Queues(JsonFlag),
    /// Inspect and repair jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Manage dead jobs.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Pause, resume or remove a queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Show live worker processes and what they hold, and the live schedulers.
    Workers(inspect::WorkersArgs),
    /// Measure enqueue and drain throughput and start latency.
    Bench(bench::BenchArgs),
    /// Run the scheduler: enqueue the schedules of jobs/*.toml at their ticks.
    Scheduler,
    /// Show every schedule, its next run and its last tick's job.
    Schedules(JsonFlag),
    /// Run one job in the foreground (exit code 0 on success).
    Run {
        /// The job kind.
        kind: String,
        /// The job's args as a JSON object.
        #[arg(long)]
        args: Option<String>,
    },
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Demo data and the database benchmark.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// The chain: indexer status, the transaction outbox, deployment to a local node, bench.
    #[command(subcommand)]
    Chain(chain::ChainCommand),
    /// Discussion snapshots on IPFS: list a market's, verify one.
    #[command(subcommand)]
    Snapshots(snapshots::SnapshotsCommand),
    /// Enqueue one job of a schedule now, outside its ticks.
    EnqueueNow {
        /// The schedule's name (see `jobfleet schedules`).
        schedule: String,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List the jobs of a queue, a page at a time: of one state, or the first page of each.
    List {
        queue: String,
        /// pending, scheduled, active, retry or dead (default: the first page of each).
        #[arg(long, value_parser = parse_state)]
        state: Option<JobState>,
        /// Jobs per page (per state without --state).
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// With --state: where the page starts (the previous page prints the next cursor).
        #[arg(long, default_value_t = 0, requires = "state")]
        cursor: u64,
        #[arg(long)]
        json: bool,
    },
    /// Show everything stored about one job.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Retry one job now, or every dead job (optionally of one queue or kind).
    Retry {
        /// The job to retry (dead, retry or scheduled).
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<String>,
        /// Retry every dead job.
        #[arg(long)]
        dead: bool,
        /// With --dead: only this queue (default: every queue).
        #[arg(long, requires = "dead")]
        queue: Option<String>,
        /// With --dead: only jobs of this kind.
        #[arg(long, requires = "dead")]
        kind: Option<String>,
        /// With --dead: count what would be retried, change nothing.
        #[arg(long, requires = "dead")]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete one job, whatever its state.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Delete dead jobs of a queue, all or those older than a given age.
    Purge {
        queue: String,
        /// Only jobs that died longer ago than this (e.g. 7d, 12h).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Stop workers from taking jobs of a queue (enqueueing goes on).
    Pause { queue: String },
    /// Let workers take jobs of a queue again.
    Resume { queue: String },
    /// Delete a queue and all its keys (it must be empty and unused unless --force).
    Remove {
        queue: String,
        /// Drop the jobs it still holds, those active on workers included.
        #[arg(long)]
        force: bool,
    },
}

fn parse_state(s: &str) -> Result<JobState, String> {
    s.parse()
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s or 7d: {e}"))
}

/// What every command needs: the settings, and on demand the store and the registry.
pub(crate) struct App {
    pub settings: Settings,
}

impl App {
    fn load() -> anyhow::Result<Self> {
        let settings = Settings::load()?;
        crate::telemetry::init_logging(&settings.telemetry);
        Ok(Self { settings })
    }

    pub async fn client(&self) -> anyhow::Result<QueueClient> {
        self.client_in(&self.settings.redis.namespace, self.settings.store())
            .await
    }

    /// `client` in another namespace (the bench's) or with other store settings (the
    /// scheduler waits for every reply).
    pub async fn client_in(
        &self,
        namespace: &str,
        store: StoreSettings,
    ) -> anyhow::Result<QueueClient> {
        let url = &self.settings.redis.url;
        QueueClient::connect(url.expose(), namespace, store)
            .await
            .map_err(|e| match e {
                // A timeout names the address already.
                QueueError::Timeout { .. } => {
                    anyhow::Error::new(e).context("cannot connect to Redis")
                }
                e => anyhow::Error::new(e).context(format!("cannot connect to Redis at {url}")),
            })
    }

    pub fn registry(&self) -> anyhow::Result<Arc<Registry>> {
        Ok(Arc::new(Registry::load(
            &self.settings.jobs.dir,
            handlers(),
        )?))
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let app = App::load()?;
    match cli.command {
        Command::Worker(args) => worker::run(&app, args).await,
        Command::Enqueue(args) => enqueue::run(&app, args).await,
        Command::Queues(f) => inspect::queues(&app, f.json).await,
        Command::Workers(args) => inspect::workers(&app, &args).await,
        Command::Jobs(JobsCommand::List {
            queue,
            state,
            limit,
            cursor,
            json,
        }) => match state {
            Some(state) => inspect::list(&app, &queue, state, limit, cursor, json).await,
            None => inspect::list_all(&app, &queue, limit, json).await,
        },
        Command::Jobs(JobsCommand::Show { id, json }) => inspect::show(&app, &id, json).await,
        Command::Jobs(JobsCommand::Retry {
            id,
            dead,
            queue,
            kind,
            dry_run,
            json,
        }) => match (id, dead) {
            (Some(id), false) => repair::retry_one(&app, &id, json).await,
            _ => repair::retry_dead(&app, queue.as_deref(), kind.as_deref(), dry_run, json).await,
        },
        Command::Jobs(JobsCommand::Delete { id }) => repair::delete(&app, &id).await,
        Command::Dead(DeadCommand::Purge { queue, older_than }) => {
            repair::purge(&app, &queue, older_than).await
        }
        Command::Queue(QueueCommand::Pause { queue }) => repair::pause(&app, &queue, true).await,
        Command::Queue(QueueCommand::Resume { queue }) => repair::pause(&app, &queue, false).await,
        Command::Queue(QueueCommand::Remove { queue, force }) => {
            repair::remove(&app, &queue, force).await
        }
        Command::Bench(args) => bench::run(&app, args).await,
        Command::Scheduler => schedule::scheduler(&app).await,
        Command::Schedules(f) => schedule::list(&app, f.json).await,
        Command::Run { kind, args } => schedule::run(&app, &kind, args.as_deref()).await,
        Command::EnqueueNow { schedule } => schedule::enqueue_now(&app, &schedule).await,
        Command::Demo(cmd) => demo::run(&app, cmd).await,
        Command::Chain(cmd) => chain::run(&app, cmd).await,
        Command::Snapshots(cmd) => snapshots::run(&app, cmd).await,
        Command::Migrate => {
            let applied = crate::db::migrate(&app.settings.database)
                .await
                .with_context(|| format!("cannot migrate {}", app.settings.database.url))?;
            if applied.is_empty() {
                outln!("database is up to date")?;
            }
            for m in applied {
                outln!("applied {m}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
