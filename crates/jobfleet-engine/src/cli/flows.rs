//! `jobfleet flows list|show`: the flows kept in the queues, and one flow's children's counts,
//! its callbacks and its failed children.

use std::process::ExitCode;

use super::engine::Engine;
use super::output::{age, json, outln, table, time};
use crate::queue::{FlowState, now_ms};

fn callback_cell(f: &FlowState) -> String {
    let mut parts = Vec::new();
    for (name, cb) in [
        ("on_success", &f.on_success),
        ("on_complete", &f.on_complete),
    ] {
        if let Some(cb) = cb {
            let ran = if cb.enqueued_at.is_some() {
                "enqueued"
            } else {
                "waiting"
            };
            parts.push(format!("{name} {} ({ran})", cb.kind));
        }
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `jobfleet flows list [--queue Q] [--limit N] [--json]`, newest first.
pub async fn list<S: Send + Sync + 'static>(
    app: &Engine<S>,
    queue: Option<&str>,
    limit: usize,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let flows = client.flows(queue, limit.max(1)).await?;
    if as_json {
        json(&flows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if flows.is_empty() {
        outln!("no flows")?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = flows
        .iter()
        .map(|f| {
            vec![
                f.id.clone(),
                f.queue.clone(),
                f.status.as_str().to_owned(),
                f.total.to_string(),
                f.succeeded.to_string(),
                f.failed.to_string(),
                f.pending.to_string(),
                age(Some(now - f.created_at)),
                callback_cell(f),
            ]
        })
        .collect();
    table(
        &[
            "FLOW",
            "QUEUE",
            "STATUS",
            "TOTAL",
            "DONE",
            "FAILED",
            "PENDING",
            "AGE",
            "CALLBACKS",
        ],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `jobfleet flows show ID [--json]`: one flow, with every failed child's id.
pub async fn show<S: Send + Sync + 'static>(
    app: &Engine<S>,
    id: &str,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let Some(f) = client.flow(None, id).await? else {
        anyhow::bail!("no flow with id {id} (a finished flow is kept as long as a dead job)");
    };
    if as_json {
        json(&f)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("flow       {}", f.id)?;
    outln!("queue      {}", f.queue)?;
    outln!("status     {}", f.status.as_str())?;
    outln!(
        "children   {} in all: {} succeeded, {} failed, {} pending",
        f.total,
        f.succeeded,
        f.failed,
        f.pending
    )?;
    outln!("created    {}", time(Some(f.created_at)))?;
    outln!("completed  {}", time(f.completed_at))?;
    if let Some(p) = &f.parent {
        outln!(
            "parent     flow {} (queue {}), counted as {}",
            p.id,
            p.queue,
            p.member
        )?;
    }
    for (name, cb) in [
        ("on_success", &f.on_success),
        ("on_complete", &f.on_complete),
    ] {
        if let Some(cb) = cb {
            let when = cb.enqueued_at.map_or_else(
                || "not yet".to_owned(),
                |t| format!("enqueued {}", time(Some(t))),
            );
            // "on_complete" is as wide as the labels' column: one space keeps it apart.
            outln!("{name:<10} {} as job {} ({when})", cb.kind, cb.id)?;
        }
    }
    if !f.failed_ids.is_empty() {
        outln!("failed     {}", f.failed_ids.join(" "))?;
    }
    Ok(ExitCode::SUCCESS)
}
