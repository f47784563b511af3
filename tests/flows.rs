//! Flows against a real redis-server: the store's calls step by step (exactly-once callbacks,
//! repeated and hostile outbox entries, an operator's retry of a dead child), 1,000 children
//! run by worker processes of which two are SIGKILLed mid-run, and nested flows.
//!
//! The callbacks go to a queue no worker serves (`cb`), so that the test reads them where the
//! flow put them: one stored job per callback, never two.

mod support;

use std::time::Duration;

use jobfleet::queue::payload::Header;
use jobfleet::queue::{
    Call, Envelope, Flow, FlowOutcome, FlowStatus, NewJob, QueueClient, SettleAction,
};
use redis::AsyncCommands;
use serde_json::json;
use support::TestRedis;
use support::app::{client, eventually};
use support::cli::ok;
use support::fleet::spawn_worker;
use support::store::{fetch, refs, settle};
use support::web::{Board, OPS, add_user};

/// The jobs waiting in the default pending list of `queue`, decoded.
async fn pending(c: &QueueClient, queue: &str) -> Vec<Envelope> {
    let raw: Vec<Vec<u8>> = c
        .connection()
        .lrange(c.keys().queue(queue).pending(), 0, -1)
        .await
        .unwrap();
    raw.iter()
        .map(|s| {
            let (_, body) = Header::decode(s).unwrap();
            serde_json::from_slice(body).unwrap()
        })
        .collect()
}

/// The callbacks of `flow` waiting in `cb`: (kind, what the flow came to).
async fn callbacks(c: &QueueClient, flow: &str) -> Vec<(String, FlowOutcome)> {
    pending(c, "cb")
        .await
        .into_iter()
        .filter(|e| e.id.starts_with(&format!("{flow}:on_")))
        .map(|e| {
            (
                e.kind,
                e.flow_result
                    .expect("a callback is told its flow's outcome"),
            )
        })
        .collect()
}

fn callback(kind: &str) -> NewJob {
    NewJob::new(kind, "cb", json!({}))
}

#[tokio::test]
async fn callbacks_run_once_and_a_retried_dead_child_completes_the_success() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let flow = Flow::new()
        .id("f1")
        .children((0..4).map(|i| NewJob::new("noop", "default", json!({ "i": i }))))
        .on_success(callback("noop"))
        .on_complete(callback("sleep"));
    let started = c.start_flow(flow.clone()).await.unwrap();
    assert_eq!(
        (started.id.as_str(), started.queue.as_str(), started.jobs),
        ("f1", "cb", 4)
    );
    assert!(started.created);
    // A second start of the same flow (a producer retrying) adds nothing.
    let again = c.start_flow(flow).await.unwrap();
    assert!(!again.created);
    assert_eq!(c.stats("default").await.unwrap().pending, 4);
    // The board's page of a child shows its flow's counts.
    add_user(&redis.url(), OPS.0, "operator", OPS.1);
    let board = Board::start(&redis.url(), &[]).await;
    let ops = board.sign_in(OPS.0, OPS.1).await.unwrap();
    let page = ops.get("/jobs/f1:2").await;
    assert!(page.body.contains("id=\"job-flow\""), "{}", page.body);
    assert!(page.body.contains("0 of 4 succeeded"), "{}", page.body);

    let jobs = fetch(&c, 4, "w1").await;
    let ids: Vec<String> = jobs.iter().map(|j| j.id()).collect();
    assert_eq!(ids, ["f1:0", "f1:1", "f1:2", "f1:3"]);
    c.ack("default", "w1", &Call::new("ack"), &refs(&jobs[..3]))
        .await
        .unwrap();
    let kill = [settle(&jobs[3], SettleAction::Kill, 0)];
    c.settle("default", "w1", &Call::new("settle"), &kill)
        .await
        .unwrap();
    // A stale worker's second ack writes nothing, so it reports nothing either.
    c.ack("default", "w1", &Call::new("ack"), &refs(&jobs[..1]))
        .await
        .unwrap();
    assert_eq!(c.deliver_flow_reports("default").await.unwrap(), 4);
    let got = callbacks(&c, "f1").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "sleep");
    let told = &got[0].1;
    assert_eq!((told.total, told.succeeded, told.failed), (4, 3, 1));
    assert_eq!(told.failed_ids, ["f1:3"]);
    let state = c.flow(None, "f1").await.unwrap().unwrap();
    assert_eq!(state.status, FlowStatus::Failed);
    assert_eq!(
        (state.pending, state.failed_ids.clone()),
        (0, vec!["f1:3".to_owned()])
    );

    // A delivery repeated after a crash (the entry went back into the outbox) counts nothing.
    let outbox = c.keys().queue("default").flowbox();
    let _: () = c
        .connection()
        .zadd(&outbox, "succeeded|cb|f1|f1:0", 1)
        .await
        .unwrap();
    let _: () = c
        .connection()
        .zadd(&outbox, "dead|cb|f1|f1:1", 1)
        .await
        .unwrap();
    // Hostile entries are dropped, never a reason to stop.
    for bad in [
        &b"garbage"[..],
        b"dead|cb|f1|\xff",
        b"dead|cb|nosuch|x",
        b"dead|cb|f1|stranger",
    ] {
        let _: () = c.connection().zadd(&outbox, bad, 1).await.unwrap();
    }
    assert_eq!(c.deliver_flow_reports("default").await.unwrap(), 6);
    let n: u64 = c.connection().zcard(&outbox).await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(callbacks(&c, "f1").await.len(), 1);
    let state = c.flow(None, "f1").await.unwrap().unwrap();
    assert_eq!((state.succeeded, state.failed), (3, 1));

    // The operator retries the dead child; once it succeeds, every child has: on_success runs.
    c.retry_job("f1:3").await.unwrap();
    let rerun = fetch(&c, 1, "w2").await;
    c.ack("default", "w2", &Call::new("ack"), &refs(&rerun))
        .await
        .unwrap();
    c.deliver_flow_reports("default").await.unwrap();
    let got = callbacks(&c, "f1").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].0, "noop");
    assert_eq!((got[1].1.succeeded, got[1].1.failed), (4, 0));
    let state = c.flow(Some("cb"), "f1").await.unwrap().unwrap();
    assert_eq!(state.status, FlowStatus::Succeeded);
    assert!(state.on_success.unwrap().enqueued_at.is_some());
}

#[tokio::test]
async fn children_an_operator_deletes_or_cancels_count_as_failed_at_once() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    let flow = Flow::new()
        .id("ops")
        .child(NewJob::new("noop", "default", json!({})))
        .child(NewJob::new("noop", "default", json!({})).run_at(jobfleet::queue::now_ms() + 60_000))
        .on_complete(callback("noop"));
    c.start_flow(flow).await.unwrap();
    ok(&url, &["jobs", "delete", "ops:0"]);
    ok(&url, &["jobs", "cancel", "ops:1"]);
    // No worker runs: the operators' commands told the flow themselves.
    let got = callbacks(&c, "ops").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].1.succeeded, got[0].1.failed), (0, 2));
    assert_eq!(got[0].1.failed_ids, ["ops:0", "ops:1"]);
    let shown = ok(&url, &["flows", "show", "ops"]);
    assert!(shown.contains("failed     ops:0 ops:1"), "{shown}");
    assert!(
        shown.contains("on_complete noop as job ops:on_complete"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_children_run_their_callback_once_through_killed_workers() {
    const N: usize = 1000;
    const FAILING: usize = 40;
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    // Every 25th child fails its only attempt; the others sleep 100 ms, so that each kill
    // finds a busy worker with jobs in flight.
    let children = (0..N).map(|i| {
        if i % (N / FAILING) == 0 {
            NewJob::new("sleep", "default", json!({"ms": 1, "fail": true})).max_attempts(1)
        } else {
            NewJob::new("sleep", "default", json!({"ms": 100})).max_attempts(10)
        }
    });
    let flow = Flow::new()
        .children(children)
        .on_success(callback("noop"))
        .on_complete(callback("noop"));
    let started = c.start_flow(flow).await.unwrap();
    let mut workers: Vec<_> = (0..3).map(|_| spawn_worker(&url, 8, &[])).collect();
    for (i, at) in [(0, N / 4), (1, N / 2)] {
        let reached = eventually(Duration::from_secs(60), || async {
            let s = c.flow(None, &started.id).await.unwrap().unwrap();
            (s.succeeded + s.failed) as usize >= at
        })
        .await;
        assert!(reached, "{}", workers[i].output());
        workers[i].kill();
        workers.push(spawn_worker(&url, 8, &[]));
    }
    let done = eventually(Duration::from_secs(90), || async {
        c.flow(None, &started.id)
            .await
            .unwrap()
            .unwrap()
            .completed_at
            .is_some()
    })
    .await;
    let state = c.flow(None, &started.id).await.unwrap().unwrap();
    for w in &mut workers[2..] {
        w.terminate_cleanly();
    }
    assert!(done, "{state:?}");
    let got = callbacks(&c, &started.id).await;
    // Failed attempts beyond the failing children's own are the killed workers' lost leases.
    let failed = c.stats("default").await.unwrap().failed;
    eprintln!(
        "flow of {N}: {} succeeded, {} failed, {} runs lost with the 2 killed workers, callbacks {:?}",
        state.succeeded,
        state.failed,
        failed.saturating_sub(FAILING as u64),
        got.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    assert_eq!(got.len(), 1, "on_complete once, on_success never: {got:?}");
    let told = &got[0].1;
    assert_eq!(
        (told.total, told.succeeded, told.failed),
        (N as u64, (N - FAILING) as u64, FAILING as u64)
    );
    assert_eq!(told.failed_ids.len(), FAILING);
    assert_eq!(state.status, FlowStatus::Failed);
    assert!(
        failed > FAILING as u64,
        "the kills found no job in flight: the test did not test a crash"
    );

    // The operator's view of it.
    let listed = ok(&url, &["flows", "list"]);
    assert!(
        listed.contains(&started.id) && listed.contains("failed"),
        "{listed}"
    );
    let shown = ok(&url, &["flows", "show", &started.id]);
    assert!(shown.contains(&format!("{}", N - FAILING)), "{shown}");
    assert!(shown.contains(&told.failed_ids[0]), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_flow_counts_as_one_child_of_its_parent() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    let noop = |i: usize| NewJob::new("noop", "default", json!({ "i": i }));
    // A sub-flow whose on_complete (run by the workers) is what its parent counts, and one
    // without a callback whose failing child makes it count as failed.
    let with_callback = Flow::new()
        .children((0..5).map(noop))
        .on_complete(NewJob::new("noop", "default", json!({"sub": 1})));
    let failing = Flow::new()
        .child(noop(9))
        .child(NewJob::new("sleep", "default", json!({"fail": true})).max_attempts(1));
    let deeper = Flow::new().sub_flow(Flow::new().child(noop(7)));
    let flow = Flow::new()
        .id("tree")
        .child(noop(0))
        .sub_flow(with_callback)
        .sub_flow(failing)
        .sub_flow(deeper)
        .on_complete(callback("noop"));
    let started = c.start_flow(flow).await.unwrap();
    assert_eq!((started.children, started.jobs), (4, 9));
    let mut worker = spawn_worker(&url, 4, &[]);
    let done = eventually(Duration::from_secs(30), || async {
        !callbacks(&c, "tree").await.is_empty()
    })
    .await;
    worker.terminate_cleanly();
    assert!(
        done,
        "{:?}\n{}",
        c.flow(None, "tree").await,
        worker.output()
    );
    let got = callbacks(&c, "tree").await;
    assert_eq!(got.len(), 1);
    let told = &got[0].1;
    assert_eq!((told.total, told.succeeded, told.failed), (4, 3, 1));
    assert_eq!(told.failed_ids, ["tree:2"]);
    let sub = c.flow(None, "tree:1").await.unwrap().unwrap();
    assert_eq!((sub.status, sub.total), (FlowStatus::Succeeded, 5));
    assert_eq!(sub.parent.unwrap().id, "tree");
    let deepest = c.flow(None, "tree:3:0").await.unwrap().unwrap();
    assert_eq!(deepest.status, FlowStatus::Succeeded);
}
