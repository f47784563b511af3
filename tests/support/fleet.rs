//! Real `jobfleet worker` processes on a test's Redis, and their Prometheus counters.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};

use jobfleet::queue::{QueueClient, StoreSettings};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::AsyncCommands;

use super::app::{client_with, manifest_dir};

/// A child process that is killed when dropped, so that a failing test leaves no worker
/// behind (one frozen by SIGSTOP included).
#[derive(Debug)]
pub struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A worker process with 1 s leases (so a lost one is noticed quickly) and a completed
/// history long enough to check every job; `extra` adds or overrides settings.
pub fn spawn_worker(url: &str, concurrency: u32, extra: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobfleet"));
    cmd.args(["worker", "--concurrency", &concurrency.to_string()])
        .current_dir(manifest_dir())
        .env("REDIS_URL", url)
        .env("JOBFLEET_ENV", "test")
        .env("JOBFLEET__WORKER__LEASE", "1s")
        .env("JOBFLEET__WORKER__COMPLETED_HISTORY", "100000")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().expect("starts jobfleet worker"))
}

/// A worker process that serves `/metrics` on a port of its own; returns it and the port.
pub fn spawn_metered_worker(url: &str, concurrency: u32, extra: &[(&str, &str)]) -> (Proc, u16) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut settings = vec![("JOBFLEET__TELEMETRY__HTTP_ADDR", addr.as_str())];
    settings.extend_from_slice(extra);
    (spawn_worker(url, concurrency, &settings), port)
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).expect("signal sent");
}

/// Stops a worker with SIGTERM and checks that it exits cleanly.
pub fn stop(mut child: Proc) {
    signal(&child, Signal::SIGTERM);
    assert!(
        child.wait().unwrap().success(),
        "a worker exits cleanly on SIGTERM"
    );
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
pub async fn stats(c: &QueueClient) -> Option<jobfleet::queue::admin::QueueStats> {
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
    jobfleet::install_tls_provider();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let response = reqwest::get(url).await.ok()?;
    response.text().await.ok()
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
