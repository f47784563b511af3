//! `jobfleet worker`: one worker process.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::jobs::Resources;
use crate::telemetry::Metrics;
use crate::telemetry::http::{self, Health};
use crate::worker::{Worker, WorkerConfig};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queues with weights ("chain=3,default=1"), or in order with --strict.
    #[arg(long)]
    pub queues: Option<String>,
    /// Serve the queues in strict order: a later queue only when the earlier ones are empty.
    #[arg(long)]
    pub strict: bool,
    /// Jobs run at once.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: Option<u16>,
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(app: &App, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let registry = app.registry()?;
    let cfg = WorkerConfig::from_settings(
        &app.settings,
        args.queues.as_deref(),
        args.strict.then_some(true),
        args.concurrency.map(usize::from),
    )
    .map_err(|e| anyhow::anyhow!("--queues: {e}"))?;
    let client = app.client().await?;
    let metrics = Metrics::new();
    let health = Arc::new(Health::new(cfg.lease));
    let cancel_http = CancellationToken::new();
    if !app.settings.telemetry.http_addr.is_empty() {
        let addr = app
            .settings
            .telemetry
            .http_addr
            .parse()
            .context("telemetry.http_addr")?;
        http::serve(addr, metrics.clone(), health.clone(), cancel_http.clone())
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
    }
    let resources = Arc::new(Resources::new(client.clone(), app.settings.clone())?);
    let worker = Worker::new(client, registry, resources, cfg, metrics, health);
    let report = worker.run(shutdown_signal()).await?;
    cancel_http.cancel();
    tracing::info!(?report, "bye");
    Ok(ExitCode::SUCCESS)
}
