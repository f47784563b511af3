//! Fleets of real `jobfleet worker` processes on a test's Redis (started with
//! `process::Process`), the completed history they keep, and their Prometheus counters.
#![allow(dead_code)]

use std::collections::HashSet;

use jobfleet::queue::admin::QueueStats;
use jobfleet::queue::{QueueClient, StoreSettings};
use redis::AsyncCommands;

use super::app::client_with;
use super::process::{Process, free_port, http_get};

/// A worker process with 1 s leases (so a lost one is noticed quickly) and a completed
/// history long enough to check every job; `extra` adds or overrides settings.
pub fn spawn_worker(url: &str, concurrency: u32, extra: &[(&str, &str)]) -> Process {
    let mut env = vec![
        ("JOBFLEET__WORKER__LEASE", "1s"),
        ("JOBFLEET__WORKER__COMPLETED_HISTORY", "100000"),
    ];
    env.extend_from_slice(extra);
    Process::start(
        url,
        &env,
        &["worker", "--concurrency", &concurrency.to_string()],
    )
}

/// A worker process that serves `/metrics` on a port of its own; returns it and the port.
pub fn spawn_metered_worker(url: &str, concurrency: u32, extra: &[(&str, &str)]) -> (Process, u16) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut env = vec![("JOBFLEET__TELEMETRY__HTTP_ADDR", addr.as_str())];
    env.extend_from_slice(extra);
    (spawn_worker(url, concurrency, &env), port)
}

/// A client that reads the completed history the workers above keep.
pub async fn history_client(url: &str) -> QueueClient {
    let store = StoreSettings {
        completed_history: 100_000,
        ..StoreSettings::default()
    };
    client_with(url, store).await
}

/// The counters of the default queue, or None while Redis does not answer (a test that
/// restarts or freezes it polls through the outage).
pub async fn stats(c: &QueueClient) -> Option<QueueStats> {
    c.stats("default").await.ok()
}

/// The ids in a queue's completed history.
pub async fn completed(c: &QueueClient, queue: &str) -> HashSet<String> {
    let done: Vec<String> = c
        .connection()
        .zrange(c.keys().queue(queue).completed(), 0, -1)
        .await
        .unwrap();
    done.into_iter().collect()
}

/// The `/metrics` page of a worker, or None while it does not answer.
pub async fn metrics(port: u16) -> Option<String> {
    let target = format!("127.0.0.1:{port}");
    let got = tokio::task::spawn_blocking(move || http_get(&target, "/metrics")).await;
    match got {
        Ok(Ok((200, body))) => Some(body),
        _ => None,
    }
}

/// The sum of `jobfleet_jobs_total` samples with this outcome, over all queues and kinds.
pub fn jobs_total(page: &str, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    page.lines()
        .filter(|l| l.starts_with("jobfleet_jobs_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
