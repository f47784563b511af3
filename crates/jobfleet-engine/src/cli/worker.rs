//! `jobfleet worker`: one worker process.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use crate::job::Registry;
use crate::queue::QueueClient;
use crate::telemetry::Metrics;
use crate::telemetry::http::{self, Health};
use crate::worker::{Worker, WorkerConfig};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queues with weights ("emails=3,default=1"), or in order with --strict.
    #[arg(long)]
    pub queues: Option<String>,
    /// Serve the queues in strict order: a later queue only when the earlier ones are empty.
    #[arg(long)]
    pub strict: bool,
    /// Jobs run at once.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: Option<u16>,
}

/// A future that resolves on the first SIGTERM or SIGINT. The handlers are installed when this
/// is called, not when the future is first polled: a worker starts leasing and running jobs on
/// the runtime's threads before the future that awaits its shutdown is polled, and a SIGTERM
/// that came in between would otherwise kill the process with its default action instead of
/// stopping it cleanly. Call it inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Some(mut term), None) => {
                    term.recv().await;
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Starts what every long-running process serves: the ping of Redis behind readiness, and the
/// telemetry server on the address of `setting` (off when it is `""`), avoiding the port of
/// `other_addr`, the other kind of process's setting, when the configured port is taken.
/// Returns the server's scrape target.
pub(super) async fn serve_telemetry(
    setting: (&'static str, &str),
    other_addr: &str,
    client: &QueueClient,
    metrics: &Metrics,
    health: &Arc<Health>,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<String>> {
    tokio::spawn(http::watch_redis(
        client.clone(),
        health.clone(),
        metrics.clone(),
        cancel.clone(),
    ));
    let (key, addr) = setting;
    if addr.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = addr.parse().context(key)?;
    let reserved: Vec<u16> = other_addr
        .parse::<SocketAddr>()
        .map(|a| a.port())
        .into_iter()
        .collect();
    let bound = http::serve(
        addr,
        &reserved,
        metrics.clone(),
        health.clone(),
        cancel.clone(),
    )
    .await
    .with_context(|| format!("cannot serve metrics on {addr}"))?;
    Ok(Some(http::scrape_target(bound)))
}

pub async fn run<S: Send + Sync + 'static>(
    app: &Engine<S>,
    args: WorkerArgs,
) -> anyhow::Result<ExitCode> {
    let registry = app.registry()?;
    let cfg = app
        .settings
        .worker
        .worker_config(
            args.queues.as_deref(),
            args.strict.then_some(true),
            args.concurrency.map(usize::from),
        )
        .map_err(|e| anyhow::anyhow!("--queues: {e}"))?;
    let client = app.client().await?;
    serve(app, client, cfg, registry, |client| app.state(client)).await
}

/// Runs a worker of `registry`'s kinds until SIGTERM or SIGINT, with the process's telemetry
/// server; `state` makes the kinds' state once the server is up.
pub(super) async fn serve<S, T>(
    app: &Engine<S>,
    client: QueueClient,
    cfg: WorkerConfig,
    registry: Arc<Registry<T>>,
    state: impl FnOnce(QueueClient) -> anyhow::Result<Arc<T>>,
) -> anyhow::Result<ExitCode>
where
    S: Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    let metrics = Metrics::new();
    let health = Arc::new(Health::new(app.settings.telemetry.ready_timeout));
    let cancel_http = CancellationToken::new();
    let telemetry = &app.settings.telemetry;
    let target = serve_telemetry(
        ("telemetry.http_addr", &telemetry.http_addr),
        &app.settings.scheduler.http_addr,
        &client,
        &metrics,
        &health,
        &cancel_http,
    )
    .await?;
    let state = state(client.clone())?;
    let worker = Worker::builder(client, registry, state)
        .config(cfg)
        .metrics(metrics)
        .health(health)
        .metrics_addr(target)
        .build();
    // Listening before the worker starts: see shutdown_signal.
    let stop = shutdown_signal();
    let report = worker.run(stop).await?;
    cancel_http.cancel();
    tracing::info!(?report, "bye");
    Ok(ExitCode::SUCCESS)
}
