//! `jobfleet enqueue`: one job from `--args`, or one job per line from `--jsonl`.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::Args;
use serde_json::Value;

use super::engine::Engine;
use super::output::{json, outln, time};
use crate::job::Registry;
use crate::queue::priority::Priority;
use crate::queue::{LATEST_MS, NewJob, PartialEnqueue, QueueError, now_ms};

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
    /// With --jsonl: start at this line (1 is the first), skipping the lines before it; the
    /// error of an enqueue that failed part-way names the line to resume from.
    #[arg(long, requires = "jsonl", value_parser = clap::value_parser!(u64).range(1..))]
    pub from_line: Option<u64>,
    /// Another queue than the spec's.
    #[arg(long)]
    pub queue: Option<String>,
    /// Run after this delay (e.g. 30s, 5m).
    #[arg(long = "in", value_parser = parse_delay, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Run at this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long, value_parser = parse_at)]
    pub at: Option<i64>,
    /// Another priority than the spec's: 0 (or critical) runs before every other level of the
    /// queue, then 1 (high), 2 (normal, the default) and 3 (low).
    #[arg(long, value_parser = parse_priority)]
    pub priority: Option<Priority>,
    /// A unique key: while a job with this key exists, enqueueing another returns its id.
    #[arg(long, conflicts_with = "jsonl")]
    pub unique: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse()
        .map_err(|e: crate::queue::priority::InvalidPriority| e.to_string())
}

/// A delay that ends by 9999-12-31 (`LATEST_MS`): a longer one is a mistake, and adding it to
/// the clock would overflow.
fn parse_delay(s: &str) -> Result<Duration, String> {
    let d = super::parse_duration(s)?;
    let room = LATEST_MS.saturating_sub(now_ms());
    match i64::try_from(d.as_millis()) {
        Ok(ms) if ms <= room => Ok(d),
        _ => Err(format!(
            "{s:?} would make the job due after {}, the latest time a job can have",
            time(Some(LATEST_MS))
        )),
    }
}

/// An RFC 3339 time between the epoch and 9999-12-31, as ms since the epoch.
fn parse_at(s: &str) -> Result<i64, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|_| format!("{s:?} is not an RFC 3339 time like 2026-11-22T10:00:00Z"))?;
    let ms = t.timestamp_millis();
    if (0..=LATEST_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "{s:?} is outside {} to {}, the times a job can have",
            time(Some(0)),
            time(Some(LATEST_MS))
        ))
    }
}

fn run_at(args: &EnqueueArgs) -> Option<i64> {
    // Saturating, as the delay was checked against a clock read a moment earlier; the store
    // refuses a result past LATEST_MS.
    args.delay
        .map(|d| now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        .or(args.at)
}

fn build<S: Send + Sync + 'static>(
    registry: &Registry<S>,
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
    if let Some(p) = args.priority {
        job = job.priority(p);
    }
    if let Some(key) = &args.unique {
        job = job.unique(key, registry.unique_ttl(&args.kind));
    }
    Ok(job)
}

pub async fn run<S: Send + Sync + 'static>(
    app: &Engine<S>,
    args: EnqueueArgs,
) -> anyhow::Result<ExitCode> {
    let registry = app.registry()?;
    registry.spec(&args.kind)?;
    let at = run_at(&args);
    // The line number of each job, for an error that says where to resume.
    let mut lines = Vec::new();
    let jobs = match (&args.args, &args.jsonl) {
        (_, Some(path)) => {
            let mut jobs = Vec::new();
            for (line, value) in read_jsonl(path, args.from_line.unwrap_or(1))? {
                jobs.push(build(&registry, &args, value, at)?);
                lines.push(line);
            }
            jobs
        }
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
    // In order, one call at a time: if Redis refuses a call (out of memory, say), the jobs
    // stored are exactly the lines before it, which is what makes --from-line a safe resume.
    let results = match client.enqueue_bulk_ordered(jobs).await {
        Ok(results) => results,
        Err(QueueError::Partial(p)) if !lines.is_empty() => {
            let path = args.jsonl.as_deref().unwrap_or("-");
            return Err(resume_error(path, &lines, *p));
        }
        Err(e) => return Err(e.into()),
    };
    let elapsed = started.elapsed();
    if args.json {
        json(&results)?;
    } else if args.jsonl.is_some() {
        let created = results.iter().filter(|r| r.created).count();
        outln!(
            "enqueued {created} jobs ({} duplicates) in {:.3}s",
            results.len() - created,
            elapsed.as_secs_f64()
        )?;
    } else {
        for r in &results {
            if r.created {
                outln!("{}", r.id)?;
            } else {
                outln!("{} (already enqueued)", r.id)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The error of a bulk enqueue that stored part of a file: how many jobs went in, from which
/// line on nothing did, and the `--from-line` that enqueues the rest once, with Redis's reason
/// as the cause.
fn resume_error(path: &str, lines: &[usize], p: PartialEnqueue) -> anyhow::Error {
    let stored = p.stored();
    let from = p.untouched_from();
    let mut text = format!("enqueued {stored} of {} jobs of {path}", lines.len());
    if let Some(last) = p.results.iter().rposition(Option::is_some) {
        text.push_str(&format!(" (lines {} to {})", lines[0], lines[last]));
    }
    let unknown = (p.unknown.iter().min(), p.unknown.iter().max());
    if let (Some(&lo), Some(&hi)) = unknown {
        text.push_str(&format!(
            "; Redis did not answer for lines {} to {}, which may or may not be enqueued",
            lines[lo], lines[hi]
        ));
    }
    if let Some(&line) = lines.get(from) {
        text.push_str(&format!(
            "; nothing from line {line} on was enqueued: once the cause is fixed, run the same \
             command with --from-line {line} to enqueue the rest without duplicates"
        ));
        if let Some(&lo) = p.unknown.iter().min() {
            text.push_str(&format!(
                " (or with --from-line {} to enqueue the unanswered lines again too)",
                lines[lo]
            ));
        }
    }
    anyhow::Error::new(p.error).context(text)
}

/// Reads every line from `from_line` on first, so one bad line enqueues nothing. Returns each
/// args object with its line number (blank lines are skipped but counted).
fn read_jsonl(path: &str, from_line: u64) -> anyhow::Result<Vec<(usize, Value)>> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    let from = usize::try_from(from_line).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut count = 0;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        count = n;
        let line = line.with_context(|| format!("{path}: cannot read line {n}"))?;
        if n < from || line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{path}: line {n} is not valid JSON"))?;
        if !v.is_object() {
            bail!("{path}: line {n} is not a JSON object");
        }
        out.push((n, v));
    }
    // Line 1 of an empty input is the empty start, not past its end: nothing to enqueue.
    if from > 1 && from > count {
        bail!("--from-line {from_line}: {path} has {count} lines");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_input_is_no_jobs_and_a_line_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        let empty = empty.to_str().unwrap();
        assert!(read_jsonl(empty, 1).unwrap().is_empty());
        let two = dir.path().join("two.jsonl");
        std::fs::write(&two, "{}\n{}\n").unwrap();
        let two = two.to_str().unwrap();
        assert_eq!(read_jsonl(two, 2).unwrap().len(), 1);
        let err = read_jsonl(two, 4).unwrap_err().to_string();
        assert!(err.contains("has 2 lines"), "{err}");
        assert!(read_jsonl(empty, 2).is_err());
    }

    #[test]
    fn delays_and_times_must_end_by_the_year_9999() {
        assert!(parse_delay("30s").is_ok());
        assert!(parse_delay("7000years").is_ok());
        for absurd in ["9223370240741137s", "292270967y", "8000years"] {
            let e = parse_delay(absurd).unwrap_err();
            assert!(e.contains(absurd) && e.contains("9999-12-31"), "{e}");
        }
        assert_eq!(parse_at("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_at("9999-12-31T23:59:59.999Z"), Ok(LATEST_MS));
        for outside in ["9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"] {
            let e = parse_at(outside).unwrap_err();
            assert!(e.contains(outside) && e.contains("9999-12-31"), "{e}");
        }
        assert!(parse_at("tomorrow").unwrap_err().contains("RFC 3339"));
    }

    fn partial(stored: usize, unknown: &[usize], total: usize) -> PartialEnqueue {
        let done = crate::queue::Enqueued {
            id: "j".into(),
            created: true,
        };
        PartialEnqueue {
            results: (0..total)
                .map(|i| (i < stored).then(|| done.clone()))
                .collect(),
            unknown: unknown.to_vec(),
            error: QueueError::Invalid("OOM command not allowed".into()),
        }
    }

    #[test]
    fn a_partial_enqueue_names_the_line_to_resume_from() {
        // Lines 1..=5 with a blank line 3: jobs sit on lines 1, 2, 4, 5, 6.
        let lines = [1, 2, 4, 5, 6];
        let e = format!("{:#}", resume_error("f.jsonl", &lines, partial(2, &[], 5)));
        assert!(
            e.starts_with("enqueued 2 of 5 jobs of f.jsonl (lines 1 to 2)"),
            "{e}"
        );
        assert!(
            e.contains("nothing from line 4 on") && e.contains("--from-line 4 "),
            "{e}"
        );
        assert_eq!(e.matches("OOM command not allowed").count(), 1, "{e}");
        let e = format!(
            "{:#}",
            resume_error("f.jsonl", &lines, partial(2, &[2, 3], 5))
        );
        assert!(e.contains("lines 4 to 5, which may or may not"), "{e}");
        assert!(
            e.contains("--from-line 6 ") && e.contains("--from-line 4 to"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            resume_error("f.jsonl", &lines, partial(0, &[0, 1, 2, 3, 4], 5))
        );
        assert!(
            e.starts_with("enqueued 0 of 5") && !e.contains("nothing from"),
            "{e}"
        );
    }
}
