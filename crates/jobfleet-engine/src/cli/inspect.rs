//! Read-only commands: `queues`, `workers` (with its Prometheus target list), `jobs list`,
//! `jobs show`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::engine::Engine;
use super::output::outln;
use super::output::{age, json, table, time};
use crate::queue::JobState;
use crate::queue::admin::{JobInfo, Page};
use crate::queue::now_ms;
use crate::queue::workers::{SchedulerInfo, WorkerInfo};
use crate::scheduler::SCHEDULER_TTL;

pub async fn queues<S: Send + Sync + 'static>(
    app: &Engine<S>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let mut all = Vec::new();
    // On a cluster each queue lives on one shard: the master that holds its slot is shown.
    let cluster = client.connection().is_cluster();
    let mut shards = Vec::new();
    for q in client.queue_names().await? {
        all.push(client.stats(&q).await?);
        if cluster {
            let key = client.keys().queue(&q).pending();
            shards.push(
                client
                    .connection()
                    .master_of(&key)
                    .await?
                    .unwrap_or_default(),
            );
        }
    }
    if as_json {
        let mut out = serde_json::to_value(&all)?;
        if let Some(items) = out.as_array_mut() {
            for (item, shard) in items.iter_mut().zip(&shards) {
                item["shard"] = serde_json::Value::from(shard.as_str());
            }
        }
        json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows: Vec<Vec<String>> = all
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
    let mut header = vec![
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
    ];
    if cluster {
        header.push("SHARD");
        for (row, shard) in rows.iter_mut().zip(shards) {
            row.push(shard);
        }
    }
    table(&header, &rows)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct WorkersArgs {
    /// Print the workers as JSON instead of a table.
    #[arg(long, conflicts_with = "prometheus_sd")]
    pub json: bool,
    /// Print the metrics addresses of the live workers and schedulers as a Prometheus
    /// file_sd target list (JSON).
    #[arg(long)]
    pub prometheus_sd: bool,
}

/// One group of a Prometheus file_sd target list.
#[derive(Debug, Serialize)]
struct TargetGroup {
    targets: Vec<String>,
    labels: BTreeMap<&'static str, String>,
}

/// The file_sd target list: one group per process that serves its metrics.
fn prometheus_sd(workers: &[WorkerInfo], schedulers: &[SchedulerInfo]) -> Vec<TargetGroup> {
    let workers = workers.iter().filter_map(|w| {
        Some(TargetGroup {
            targets: vec![w.metrics_addr.clone()?],
            labels: BTreeMap::from([
                ("role", "worker".to_owned()),
                ("worker", w.id.clone()),
                ("host", w.host.clone()),
                ("queues", w.queues.join(",")),
            ]),
        })
    });
    let schedulers = schedulers.iter().filter_map(|s| {
        Some(TargetGroup {
            targets: vec![s.metrics_addr.clone()?],
            labels: BTreeMap::from([
                ("role", "scheduler".to_owned()),
                ("scheduler", s.id.clone()),
                ("host", s.host.clone()),
            ]),
        })
    });
    workers.chain(schedulers).collect()
}

pub async fn workers<S: Send + Sync + 'static>(
    app: &Engine<S>,
    args: &WorkersArgs,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let ttl = app.settings.worker.lease * 2;
    let workers = client.workers(ttl.max(Duration::from_secs(10))).await?;
    if args.json {
        json(&workers)?;
        return Ok(ExitCode::SUCCESS);
    }
    let schedulers = client.schedulers(SCHEDULER_TTL).await?;
    if args.prometheus_sd {
        json(&prometheus_sd(&workers, &schedulers))?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let metrics = |addr: &Option<String>| addr.clone().unwrap_or_else(|| "-".into());
    let progress = running_progress(&client, &workers).await;
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let running: Vec<String> = w
                .in_flight
                .iter()
                .filter(|j| j.started_at.is_some())
                .map(|j| match progress.get(&j.id) {
                    Some(p) => format!("{}:{} ({})", j.kind, j.id, p.describe()),
                    None => format!("{}:{}", j.kind, j.id),
                })
                .collect();
            vec![
                w.id.clone(),
                w.queues.join(","),
                w.concurrency.to_string(),
                age(Some(now.saturating_sub(w.started_at))),
                age(Some(now.saturating_sub(w.heartbeat_at))),
                metrics(&w.metrics_addr),
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
            "METRICS",
            "HELD",
            "RUNNING",
        ],
        &rows,
    )?;
    if !schedulers.is_empty() {
        outln!()?;
        let rows: Vec<Vec<String>> = schedulers
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    age(Some(now.saturating_sub(s.started_at))),
                    age(Some(now.saturating_sub(s.heartbeat_at))),
                    metrics(&s.metrics_addr),
                ]
            })
            .collect();
        table(&["SCHEDULER", "UP", "HEARTBEAT", "METRICS"], &rows)?;
    }
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

pub async fn list<S: Send + Sync + 'static>(
    app: &Engine<S>,
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
pub async fn list_all<S: Send + Sync + 'static>(
    app: &Engine<S>,
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
        // The counter of active jobs can trail the in-flight hashes by a moment.
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

/// The progress reports of the jobs the workers run now, by job id. A store that does not
/// answer only leaves them out: the listing of workers matters more.
async fn running_progress(
    client: &crate::queue::QueueClient,
    workers: &[crate::queue::workers::WorkerInfo],
) -> std::collections::HashMap<String, crate::queue::progress::Progress> {
    let mut by_queue: std::collections::HashMap<&str, Vec<(String, i64)>> = Default::default();
    for j in workers.iter().flat_map(|w| &w.in_flight) {
        if let Some(started) = j.started_at {
            by_queue
                .entry(&j.queue)
                .or_default()
                .push((j.id.clone(), started));
        }
    }
    let mut out = std::collections::HashMap::new();
    for (queue, ids) in by_queue {
        if let Ok(reports) = client.progress_since(queue, &ids).await {
            for ((id, _), p) in ids.into_iter().zip(reports) {
                if let Some(p) = p {
                    out.insert(id, p);
                }
            }
        }
    }
    out
}

pub async fn show<S: Send + Sync + 'static>(
    app: &Engine<S>,
    id: &str,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let j = client.show(id).await?;
    let progress = if j.state == crate::queue::JobState::Active {
        let ids = [(j.id.clone(), j.attempts)];
        client.progress_of(&j.queue, &ids).await?.pop().flatten()
    } else {
        None
    };
    if as_json {
        let mut out = serde_json::to_value(&j)?;
        out["progress"] = serde_json::to_value(&progress)?;
        json(&out)?;
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
        ("state", j.state.to_string()),
        (
            "attempts",
            format!("{} failed of {}", j.attempts, j.max_attempts),
        ),
        ("priority", j.priority.to_string()),
        ("args", args),
        ("enqueued", time(j.envelope.as_ref().map(|e| e.created_at))),
        ("due/died", time(j.score)),
        ("worker", j.worker.clone().unwrap_or_else(|| "-".into())),
        (
            "progress",
            progress.map_or_else(|| "-".into(), |p| p.describe()),
        ),
        ("last error", j.error.clone().unwrap_or_else(|| "-".into())),
        ("failed at", time(j.failed_at)),
        (
            "flow",
            j.envelope
                .as_ref()
                .and_then(|e| e.flow.as_ref())
                .map_or_else(
                    || "-".into(),
                    |f| format!("{} (queue {}; jobfleet flows show {})", f.id, f.queue, f.id),
                ),
        ),
    ];
    for (k, v) in rows {
        outln!("{k:<15} {v}")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_list_has_one_group_per_process_that_serves_metrics() {
        let worker = |id: &str, addr: Option<&str>| WorkerInfo {
            id: id.into(),
            host: "h".into(),
            pid: 1,
            queues: vec!["default".into(), "emails".into()],
            concurrency: 4,
            started_at: 0,
            heartbeat_at: 0,
            in_flight: vec![],
            metrics_addr: addr.map(str::to_owned),
        };
        let scheduler = SchedulerInfo {
            id: "h:3:c".into(),
            host: "h".into(),
            pid: 3,
            started_at: 0,
            heartbeat_at: 0,
            metrics_addr: Some("h:9465".into()),
        };
        let groups = prometheus_sd(
            &[worker("h:1:a", Some("h:9464")), worker("h:2:b", None)],
            &[scheduler],
        );
        assert_eq!(
            serde_json::to_value(&groups).unwrap(),
            serde_json::json!([
                {"targets": ["h:9464"], "labels": {"role": "worker", "worker": "h:1:a", "host": "h", "queues": "default,emails"}},
                {"targets": ["h:9465"], "labels": {"role": "scheduler", "scheduler": "h:3:c", "host": "h"}},
            ])
        );
    }
}
