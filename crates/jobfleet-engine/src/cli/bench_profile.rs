//! `jobfleet bench --profile`: where a job's time goes. Each path of a job through the store
//! (enqueue, fetch, ack, settle of a failure, fetch of a retried job) is driven on its own by
//! sequential calls of one client, and what Redis spent on it is read from `INFO cpu` (the
//! server's own CPU time, network included) and `INFO commandstats` (the time inside each
//! script, and inside each command the scripts call) before and after. The drains by worker
//! processes get the same breakdown, and the workers' own CPU time from `/proc`.
//!
//! The `INFO` calls that take the readings are a handful per phase, so they weigh nothing
//! beside the thousands of jobs they divide.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::queue::{Call, Leased, NewJob, QueueClient, Settle, SettleAction, now_ms};

/// What Redis had spent by one moment: CPU seconds summed over the masters, and per command
/// name its calls and microseconds (`EVALSHA` counts a script's whole run, the commands it
/// calls are counted again under their own names).
#[derive(Clone, Debug, Default)]
pub(super) struct Reading {
    cpu: f64,
    commands: BTreeMap<String, (u64, u64)>,
}

pub(super) async fn reading(client: &QueueClient) -> anyhow::Result<Reading> {
    let mut con = client.connection();
    let mut r = Reading::default();
    for (_, text) in con.info_per_master("cpu").await? {
        r.cpu += field(&text, "used_cpu_user") + field(&text, "used_cpu_sys");
    }
    for (_, text) in con.info_per_master("commandstats").await? {
        for (name, calls, usec) in parse_commandstats(&text) {
            let e = r.commands.entry(name).or_default();
            e.0 += calls;
            e.1 += usec;
        }
    }
    Ok(r)
}

fn field(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `cmdstat_<name>:calls=<n>,usec=<n>,...` lines as (name, calls, usec).
fn parse_commandstats(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let value = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
            };
            Some((name.to_owned(), value("calls")?, value("usec")?))
        })
        .collect()
}

/// One line of figures for `jobs` jobs between two readings: Redis CPU per job, the time in
/// scripts per job, and the commands that took the most of it. The readings' own `INFO`
/// calls are left out.
pub(super) fn line(label: &str, before: &Reading, after: &Reading, jobs: usize) -> String {
    let per_job = |x: f64| if jobs == 0 { 0.0 } else { x / jobs as f64 };
    let mut spent: Vec<(&str, u64, u64)> = after
        .commands
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, &(calls, usec))| {
            let (c0, u0) = before.commands.get(name).copied().unwrap_or_default();
            (
                name.as_str(),
                calls.saturating_sub(c0),
                usec.saturating_sub(u0),
            )
        })
        .filter(|(_, calls, _)| *calls > 0)
        .collect();
    spent.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    let (scripts, commands): (Vec<_>, Vec<_>) = spent
        .into_iter()
        .partition(|(n, ..)| matches!(*n, "evalsha" | "eval" | "fcall"));
    let (calls, usec) = scripts
        .iter()
        .fold((0, 0), |(c, u), (_, calls, usec)| (c + calls, u + usec));
    let inner: Vec<String> = commands
        .iter()
        .take(6)
        .map(|(n, c, us)| {
            format!(
                "{} {:.2} ({:.1}/job)",
                n.to_uppercase(),
                per_job(*us as f64),
                per_job(*c as f64)
            )
        })
        .collect();
    format!(
        "  {label:<24} redis {:>5.2} µs/job; scripts {:>5.2} µs/job in {calls} calls; \
         commands µs/job: {}",
        per_job((after.cpu - before.cpu) * 1e6),
        per_job(usec as f64),
        inner.join(", ")
    )
}

/// A process's CPU time so far (user + system, seconds), from `/proc/<pid>/stat`; None where
/// there is no such file.
pub(super) fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields are counted after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th after the
    // name, in clock ticks, which Linux reports at 100 per second for every architecture.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The workers' line: their CPU time between two readings of `process_cpu` for `jobs` jobs.
pub(super) fn worker_line(before: f64, after: f64, jobs: usize, processes: usize) -> String {
    let spent = after - before;
    format!(
        "  {:<24} {spent:>5.2} s CPU in {processes} processes: {:>5.2} µs/job",
        "workers",
        if jobs == 0 {
            0.0
        } else {
            spent * 1e6 / jobs as f64
        }
    )
}

/// Drives each path on its own on `queue` with `n` no-op jobs of `payload`'s args, fetching
/// `batch` at a time and settling half a batch per call as a worker under load does, and adds
/// a line per path to `out`. Each fetched batch goes to a fake worker of its own, so that each
/// in-flight hash holds one batch as a real worker's does; the bench's cleanup removes the queue with every
/// key they leave.
pub(super) async fn paths(
    client: &QueueClient,
    queue: &str,
    n: usize,
    batch: usize,
    payload: fn(usize) -> serde_json::Value,
    out: &mut Vec<String>,
) -> anyhow::Result<()> {
    let settle_batch = batch.div_ceil(2).max(1);
    let mut workers = 0;
    let jobs = |i0: usize| {
        (0..n)
            .map(|i| NewJob::new("noop", queue, payload(i0 + i)).max_attempts(3))
            .collect::<Vec<_>>()
    };
    let r0 = reading(client).await?;
    client.enqueue_bulk(jobs(0)).await?;
    let r1 = reading(client).await?;
    out.push(line("enqueue (bulk)", &r0, &r1, n));
    let leased = fetch_all(client, queue, batch, &mut workers, n).await?;
    let r2 = reading(client).await?;
    out.push(line(&format!("fetch ({batch} per call)"), &r1, &r2, n));
    ack_all(client, queue, &leased, settle_batch).await?;
    let r3 = reading(client).await?;
    out.push(line(&format!("ack ({settle_batch} per call)"), &r2, &r3, n));

    client.enqueue_bulk(jobs(n)).await?;
    let leased = fetch_all(client, queue, batch, &mut workers, n).await?;
    let r4 = reading(client).await?;
    for (worker, held) in &leased {
        for chunk in held.chunks(settle_batch) {
            let settles: Vec<Settle<'_>> = chunk
                .iter()
                .map(|job| Settle {
                    job,
                    action: SettleAction::Retry,
                    due_ms: now_ms(),
                    error: "failed on purpose".to_owned(),
                })
                .collect();
            client
                .settle(queue, worker, &Call::new("settle"), &settles)
                .await?;
        }
    }
    let r5 = reading(client).await?;
    out.push(line("settle (retry now)", &r4, &r5, n));
    let leased = fetch_all(client, queue, batch, &mut workers, n).await?;
    let r6 = reading(client).await?;
    out.push(line("fetch (retried)", &r5, &r6, n));
    ack_all(client, queue, &leased, settle_batch).await?;
    let r7 = reading(client).await?;
    out.push(line("ack (after a failure)", &r6, &r7, n));
    Ok(())
}

/// Acks every leased job, `per_call` of one fake worker's at a time.
async fn ack_all(
    client: &QueueClient,
    queue: &str,
    leased: &[(String, Vec<Leased>)],
    per_call: usize,
) -> anyhow::Result<()> {
    for (worker, held) in leased {
        for chunk in held.chunks(per_call) {
            let refs: Vec<&Leased> = chunk.iter().collect();
            client.ack(queue, worker, &Call::new("ack"), &refs).await?;
        }
    }
    Ok(())
}

/// Leases `n` jobs of `queue`, `batch` per call, each batch to a fake worker of its own
/// (`workers` counts them).
async fn fetch_all(
    client: &QueueClient,
    queue: &str,
    batch: usize,
    workers: &mut usize,
    n: usize,
) -> anyhow::Result<Vec<(String, Vec<Leased>)>> {
    let mut leased = Vec::new();
    let mut got = 0;
    while got < n {
        let worker = format!("profile-{workers}");
        *workers += 1;
        let f = client
            .fetch(queue, batch, Duration::from_secs(600), &worker)
            .await?;
        if f.jobs.is_empty() {
            anyhow::bail!("the profile's queue ran dry after {got} of {n} jobs");
        }
        got += f.jobs.len();
        leased.push((worker, f.jobs));
    }
    Ok(leased)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_give_calls_and_time() {
        let text = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=250,usec_per_call=25.00,\
                    rejected_calls=0,failed_calls=0\r\ncmdstat_lrem:calls=40,usec=20,\
                    usec_per_call=0.50\r\n";
        assert_eq!(
            parse_commandstats(text),
            vec![("evalsha".to_owned(), 10, 250), ("lrem".to_owned(), 40, 20)]
        );
    }

    #[test]
    fn a_line_divides_the_deltas_by_the_jobs() {
        let before = Reading {
            cpu: 1.0,
            commands: BTreeMap::from([("evalsha".to_owned(), (5, 100))]),
        };
        let after = Reading {
            cpu: 1.5,
            commands: BTreeMap::from([
                ("evalsha".to_owned(), (15, 300_100)),
                ("lrem".to_owned(), (100_000, 50_000)),
                ("info".to_owned(), (4, 999_999)),
            ]),
        };
        let l = line("ack", &before, &after, 100_000);
        assert!(l.contains("redis  5.00 µs/job"), "{l}");
        assert!(l.contains("scripts  3.00 µs/job in 10 calls"), "{l}");
        assert!(l.contains("LREM 0.50 (1.0/job)"), "{l}");
        assert!(!l.contains("INFO"), "{l}");
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu(std::process::id()).is_some());
        assert_eq!(process_cpu(u32::MAX), None);
    }
}
