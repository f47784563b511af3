//! Read-only commands: `queues`, `workers`, `jobs list`, `jobs show`.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::App;
use super::output::outln;
use super::output::{age, json, table, time};
use crate::queue::JobState;
use crate::queue::admin::{JobInfo, Page};
use crate::queue::now_ms;

pub async fn queues(app: &App, as_json: bool) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let mut all = Vec::new();
    for q in client.queue_names().await? {
        all.push(client.stats(&q).await?);
    }
    if as_json {
        json(&all)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                s.queue.clone(),
                if s.paused { "yes" } else { "no" }.to_owned(),
                s.pending.to_string(),
                s.scheduled.to_string(),
                s.active.to_string(),
                s.retry.to_string(),
                s.dead.to_string(),
                s.processed.to_string(),
                s.failed.to_string(),
                age(s.oldest_pending_ms),
            ]
        })
        .collect();
    table(
        &[
            "QUEUE",
            "PAUSED",
            "PENDING",
            "SCHEDULED",
            "ACTIVE",
            "RETRY",
            "DEAD",
            "PROCESSED",
            "FAILED",
            "OLDEST",
        ],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn workers(app: &App, as_json: bool) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let ttl = app.settings.worker.lease * 2;
    let workers = client.workers(ttl.max(Duration::from_secs(10))).await?;
    if as_json {
        json(&workers)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let running: Vec<String> = w
                .in_flight
                .iter()
                .filter(|j| j.started_at.is_some())
                .map(|j| format!("{}:{}", j.kind, j.id))
                .collect();
            vec![
                w.id.clone(),
                w.queues.join(","),
                w.concurrency.to_string(),
                age(Some(now.saturating_sub(w.started_at))),
                age(Some(now.saturating_sub(w.heartbeat_at))),
                w.in_flight.len().to_string(),
                running.join(" "),
            ]
        })
        .collect();
    table(
        &[
            "WORKER",
            "QUEUES",
            "CONCURRENCY",
            "UP",
            "HEARTBEAT",
            "HELD",
            "RUNNING",
        ],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What a listing shows instead of the args of a job that cannot be decoded.
fn undecodable(j: &JobInfo) -> String {
    format!("<undecodable: {}>", j.undecodable.as_deref().unwrap_or("?"))
}

fn summary(j: &JobInfo) -> Vec<String> {
    let args = j
        .envelope
        .as_ref()
        .map_or_else(|| undecodable(j), |e| e.args.to_string());
    let args = if args.chars().count() > 60 {
        format!("{}...", args.chars().take(57).collect::<String>())
    } else {
        args
    };
    vec![
        j.id.clone(),
        j.kind.clone(),
        format!("{}/{}", j.attempts, j.max_attempts),
        time(j.score.or(j.envelope.as_ref().map(|e| e.created_at))),
        args,
        j.error.clone().unwrap_or_default(),
    ]
}

pub async fn list(
    app: &App,
    queue: &str,
    state: JobState,
    limit: u64,
    cursor: u64,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    client.known_queue(queue).await?;
    let page = client.list(queue, state, cursor, limit).await?;
    if as_json {
        json(&page)?;
        return Ok(ExitCode::SUCCESS);
    }
    page_table(state, &page)?;
    if let Some(next) = page.next_cursor {
        outln!("next page: --cursor {next}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn page_table(state: JobState, page: &Page) -> anyhow::Result<()> {
    let when = match state {
        JobState::Pending => "ENQUEUED",
        JobState::Scheduled | JobState::Retry => "DUE",
        JobState::Active => "ENQUEUED",
        JobState::Dead => "DIED",
    };
    let rows: Vec<Vec<String>> = page.jobs.iter().map(summary).collect();
    table(&["ID", "KIND", "FAILED", when, "ARGS", "ERROR"], &rows)
}

/// One state's first page in `jobs list` without `--state`: its page and how many jobs the
/// state holds in all.
#[derive(Serialize)]
struct StatePage {
    total: u64,
    #[serde(flatten)]
    page: Page,
}

/// Every state's first page, in the order a job goes through them.
#[derive(Serialize)]
struct AllStates {
    queue: String,
    pending: StatePage,
    scheduled: StatePage,
    active: StatePage,
    retry: StatePage,
    dead: StatePage,
}

/// `jobs list Q` without `--state`: the first page of each state (as asynq's `task ls`
/// shows), so a look at a queue needs no state named first.
pub async fn list_all(
    app: &App,
    queue: &str,
    limit: u64,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    client.known_queue(queue).await?;
    let stats = client.stats(queue).await?;
    let first = |state| client.list(queue, state, 0, limit);
    let all = AllStates {
        queue: queue.to_owned(),
        pending: StatePage {
            total: stats.pending,
            page: first(JobState::Pending).await?,
        },
        scheduled: StatePage {
            total: stats.scheduled,
            page: first(JobState::Scheduled).await?,
        },
        active: StatePage {
            total: stats.active,
            page: first(JobState::Active).await?,
        },
        retry: StatePage {
            total: stats.retry,
            page: first(JobState::Retry).await?,
        },
        dead: StatePage {
            total: stats.dead,
            page: first(JobState::Dead).await?,
        },
    };
    if as_json {
        json(&all)?;
        return Ok(ExitCode::SUCCESS);
    }
    let states = [
        (JobState::Pending, &all.pending),
        (JobState::Scheduled, &all.scheduled),
        (JobState::Active, &all.active),
        (JobState::Retry, &all.retry),
        (JobState::Dead, &all.dead),
    ];
    for (i, (state, s)) in states.into_iter().enumerate() {
        if i > 0 {
            outln!()?;
        }
        let name = state.as_str();
        // The counter of active jobs can trail the in-flight lists by a moment.
        let total = s.total.max(s.page.jobs.len() as u64);
        if s.page.jobs.is_empty() {
            outln!("{name}: no jobs")?;
            continue;
        }
        outln!("{name}: {total} job{}", if total == 1 { "" } else { "s" })?;
        page_table(state, &s.page)?;
        if let Some(next) = s.page.next_cursor {
            outln!("next page: --state {name} --cursor {next}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(app: &App, id: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let j = client.show(id).await?;
    if as_json {
        json(&j)?;
        return Ok(ExitCode::SUCCESS);
    }
    let args = j.envelope.as_ref().map_or_else(
        || format!("{} {}", undecodable(&j), j.raw.clone().unwrap_or_default()),
        |e| e.args.to_string(),
    );
    let rows = [
        ("id", j.id.clone()),
        ("queue", j.queue.clone()),
        ("kind", j.kind.clone()),
        ("state", j.state.clone()),
        (
            "attempts",
            format!("{} failed of {}", j.attempts, j.max_attempts),
        ),
        ("args", args),
        ("enqueued", time(j.envelope.as_ref().map(|e| e.created_at))),
        ("due/died", time(j.score)),
        ("worker", j.worker.clone().unwrap_or_else(|| "-".into())),
        ("last error", j.error.clone().unwrap_or_else(|| "-".into())),
        ("failed at", time(j.failed_at)),
    ];
    for (k, v) in rows {
        outln!("{k:<15} {v}")?;
    }
    Ok(ExitCode::SUCCESS)
}
