//! Real `jobfleet worker` processes: one is SIGKILLed mid-run, another is stopped with SIGTERM.
//! Every job must complete at least once and nothing may be left behind or counted twice.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use jobfleet::queue::NewJob;
use serde_json::json;
use support::TestRedis;
use support::app::eventually;
use support::fleet::{completed, history_client, spawn_worker};
use support::process::Process;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_no_job() {
    const N: usize = 3_000;
    let redis = TestRedis::start();
    let url = redis.url();
    let c = history_client(&url).await;
    let jobs: Vec<NewJob> = (0..N)
        .map(|_| NewJob::new("sleep", "default", json!({"ms": 5})).max_attempts(5))
        .collect();
    let ids: HashSet<String> = c
        .enqueue_bulk(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), N);

    let mut workers: Vec<Process> = (0..3).map(|_| spawn_worker(&url, 8, &[])).collect();
    let started = eventually(Duration::from_secs(30), || async {
        c.stats("default").await.unwrap().processed >= (N / 4) as u64
    })
    .await;
    assert!(started, "workers did not get going");
    workers[0].kill();
    let held_by_the_dead: u64 = c.stats("default").await.unwrap().active;

    let drained = eventually(Duration::from_secs(60), || async {
        let s = c.stats("default").await.unwrap();
        s.pending + s.scheduled + s.active + s.retry == 0
    })
    .await;
    for w in &mut workers[1..] {
        w.terminate_cleanly();
    }
    assert!(drained, "{:?}", c.stats("default").await.unwrap());

    let s = c.stats("default").await.unwrap();
    let done = completed(&c, "default").await;
    let missing = ids.difference(&done).count();
    eprintln!(
        "crash test: {N} jobs, {} processed, {} failed attempts (expired leases), {} jobs active right after the kill, {missing} missing",
        s.processed, s.failed, held_by_the_dead
    );
    assert_eq!(missing, 0, "every job completed at least once");
    assert_eq!((s.dead, s.pending, s.active), (0, 0, 0));
    assert_eq!(
        s.processed, N as u64,
        "each job is acked once: a zombie ack is fenced off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_running_jobs_back_without_counting_them() {
    const N: usize = 40;
    let redis = TestRedis::start();
    let url = redis.url();
    let c = history_client(&url).await;
    let jobs: Vec<NewJob> = (0..N)
        .map(|_| NewJob::new("sleep", "default", json!({"ms": 2_000})).max_attempts(1))
        .collect();
    c.enqueue_bulk(jobs).await.unwrap();
    let mut w = spawn_worker(&url, 4, &[("JOBFLEET__WORKER__SHUTDOWN_TIMEOUT", "200ms")]);
    let busy = eventually(Duration::from_secs(20), || async {
        c.stats("default").await.unwrap().active >= 4
    })
    .await;
    assert!(busy);
    w.terminate_cleanly();
    let s = c.stats("default").await.unwrap();
    assert_eq!(
        (s.active, s.processed, s.failed, s.dead),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.pending, N as u64, "every job is back in pending");
    let page = c
        .list("default", jobfleet::queue::JobState::Pending, 0, 100)
        .await
        .unwrap();
    assert!(
        page.jobs.iter().all(|j| j.attempts == 0),
        "no attempt was used up"
    );

    // A new worker finishes them all: nothing was lost.
    let mut w2 = spawn_worker(&url, 40, &[]);
    let done = eventually(Duration::from_secs(30), || async {
        c.stats("default").await.unwrap().processed == N as u64
    })
    .await;
    w2.terminate_cleanly();
    assert!(done, "{:?}", c.stats("default").await.unwrap());
}
