//! The command line: the engine's operator commands (`jobfleet_engine::cli`) over the
//! marketplace's kinds and state, the web board (`jobfleet_web::cli`) with the marketplace's
//! pages, plus the marketplace's own commands (migrate, demo, chain, snapshots), one file per
//! group. `anyhow` lives here and in `main`, the edges.

mod bench_prune;
mod chain;
mod demo;
mod sink;
mod snapshots;

/// The engine's printing helpers, under the name the commands here have always used.
mod output {
    pub use jobfleet_engine::cli::output::*;
}

pub use jobfleet_engine::cli::{StdoutClosed, is_stdout_closed};

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jobfleet_engine::cli::Engine;

use crate::config::Settings;
use crate::jobs::{Resources, handlers};
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
    #[command(flatten)]
    Engine(jobfleet_engine::cli::Command),
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
    /// Serve the web board and the HTTP API; manage their users and tokens.
    Web(jobfleet_web::cli::WebArgs),
}

/// What the marketplace's commands need: the settings.
pub(crate) struct App {
    pub settings: Settings,
}

impl App {
    fn load() -> anyhow::Result<Self> {
        let settings = Settings::load()?;
        crate::telemetry::init_logging(&settings.telemetry);
        Ok(Self { settings })
    }
}

/// The engine over the marketplace: its kinds, their specs in `jobs.dir`, and `Resources`
/// as the state of every process that runs jobs.
pub fn engine(settings: &Settings) -> Engine<Resources> {
    let app_settings = settings.clone();
    Engine::new(settings.engine(), handlers(), move |_, client| {
        if app_settings.notify.allow_private_webhooks {
            // Said at every start, so that a deployment that switched it on by mistake sees it.
            tracing::warn!(
                "notify.allow_private_webhooks is on: users' webhooks may reach loopback and \
                 private addresses (for development and demos only)"
            );
        }
        Ok(Resources::new(client, app_settings.clone())?)
    })
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let app = App::load()?;
    match cli.command {
        Command::Engine(cmd) => jobfleet_engine::cli::run(cmd, &engine(&app.settings)).await,
        Command::Demo(cmd) => demo::run(&app, cmd).await,
        Command::Chain(cmd) => chain::run(&app, cmd).await,
        Command::Snapshots(cmd) => snapshots::run(&app, cmd).await,
        Command::Web(args) => {
            let pages = crate::board::pages(&app.settings)?;
            jobfleet_web::cli::run(args, &engine(&app.settings), &app.settings.web, pages).await
        }
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
