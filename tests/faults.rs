//! Faults an unlucky production meets, injected into real processes: a worker frozen past its
//! lease while another runs its jobs, Redis killed and restarted from its append-only file
//! mid-drain, and Redis frozen past the lease. Each test checks that no job is lost, that
//! neither Redis's counters nor the workers' Prometheus counters count a job twice, and that
//! every process keeps serving afterwards.
//!
//! Hostile bytes in the store are in `tests/poison.rs`, a full Redis during a bulk enqueue in
//! `tests/enqueue_limits.rs`, and a SIGKILLed worker in `tests/crash.rs`.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use jobfleet::queue::{NewJob, QueueClient};
use serde_json::json;
use support::TestRedis;
use support::app::eventually;
use support::fleet::{completed, history_client, jobs_total, metrics, spawn_metered_worker, stats};
use support::process::{Process, Stopped};

async fn enqueue_sleeps(c: &QueueClient, n: usize, ms: u64) -> HashSet<String> {
    let jobs = (0..n).map(|_| NewJob::new("sleep", "default", json!({ "ms": ms })).max_attempts(5));
    c.enqueue_bulk(jobs.collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Waits (a bounded time) for the counters of a worker's `/metrics` to satisfy `check`;
/// returns the last page read.
async fn metrics_when(port: u16, check: impl Fn(&str) -> bool) -> String {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = metrics(port).await.unwrap_or_default();
        if check(&page) || tokio::time::Instant::now() > until {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every job completed, exactly once in Redis's counter, and the workers' Prometheus counters
/// add up to the same number; then each worker still runs a new job.
async fn check_exact(
    c: &QueueClient,
    ids: &HashSet<String>,
    ports: &[u16],
    workers: &mut [Process],
) {
    let n = ids.len() as u64;
    let drained = eventually(Duration::from_secs(60), || async {
        stats(c)
            .await
            .is_some_and(|s| s.processed >= n && s.pending + s.scheduled + s.active + s.retry == 0)
    })
    .await;
    let s = c.stats("default").await.unwrap();
    assert!(drained, "{s:?}");
    let done = completed(c, "default").await;
    assert_eq!(ids.difference(&done).count(), 0, "no job is lost");
    assert_eq!(
        (s.processed, s.dead),
        (n, 0),
        "each job is acked once: {s:?}"
    );
    // A worker updates its counters just after the store answered, so give it a moment.
    let mut sum = 0;
    for _ in 0..50 {
        sum = 0;
        for &port in ports {
            sum += jobs_total(&metrics_when(port, |p| !p.is_empty()).await, "completed");
        }
        if sum >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sum, n, "the workers count what the store accepted, once");
    for w in workers.iter_mut() {
        w.assert_running();
    }
    let more = enqueue_sleeps(c, 20, 0).await;
    let served = eventually(Duration::from_secs(20), || async {
        stats(c).await.is_some_and(|s| s.processed == n + 20)
    })
    .await;
    assert!(
        served && more.is_subset(&completed(c, "default").await),
        "the fleet serves again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_frozen_past_its_lease_counts_its_late_results_as_stale() {
    const N: usize = 6;
    let redis = TestRedis::start();
    let url = redis.url();
    let c = history_client(&url).await;
    let ids = enqueue_sleeps(&c, N, 2_000).await;
    let (frozen, frozen_port) = spawn_metered_worker(&url, N as u32, &[]);
    let leased = eventually(Duration::from_secs(20), || async {
        c.stats("default").await.unwrap().active == N as u64
    })
    .await;
    assert!(leased, "the first worker takes every job");
    let frozen_now = Stopped::new(frozen.pid());
    // The second worker's reaper takes the jobs back once the frozen worker's 1 s lease has
    // run out, and runs them to completion.
    let (other, other_port) = spawn_metered_worker(&url, N as u32, &[]);
    let rerun = eventually(Duration::from_secs(30), || async {
        stats(&c).await.is_some_and(|s| s.processed == N as u64)
    })
    .await;
    assert!(rerun, "{:?}", c.stats("default").await.unwrap());
    drop(frozen_now);
    // Woken up, the frozen worker finishes its sleeps and reports every result; the store
    // finds them all stale.
    let late = metrics_when(frozen_port, |p| jobs_total(p, "stale") == N as u64).await;
    assert_eq!(jobs_total(&late, "stale"), N as u64, "{late}");
    assert_eq!(jobs_total(&late, "completed"), 0, "{late}");
    let on_time = metrics_when(other_port, |p| jobs_total(p, "completed") == N as u64).await;
    assert_eq!(jobs_total(&on_time, "completed"), N as u64, "{on_time}");
    let mut workers = [frozen, other];
    check_exact(&c, &ids, &[frozen_port, other_port], &mut workers).await;
    for mut w in workers {
        w.terminate_cleanly();
    }
}

/// Two metered workers drain `ids`; a quarter of the way in, `fault` strikes. Then every job
/// must be done exactly once (`check_exact`) and both workers stop cleanly.
async fn drain_through(
    url: &str,
    c: &QueueClient,
    ids: &HashSet<String>,
    extra: &[(&str, &str)],
    fault: impl AsyncFnOnce(),
) {
    let (a, a_port) = spawn_metered_worker(url, 8, extra);
    let (b, b_port) = spawn_metered_worker(url, 8, extra);
    let quarter = ids.len() as u64 / 4;
    let midway = eventually(Duration::from_secs(30), || async {
        stats(c).await.is_some_and(|s| s.processed >= quarter)
    })
    .await;
    assert!(midway, "{:?}", stats(c).await);
    fault().await;
    let mut workers = [a, b];
    check_exact(c, ids, &[a_port, b_port], &mut workers).await;
    for mut w in workers {
        w.terminate_cleanly();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_from_its_aof_mid_drain_loses_and_doubles_nothing() {
    let aof = ["--appendonly", "yes", "--appendfsync", "always"].map(String::from);
    let mut redis = TestRedis::start_with(&aof);
    let url = redis.url();
    let c = history_client(&url).await;
    let ids = enqueue_sleeps(&c, 4_000, 1).await;
    // Leases longer than the outage: this test is about the restart, not about reaping.
    let lease = [("JOBFLEET__WORKER__LEASE", "10s")];
    drain_through(&url, &c, &ids, &lease, async || redis.kill_and_restart()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_past_the_lease_loses_nothing_and_counts_each_job_once() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = history_client(&url).await;
    let ids = enqueue_sleeps(&c, 2_000, 5).await;
    // Frozen for seven times the lease and longer than the response timeout (5 s): Redis's
    // own clock runs on, so on waking every lease has expired and the reapers may take running
    // jobs back; their late results must be fenced off and counted as stale. And the workers'
    // calls time out and are sent again once Redis answers, while the first sending still sits
    // in Redis's socket and runs first: the second must answer what the first did.
    drain_through(&url, &c, &ids, &[], async || {
        redis.pause();
        tokio::time::sleep(Duration::from_secs(7)).await;
        redis.resume();
    })
    .await;
}
