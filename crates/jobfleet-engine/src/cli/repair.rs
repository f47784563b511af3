//! Commands that change queue state: retry, delete, purge, pause and resume.

use std::process::ExitCode;
use std::time::Duration;

use super::engine::Engine;
use super::output::json;
use super::output::outln;
use crate::queue::admin::RetryReport;
use crate::queue::cancel::Cancelled;

pub async fn retry_one<S: Send + Sync + 'static>(
    app: &Engine<S>,
    id: &str,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let was = client.retry_job(id).await?;
    if as_json {
        json(&serde_json::json!({"id": id, "was": was, "now": "pending"}))?;
    } else {
        outln!("job {id} was {was}; it runs again now")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn retry_dead<S: Send + Sync + 'static>(
    app: &Engine<S>,
    queue: Option<&str>,
    kind: Option<&str>,
    dry_run: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let queues = match queue {
        Some(q) => {
            client.known_queue(q).await?;
            vec![q.to_owned()]
        }
        None => client.queue_names().await?,
    };
    let mut reports: Vec<(String, RetryReport)> = Vec::new();
    for q in queues {
        let r = client.retry_dead(&q, kind, dry_run).await?;
        reports.push((q, r));
    }
    if as_json {
        let out: Vec<_> = reports
            .iter()
            .map(|(q, r)| serde_json::json!({"queue": q, "matched": r.matched, "scanned": r.scanned, "dry_run": r.dry_run}))
            .collect();
        json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if dry_run { "would retry" } else { "retried" };
    for (q, r) in &reports {
        outln!("{q}: {verb} {} of {} dead jobs", r.matched, r.scanned)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete<S: Send + Sync + 'static>(
    app: &Engine<S>,
    id: &str,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let was = client.delete(id).await?;
    outln!("deleted job {id} (it was {was})")?;
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel<S: Send + Sync + 'static>(
    app: &Engine<S>,
    id: &str,
    by: Option<String>,
) -> anyhow::Result<ExitCode> {
    let who = by
        .or_else(|| std::env::var("USER").ok())
        .filter(|w| !w.trim().is_empty())
        .unwrap_or_else(|| "an operator".to_owned());
    let client = app.client().await?;
    match client.cancel(id, &who).await? {
        Cancelled::Removed(was) => {
            outln!("cancelled job {id}: it was {was}, it is dead now (cancelled by {who})")?;
        }
        Cancelled::Signalled => outln!(
            "job {id} is running: its worker was asked to stop it, and it ends as cancelled \
             by {who} unless it finishes first"
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn purge<S: Send + Sync + 'static>(
    app: &Engine<S>,
    queue: &str,
    older_than: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    client.known_queue(queue).await?;
    let ms = older_than.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let n = client.purge_dead(queue, ms).await?;
    match older_than {
        Some(d) => outln!(
            "{queue}: purged {n} dead jobs older than {}",
            humantime::format_duration(d)
        )?,
        None => outln!("{queue}: purged {n} dead jobs")?,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pause<S: Send + Sync + 'static>(
    app: &Engine<S>,
    queue: &str,
    pause: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    // Pausing registers the queue, so a mistyped name would make a phantom queue.
    client.known_queue(queue).await?;
    if pause {
        client.pause(queue).await?;
        outln!("{queue}: paused; workers take no jobs from it until it is resumed")?;
    } else {
        client.resume(queue).await?;
        outln!("{queue}: resumed")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove<S: Send + Sync + 'static>(
    app: &Engine<S>,
    queue: &str,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let client = app.client().await?;
    let removed = client.remove_queue(queue, force).await?;
    match removed.jobs() {
        0 => outln!("{queue}: removed ({} keys deleted)", removed.keys_deleted)?,
        n => outln!(
            "{queue}: removed, dropping {n} job{} ({}; {} keys deleted)",
            if n == 1 { "" } else { "s" },
            removed.describe(),
            removed.keys_deleted
        )?,
    }
    Ok(ExitCode::SUCCESS)
}
