//! Priorities within a queue against a real redis-server: strict between levels, first in
//! first out within one, kept through retries, lost leases, delays and an operator's retry,
//! and set from the command line and the HTTP API; a real worker process runs an urgent job
//! ahead of a backlog.

mod support;

use std::time::Duration;

use jobfleet::queue::priority::Priority;
use jobfleet::queue::{Call, JobState, NewJob, QueueClient, SettleAction};
use redis::AsyncCommands;
use serde_json::json;
use support::TestRedis;
use support::app::{client, eventually};
use support::cli::{assert_one_line_error, ok, ok_json, run};
use support::fleet::{completed, history_client, spawn_worker};
use support::store::{fetch, ids, settle};

fn job(i: usize, p: Priority) -> NewJob {
    NewJob::new("noop", "default", json!({ "i": i })).priority(p)
}

/// Every pending id in the order a worker takes them, read by pages of the listing.
async fn listed(c: &QueueClient) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page = c
            .list("default", JobState::Pending, cursor, 9)
            .await
            .unwrap();
        out.extend(page.jobs.into_iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return out,
        }
    }
}

#[tokio::test]
async fn levels_are_strict_and_each_level_is_first_in_first_out() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let backlog: Vec<NewJob> = (0..1000).map(|i| job(i, Priority::NORMAL)).collect();
    let mut expected: [Vec<String>; 4] = Default::default();
    for e in c.enqueue_bulk(backlog).await.unwrap() {
        expected[2].push(e.id);
    }
    // Interleaved, so that only the levels can put them in order.
    for i in 0..40 {
        let p = Priority::ALL[i % 4];
        let id = c.enqueue(job(1000 + i, p)).await.unwrap().id;
        expected[p.index()].push(id);
    }
    let order: Vec<String> = expected.concat();
    let s = c.stats("default").await.unwrap();
    assert_eq!(
        (s.pending, s.pending_by_priority),
        (1040, [10, 10, 1010, 10])
    );
    assert_eq!(
        listed(&c).await,
        order,
        "the listing shows the order of work"
    );
    let urgent = c.show(&expected[0][3]).await.unwrap();
    assert_eq!(
        (urgent.state, urgent.priority),
        (JobState::Pending, Priority::CRITICAL)
    );

    let mut taken = Vec::new();
    loop {
        // Batches that straddle the levels take from the next level to fill up.
        let batch = fetch(&c, 7, "w1").await;
        if batch.is_empty() {
            break;
        }
        taken.extend(ids(&batch));
    }
    assert_eq!(taken, order);
}

#[tokio::test]
async fn a_job_keeps_its_level_through_retries_lost_leases_delays_and_repairs() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let k = c.keys().queue("default");
    let high = c.enqueue(job(1, Priority::HIGH)).await.unwrap().id;
    c.enqueue_bulk((0..5).map(|i| job(10 + i, Priority::NORMAL)).collect())
        .await
        .unwrap();
    let first = fetch(&c, 1, "w1").await;
    assert_eq!(ids(&first), vec![high.clone()]);

    // A failed attempt that is due at once goes back to its level, ahead of the backlog.
    c.settle(
        "default",
        "w1",
        &Call::new("settle"),
        &[settle(&first[0], SettleAction::Retry, 0)],
    )
    .await
    .unwrap();
    let again = fetch(&c, 1, "w1").await;
    assert_eq!((again[0].id(), again[0].attempt()), (high.clone(), 2));

    // Handed back, then a lost lease: the reaper rewrites the header in Lua and keeps the
    // level.
    c.settle(
        "default",
        "w1",
        &Call::new("settle"),
        &[settle(&again[0], SettleAction::Requeue, 0)],
    )
    .await
    .unwrap();
    let held = c
        .fetch("default", 1, Duration::from_millis(1), "w3")
        .await
        .unwrap()
        .jobs;
    assert_eq!(ids(&held), vec![high.clone()]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(c.reap("default", 100).await.unwrap().requeued, 1);
    let stored: Vec<Vec<u8>> = c
        .connection()
        .lrange(k.pending_at(Priority::HIGH), 0, -1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].starts_with(b"jf1|2|"),
        "{:?}",
        String::from_utf8_lossy(&stored[0])
    );

    // Killed, then retried by an operator: back to its own level's list.
    let third = fetch(&c, 1, "w1").await;
    assert_eq!((third[0].id(), third[0].attempt()), (high.clone(), 3));
    c.settle(
        "default",
        "w1",
        &Call::new("settle"),
        &[settle(&third[0], SettleAction::Kill, 0)],
    )
    .await
    .unwrap();
    assert_eq!(c.retry_job(&high).await.unwrap(), JobState::Dead);
    let s = c.stats("default").await.unwrap();
    assert_eq!(s.pending_by_priority, [0, 1, 5, 0]);

    // A delayed job of a higher level overtakes the backlog once it is due.
    let later = job(2, Priority::CRITICAL).run_at(jobfleet::queue::now_ms() + 150);
    let delayed = c.enqueue(later).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let next = fetch(&c, 2, "w1").await;
    assert_eq!(ids(&next), vec![delayed, high]);
}

#[tokio::test]
async fn the_command_line_and_the_api_set_a_priority_and_refuse_a_bad_one() {
    let redis = TestRedis::start();
    let url = redis.url();
    let made = ok_json(&url, &["enqueue", "noop", "--priority", "high", "--json"]);
    let id = made[0]["id"].as_str().unwrap().to_owned();
    let shown = ok(&url, &["jobs", "show", &id]);
    assert!(shown.contains("1 (high)"), "{shown}");
    let stats = ok_json(&url, &["queues", "--json"]);
    assert_eq!(
        stats[0]["pending_by_priority"],
        json!([0, 1, 0, 0]),
        "{stats}"
    );
    let bad = run(&url, &["enqueue", "noop", "--priority", "7"]);
    assert_one_line_error(&bad, &["invalid priority", "0 (most urgent) to 3"]);

    let producer = support::web::token(&url, "producer", "enqueue,read");
    let board = support::web::Board::start(&url, &[]).await;
    let post = |body: serde_json::Value| {
        board
            .http()
            .post(format!("{}/api/v1/jobs", board.base()))
            .bearer_auth(&producer)
            .json(&body)
            .send()
    };
    let resp = post(json!({"kind": "noop", "priority": 0})).await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let body: serde_json::Value = resp.json().await.unwrap();
    let api_id = body["id"].as_str().unwrap().to_owned();
    let view: serde_json::Value = board
        .http()
        .get(format!("{}/api/v1/jobs/{api_id}", board.base()))
        .bearer_auth(&producer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["priority"], json!(0), "{view}");
    for bad in [json!(9), json!("urgent"), json!(-1)] {
        let resp = post(json!({"kind": "noop", "priority": bad}))
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap_or("")
                .contains("\"priority\""),
            "{bad}: {body}"
        );
    }
    // The critical job from the API is first in the order of work, the high one next.
    let c = client(&url).await;
    assert_eq!(listed(&c).await, vec![api_id, id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_an_urgent_job_ahead_of_a_backlog() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = history_client(&url).await;
    // 400 jobs of 50 ms on 4 slots: about five seconds of work.
    let backlog: Vec<NewJob> = (0..400)
        .map(|_| NewJob::new("sleep", "default", json!({ "ms": 50 })))
        .collect();
    c.enqueue_bulk(backlog).await.unwrap();
    let worker = spawn_worker(&url, 4, &[]);
    let started = eventually(Duration::from_secs(20), || async {
        c.stats("default").await.is_ok_and(|s| s.processed >= 8)
    })
    .await;
    assert!(
        started,
        "the worker never ran the backlog:\n{}",
        worker.output()
    );
    let urgent = c
        .enqueue(NewJob::new("noop", "default", json!({})).priority(Priority::CRITICAL))
        .await
        .unwrap()
        .id;
    let done = eventually(Duration::from_secs(20), || async {
        completed(&c, "default").await.contains(&urgent)
    })
    .await;
    assert!(done, "the urgent job never ran:\n{}", worker.output());
    let left = c.stats("default").await.unwrap().pending;
    assert!(
        left >= 250,
        "the urgent job ran only once {} of the backlog's 400 had run",
        400 - left
    );
}
