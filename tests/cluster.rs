//! The fleet on a real Redis Cluster (three masters, each with a replica, on loopback) with a
//! queue on every shard: the producers' and operators' commands, a worker process serving all
//! shards, wake-ups by sharded pub/sub, racing ticks, the board, a slot resharded under load,
//! a cluster over TLS, and progress, cancellation, priorities and limits on every shard.
//! Failovers are in `cluster_failover.rs`.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use jobfleet::queue::limits::{LimitAsk, Taken};
use jobfleet::queue::priority::Priority;
use jobfleet::queue::{Call, JobState, NewJob, QueueClient, SettleAction, StoreSettings};
use serde_json::json;
use support::app::{client, client_with, eventually};
use support::cli::{ok, ok_json, queue_names};
use support::cluster::TestCluster;
use support::fleet::{completed, spawn_worker};
use support::store::{LEASE, settle};

fn job(queue: &str, i: usize) -> NewJob {
    NewJob::new("noop", queue, json!({ "i": i }))
}

async fn all_completed(c: &QueueClient, queues: &[String], each: usize) -> bool {
    for q in queues {
        if completed(c, q).await.len() < each {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_works_on_every_shard_of_a_cluster() {
    let cluster = TestCluster::start(3, 1);
    let url = cluster.url();
    let queues = cluster.queues_on_every_master("shard", 3);
    let store = StoreSettings {
        completed_history: 10_000,
        ..StoreSettings::default()
    };
    let c = client_with(&url, store).await;
    assert_eq!(c.mode(), "cluster");

    // One job per queue from the command line, then a bulk enqueue over all three at once.
    for q in &queues {
        let out = ok(&url, &["enqueue", "noop", "--queue", q]);
        assert!(!out.trim().is_empty(), "enqueue printed nothing");
    }
    let bulk: Vec<NewJob> = (0..300).map(|i| job(&queues[i % 3], i)).collect();
    assert_eq!(c.enqueue_bulk(bulk).await.unwrap().len(), 300);
    let listed = queue_names(&url);
    for q in &queues {
        assert!(listed.contains(q), "{q} not in {listed:?}");
    }
    // `jobfleet queues` names each queue's shard: three queues, three masters.
    let shards: HashSet<String> = ok_json(&url, &["queues", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| queues.iter().any(|n| q["queue"] == n.as_str()))
        .filter_map(|q| q["shard"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(shards.len(), 3, "shards of the queues: {shards:?}");
    assert!(ok(&url, &["queues"]).contains("SHARD"));

    // A subscriber on each shard hears a wake-up published on that queue's shard.
    let mut wakes = c.wake_ups(&queues).await.unwrap();
    c.enqueue(job(&queues[2], 999)).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), wakes.next()).await;
    assert!(
        matches!(heard, Ok(Some(()))),
        "no wake-up from the third shard"
    );

    // One worker process serves the three shards.
    let list = queues.join(",");
    let mut worker = spawn_worker(&url, 8, &[("JOBFLEET__WORKER__QUEUES", list.as_str())]);
    assert!(
        eventually(Duration::from_secs(60), || all_completed(&c, &queues, 100)).await,
        "the worker did not drain every shard:\n{}",
        worker.output()
    );
    let workers = ok_json(&url, &["workers", "--json"]);
    assert!(
        workers.to_string().contains(&queues[0]),
        "jobfleet workers: {workers}"
    );
    worker.terminate_cleanly();

    // The operators' commands on a job of each shard: find it by id, kill it, retry it,
    // delete it; the listings and counters of every shard.
    for q in &queues {
        let id = c.enqueue(job(q, 7)).await.unwrap().id;
        let leased = c.fetch(q, 1, LEASE, "op").await.unwrap().jobs;
        c.settle(
            q,
            "op",
            &Call::new("settle"),
            &[settle(&leased[0], SettleAction::Kill, 0)],
        )
        .await
        .unwrap();
        let shown = ok_json(&url, &["jobs", "show", &id, "--json"]);
        assert_eq!(shown["state"], "dead", "{shown}");
        assert_eq!(c.retry_job(&id).await.unwrap(), JobState::Dead);
        let listed = ok_json(&url, &["jobs", "list", q, "--state", "pending", "--json"]);
        assert!(listed.to_string().contains(&id), "{listed}");
        ok(&url, &["jobs", "delete", &id]);
        assert!(c.show(&id).await.is_err(), "{id} still there");
        ok(&url, &["queue", "pause", q]);
        ok(&url, &["queue", "resume", q]);
        assert!(c.stats(q).await.unwrap().processed >= 101);
    }

    // Two schedulers racing for one tick: exactly one enqueues it.
    let tick = |n: usize| {
        let c = c.clone();
        let q = queues[n % 3].clone();
        async move {
            let job = NewJob::new("noop", &q, json!({})).id("tick-1");
            c.enqueue_tick("every-minute", 60_000, job).await.unwrap()
        }
    };
    let (a, b) = tokio::join!(tick(0), tick(3));
    assert!(a ^ b, "one tick enqueued {a} and {b}");

    // Removing a queue finds its keys on its own shard.
    ok(&url, &["queue", "remove", &queues[1], "--force"]);
    assert!(!queue_names(&url).contains(&queues[1]));

    // A plain redis:// URL of any one node is taken as the cluster's seed, as redis-cli -c
    // takes it: the commands reach every shard instead of failing with MOVED.
    let one_node = cluster.nodes[0].url();
    assert_eq!(client(&one_node).await.mode(), "cluster");
    for q in [&queues[0], &queues[2]] {
        ok(&one_node, &["enqueue", "noop", "--queue", q]);
    }
    let listed = queue_names(&one_node);
    assert!(
        listed.contains(&queues[0]) && listed.contains(&queues[2]),
        "{listed:?}"
    );
    ok(&one_node, &["workers"]);
}

#[tokio::test]
async fn a_single_node_connection_still_works_as_before() {
    let redis = support::TestRedis::start();
    let c = client(&redis.url()).await;
    assert_eq!(c.mode(), "node");
    let mut wakes = c.wake_ups(&["default".to_owned()]).await.unwrap();
    c.enqueue(job("default", 1)).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), wakes.next()).await;
    assert!(matches!(heard, Ok(Some(()))), "no wake-up on one node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_queue_whose_slot_is_resharded_loses_and_repeats_nothing() {
    let cluster = TestCluster::start(3, 0);
    let url = cluster.url();
    // A queue among the first 50 slots of the master holding slot 0: those move first.
    let queue = cluster.queue_in_low_slots("moving", 50);
    let from = cluster.master_of(&format!("jobfleet:{{{queue}}}:pending"));
    let to = (from + 1) % 3;
    let store = StoreSettings {
        completed_history: 100_000,
        ..StoreSettings::default()
    };
    let c = client_with(&url, store).await;
    let mut worker = spawn_worker(&url, 8, &[("JOBFLEET__WORKER__QUEUES", queue.as_str())]);
    let producing = {
        let (c, queue) = (c.clone(), queue.clone());
        tokio::spawn(async move {
            let mut acknowledged = HashSet::new();
            for start in (0..3000).step_by(30) {
                let batch: Vec<NewJob> = (start..start + 30).map(|i| job(&queue, i)).collect();
                if let Ok(done) = c.enqueue_bulk(batch).await {
                    acknowledged.extend(done.into_iter().map(|e| e.id));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (moved, out) = tokio::task::spawn_blocking({
        let (source, target) = (cluster.node_id(from), cluster.node_id(to));
        let port = cluster.nodes[from].port();
        move || reshard_by_port(port, &source, &target, 50)
    })
    .await
    .unwrap();
    assert!(moved, "redis-cli --cluster reshard failed:\n{out}");
    let acknowledged = producing.await.unwrap();
    assert_eq!(
        cluster.master_of(&format!("jobfleet:{{{queue}}}:pending")),
        to,
        "the queue's slot did not move"
    );
    let all_done = eventually(Duration::from_secs(60), || {
        let (c, queue, acknowledged) = (c.clone(), queue.clone(), &acknowledged);
        async move { acknowledged.is_subset(&completed(&c, &queue).await) }
    })
    .await;
    let done = completed(&c, &queue).await;
    assert!(
        all_done,
        "{} acknowledged jobs never completed after the reshard; worker:\n{}",
        acknowledged.difference(&done).count(),
        worker.output()
    );
    let stats = c.stats(&queue).await.unwrap();
    println!(
        "reshard: {} jobs acknowledged, {} processed, {} run more than once",
        acknowledged.len(),
        stats.processed,
        stats.processed.saturating_sub(acknowledged.len() as u64)
    );
    assert_eq!(
        stats.processed,
        acknowledged.len() as u64,
        "jobs ran more than once"
    );
    assert_eq!(stats.dead, 0);
    worker.terminate_cleanly();
}

/// `redis-cli --cluster reshard` from the master on `port`, for a blocking task.
fn reshard_by_port(port: u16, from: &str, to: &str, slots: u16) -> (bool, String) {
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "reshard", &format!("127.0.0.1:{port}")])
        .args(["--cluster-from", from, "--cluster-to", to])
        .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run redis-cli --cluster reshard");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_gathers_every_shard() {
    use support::web::{Board, OPS, add_user, token};
    let cluster = TestCluster::start(3, 0);
    let url = cluster.url();
    let queues = cluster.queues_on_every_master("board", 3);
    let c = client(&url).await;
    let mut ids = Vec::new();
    for q in &queues {
        ids.push(c.enqueue(job(q, 1)).await.unwrap().id);
    }
    add_user(&url, OPS.0, "operator", OPS.1);
    let secret = token(&url, "producer", "enqueue");
    let board = Board::start(&url, &[]).await;
    let ops = board.sign_in(OPS.0, OPS.1).await.unwrap();
    let overview = ops.get("/").await;
    for q in &queues {
        assert!(
            overview.body.contains(q.as_str()),
            "{q} not on the overview"
        );
        let page = ops.get(&format!("/queues/{q}?state=pending")).await;
        assert_eq!(page.status, 200);
    }
    for (q, id) in queues.iter().zip(&ids) {
        let page = ops.get(&format!("/jobs/{id}")).await;
        assert!(
            page.body.contains(q.as_str()),
            "/jobs/{id}: {}",
            page.status
        );
    }
    // A producer enqueues over the API into the third shard.
    let resp = board
        .http()
        .post(format!("{}/api/v1/jobs", board.base()))
        .bearer_auth(&secret)
        .json(&json!({ "kind": "noop", "queue": queues[2], "args": {} }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "API enqueue: {}", resp.status());
    assert_eq!(c.stats(&queues[2]).await.unwrap().pending, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_is_reached_by_a_rediss_cluster_url() {
    let cluster = TestCluster::start_tls(3, 0);
    let url = cluster.url();
    assert!(url.starts_with("rediss+cluster://"), "{url}");
    let queues = cluster.queues_on_every_master("tls", 3);
    let store = StoreSettings {
        completed_history: 1000,
        ..StoreSettings::default()
    };
    let c = client_with(&url, store).await;
    assert_eq!(c.mode(), "cluster");
    let bulk: Vec<NewJob> = (0..30).map(|i| job(&queues[i % 3], i)).collect();
    c.enqueue_bulk(bulk).await.unwrap();
    let list = queues.join(",");
    let mut worker = spawn_worker(&url, 4, &[("JOBFLEET__WORKER__QUEUES", list.as_str())]);
    assert!(
        eventually(Duration::from_secs(30), || all_completed(&c, &queues, 10)).await,
        "the worker did not drain the TLS cluster:\n{}",
        worker.output()
    );
    worker.terminate_cleanly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_cancel_work_on_every_shard() {
    let cluster = TestCluster::start(3, 0);
    let url = cluster.url();
    let queues = cluster.queues_on_every_master("cancel", 3);
    let c = client(&url).await;
    let list = queues.join(",");
    let mut worker = spawn_worker(&url, 4, &[("JOBFLEET__WORKER__QUEUES", list.as_str())]);
    let mut ids = Vec::new();
    for q in &queues {
        let long = NewJob::new("sleep", q, json!({ "ms": 60_000 }));
        ids.push(c.enqueue(long).await.unwrap().id);
    }
    for (q, id) in queues.iter().zip(&ids) {
        let reported = eventually(Duration::from_secs(20), || async {
            let ids = [(id.clone(), 0)];
            c.progress_of(q, &ids).await.is_ok_and(|p| p[0].is_some())
        })
        .await;
        assert!(reported, "no progress from {q}:\n{}", worker.output());
        assert_eq!(
            c.cancel(id, "dana").await.unwrap(),
            jobfleet::queue::cancel::Cancelled::Signalled
        );
    }
    for id in &ids {
        let stopped = eventually(Duration::from_secs(10), || async {
            c.show(id).await.is_ok_and(|j| j.state == JobState::Dead)
        })
        .await;
        assert!(stopped, "{id} did not stop:\n{}", worker.output());
        assert_eq!(
            c.show(id).await.unwrap().error.as_deref(),
            Some("cancelled by dana")
        );
    }
    worker.terminate_cleanly();
}

#[tokio::test]
async fn priorities_hold_on_every_shard() {
    let cluster = TestCluster::start(3, 0);
    let url = cluster.url();
    let queues = cluster.queues_on_every_master("levels", 3);
    let c = client(&url).await;
    for q in &queues {
        let mut expected: [Vec<String>; 4] = Default::default();
        for i in 0..12 {
            let p = Priority::ALL[3 - i % 4];
            let id = c.enqueue(job(q, i).priority(p)).await.unwrap().id;
            expected[p.index()].push(id);
        }
        assert_eq!(
            c.stats(q).await.unwrap().pending_by_priority,
            [3, 3, 3, 3],
            "{q}"
        );
        let mut taken = Vec::new();
        loop {
            let batch = c.fetch(q, 5, LEASE, "w").await.unwrap().jobs;
            if batch.is_empty() {
                break;
            }
            taken.extend(batch.iter().map(|j| j.id()));
        }
        assert_eq!(taken, expected.concat(), "{q}");
        // A lost lease puts the job back at the head of its own level, on its own shard.
        let urgent = c
            .enqueue(job(q, 99).priority(Priority::CRITICAL))
            .await
            .unwrap()
            .id;
        c.fetch(q, 1, Duration::from_millis(1), "lost")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.reap(q, 10).await.unwrap().requeued, 1, "{q}");
        let shown = ok_json(&url, &["jobs", "show", &urgent, "--json"]);
        assert_eq!(
            (shown["state"].as_str(), shown["priority"].as_u64()),
            (Some("pending"), Some(0))
        );
    }
    // Removing a queue counts and drops the pending lists of every level.
    let removed = ok(&url, &["queue", "remove", &queues[0], "--force"]);
    // The jobs fetched above are still active: they were never acknowledged.
    assert!(removed.contains("(1 pending, 12 active;"), "{removed}");
    let left: u64 = redis::cmd("EXISTS")
        .arg(&c.keys().queue(&queues[0]).pending_lists())
        .query_async(&mut c.connection())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn limits_hold_on_every_shard() {
    let cluster = TestCluster::start(3, 0);
    let url = cluster.url();
    let queues = cluster.queues_on_every_master("limited", 3);
    let c = client(&url).await;
    let slot = LimitAsk {
        name: "send",
        concurrency: 1,
        rate: None,
        recheck: Duration::from_secs(30),
    };
    let rate = LimitAsk {
        name: "feed",
        concurrency: 0,
        rate: Some((1, Duration::from_secs(10))),
        recheck: Duration::from_secs(30),
    };
    for q in &queues {
        c.enqueue_bulk((0..4).map(|i| job(q, i)).collect())
            .await
            .unwrap();
        let leased = c.fetch(q, 4, LEASE, "w").await.unwrap().jobs;
        assert!(
            matches!(
                c.take_limit(&leased[0], &slot).await.unwrap(),
                Taken::Granted { .. }
            ),
            "{q}"
        );
        assert!(
            matches!(
                c.take_limit(&leased[1], &slot).await.unwrap(),
                Taken::WaitingForSlot { .. }
            ),
            "{q}"
        );
        let Taken::Granted { start_ms } = c.take_limit(&leased[2], &rate).await.unwrap() else {
            panic!("{q}: the first start of the window was refused");
        };
        let Taken::WaitingForRate { due_ms } = c.take_limit(&leased[3], &rate).await.unwrap()
        else {
            panic!("{q}: a second start in the window was let through");
        };
        assert!(
            due_ms >= start_ms + 10_000,
            "{q}: due {due_ms}, started {start_ms}"
        );
        // The slot given back makes the waiting job due, and it starts.
        assert_eq!(
            c.release_limit(&leased[0], "send", 1).await.unwrap(),
            1,
            "{q}"
        );
        let again = c.fetch(q, 1, LEASE, "w2").await.unwrap().jobs;
        assert_eq!(again[0].id(), leased[1].id(), "{q}");
        assert!(
            matches!(
                c.take_limit(&again[0], &slot).await.unwrap(),
                Taken::Granted { .. }
            ),
            "{q}"
        );
    }
}
