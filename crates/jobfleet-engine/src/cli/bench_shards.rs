//! Where the benchmark's load goes, and what each Redis master spent on it: on a cluster the
//! queues are chosen so that every master holds as many of them, and each master's CPU time
//! (from `INFO cpu`) is divided by the jobs of its queues, which says what one shard costs per
//! job; the worker processes share the machine's cores out between them (`runtime_threads`).

use std::collections::BTreeMap;

use crate::queue::QueueClient;

/// The runtime threads of each of `processes` worker processes started on this machine:
/// `TOKIO_WORKER_THREADS` when the caller set it, else the cores shared out between them, at
/// least one each. Each runtime would otherwise start a thread per core, and the processes'
/// threads would preempt each other and Redis (on 2 cores, 2 processes of 2 threads drained
/// about 15% fewer jobs per second than 2 processes of 1: docs/benchmark.md).
pub(super) fn runtime_threads(processes: usize) -> String {
    match std::env::var("TOKIO_WORKER_THREADS") {
        Ok(set) if !set.trim().is_empty() => set,
        _ => {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            share_of_cores(cores, processes).to_string()
        }
    }
}

fn share_of_cores(cores: usize, processes: usize) -> usize {
    (cores / processes.max(1)).max(1)
}

/// Names `count` benchmark queues (`bench`, or `bench-0`...); on a cluster, spread evenly over
/// its masters, as many per master as can be.
pub(super) async fn queue_names(client: &QueueClient, count: usize) -> anyhow::Result<Vec<String>> {
    if count == 1 && !client.connection().is_cluster() {
        return Ok(vec!["bench".to_owned()]);
    }
    let masters = client
        .connection()
        .info_per_master("server")
        .await?
        .len()
        .max(1);
    let per_master = count.div_ceil(masters);
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut names = Vec::with_capacity(count);
    for i in 0..count * 50 {
        let name = format!("bench-{i}");
        let master = shard(client, &name).await?;
        let n = taken.entry(master).or_default();
        if *n < per_master {
            *n += 1;
            names.push(name);
            if names.len() == count {
                return Ok(names);
            }
        }
    }
    anyhow::bail!("found no spread of {count} queues over {masters} masters")
}

/// The master holding a queue (`master` off a cluster).
pub(super) async fn shard(client: &QueueClient, queue: &str) -> anyhow::Result<String> {
    let key = client.keys().queue(queue).pending();
    Ok(client
        .connection()
        .master_of(&key)
        .await?
        .unwrap_or_else(|| "master".to_owned()))
}

/// Every master's CPU time so far (user + system, seconds).
pub(super) async fn cpu(client: &QueueClient) -> anyhow::Result<BTreeMap<String, f64>> {
    let info = client.connection().info_per_master("cpu").await?;
    Ok(info
        .into_iter()
        .map(|(node, text)| {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| {
                        l.strip_prefix(name)?
                            .strip_prefix(':')?
                            .trim()
                            .parse::<f64>()
                            .ok()
                    })
                    .unwrap_or(0.0)
            };
            (node, field("used_cpu_user") + field("used_cpu_sys"))
        })
        .collect())
}

/// One line per master: its CPU time between `before` and `after`, the jobs its queues ran,
/// and the CPU time per job.
pub(super) fn per_shard_lines(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    jobs: &BTreeMap<String, u64>,
) -> Vec<String> {
    after
        .iter()
        .map(|(node, &end)| {
            let spent = end - before.get(node).copied().unwrap_or(end);
            let n = jobs_of(jobs, node);
            let per_job = if n == 0 { 0.0 } else { spent / n as f64 * 1e6 };
            format!(
                "  redis {node:<21} {spent:>7.2} s CPU for {n:>8} jobs: {per_job:>6.1} µs per job"
            )
        })
        .collect()
}

/// The jobs of the master at `node`. A cluster of one master may not know its own address and
/// names itself `:port` in `CLUSTER SLOTS`: such a name matches the master on that port.
fn jobs_of(jobs: &BTreeMap<String, u64>, node: &str) -> u64 {
    jobs.get(node).copied().unwrap_or_else(|| {
        jobs.iter()
            .filter(|(addr, _)| addr.starts_with(':') && node.ends_with(addr.as_str()))
            .map(|(_, n)| n)
            .sum()
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_cores_are_shared_out_between_the_processes() {
        assert_eq!(share_of_cores(2, 2), 1);
        assert_eq!(share_of_cores(8, 2), 4);
        assert_eq!(share_of_cores(2, 3), 1, "at least one thread each");
        assert_eq!(share_of_cores(4, 0), 4);
    }
    use super::*;

    #[test]
    fn cpu_per_job_is_the_delta_over_the_shards_jobs() {
        let before = BTreeMap::from([("a".to_owned(), 1.0), ("b".to_owned(), 2.0)]);
        let after = BTreeMap::from([("a".to_owned(), 3.0), ("b".to_owned(), 2.5)]);
        let jobs = BTreeMap::from([("a".to_owned(), 100_000), ("b".to_owned(), 0)]);
        let lines = per_shard_lines(&before, &after, &jobs);
        assert!(
            lines[0].contains("2.00 s CPU for   100000 jobs:   20.0 µs per job"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("0.50 s CPU for        0 jobs:    0.0 µs"),
            "{}",
            lines[1]
        );
    }
}
