//! Flows on a real Redis Cluster: a flow whose state is on one shard, its children on the two
//! others, and a sub-flow whose state is on a third queue, run by a worker process serving
//! the children's shards. The callbacks run once each, from the flow's own shard.

mod support;

use std::time::Duration;

use jobfleet::queue::payload::Header;
use jobfleet::queue::{Envelope, Flow, FlowStatus, NewJob};
use redis::AsyncCommands;
use serde_json::json;
use support::app::{client, eventually};
use support::cli::ok;
use support::cluster::TestCluster;
use support::fleet::spawn_worker;

fn job(queue: &str, i: usize) -> NewJob {
    NewJob::new("noop", queue, json!({ "i": i }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_spans_the_shards_and_runs_its_callbacks_once() {
    let cluster = TestCluster::start(3, 0);
    let url = cluster.url();
    let queues = cluster.queues_on_every_master("flows", 3);
    let (home, a, b) = (&queues[0], &queues[1], &queues[2]);
    let c = client(&url).await;
    let sub = Flow::new()
        .children((0..3).map(|i| job(a, 100 + i)))
        .on_complete(job(b, 200));
    let flow = Flow::new()
        .id("spread")
        .children((0..5).map(|i| job(a, i)))
        .children((0..5).map(|i| job(b, 10 + i)))
        .sub_flow(sub)
        .on_success(job(home, 300))
        .on_complete(job(home, 301));
    let started = c.start_flow(flow).await.unwrap();
    assert_eq!(
        (started.queue.as_str(), started.children, started.jobs),
        (home.as_str(), 11, 13)
    );
    let serve = format!("{a},{b}");
    let mut worker = spawn_worker(&url, 4, &[("JOBFLEET__WORKER__QUEUES", serve.as_str())]);
    let done = eventually(Duration::from_secs(30), || async {
        c.flow(None, "spread")
            .await
            .unwrap()
            .is_some_and(|f| f.status == FlowStatus::Succeeded)
    })
    .await;
    worker.terminate_cleanly();
    assert!(
        done,
        "{:?}\n{}",
        c.flow(None, "spread").await,
        worker.output()
    );
    // Both callbacks wait on the flow's shard, once each, told the same counts.
    let raw: Vec<Vec<u8>> = c
        .connection()
        .lrange(c.keys().queue(home).pending(), 0, -1)
        .await
        .unwrap();
    let mut ids: Vec<String> = Vec::new();
    for stored in &raw {
        let (_, body) = Header::decode(stored).unwrap();
        let env: Envelope = serde_json::from_slice(body).unwrap();
        let told = env.flow_result.unwrap();
        assert_eq!((told.total, told.succeeded, told.failed), (11, 11, 0));
        ids.push(env.id);
    }
    ids.sort();
    assert_eq!(ids, ["spread:on_complete", "spread:on_success"]);
    let listed = ok(&url, &["flows", "list"]);
    assert!(
        listed.contains("spread") && listed.contains("succeeded"),
        "{listed}"
    );
    let sub = c.flow(None, "spread:10").await.unwrap().unwrap();
    assert_eq!(
        (sub.queue.as_str(), sub.status),
        (b.as_str(), FlowStatus::Succeeded)
    );
}
