//! The scheduler's commands: `scheduler`, `schedules`, `run` and `enqueue-now`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{TimeZone, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::output::{errln, outln};
use super::output::{json, table, time};
use super::worker::{serve_telemetry, shutdown_signal};
use crate::queue::StoreSettings;
use crate::scheduler::{Schedule, Scheduler, schedules};
use crate::telemetry::Metrics;
use crate::telemetry::http::Health;
use crate::worker::runner;

fn load_schedules<S: Send + Sync + 'static>(app: &Engine<S>) -> anyhow::Result<Vec<Schedule>> {
    let registry = app.registry()?;
    schedules(&registry, &app.settings.scheduler.disabled).map_err(anyhow::Error::msg)
}

/// `jobfleet scheduler`: runs until SIGTERM or SIGINT.
pub async fn scheduler<S: Send + Sync + 'static>(app: &Engine<S>) -> anyhow::Result<ExitCode> {
    let schedules = load_schedules(app)?;
    // Tick calls wait for their reply however long Redis takes: one that timed out could
    // still be executed later, and every tick's outcome must be known (see `Scheduler::new`).
    let store = StoreSettings {
        response_timeout: None,
        ..app.settings.store()
    };
    let client = app.client_in(&app.settings.redis.namespace, store).await?;
    let metrics = Metrics::new();
    let health = Arc::new(Health::new(app.settings.telemetry.ready_timeout));
    let cancel_http = CancellationToken::new();
    let target = serve_telemetry(
        ("scheduler.http_addr", &app.settings.scheduler.http_addr),
        &app.settings.telemetry.http_addr,
        &client,
        &metrics,
        &health,
        &cancel_http,
    )
    .await?;
    for s in &schedules {
        tracing::info!(schedule = %s.name, kind = %s.kind, cron = %s.expr, tz = %s.tz, "schedule loaded");
    }
    Scheduler::new(client, schedules, metrics, health)
        .with_metrics_addr(target)
        .run(shutdown_signal())
        .await;
    cancel_http.cancel();
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct ScheduleRow {
    name: String,
    kind: String,
    queue: String,
    cron: String,
    timezone: String,
    next_run: Option<i64>,
    last_tick: Option<i64>,
    last_job_id: Option<String>,
    last_job_state: Option<String>,
}

/// `jobfleet schedules`: every schedule with its next run and its last tick's job.
pub async fn list<S: Send + Sync + 'static>(
    app: &Engine<S>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let schedules = load_schedules(app)?;
    let client = app.client().await?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for s in &schedules {
        let last = client.last_tick(&s.queue, &s.name).await?;
        let state = match &last {
            Some((_, id)) => Some(match client.show(id).await {
                Ok(job) => job.state.to_string(),
                Err(crate::queue::QueueError::NotFound(_)) => "finished or removed".to_owned(),
                Err(e) => return Err(e.into()),
            }),
            None => None,
        };
        rows.push(ScheduleRow {
            name: s.name.clone(),
            kind: s.kind.clone(),
            queue: s.queue.clone(),
            cron: s.expr.clone(),
            timezone: s.tz.to_string(),
            next_run: s.next_after(now).map(|t| t.timestamp_millis()),
            last_tick: last.as_ref().map(|(t, _)| *t),
            last_job_id: last.map(|(_, id)| id),
            last_job_state: state,
        });
    }
    if as_json {
        json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.clone(),
                r.cron.clone(),
                r.timezone.clone(),
                time(r.next_run),
                time(r.last_tick),
                r.last_job_id.clone().unwrap_or_else(|| "-".into()),
                r.last_job_state.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "SCHEDULE",
            "KIND",
            "CRON",
            "ZONE",
            "NEXT RUN",
            "LAST TICK",
            "JOB",
            "STATE",
        ],
        &cells,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `jobfleet run KIND`: one job in the foreground; the exit code says how it went.
pub async fn run<S: Send + Sync + 'static>(
    app: &Engine<S>,
    kind: &str,
    args: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let registry = app.registry()?;
    let args: serde_json::Value = match args {
        Some(text) => serde_json::from_str(text).context("--args is not valid JSON")?,
        None => serde_json::json!({}),
    };
    if !args.is_object() {
        bail!("--args must be a JSON object");
    }
    registry.spec(kind)?;
    let client = app.client().await?;
    let rt = runner::Runtime {
        client: crate::job::Client::new(client.clone(), registry.shared_specs().clone()),
        registry,
        state: app.state(client)?,
    };
    match runner::run_inline(&rt, kind, args).await {
        Ok(()) => {
            outln!("{kind}: done")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            errln!("error: {kind} failed: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `jobfleet enqueue-now SCHEDULE`: one job of a schedule, now, outside its ticks.
pub async fn enqueue_now<S: Send + Sync + 'static>(
    app: &Engine<S>,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let schedules = load_schedules(app)?;
    let Some(s) = schedules.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no schedule is named {name:?} (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    let client = app.client().await?;
    let job =
        crate::queue::NewJob::new(&s.kind, &s.queue, s.args.clone()).max_attempts(s.max_attempts);
    let enqueued = client.enqueue(job).await?;
    let at = Utc.timestamp_millis_opt(crate::queue::now_ms()).single();
    outln!(
        "{} ({} enqueued by hand at {})",
        enqueued.id,
        s.name,
        time(at.map(|t| t.timestamp_millis()))
    )?;
    Ok(ExitCode::SUCCESS)
}
