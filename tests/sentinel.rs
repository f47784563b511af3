//! The fleet behind Redis Sentinel (Debian's redis-sentinel): one master, one replica and
//! three sentinels on loopback. The master is SIGKILLed while a worker process drains and a
//! producer enqueues with `durability = "replicated"`; the sentinels promote the replica, the
//! clients follow it without a restart, and no acknowledged job is lost.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jobfleet::queue::{Durability, NewJob, QueueClient, StoreSettings};
use serde_json::json;
use support::app::client_with;
use support::cli::ok;
use support::cluster::TestSentinel;
use support::fleet::{completed, spawn_worker};

fn replicated() -> StoreSettings {
    StoreSettings {
        completed_history: 100_000,
        durability: Durability::Replicated {
            replicas: 1,
            timeout: Duration::from_secs(1),
        },
        ..StoreSettings::default()
    }
}

#[tokio::test]
async fn the_sentinel_url_reaches_the_master_and_the_commands_work() {
    let group = TestSentinel::start(1);
    let url = group.url();
    let c = client_with(&url, replicated()).await;
    assert_eq!(c.mode(), "sentinel");
    let id = c
        .enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap()
        .id;
    assert_eq!(c.stats("default").await.unwrap().pending, 1);
    let out = ok(&url, &["jobs", "show", &id]);
    assert!(out.contains(&id), "{out}");
    // A wrong master name is a one-line error naming it, not a hang.
    let wrong = url.replace("/mymaster", "/nosuchmaster");
    let err = QueueClient::connect(&wrong, "jobfleet", StoreSettings::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test]
async fn the_master_and_the_sentinels_each_take_their_own_password() {
    let group = TestSentinel::start_secured(1, "master-pw", "sentinel-pw");
    let url = group.url();
    let c = client_with(&url, replicated()).await;
    c.enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap();
    assert_eq!(c.stats("default").await.unwrap().pending, 1);
    // Without the sentinels' password the sentinels refuse, and the error names no password.
    let wrong = url.replace("?sentinel_password=sentinel-pw", "");
    let err = QueueClient::connect(&wrong, "jobfleet", StoreSettings::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("master-pw"), "{err}");
    // The CLI shows the URL with both passwords masked.
    let out = ok(&url, &["queues"]);
    assert!(
        !out.contains("sentinel-pw") && !out.contains("master-pw"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_follow_the_promoted_replica_and_lose_no_acknowledged_job() {
    // Two replicas: once one is promoted, the other confirms the replicated writes at once.
    // With one, every replicated write is refused until a replica joins the new master.
    let mut group = TestSentinel::start(2);
    let url = group.url();
    let c = client_with(&url, replicated()).await;
    let mut worker = spawn_worker(&url, 8, &[("JOBFLEET__REDIS__DURABILITY", "replicated")]);
    let old = group.master.port();
    let producing = {
        let c = c.clone();
        tokio::spawn(async move {
            let (mut acknowledged, mut refused) = (HashSet::new(), 0);
            for start in (0..2000).step_by(20) {
                let batch: Vec<NewJob> = (start..start + 20)
                    .map(|i| NewJob::new("noop", "default", json!({ "i": i })))
                    .collect();
                match c.enqueue_bulk(batch).await {
                    Ok(done) => acknowledged.extend(done.into_iter().map(|e| e.id)),
                    Err(_) => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acknowledged, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    group.master.kill();
    // The sentinels promote a replica; the other replica follows it and confirms the writes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while group.current_master() == Some(old) {
        assert!(Instant::now() < deadline, "the sentinels promoted nobody");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted_after = killed_at.elapsed();
    let (acknowledged, refused) = producing.await.unwrap();

    let mut done: HashSet<String> = completed(&c, "default").await;
    let mut still = 0;
    while !acknowledged.is_subset(&done) && still < 10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = completed(&c, "default").await;
        still = if now.len() == done.len() {
            still + 1
        } else {
            0
        };
        done = now;
    }
    let lost = acknowledged.difference(&done).count();
    println!(
        "sentinel failover: replica promoted {promoted_after:?} after the kill; {} enqueues \
         acknowledged, {refused} bulk calls refused, {lost} lost",
        acknowledged.len()
    );
    worker.assert_running();
    assert!(acknowledged.len() > 500, "too few jobs went in");
    assert_eq!(
        lost,
        0,
        "acknowledged jobs lost; worker:\n{}",
        worker.output()
    );
    worker.terminate_cleanly();
}
