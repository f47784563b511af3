//! What the board relies on in the store, against a real redis-server per test: the bounded
//! history of a job's failed attempts, the schedules' tick history, actions on jobs picked by
//! id and on a whole state, and a producer's own id protecting against a second job even after
//! the first one ran.

mod support;

use jobfleet::queue::{Action, Call, JobState, NewJob, SettleAction, now_ms};
use serde_json::json;
use support::TestRedis;
use support::app::client;
use support::store::{fetch, noop, refs, settle};

#[tokio::test]
async fn a_jobs_failed_attempts_are_kept_newest_first_and_bounded() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let id = c
        .enqueue(NewJob::new("noop", "default", json!({})).max_attempts(100))
        .await
        .unwrap()
        .id;
    assert!(c.attempts("default", &id).await.unwrap().is_empty());
    for i in 0..30 {
        let worker = format!("w{i}");
        let leased = fetch(&c, 1, &worker).await;
        assert_eq!(leased.len(), 1, "round {i}");
        let action = if i == 29 {
            SettleAction::Kill
        } else {
            SettleAction::Retry
        };
        let mut s = settle(&leased[0], action, 0);
        s.error = format!("failure {i}");
        c.settle("default", &worker, &Call::new("settle"), &[s])
            .await
            .unwrap();
    }
    let history = c.attempts("default", &id).await.unwrap();
    assert_eq!(history.len(), 25, "bounded");
    assert_eq!(
        (history[0].attempt, history[0].worker.as_str()),
        (30, "w29")
    );
    assert_eq!(history[0].error, "failure 29");
    assert_eq!(
        history[24].attempt, 6,
        "newest first; the oldest five dropped"
    );
    assert!(history.windows(2).all(|w| w[0].failed_at >= w[1].failed_at));
    assert_eq!(c.show(&id).await.unwrap().state, JobState::Dead);
}

#[tokio::test]
async fn a_schedule_keeps_its_last_twenty_ticks() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    for t in 0..25i64 {
        let job = NewJob::new("noop", "default", json!({})).id(format!("tick-{t}"));
        assert!(
            c.enqueue_tick("every-minute", t * 60_000, job)
                .await
                .unwrap()
        );
    }
    let ticks = c.ticks("default", "every-minute").await.unwrap();
    assert_eq!(ticks.len(), 20);
    assert_eq!(ticks[0], (24 * 60_000, "tick-24".to_owned()));
    assert_eq!(ticks[19].1, "tick-5");
    assert_eq!(
        c.last_tick("default", "every-minute").await.unwrap(),
        Some((24 * 60_000, "tick-24".into()))
    );
}

#[tokio::test]
async fn picked_jobs_are_acted_on_and_those_a_worker_took_are_reported() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let later = now_ms() + 3_600_000;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(c.enqueue(noop(i).run_at(later)).await.unwrap().id);
    }
    let report = c
        .act(
            "default",
            JobState::Scheduled,
            &ids[..2],
            Action::Kill,
            Some((0, 50)),
        )
        .await
        .unwrap();
    assert_eq!((report.done, report.missed.len()), (2, 0));
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.scheduled, s.dead), (3, 2));
    assert_eq!(
        c.show(&ids[0]).await.unwrap().error.as_deref(),
        Some("killed by an operator")
    );
    // Retry one dead job and one that is not dead: only the dead one moves.
    let report = c
        .act(
            "default",
            JobState::Dead,
            &[ids[0].clone(), ids[3].clone()],
            Action::Retry,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (report.done, report.missed.clone()),
        (1, vec![ids[3].clone()])
    );
    // A job a worker took is not touched.
    let leased = fetch(&c, 1, "w").await;
    assert_eq!(leased[0].id(), ids[0]);
    let report = c
        .act(
            "default",
            JobState::Pending,
            &[ids[0].clone()],
            Action::Delete,
            Some((0, 50)),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.done, report.missed.clone()),
        (0, vec![ids[0].clone()])
    );
    assert!(
        c.act(
            "default",
            JobState::Active,
            &[ids[0].clone()],
            Action::Retry,
            None
        )
        .await
        .is_err()
    );
    assert_eq!(c.kill(&ids[4]).await.unwrap(), JobState::Scheduled);
    assert!(
        c.kill(&ids[0]).await.is_err(),
        "an active job is not killed"
    );
}

#[tokio::test]
async fn a_whole_state_is_acted_on_in_batches() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let later = now_ms() + 3_600_000;
    let jobs: Vec<NewJob> = (0..2_500).map(|i| noop(i).run_at(later)).collect();
    c.enqueue_bulk(jobs).await.unwrap();
    c.enqueue_bulk((0..1_200).map(noop).collect())
        .await
        .unwrap();
    assert_eq!(
        c.act_all("default", JobState::Scheduled, Action::Retry)
            .await
            .unwrap(),
        2_500
    );
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.scheduled, s.pending), (0, 3_700));
    assert_eq!(
        c.act_all("default", JobState::Pending, Action::Kill)
            .await
            .unwrap(),
        3_700
    );
    assert_eq!(c.stats("default").await.unwrap().dead, 3_700);
    assert_eq!(
        c.act_all("default", JobState::Dead, Action::Delete)
            .await
            .unwrap(),
        3_700
    );
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.pending, s.dead), (0, 0));
    assert!(
        c.act_all("default", JobState::Active, Action::Delete)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_producers_id_stores_one_job_even_after_the_first_one_ran() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let first = c.enqueue(noop(0).id("order-9")).await.unwrap();
    assert!(first.created);
    let leased = fetch(&c, 1, "w").await;
    c.ack("default", "w", &Call::new("ack"), &refs(&leased))
        .await
        .unwrap();
    let again = c.enqueue(noop(0).id("order-9")).await.unwrap();
    assert!(
        !again.created,
        "the id is still taken after the job completed"
    );
    assert_eq!(c.stats("default").await.unwrap().pending, 0);
    // A user's unique key is released when its job completes, as before.
    let u = c
        .enqueue(noop(1).unique("k", std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    let leased = fetch(&c, 1, "w").await;
    c.ack("default", "w", &Call::new("ack2"), &refs(&leased))
        .await
        .unwrap();
    let u2 = c
        .enqueue(noop(1).unique("k", std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(u.created && u2.created);
}

#[tokio::test]
async fn a_job_that_succeeds_at_last_leaves_no_history_behind() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let id = c.enqueue(noop(0)).await.unwrap().id;
    let leased = fetch(&c, 1, "w").await;
    c.settle(
        "default",
        "w",
        &Call::new("settle"),
        &[settle(&leased[0], SettleAction::Retry, 0)],
    )
    .await
    .unwrap();
    assert_eq!(c.attempts("default", &id).await.unwrap().len(), 1);
    let leased = fetch(&c, 1, "w2").await;
    c.ack("default", "w2", &Call::new("ack"), &refs(&leased))
        .await
        .unwrap();
    assert!(c.attempts("default", &id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_job_is_found_by_id_deep_in_a_long_pending_list() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let mut ids = Vec::new();
    for chunk in 0..5 {
        let done = c
            .enqueue_bulk((0..5_000).map(|i| noop(chunk * 5_000 + i)).collect())
            .await
            .unwrap();
        ids.extend(done.into_iter().map(|e| e.id));
    }
    c.enqueue(noop(0).id("producers-own-id")).await.unwrap();
    // A ULID id by its time, a producer's id by the scan, both in pending.
    for id in [
        &ids[17_321],
        &ids[0],
        &ids[24_999],
        &"producers-own-id".to_owned(),
    ] {
        let job = c.show(id).await.unwrap();
        assert_eq!(
            (job.id.as_str(), job.state),
            (id.as_str(), JobState::Pending)
        );
    }
    assert!(
        c.show("01ARZ3NDEKTSV4RRFFQ69G5FAV").await.is_err(),
        "a ULID that is nowhere"
    );
}

#[tokio::test]
async fn with_the_attempt_history_off_only_the_last_error_is_kept() {
    let redis = TestRedis::start();
    let store = jobfleet::queue::StoreSettings {
        attempt_history: false,
        ..jobfleet::queue::StoreSettings::default()
    };
    let c = support::app::client_with(&redis.url(), store).await;
    let id = c.enqueue(noop(0)).await.unwrap().id;
    let leased = fetch(&c, 1, "w").await;
    c.settle(
        "default",
        "w",
        &Call::new("settle"),
        &[settle(&leased[0], SettleAction::Retry, 0)],
    )
    .await
    .unwrap();
    assert!(c.attempts("default", &id).await.unwrap().is_empty());
    assert_eq!(c.show(&id).await.unwrap().error.as_deref(), Some("boom"));
}

#[tokio::test]
async fn a_schedules_tick_jobs_are_located_together() {
    let redis = TestRedis::start();
    let store = jobfleet::queue::StoreSettings {
        completed_history: 100,
        ..jobfleet::queue::StoreSettings::default()
    };
    let c = support::app::client_with(&redis.url(), store).await;
    let ids: Vec<String> = (0..5).map(|t| format!("heartbeat:{t}")).collect();
    for (t, id) in ids.iter().enumerate() {
        let job = noop(t).id(id);
        assert!(c.enqueue_tick("heartbeat", t as i64, job).await.unwrap());
    }
    // heartbeat:0 completes, :1 dies, :2 waits for a retry, :3 runs, :4 stays pending.
    let leased = fetch(&c, 4, "w").await;
    c.ack("default", "w", &Call::new("ack"), &[&leased[0]])
        .await
        .unwrap();
    let outcomes = [
        settle(&leased[1], SettleAction::Kill, 0),
        settle(&leased[2], SettleAction::Retry, now_ms() + 60_000),
    ];
    c.settle("default", "w", &Call::new("settle"), &outcomes)
        .await
        .unwrap();
    let found = c.locate("default", &ids).await.unwrap();
    use jobfleet::queue::find::Located;
    assert!(matches!(
        found.get("heartbeat:0"),
        Some(Located::Completed(_))
    ));
    assert_eq!(
        found.get("heartbeat:1"),
        Some(&Located::Stored(JobState::Dead))
    );
    assert_eq!(
        found.get("heartbeat:2"),
        Some(&Located::Stored(JobState::Retry))
    );
    assert_eq!(
        found.get("heartbeat:3"),
        Some(&Located::Stored(JobState::Active))
    );
    assert_eq!(found.get("heartbeat:4"), None, "pending is not searched");
    assert!(c.locate("default", &[]).await.unwrap().is_empty());
}
