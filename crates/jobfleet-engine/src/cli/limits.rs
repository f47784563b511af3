//! `jobfleet limits`: every kind with `[limits]` in its spec, and what each of its budgets has
//! in use now, fleet-wide.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::engine::Engine;
use super::output::{json, outln, table};
use crate::queue::limits::LimitUse;

/// One budget of a limited kind: the kind's, or one key's.
#[derive(Debug, Serialize)]
struct LimitRow {
    kind: String,
    /// The spec's rate (`30/1m`), if any.
    rate: Option<String>,
    /// The spec's concurrency, if any.
    concurrency: Option<u32>,
    /// The spec's key field, if any.
    key: Option<String>,
    #[serde(flatten)]
    using: LimitUse,
}

pub async fn run<S: Send + Sync + 'static>(
    app: &Engine<S>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let registry = app.registry()?;
    let client = app.client().await?;
    let mut rows = Vec::new();
    let mut specs: Vec<_> = registry
        .specs()
        .filter_map(|s| s.limits.as_ref().map(|l| (s, l)))
        .collect();
    specs.sort_by(|a, b| a.0.kind.cmp(&b.0.kind));
    // Jobs of a kind may be sent to other queues than its spec's: each queue has a budget.
    let mut queues: Vec<String> = specs.iter().map(|(s, _)| s.queue.clone()).collect();
    queues.sort();
    queues.dedup();
    for queue in client.queue_names().await? {
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    // Every queue's limit names, read once for all the kinds.
    let mut asked = Vec::with_capacity(queues.len());
    for queue in queues {
        let names = client.limit_names(&queue).await?;
        asked.push((queue, names));
    }
    for (spec, limits) in &specs {
        let window = limits.rate.map_or(Duration::ZERO, |r| r.per);
        let row = |using: LimitUse| LimitRow {
            kind: spec.kind.clone(),
            rate: limits.rate.map(|r| r.to_string()),
            concurrency: limits.concurrency,
            key: limits.key.clone(),
            using,
        };
        let mut found = false;
        let keyed = format!("{}=", spec.kind);
        for (queue, names) in &asked {
            for name in names {
                if *name != spec.kind && !name.starts_with(&keyed) {
                    continue;
                }
                found = true;
                rows.push(row(client.limit_use(queue, name, window).await?));
            }
        }
        if !found {
            // A limit no job has asked yet: shown with nothing in use.
            rows.push(row(LimitUse {
                queue: spec.queue.clone(),
                name: spec.kind.clone(),
                running: 0,
                started: 0,
                reserved: 0,
                waiting: 0,
            }));
        }
    }
    if as_json {
        json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        outln!("no job spec has [limits]")?;
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let of = |n: u64, cap: Option<String>| {
                cap.map_or_else(|| "-".into(), |c| format!("{n} of {c}"))
            };
            vec![
                r.using.name.clone(),
                r.using.queue.clone(),
                of(r.using.started, r.rate.clone()),
                of(r.using.running, r.concurrency.map(|c| c.to_string())),
                r.using.waiting.to_string(),
                r.using.reserved.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "LIMIT", "QUEUE", "STARTED", "RUNNING", "WAITING", "RESERVED",
        ],
        &cells,
    )?;
    Ok(ExitCode::SUCCESS)
}
