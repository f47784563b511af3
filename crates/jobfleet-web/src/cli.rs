//! `jobfleet web`: serve the board and the API (the default), and manage who may use them
//! (`web user add|list|remove`, `web token create|list|revoke`). A binary mounts [`WebArgs`]
//! as a command of its own and calls [`run`] with its engine, its `[web]` section and the
//! pages it adds. `anyhow` lives here, at the edge.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use jobfleet_engine::cli::{Engine, shutdown_signal};
use jobfleet_engine::telemetry::http::watch_redis;
use jobfleet_engine::{errln, outln};

use crate::board::{AppPages, router, serve};
use crate::settings::WebSettings;
use crate::store::WebStore;
use crate::store::tokens::Scope;
use crate::store::users::Role;

/// `jobfleet web [COMMAND]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WebArgs {
    #[command(subcommand)]
    command: Option<WebCommand>,
}

#[derive(Debug, Subcommand)]
enum WebCommand {
    /// Serve the board and the API on `web.http_addr` (what `jobfleet web` alone does).
    Serve,
    /// Manage the board's users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the API's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Time the board's pages and the API while a queue holds many jobs (in a namespace of
    /// its own, deleted afterwards).
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Make a user, or give one a new role and password; the password is read from stdin.
    Add {
        /// The sign-in name.
        name: String,
        /// viewer (sees everything, changes nothing) or operator.
        #[arg(long)]
        role: Role,
    },
    /// List the users.
    List,
    /// Remove a user; their sessions end at once.
    Remove {
        /// The sign-in name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token; it is printed once, as the last line, and stored only as a digest.
    Create {
        /// A name that says whose it is (`orders-api`, `ci`).
        name: String,
        /// What it may do: enqueue, read, operate (everything); several with commas.
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<Scope>,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs `jobfleet web ...`.
pub async fn run<S: Send + Sync + 'static>(
    args: WebArgs,
    engine: &Engine<S>,
    web: &WebSettings,
    pages: AppPages,
) -> anyhow::Result<ExitCode> {
    match args.command.unwrap_or(WebCommand::Serve) {
        WebCommand::Serve => serve_board(engine, web, pages).await,
        WebCommand::User(cmd) => users(&store(engine).await?, cmd).await,
        WebCommand::Token(cmd) => tokens(&store(engine).await?, cmd).await,
        WebCommand::Bench(args) => crate::bench::run(engine, web, args).await,
    }
}

async fn store<S: Send + Sync + 'static>(engine: &Engine<S>) -> anyhow::Result<WebStore> {
    Ok(WebStore::new(&engine.client().await?))
}

async fn serve_board<S: Send + Sync + 'static>(
    engine: &Engine<S>,
    web: &WebSettings,
    pages: AppPages,
) -> anyhow::Result<ExitCode> {
    let state = crate::setup::state(engine, web).await?;
    let addr: SocketAddr = web.http_addr.parse().context("web.http_addr")?;
    let cancel = CancellationToken::new();
    tokio::spawn(watch_redis(
        state.client.clone(),
        state.health.clone(),
        state.metrics.clone(),
        cancel.clone(),
    ));
    if state.store.users().await?.is_empty() {
        tracing::warn!(
            "the board has no user yet: make one with `jobfleet web user add NAME --role operator`"
        );
    }
    let (bound, task) = serve(addr, router(state, pages), cancel.clone())
        .await
        .with_context(|| format!("cannot serve the board on {addr}"))?;
    tracing::info!(%bound, "serving the board at http://{bound}/ and the API at http://{bound}/api/v1");
    shutdown_signal().await;
    tracing::info!("stopping the board");
    cancel.cancel();
    task.await.context("the board's server panicked")??;
    Ok(ExitCode::SUCCESS)
}

/// Reads a password: the first line of stdin, without echo when stdin is a terminal.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("password: ");
        let _ = std::io::stderr().flush();
    }
    let _echo = if tty { EchoOff::new() } else { None };
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    if tty {
        eprintln!();
    }
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!(
            "no password on stdin (pipe one in: printf %s \"$PASSWORD\" | jobfleet web user add NAME --role operator)"
        );
    }
    Ok(password)
}

async fn users(store: &WebStore, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add { name, role } => {
            let password = read_password()?;
            let existed = store.put_user(&name, role, &password).await?;
            let what = if existed { "updated" } else { "added" };
            outln!("user {name} {what} ({})", role.as_str())?;
        }
        UserCommand::List => {
            for u in store.users().await? {
                outln!("{}\t{}", u.name, u.role.as_str())?;
            }
        }
        UserCommand::Remove { name } => {
            if !store.remove_user(&name).await? {
                bail!("no user is named {name:?}");
            }
            outln!("user {name} removed")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tokens(store: &WebStore, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create { name, scope } => {
            let secret = store.create_token(&name, &scope).await?;
            let scopes: Vec<&str> = scope.iter().map(|s| s.as_str()).collect();
            errln!(
                "token {name} created ({}); it is shown once, below:",
                scopes.join(",")
            );
            outln!("{secret}")?;
        }
        TokenCommand::List => {
            for t in store.tokens().await? {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                outln!("{}\t{}", t.name, scopes.join(","))?;
            }
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke_token(&name).await? {
                bail!("no token is named {name:?}");
            }
            outln!("token {name} revoked")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The terminal's echo, off while a password is typed and back on when this is dropped.
struct EchoOff {
    saved: nix::sys::termios::Termios,
}

impl EchoOff {
    fn new() -> Option<Self> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).ok()?;
        Some(Self { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}
