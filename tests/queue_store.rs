//! The queue store's semantics, script by script, against a real redis-server per test.

mod support;

use std::time::Duration;

use jobfleet::queue::{Call, JobState, SettleAction, StoreSettings, now_ms};
use redis::AsyncCommands;
use support::TestRedis;
use support::app::client;
use support::store::{LEASE, acked, dbsize, fetch, ids, noop, refs, settle};

#[tokio::test]
async fn fetch_leases_in_fifo_order_and_ack_deletes() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let enqueued: Vec<String> = c
        .enqueue_bulk((0..3).map(noop).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let jobs = fetch(&c, 2, "w1").await;
    assert_eq!(ids(&jobs), enqueued[..2]);
    assert!(jobs.iter().all(|j| j.attempt() == 1 && j.worker == "w1"));
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.pending, s.active), (1, 2));
    assert_eq!(c.show(&enqueued[0]).await.unwrap().state, JobState::Active);

    assert_eq!(
        acked(
            c.ack("default", "w1", &Call::new("ack"), &refs(&jobs))
                .await
        ),
        (2, 0)
    );
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.pending, s.active, s.processed, s.enqueued), (1, 0, 2, 3));
    assert!(c.show(&enqueued[0]).await.is_err(), "ack deletes the job");
    let mut con = c.connection();
    let leases: u64 = con.zcard(c.keys().queue("default").leases()).await.unwrap();
    assert_eq!(leases, 0, "a worker holding nothing has no lease entry");
}

#[tokio::test]
async fn duplicate_ids_and_unique_keys_return_the_existing_job() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let first = c.enqueue(noop(1).id("tick-1")).await.unwrap();
    let again = c.enqueue(noop(2).id("tick-1")).await.unwrap();
    assert!(first.created && !again.created);
    assert_eq!(again.id, "tick-1");
    assert!(c.enqueue(noop(3).id("bad|id")).await.is_err());

    let ttl = Duration::from_secs(60);
    let a = c.enqueue(noop(3).unique("sync:0xabc", ttl)).await.unwrap();
    let b = c.enqueue(noop(4).unique("sync:0xabc", ttl)).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.id, b.id);
    assert_eq!(c.stats("default").await.unwrap().pending, 2);

    // Finishing the job releases its key.
    let jobs = fetch(&c, 10, "w").await;
    c.ack("default", "w", &Call::new("ack"), &refs(&jobs))
        .await
        .unwrap();
    let d = c.enqueue(noop(5).unique("sync:0xabc", ttl)).await.unwrap();
    assert!(d.created && d.id != a.id);
}

#[tokio::test]
async fn delayed_jobs_wait_then_are_promoted() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let at = now_ms() + 400;
    c.enqueue(noop(1).run_at(at)).await.unwrap();
    let f = c.fetch("default", 10, LEASE, "w").await.unwrap();
    assert!(f.jobs.is_empty());
    assert_eq!(
        f.next_due_ms,
        Some(at),
        "the fetcher learns when to look again"
    );
    assert_eq!(c.stats("default").await.unwrap().scheduled, 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let f = c.fetch("default", 10, LEASE, "w").await.unwrap();
    assert_eq!((f.jobs.len(), f.promoted), (1, 1));
}

#[tokio::test]
async fn a_million_due_jobs_drain_in_bounded_chunks() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    const N: usize = 1_000_000;
    // Each chunk is due shortly after it is stored, so that all of them sit in the scheduled
    // set however slowly a debug build serialises them.
    let mut last_due = 0;
    for chunk in (0..N).collect::<Vec<_>>().chunks(50_000) {
        last_due = now_ms() + 3_000;
        let jobs = chunk.iter().map(|i| noop(*i).run_at(last_due)).collect();
        c.enqueue_bulk(jobs).await.unwrap();
    }
    assert_eq!(c.stats("default").await.unwrap().scheduled, N as u64);
    let wait = (last_due - now_ms() + 50).max(0);
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    let mut drained = 0;
    let mut calls = 0;
    loop {
        let f = c.fetch("default", 5_000, LEASE, "w").await.unwrap();
        assert!(f.promoted <= 2 * 1_000, "promotion is bounded per call");
        calls += 1;
        if f.jobs.is_empty() && f.next_due_ms.is_none() {
            break;
        }
        for part in f.jobs.chunks(1_000) {
            drained += c
                .ack("default", "w", &Call::new("ack"), &refs(part))
                .await
                .unwrap()
                .acked as usize;
        }
    }
    assert_eq!(drained, N);
    let s = c.stats("default").await.unwrap();
    assert_eq!(
        (s.pending, s.scheduled, s.active, s.processed),
        (0, 0, 0, N as u64)
    );
    assert!(calls >= N / 1_000, "{calls} fetch calls");
}

#[tokio::test]
async fn results_of_a_worker_whose_lease_expired_are_ignored() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    c.enqueue(noop(1)).await.unwrap();
    let first = c
        .fetch("default", 1, Duration::from_millis(1), "old")
        .await
        .unwrap()
        .jobs
        .remove(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reaped = c.reap("default", 100).await.unwrap();
    assert_eq!(
        (reaped.requeued, reaped.workers.clone()),
        (1, vec!["old".to_owned()])
    );
    let second = fetch(&c, 1, "new").await.remove(0);
    assert_eq!((second.id(), second.attempt()), (first.id(), 2));
    let info = c.show(&first.id()).await.unwrap();
    assert!(info.error.unwrap().contains("worker old stopped renewing"));

    // The first worker comes back from the dead and reports: nothing happens.
    assert_eq!(
        c.extend("default", "old", LEASE).await.unwrap(),
        None,
        "it learns it lost"
    );
    assert_eq!(
        acked(c.ack("default", "old", &Call::new("ack"), &[&first]).await),
        (0, 1)
    );
    let r = c
        .settle(
            "default",
            "old",
            &Call::new("settle"),
            &[settle(&first, SettleAction::Kill, 0)],
        )
        .await
        .unwrap();
    assert_eq!((r.killed, r.stale), (0, 1));
    assert_eq!(c.show(&first.id()).await.unwrap().state, JobState::Active);
    assert_eq!(c.extend("default", "new", LEASE).await.unwrap(), Some(1));
    let call = Call::new("ack");
    assert_eq!(
        acked(c.ack("default", "new", &call, &[&second]).await),
        (1, 0)
    );
    assert_eq!(c.stats("default").await.unwrap().active, 0);
    // The same call sent again, as after a reply lost on the way back, answers what the first
    // did; only a new call on the same job is stale.
    assert_eq!(
        acked(c.ack("default", "new", &call, &[&second]).await),
        (1, 0)
    );
    assert_eq!(
        acked(c.ack("default", "new", &Call::new("ack"), &[&second]).await),
        (0, 1)
    );
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.processed, s.active), (1, 0), "counted once");
}

#[tokio::test]
async fn an_expired_lease_on_the_last_attempt_goes_to_dead() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let id = c.enqueue(noop(1).max_attempts(1)).await.unwrap().id;
    c.fetch("default", 1, Duration::from_millis(1), "w-lost")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = c.reap("default", 100).await.unwrap();
    assert_eq!((r.requeued, r.killed), (0, 1));
    let info = c.show(&id).await.unwrap();
    assert_eq!((info.state.as_str(), info.attempts), ("dead", 1));
    assert!(info.error.unwrap().contains("w-lost"));
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.failed, s.active), (1, 0));
}

#[tokio::test]
async fn settle_retries_snoozes_requeues_and_kills() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    c.enqueue_bulk((0..4).map(noop).collect()).await.unwrap();
    let jobs = fetch(&c, 4, "w").await;
    let later = now_ms() + 60_000;
    let r = c
        .settle(
            "default",
            "w",
            &Call::new("settle"),
            &[
                settle(&jobs[0], SettleAction::Retry, later),
                settle(&jobs[1], SettleAction::Snooze, later),
                settle(&jobs[2], SettleAction::Requeue, 0),
                settle(&jobs[3], SettleAction::Kill, 0),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.retried, r.snoozed, r.requeued, r.killed, r.stale),
        (1, 1, 1, 1, 0)
    );
    let s = c.stats("default").await.unwrap();
    assert_eq!(
        (s.retry, s.scheduled, s.pending, s.dead, s.active),
        (1, 1, 1, 1, 0)
    );
    assert_eq!(
        s.failed, 2,
        "retry and kill are failures; snooze and requeue are not"
    );
    let show = |i: usize| {
        let c = c.clone();
        let id = jobs[i].id();
        async move { c.show(&id).await.unwrap() }
    };
    assert_eq!(show(0).await.attempts, 1, "a failed attempt is consumed");
    assert_eq!(show(0).await.error.as_deref(), Some("boom"));
    assert_eq!(show(1).await.attempts, 0, "a snooze gives the attempt back");
    assert_eq!(
        show(2).await.attempts,
        0,
        "a hand-back gives the attempt back"
    );
    let dead = show(3).await;
    assert_eq!(
        (dead.state.as_str(), dead.error.as_deref()),
        ("dead", Some("boom"))
    );

    // A handed-back job is next; a retry that is already due skips the retry set.
    let again = fetch(&c, 1, "w2").await.remove(0);
    assert_eq!(
        again.id(),
        jobs[2].id(),
        "a handed-back job goes to the head of the queue"
    );
    c.settle(
        "default",
        "w2",
        &Call::new("settle"),
        &[settle(&again, SettleAction::Retry, 0)],
    )
    .await
    .unwrap();
    assert_eq!(c.stats("default").await.unwrap().pending, 1);
}

#[tokio::test]
async fn the_dead_set_is_capped_by_count_and_age_and_counts_evictions() {
    let redis = TestRedis::start();
    let store = StoreSettings {
        dead_max_jobs: 5,
        dead_max_age: Duration::from_millis(300),
        ..StoreSettings::default()
    };
    let c = support::app::client_with(&redis.url(), store).await;
    c.enqueue_bulk((0..8).map(noop).collect()).await.unwrap();
    let jobs = fetch(&c, 8, "w").await;
    for job in &jobs {
        // One at a time, so their times of death are ordered.
        c.settle(
            "default",
            "w",
            &Call::new("settle"),
            &[settle(job, SettleAction::Kill, 0)],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.dead, s.dead_evicted), (5, 3));
    let left = c.list("default", JobState::Dead, 0, 10).await.unwrap();
    let left: Vec<String> = left.jobs.iter().map(|j| j.id.clone()).collect();
    assert!(
        !left.contains(&jobs[0].id()) && left.contains(&jobs[7].id()),
        "the oldest went first"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(c.trim_dead("default").await.unwrap(), (5, 0));
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.dead, s.dead_evicted), (0, 8));
    assert!(dbsize(&c).await < 10, "nothing of the evicted jobs is left");
}

#[tokio::test]
async fn a_lease_lost_with_the_last_writes_is_never_confused_with_a_new_one() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    c.enqueue_bulk((0..2).map(noop).collect()).await.unwrap();
    let before = fetch(&c, 1, "w").await;
    // A failover that loses the master's last writes: the promoted replica never saw the
    // fetch, so the job is pending again and the worker holds nothing there, while the worker
    // still holds the lease it was given before.
    let k = c.keys().queue("default");
    let mut con = c.connection();
    let _: () = redis::pipe()
        .del(k.inflight("w"))
        .lpush(k.pending(), &before[0].stored)
        .zrem(k.leases(), "w")
        .query_async(&mut con)
        .await
        .unwrap();
    let after = fetch(&c, 2, "w").await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].id(), before[0].id(), "the job is leased again");
    assert!(
        after.iter().all(|j| j.token > before[0].token),
        "tokens only grow: {} then {:?}",
        before[0].token,
        after.iter().map(|j| j.token).collect::<Vec<_>>()
    );
    // The old lease's ack changes nothing; the new leases are intact and ack.
    assert_eq!(
        acked(
            c.ack("default", "w", &Call::new("ack"), &refs(&before))
                .await
        ),
        (0, 1)
    );
    let held: usize = con.hlen(k.inflight("w")).await.unwrap();
    assert_eq!(held, 2);
    assert_eq!(
        acked(
            c.ack("default", "w", &Call::new("ack"), &refs(&after))
                .await
        ),
        (2, 0)
    );
}

#[tokio::test]
async fn an_in_flight_list_left_by_an_earlier_release_is_listed_counted_and_reaped() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    // An earlier release's worker leased two jobs into a list, then died.
    c.enqueue_bulk((0..2).map(noop).collect()).await.unwrap();
    let jobs = fetch(&c, 2, "gone").await;
    let k = c.keys().queue("default");
    let mut con = c.connection();
    let stored: Vec<&[u8]> = jobs.iter().map(|j| j.stored.as_slice()).collect();
    let _: () = redis::pipe()
        .del(k.inflight("gone"))
        .rpush(k.inflight("gone"), stored)
        .zadd(k.leases(), "gone", 1)
        .query_async(&mut con)
        .await
        .unwrap();
    let page = c.list("default", JobState::Active, 0, 10).await.unwrap();
    assert_eq!(page.jobs.len(), 2);
    assert!(
        page.jobs
            .iter()
            .all(|j| j.worker.as_deref() == Some("gone"))
    );
    let refused = c.remove_queue("default", false).await.unwrap_err();
    assert!(refused.to_string().contains("2 jobs active"), "{refused}");
    let reaped = c.reap("default", 100).await.unwrap();
    assert_eq!(reaped.requeued, 2);
    let again = fetch(&c, 2, "new").await;
    assert_eq!(ids(&again), ids(&jobs));
    assert!(again.iter().all(|j| j.attempt() == 2));
    assert_eq!(
        acked(
            c.ack("default", "new", &Call::new("ack"), &refs(&again))
                .await
        ),
        (2, 0)
    );
}

#[tokio::test]
async fn a_job_that_succeeds_after_a_failure_leaves_no_history_of_attempts() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    c.enqueue(noop(1)).await.unwrap();
    let first = fetch(&c, 1, "w").await;
    let id = first[0].id();
    c.settle(
        "default",
        "w",
        &Call::new("settle"),
        &[settle(&first[0], SettleAction::Retry, 0)],
    )
    .await
    .unwrap();
    assert_eq!(c.attempts("default", &id).await.unwrap().len(), 1);
    let again = fetch(&c, 1, "w").await;
    assert_eq!((again[0].id(), again[0].attempt()), (id.clone(), 2));
    assert_eq!(
        acked(
            c.ack("default", "w", &Call::new("ack"), &refs(&again))
                .await
        ),
        (1, 0)
    );
    assert!(c.attempts("default", &id).await.unwrap().is_empty());
    assert!(
        !c.connection()
            .exists::<_, bool>(c.keys().queue("default").attempts(&id))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_fetch_sent_again_after_its_first_run_leased_jobs_leases_nothing_and_loses_nothing() {
    use jobfleet::queue::scripts::Scripts;
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    c.enqueue_bulk((0..4).map(noop).collect()).await.unwrap();
    // The same call twice, as a client sends it again after losing the reply: the same
    // tokens. The script is called directly so that the test names the tokens (the client
    // reserves them from the process's sequence, which the other tests share).
    let scripts = Scripts::new(false);
    let k = c.keys().queue("default");
    let mut con = c.connection();
    let call = || {
        let mut inv = scripts.fetch.key(k.pending());
        inv.key(k.scheduled())
            .key(k.retry())
            .key(k.leases())
            .key(k.paused())
            .key(k.stats())
            .key(k.inflight("w"))
            .arg(k.prefix())
            .arg(now_ms())
            .arg(2)
            .arg(30_000)
            .arg("w")
            .arg(1000)
            .arg(7_000);
        inv
    };
    let first: Vec<redis::Value> = call().invoke_async(&mut con).await.unwrap();
    assert_eq!(first.len(), 5, "two jobs leased: {first:?}");
    let again: Vec<redis::Value> = call().invoke_async(&mut con).await.unwrap();
    assert_eq!(again.len(), 3, "nothing leased: {again:?}");
    assert_eq!(again[0], redis::Value::Int(2), "the replay is told apart");
    let held: std::collections::HashMap<String, Vec<u8>> =
        con.hgetall(k.inflight("w")).await.unwrap();
    let mut tokens: Vec<&str> = held.keys().map(String::as_str).collect();
    tokens.sort_unstable();
    assert_eq!(tokens, ["7000", "7001"], "the first run's jobs are intact");
    assert_eq!(c.stats("default").await.unwrap().pending, 2);
    // A worker's next call has tokens of its own and leases as usual.
    assert_eq!(fetch(&c, 2, "w").await.len(), 2);
}
