//! The worker runtime in process against a real redis-server: outcomes, timeouts, panics,
//! wake-ups, queue order, leases and graceful shutdown.

mod support;

use std::time::Duration;

use jobfleet::queue::{JobState, NewJob};
use serde_json::json;
use support::app::{WorkerOpts, eventually, start_worker};
use support::probe::{events, probe, probe_registry, settled, setup};

#[tokio::test]
async fn failures_retry_with_backoff_then_succeed_or_die() {
    let s = setup().await;
    let w = start_worker(&s.client, s.registry.clone(), &s.url, WorkerOpts::default());
    s.client
        .enqueue(probe(json!({"tag": "flaky-a", "fail_attempts": 2})))
        .await
        .unwrap();
    let dead_id = s
        .client
        .enqueue(probe(json!({"tag": "flaky-b", "fail_attempts": 9})))
        .await
        .unwrap()
        .id;
    let fatal_id = s
        .client
        .enqueue(probe(json!({"tag": "fatal-c", "fatal": true})))
        .await
        .unwrap()
        .id;
    assert!(
        settled(&s.client, 1, 2).await,
        "{:?}",
        s.client.stats("default").await
    );
    let report = w.stop().await;
    assert_eq!((report.completed, report.dead, report.retried), (1, 2, 4));

    assert_eq!(
        events("flaky-a"),
        [
            ("flaky-a".into(), 1),
            ("flaky-a".into(), 2),
            ("flaky-a".into(), 3)
        ]
    );
    let dead = s.client.show(&dead_id).await.unwrap();
    assert_eq!((dead.state.as_str(), dead.attempts), ("dead", 3));
    assert_eq!(dead.error.as_deref(), Some("flaky (attempt 3 of 3)"));
    let fatal = s.client.show(&fatal_id).await.unwrap();
    assert_eq!(
        (fatal.attempts, fatal.error.as_deref()),
        (1, Some("fatal: bad input"))
    );
    assert_eq!(events("fatal-c").len(), 1, "a fatal error is never retried");
}

#[tokio::test]
async fn panics_and_timeouts_are_failures_and_the_worker_goes_on() {
    let s = setup().await;
    let w = start_worker(&s.client, s.registry.clone(), &s.url, WorkerOpts::default());
    let p = s
        .client
        .enqueue(probe(json!({"tag": "panic", "panic": true})).max_attempts(1))
        .await
        .unwrap()
        .id;
    let t = s
        .client
        .enqueue(probe(json!({"tag": "hang", "sleep_ms": 60_000})).max_attempts(1))
        .await
        .unwrap()
        .id;
    s.client
        .enqueue(probe(json!({"tag": "after"})))
        .await
        .unwrap();
    assert!(settled(&s.client, 1, 2).await);
    w.stop().await;
    let p = s.client.show(&p).await.unwrap().error.unwrap();
    assert!(p.contains("panicked: probe panics on purpose"), "{p}");
    let t = s.client.show(&t).await.unwrap().error.unwrap();
    assert!(t.contains("timed out after 1s"), "{t}");
}

#[tokio::test]
async fn a_snooze_runs_later_without_using_an_attempt() {
    let s = setup().await;
    let w = start_worker(&s.client, s.registry.clone(), &s.url, WorkerOpts::default());
    s.client
        .enqueue(probe(json!({"tag": "snooze", "snooze_ms": 200})))
        .await
        .unwrap();
    assert!(settled(&s.client, 1, 0).await);
    w.stop().await;
    assert_eq!(
        events("snooze"),
        [("snooze".into(), 1), ("snooze".into(), 1)]
    );
    assert_eq!(s.client.stats("default").await.unwrap().failed, 0);
}

#[tokio::test]
async fn undecodable_payloads_and_unknown_kinds_go_to_dead_with_a_reason() {
    let s = setup().await;
    let w = start_worker(&s.client, s.registry.clone(), &s.url, WorkerOpts::default());
    let unknown = s
        .client
        .enqueue(NewJob::new("mystery", "default", json!({})))
        .await
        .unwrap()
        .id;
    let bad_args = s.client.enqueue(probe(json!({"tag": 5}))).await.unwrap().id;
    // Producers in another language wrote garbage: no header at all, and a header with a body
    // that is not JSON.
    let k = s.client.keys().queue("default");
    let mut con = s.client.connection();
    let _: () = redis::pipe()
        .rpush(k.pending(), "garbage{")
        .rpush(k.pending(), "jf|0|3|badjson|0|0:0:\n{not json")
        .publish(k.wake(), 1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(settled(&s.client, 0, 4).await);
    w.stop().await;
    let reason = |id: &str| {
        let c = s.client.clone();
        let id = id.to_owned();
        async move { c.show(&id).await.unwrap().error.unwrap() }
    };
    assert!(
        reason(&unknown)
            .await
            .contains("unknown job kind \"mystery\"")
    );
    assert!(
        reason(&bad_args)
            .await
            .contains("args do not decode as probe")
    );
    assert!(reason("badjson").await.contains("undecodable payload"));
    let dead = s
        .client
        .list("default", JobState::Dead, 0, 10)
        .await
        .unwrap();
    let raw = dead
        .jobs
        .iter()
        .find(|j| j.id.starts_with("undecodable-"))
        .expect("the headerless job is in dead under a derived id");
    assert!(
        raw.error
            .as_deref()
            .unwrap()
            .contains("malformed job header")
    );
    assert!(
        raw.raw.as_deref().unwrap().contains("garbage{"),
        "the original bytes are kept"
    );
}

#[tokio::test]
async fn an_idle_worker_is_woken_without_polling() {
    let s = setup().await;
    // An idle worker looks on its own every min(poll interval, lease / 3): 30 s here. A job
    // that starts within 5 s was started by the wake-up.
    let opts = WorkerOpts {
        lease: Duration::from_secs(120),
        ..WorkerOpts::default()
    };
    let w = start_worker(&s.client, s.registry.clone(), &s.url, opts);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.client
        .enqueue(probe(json!({"tag": "wake"})))
        .await
        .unwrap();
    let woke = eventually(Duration::from_secs(5), || async {
        !events("wake").is_empty()
    })
    .await;
    w.stop().await;
    assert!(woke, "the job did not start before the 30 s poll interval");
}

#[tokio::test]
async fn strict_order_serves_earlier_queues_first() {
    let s = setup().await;
    for i in 0..5 {
        s.client
            .enqueue(probe(json!({"tag": format!("order-low-{i}")})).on_queue("low"))
            .await
            .unwrap();
        s.client
            .enqueue(probe(json!({"tag": format!("order-high-{i}")})).on_queue("high"))
            .await
            .unwrap();
    }
    let opts = WorkerOpts {
        queues: "high,low".into(),
        strict: true,
        concurrency: 1,
        prefetch: 0,
        ..WorkerOpts::default()
    };
    let w = start_worker(&s.client, s.registry.clone(), &s.url, opts);
    let done = eventually(Duration::from_secs(10), || async {
        events("order-").len() == 10
    })
    .await;
    w.stop().await;
    assert!(done);
    let order: Vec<String> = events("order-").into_iter().map(|(t, _)| t).collect();
    assert!(
        order[..5].iter().all(|t| t.starts_with("order-high")),
        "{order:?}"
    );
}

#[tokio::test]
async fn leases_are_renewed_while_a_long_job_runs() {
    let s = setup().await;
    let (_specs, registry) = probe_registry("10s", 3);
    let opts = WorkerOpts {
        lease: Duration::from_secs(1),
        ..WorkerOpts::default()
    };
    let w = start_worker(&s.client, registry, &s.url, opts);
    s.client
        .enqueue(probe(json!({"tag": "long", "sleep_ms": 3_000})))
        .await
        .unwrap();
    assert!(settled(&s.client, 1, 0).await);
    let listed = w.stop().await;
    assert_eq!(listed.completed, 1);
    assert_eq!(
        events("long").len(),
        1,
        "renewed leases keep the reaper away"
    );
    assert_eq!(s.client.stats("default").await.unwrap().failed, 0);
}

#[tokio::test]
async fn shutdown_lets_short_jobs_finish_and_hands_long_ones_back() {
    let s = setup().await;
    let (_specs, registry) = probe_registry("60s", 3);
    let opts = WorkerOpts {
        concurrency: 2,
        prefetch: 4,
        // Ten times the short job, so that a loaded machine still lets it finish.
        shutdown_timeout: Duration::from_secs(3),
        ..WorkerOpts::default()
    };
    let w = start_worker(&s.client, registry, &s.url, opts);
    s.client
        .enqueue(probe(json!({"tag": "stop-short", "sleep_ms": 300})))
        .await
        .unwrap();
    s.client
        .enqueue(probe(json!({"tag": "stop-long", "sleep_ms": 30_000})))
        .await
        .unwrap();
    for i in 0..4 {
        s.client
            .enqueue(probe(json!({"tag": format!("stop-waiting-{i}")})))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            events("stop-").len() == 2
        })
        .await
    );
    // Every job is leased (the waiting ones prefetched) before the stop, so that each is the
    // worker's to hand back; on a loaded machine the last prefetch can lag the first runs.
    assert!(
        eventually(Duration::from_secs(5), || async {
            s.client.stats("default").await.unwrap().pending == 0
        })
        .await
    );
    let report = w.stop().await;
    let st = s.client.stats("default").await.unwrap();
    assert_eq!(
        (report.completed, report.requeued),
        (1, 5),
        "{report:?} {st:?}"
    );
    let st = s.client.stats("default").await.unwrap();
    assert_eq!(
        (st.processed, st.failed, st.active, st.pending),
        (1, 0, 0, 5)
    );
    let pending = s
        .client
        .list("default", JobState::Pending, 0, 10)
        .await
        .unwrap();
    assert!(
        pending.jobs.iter().all(|j| j.attempts == 0),
        "hand-backs do not use attempts"
    );
    assert!(
        s.client
            .workers(Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "deregistered"
    );
}

#[tokio::test]
async fn a_running_worker_is_listed_with_its_jobs() {
    let s = setup().await;
    let w = start_worker(&s.client, s.registry.clone(), &s.url, WorkerOpts::default());
    s.client
        .enqueue(probe(json!({"tag": "listed", "sleep_ms": 900})))
        .await
        .unwrap();
    let seen = eventually(Duration::from_secs(5), || async {
        let ws = s.client.workers(Duration::from_secs(60)).await.unwrap();
        ws.len() == 1 && ws[0].id == w.id
    })
    .await;
    w.stop().await;
    assert!(seen);
}

#[tokio::test]
async fn a_job_taken_back_from_a_live_worker_and_leased_to_it_again_finishes_once() {
    let s = setup().await;
    let (_specs, registry) = probe_registry("20s", 5);
    let opts = WorkerOpts {
        lease: Duration::from_secs(1),
        ..WorkerOpts::default()
    };
    let w = start_worker(&s.client, registry, &s.url, opts);
    s.client
        .enqueue(probe(json!({"tag": "again", "sleep_ms": 2_500})).max_attempts(5))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            events("again").len() == 1
        })
        .await
    );
    // As if the worker had stalled: its lease runs out and the reaper takes the job back, and
    // the same worker leases it again while the first run is still going.
    let leases = s.client.keys().queue("default").leases();
    let expire = redis::Script::new("return redis.call('ZADD', KEYS[1], 0, ARGV[1])");
    let _: i64 = expire
        .key(&leases)
        .arg(&w.id)
        .invoke_async(&mut s.client.connection())
        .await
        .unwrap();
    let reaped = s.client.reap("default", 10).await.unwrap();
    assert_eq!(reaped.requeued, 1);
    assert!(
        settled(&s.client, 1, 0).await,
        "{:?}",
        s.client.stats("default").await
    );
    // The second run needs its lease renewed for 2.5 s; it must not be reaped again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = w.stop().await;
    assert_eq!(
        events("again").iter().map(|(_, a)| *a).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!((report.completed, report.stale), (1, 1), "{report:?}");
    let st = s.client.stats("default").await.unwrap();
    assert_eq!((st.processed, st.failed, st.dead, st.active), (1, 1, 0, 0));
}

#[tokio::test]
async fn jobs_in_flight_unknown_to_the_worker_are_handed_back() {
    use jobfleet::queue::payload::Header;
    let s = setup().await;
    let opts = WorkerOpts {
        lease: Duration::from_secs(1),
        ..WorkerOpts::default()
    };
    let w = start_worker(&s.client, s.registry.clone(), &s.url, opts);
    // A fetch whose reply was lost: the job sits in the worker's in-flight hash under a token
    // the process never saw.
    let env = json!({"id": "lost-reply", "kind": "probe", "queue": "default",
        "args": {"tag": "orphan"}, "max_attempts": 1, "created_at": 0});
    let header = Header {
        max_attempts: 1,
        id: "lost-reply".into(),
        ..Header::default()
    };
    let k = s.client.keys().queue("default");
    let _: () = redis::pipe()
        .hset(k.inflight(&w.id), "7", header.encode(&env.to_string()))
        .hincr(k.stats(), "active", 1)
        .query_async(&mut s.client.connection())
        .await
        .unwrap();
    assert!(
        settled(&s.client, 1, 0).await,
        "{:?}",
        s.client.stats("default").await
    );
    w.stop().await;
    assert_eq!(
        events("orphan"),
        [("orphan".to_owned(), 1)],
        "run once, on its first attempt"
    );
}

#[tokio::test]
async fn retrying_all_dead_jobs_does_not_chase_jobs_that_die_again() {
    let s = setup().await;
    let w = start_worker(&s.client, s.registry.clone(), &s.url, WorkerOpts::default());
    let jobs: Vec<NewJob> = (0..50)
        .map(|_| NewJob::new("mystery", "default", json!({})))
        .collect();
    s.client.enqueue_bulk(jobs).await.unwrap();
    assert!(settled(&s.client, 0, 50).await);
    let report = s.client.retry_dead("default", None, false).await.unwrap();
    assert_eq!(report.matched, 50, "each dead job is retried once per call");
    assert!(settled(&s.client, 0, 50).await);
    w.stop().await;
}
