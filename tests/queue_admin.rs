//! The operators' calls on the store against a real redis-server per test: retrying,
//! deleting and purging dead jobs, pausing, counters, history, listings and the worker
//! registry.

mod support;

use std::time::Duration;

use jobfleet::queue::{Backoff, Call, JobState, NewJob, SettleAction, now_ms};
use serde_json::json;
use support::TestRedis;
use support::app::client;
use support::store::{LEASE, fetch, noop, refs, settle};

#[tokio::test]
async fn dead_jobs_are_retried_deleted_and_purged() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let mut new: Vec<NewJob> = (0..6).map(noop).collect();
    new.extend((0..4).map(|i| NewJob::new("sleep", "default", json!({ "i": i }))));
    c.enqueue_bulk(new).await.unwrap();
    let leased = fetch(&c, 10, "w").await;
    let kills: Vec<_> = leased
        .iter()
        .map(|j| settle(j, SettleAction::Kill, 0))
        .collect();
    c.settle("default", "w", &Call::new("settle"), &kills)
        .await
        .unwrap();

    let dry = c.retry_dead("default", Some("sleep"), true).await.unwrap();
    assert_eq!((dry.matched, dry.scanned), (4, 10));
    assert_eq!(
        c.stats("default").await.unwrap().dead,
        10,
        "a dry run changes nothing"
    );
    let done = c.retry_dead("default", Some("sleep"), false).await.unwrap();
    assert_eq!(done.matched, 4);
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.dead, s.pending), (6, 4));
    let back = fetch(&c, 10, "w2").await;
    assert!(
        back.iter().all(|j| j.attempt() == 1),
        "a retried dead job starts its attempts afresh"
    );

    assert_eq!(c.retry_job(&leased[0].id()).await.unwrap(), JobState::Dead);
    assert_eq!(c.stats("default").await.unwrap().pending, 1);
    assert_eq!(c.delete(&leased[1].id()).await.unwrap(), JobState::Dead);
    assert!(c.show(&leased[1].id()).await.is_err());
    assert_eq!(c.delete(&back[0].id()).await.unwrap(), JobState::Active);
    assert_eq!(c.stats("default").await.unwrap().active, 3);
    assert_eq!(
        c.purge_dead("default", 3_600_000).await.unwrap(),
        0,
        "none is an hour old"
    );
    assert_eq!(c.purge_dead("default", 0).await.unwrap(), 4);
    assert_eq!(c.stats("default").await.unwrap().dead, 0);
}

#[tokio::test]
async fn retry_job_makes_a_delayed_job_due_now() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let id = c
        .enqueue(noop(1).run_at(now_ms() + 3_600_000))
        .await
        .unwrap()
        .id;
    assert_eq!(c.show(&id).await.unwrap().state, JobState::Scheduled);
    assert_eq!(c.retry_job(&id).await.unwrap(), JobState::Scheduled);
    assert_eq!(c.show(&id).await.unwrap().state, JobState::Pending);
    assert!(
        c.retry_job(&id).await.is_err(),
        "a pending job cannot be retried"
    );
}

#[tokio::test]
async fn a_paused_queue_gives_out_nothing_until_resumed() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    c.enqueue(noop(1)).await.unwrap();
    c.pause("default").await.unwrap();
    let f = c.fetch("default", 10, LEASE, "w").await.unwrap();
    assert!(f.paused && f.jobs.is_empty());
    assert!(c.stats("default").await.unwrap().paused);
    c.resume("default").await.unwrap();
    assert_eq!(fetch(&c, 10, "w").await.len(), 1);
}

#[tokio::test]
async fn counters_history_listing_and_the_oldest_job() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    c.enqueue_bulk((0..25).map(noop).collect()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let s = c.stats("default").await.unwrap();
    assert!(s.oldest_pending_ms.unwrap() >= 30);

    let p1 = c.list("default", JobState::Pending, 0, 10).await.unwrap();
    let p3 = c.list("default", JobState::Pending, 20, 10).await.unwrap();
    assert_eq!((p1.jobs.len(), p1.next_cursor), (10, Some(10)));
    assert_eq!((p3.jobs.len(), p3.next_cursor), (5, None));
    assert_eq!(p1.jobs[0].envelope.as_ref().unwrap().args, json!({"i": 0}));

    let jobs = fetch(&c, 5, "w").await;
    c.ack("default", "w", &Call::new("ack"), &refs(&jobs[..3]))
        .await
        .unwrap();
    let fails: Vec<_> = jobs[3..]
        .iter()
        .map(|j| settle(j, SettleAction::Retry, now_ms() + 60_000))
        .collect();
    c.settle("default", "w", &Call::new("settle"), &fails)
        .await
        .unwrap();
    let h = c.history("default", 2).await.unwrap();
    let last = h.last().unwrap();
    assert_eq!((last.processed, last.failed), (3, 2));
    let retry = c.list("default", JobState::Retry, 0, 10).await.unwrap();
    assert_eq!(retry.jobs.len(), 2);
    assert!(retry.jobs[0].score.unwrap() > now_ms());
    assert!(
        c.list("default", JobState::Active, 0, 10)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
}

#[tokio::test]
async fn a_job_specific_backoff_is_stored_with_the_job() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let id = c.enqueue(noop(1).backoff(Backoff::ZERO)).await.unwrap().id;
    let env = c.show(&id).await.unwrap().envelope.unwrap();
    assert_eq!(env.backoff, Some(Backoff::ZERO));
}

#[tokio::test]
async fn workers_register_and_stale_ones_are_pruned() {
    use jobfleet::queue::workers::{InFlight, WorkerInfo};
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let mut info = WorkerInfo {
        id: "host:1:abc".into(),
        host: "host".into(),
        pid: 1,
        queues: vec!["default".into()],
        concurrency: 4,
        started_at: now_ms(),
        heartbeat_at: now_ms(),
        in_flight: vec![InFlight {
            id: "j1".into(),
            queue: "default".into(),
            kind: "noop".into(),
            started_at: Some(now_ms()),
        }],
        metrics_addr: Some("127.0.0.1:9464".into()),
    };
    c.heartbeat_worker(&info, Duration::from_secs(60))
        .await
        .unwrap();
    let listed = c.workers(Duration::from_secs(60)).await.unwrap();
    assert_eq!(listed, vec![info.clone()]);
    info.heartbeat_at -= 120_000;
    c.heartbeat_worker(&info, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(c.workers(Duration::from_secs(60)).await.unwrap().is_empty());
}
