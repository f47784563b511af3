//! `jobfleet enqueue`: one job from `--args`, or one job per line from `--jsonl`.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::Args;
use serde_json::Value;

use super::output::json;
use super::{App, parse_duration};
use crate::jobs::Registry;
use crate::queue::{NewJob, now_ms};

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job kind (a file in jobs/).
    pub kind: String,
    /// The job's args as one JSON value.
    #[arg(long, conflicts_with = "jsonl")]
    pub args: Option<String>,
    /// A file (or - for stdin) with one args object per line, enqueued in bulk.
    #[arg(long)]
    pub jsonl: Option<String>,
    /// Another queue than the spec's.
    #[arg(long)]
    pub queue: Option<String>,
    /// Run after this delay (e.g. 30s, 5m).
    #[arg(long = "in", value_parser = parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Run at this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long)]
    pub at: Option<String>,
    /// A unique key: while a job with this key exists, enqueueing another returns its id.
    #[arg(long, conflicts_with = "jsonl")]
    pub unique: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn run_at(args: &EnqueueArgs) -> anyhow::Result<Option<i64>> {
    if let Some(d) = args.delay {
        return Ok(Some(
            now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
        ));
    }
    match &args.at {
        Some(at) => {
            let t = DateTime::parse_from_rfc3339(at).with_context(|| {
                format!("--at {at:?} is not an RFC 3339 time like 2026-11-22T10:00:00Z")
            })?;
            Ok(Some(t.timestamp_millis()))
        }
        None => Ok(None),
    }
}

fn build(
    registry: &Registry,
    args: &EnqueueArgs,
    value: Value,
    run_at: Option<i64>,
) -> anyhow::Result<NewJob> {
    let mut job = registry.new_job(&args.kind, value)?;
    if let Some(q) = &args.queue {
        crate::queue::validate_queue_name(q)?;
        job.queue.clone_from(q);
    }
    if let Some(at) = run_at {
        job = job.run_at(at);
    }
    if let Some(key) = &args.unique {
        job = job.unique(key, registry.unique_ttl(&args.kind));
    }
    Ok(job)
}

pub async fn run(app: &App, args: EnqueueArgs) -> anyhow::Result<ExitCode> {
    let registry = app.registry()?;
    registry.spec(&args.kind)?;
    let at = run_at(&args)?;
    let jobs = match (&args.args, &args.jsonl) {
        (_, Some(path)) => read_jsonl(path)?
            .into_iter()
            .map(|v| build(&registry, &args, v, at))
            .collect::<anyhow::Result<Vec<_>>>()?,
        (Some(text), None) => {
            let value: Value = serde_json::from_str(text).context("--args is not valid JSON")?;
            if !value.is_object() {
                bail!("--args must be a JSON object, like {{\"ms\": 100}}");
            }
            vec![build(&registry, &args, value, at)?]
        }
        (None, None) => vec![build(
            &registry,
            &args,
            Value::Object(Default::default()),
            at,
        )?],
    };
    let client = app.client().await?;
    let started = Instant::now();
    let results = client.enqueue_bulk(jobs).await?;
    let elapsed = started.elapsed();
    if args.json {
        json(&results)?;
    } else if args.jsonl.is_some() {
        let created = results.iter().filter(|r| r.created).count();
        println!(
            "enqueued {created} jobs ({} duplicates) in {:.3}s",
            results.len() - created,
            elapsed.as_secs_f64()
        );
    } else {
        for r in &results {
            if r.created {
                println!("{}", r.id);
            } else {
                println!("{} (already enqueued)", r.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every line first, so one bad line enqueues nothing.
fn read_jsonl(path: &str) -> anyhow::Result<Vec<Value>> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{path}: cannot read line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{path}: line {} is not valid JSON", i + 1))?;
        if !v.is_object() {
            bail!("{path}: line {} is not a JSON object", i + 1);
        }
        out.push(v);
    }
    Ok(out)
}
