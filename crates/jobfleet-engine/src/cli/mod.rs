//! The operators' command line as a clap command set any binary can mount: `worker`,
//! `scheduler`, `run`, `enqueue`, `queues`, `jobs`, `dead`, `queue`, `workers`, `schedules`,
//! `limits`, `flows`, `enqueue-now` and `bench`, over the binary's own kinds and state.
//!
//! A binary with nothing else to offer calls [`main`]; one with commands of its own flattens
//! [`Command`] into its clap enum and calls [`run`] with an [`Engine`] (see the crate's
//! README). `anyhow` lives here, at the edge.

mod bench;
mod bench_profile;
mod bench_shards;
mod engine;
mod enqueue;
mod flows;
mod inspect;
mod limits;
pub mod output;
mod repair;
mod schedule;
mod worker;

use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

pub use engine::{Engine, StateFn};
pub use output::{StdoutClosed, is_stdout_closed};
pub use worker::shutdown_signal;

use crate::config::EngineSettings;
use crate::job::HandlerSet;
use crate::queue::{JobState, QueueClient};

/// The engine's commands; flatten them into a binary's own (`#[command(flatten)]`).
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
    /// A worker of the benchmark's own kinds (started by `bench`).
    #[command(hide = true)]
    BenchWorker(bench::BenchWorkerArgs),
    /// Run the scheduler: enqueue the schedules of the job specs at their ticks.
    Scheduler,
    /// Show every schedule, its next run and its last tick's job.
    Schedules(JsonFlag),
    /// Show the kinds' fleet-wide limits ([limits] in their specs) and what each has in use.
    Limits(JsonFlag),
    /// Show flows: their children's counts and their callbacks.
    #[command(subcommand)]
    Flows(FlowsCommand),
    /// Run one job in the foreground (exit code 0 on success).
    Run {
        /// The job kind.
        kind: String,
        /// The job's args as a JSON object.
        #[arg(long)]
        args: Option<String>,
    },
    /// Enqueue one job of a schedule now, outside its ticks.
    EnqueueNow {
        /// The schedule's name (see `schedules`).
        schedule: String,
    },
}

/// The `--json` flag of the commands that print either a table or JSON.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The subcommands of `flows`.
#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// List the newest flows, of every queue or of one.
    List {
        /// Only the flows kept in this queue (their callbacks' queue).
        #[arg(long)]
        queue: Option<String>,
        /// Flows listed at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one flow: counts, callbacks, parent and failed children.
    Show {
        /// The flow's id, as `flows list` prints it.
        id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The subcommands of `jobs`: list, show, retry and delete single jobs.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List the jobs of a queue, a page at a time: of one state, or the first page of each.
    List {
        /// The queue whose jobs are listed.
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
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show everything stored about one job.
    Show {
        /// The id of the job, as `jobs list` prints it.
        id: String,
        /// Print JSON instead of a table.
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
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete one job, whatever its state.
    Delete {
        /// The id of the job, as `jobs list` prints it.
        id: String,
    },
    /// Cancel one job: a waiting one goes to dead, a running one is asked to stop.
    Cancel {
        /// The id of the job, as `jobs list` prints it.
        id: String,
        /// Who cancels, as the job's reason will say (default: $USER, else "an operator").
        #[arg(long)]
        by: Option<String>,
    },
}

/// The subcommands of `dead`: maintenance of a queue's dead set.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Delete dead jobs of a queue, all or those older than a given age.
    Purge {
        /// The queue whose dead jobs are deleted.
        queue: String,
        /// Only jobs that died longer ago than this (e.g. 7d, 12h).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
    },
}

/// The subcommands of `queue`: pausing, resuming and removing a whole queue.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Stop workers from taking jobs of a queue (enqueueing goes on).
    Pause {
        /// The queue to pause.
        queue: String,
    },
    /// Let workers take jobs of a queue again.
    Resume {
        /// The queue to resume.
        queue: String,
    },
    /// Delete a queue and all its keys (it must be empty and unused unless --force).
    Remove {
        /// The queue to remove.
        queue: String,
        /// Drop the jobs it still holds, those active on workers included.
        #[arg(long)]
        force: bool,
    },
}

fn parse_state(s: &str) -> Result<JobState, String> {
    s.parse()
}

/// A duration like `30s` or `7d`, as the commands' flags take it.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s or 7d: {e}"))
}

/// Runs one of the engine's commands.
pub async fn run<S: Send + Sync + 'static>(
    command: Command,
    app: &Engine<S>,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Worker(args) => worker::run(app, args).await,
        Command::Enqueue(args) => enqueue::run(app, args).await,
        Command::Queues(f) => inspect::queues(app, f.json).await,
        Command::Workers(args) => inspect::workers(app, &args).await,
        Command::Jobs(JobsCommand::List {
            queue,
            state,
            limit,
            cursor,
            json,
        }) => match state {
            Some(state) => inspect::list(app, &queue, state, limit, cursor, json).await,
            None => inspect::list_all(app, &queue, limit, json).await,
        },
        Command::Jobs(JobsCommand::Show { id, json }) => inspect::show(app, &id, json).await,
        Command::Jobs(JobsCommand::Retry {
            id,
            dead,
            queue,
            kind,
            dry_run,
            json,
        }) => match (id, dead) {
            (Some(id), false) => repair::retry_one(app, &id, json).await,
            _ => repair::retry_dead(app, queue.as_deref(), kind.as_deref(), dry_run, json).await,
        },
        Command::Jobs(JobsCommand::Delete { id }) => repair::delete(app, &id).await,
        Command::Jobs(JobsCommand::Cancel { id, by }) => repair::cancel(app, &id, by).await,
        Command::Dead(DeadCommand::Purge { queue, older_than }) => {
            repair::purge(app, &queue, older_than).await
        }
        Command::Queue(QueueCommand::Pause { queue }) => repair::pause(app, &queue, true).await,
        Command::Queue(QueueCommand::Resume { queue }) => repair::pause(app, &queue, false).await,
        Command::Queue(QueueCommand::Remove { queue, force }) => {
            repair::remove(app, &queue, force).await
        }
        Command::Bench(args) => bench::run(app, args).await,
        Command::BenchWorker(args) => bench::worker(app, args).await,
        Command::Scheduler => schedule::scheduler(app).await,
        Command::Schedules(f) => schedule::list(app, f.json).await,
        Command::Limits(f) => limits::run(app, f.json).await,
        Command::Flows(FlowsCommand::List { queue, limit, json }) => {
            flows::list(app, queue.as_deref(), limit, json).await
        }
        Command::Flows(FlowsCommand::Show { id, json }) => flows::show(app, &id, json).await,
        Command::Run { kind, args } => schedule::run(app, &kind, args.as_deref()).await,
        Command::EnqueueNow { schedule } => schedule::enqueue_now(app, &schedule).await,
    }
}

/// The command line of a binary that has only the engine's commands.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Background jobs on Redis: workers, queues and their operators' tools"
)]
struct EngineCli {
    #[command(subcommand)]
    command: Command,
}

/// The whole `main` of a binary whose command line is the engine's: parses the arguments,
/// loads [`EngineSettings`] in layers, builds the kinds' registry from `handlers` and the
/// specs folder, makes the application's state with `state` when a command runs jobs, runs
/// the command, and turns an error into one line on stderr and exit code 1.
pub fn main<S, F>(handlers: HandlerSet<S>, state: F) -> ExitCode
where
    S: Send + Sync + 'static,
    F: Fn(&EngineSettings, QueueClient) -> anyhow::Result<S> + Send + Sync + 'static,
{
    crate::install_tls_provider();
    let cli: EngineCli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    block_on(async move {
        let settings = EngineSettings::load()?;
        crate::telemetry::init_logging(&settings.telemetry);
        let engine = Engine::new(settings, handlers, state);
        run(cli.command, &engine).await
    })
}

/// Parses the process's arguments into `C`. `--help` and `--version` print and give exit
/// code 0; a bad argument gives one line that says what is wrong, and exit code 2.
pub fn parse<C: Parser>() -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Err(ExitCode::from(2))
        }
        Err(e) => {
            // One line that says what is wrong; `--help` has the rest.
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            output::eline(format_args!("{} (see --help)", first.join(" ")));
            Err(ExitCode::from(2))
        }
    }
}

/// Runs a command on a new multi-threaded runtime and turns its result into the exit code.
/// An error is one line on stderr with its whole chain, each cause once and every URL in it
/// redacted, as a last guard for errors from libraries that name the URL they failed on.
pub fn block_on(command: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::eline(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        // The reader of our output went away (`| head`): it has what it wanted, so the
        // command ends like other Unix tools, quietly and successfully.
        Err(e) if is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let cause: &(dyn std::error::Error + 'static) = e.as_ref();
            let line = crate::settings::secret::redact_urls(&crate::job::error_chain(cause));
            output::eline(format_args!("error: {line}"));
            ExitCode::FAILURE
        }
    }
}
