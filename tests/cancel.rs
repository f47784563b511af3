//! Cancelling jobs against a real redis-server: a waiting job goes to dead with its reason, a
//! running one's worker process is asked to stop it and the job ends as cancelled (not
//! retried), from the command line, the HTTP API and the board.

mod support;

use std::time::Duration;

use jobfleet::queue::cancel::Cancelled;
use jobfleet::queue::{JobState, NewJob, QueueError};
use serde_json::json;
use support::TestRedis;
use support::app::{client, eventually};
use support::cli::{assert_one_line_error, ok, run};
use support::fleet::spawn_worker;
use support::web::{Board, OPS, add_user, token};

#[tokio::test]
async fn a_waiting_job_is_cancelled_to_dead_with_who_did_it() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let pending = c
        .enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap()
        .id;
    let later =
        NewJob::new("noop", "default", json!({})).run_at(jobfleet::queue::now_ms() + 3_600_000);
    let scheduled = c.enqueue(later).await.unwrap().id;
    assert_eq!(
        c.cancel(&pending, "alice").await.unwrap(),
        Cancelled::Removed(JobState::Pending)
    );
    assert_eq!(
        c.cancel(&scheduled, "alice").await.unwrap(),
        Cancelled::Removed(JobState::Scheduled)
    );
    for id in [&pending, &scheduled] {
        let job = c.show(id).await.unwrap();
        assert_eq!(job.state, JobState::Dead);
        assert_eq!(job.error.as_deref(), Some("cancelled by alice"), "{id}");
    }
    let again = c.cancel(&pending, "alice").await.unwrap_err();
    assert!(again.to_string().contains("dead already"), "{again}");
    assert!(matches!(
        c.cancel("no-such-job", "alice").await,
        Err(QueueError::NotFound(_))
    ));
    // From the command line a refusal is one line on stderr and a non-zero exit.
    let refused = run(&redis.url(), &["jobs", "cancel", &pending, "--by", "bob"]);
    assert_one_line_error(&refused, &["dead already"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_stops_when_cancelled_and_is_not_retried() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    let mut worker = spawn_worker(&url, 2, &[]);
    let long = NewJob::new("sleep", "default", json!({ "ms": 120_000 })).max_attempts(5);
    let id = c.enqueue(long).await.unwrap().id;
    let running = eventually(Duration::from_secs(20), || async {
        c.show(&id).await.is_ok_and(|j| j.state == JobState::Active)
    })
    .await;
    assert!(running, "the job never started:\n{}", worker.output());
    let out = ok(&url, &["jobs", "cancel", &id, "--by", "carol"]);
    assert!(out.contains("is running"), "{out}");
    let stopped = eventually(Duration::from_secs(10), || async {
        c.show(&id).await.is_ok_and(|j| j.state == JobState::Dead)
    })
    .await;
    assert!(
        stopped,
        "the cancelled job did not stop:\n{}",
        worker.output()
    );
    let job = c.show(&id).await.unwrap();
    assert_eq!(job.error.as_deref(), Some("cancelled by carol"));
    assert_eq!(
        c.stats("default").await.unwrap().retry,
        0,
        "a cancelled job is not retried"
    );
    let mark: Option<String> = redis::cmd("GET")
        .arg(c.keys().queue("default").cancel(&id))
        .query_async(&mut c.connection())
        .await
        .unwrap();
    assert_eq!(mark, None, "the cancel mark outlived the run");
    worker.terminate_cleanly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_board_cancel_in_the_name_of_their_caller() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    let by_api = c
        .enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap()
        .id;
    let by_board = c
        .enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap()
        .id;
    add_user(&url, OPS.0, "operator", OPS.1);
    let reader = token(&url, "reader", "read");
    let operator = token(&url, "runbook", "operate");
    let board = Board::start(&url, &[]).await;
    let cancel = |secret: String, id: String| {
        let (http, base) = (board.http(), board.base());
        async move {
            http.post(format!("{base}/api/v1/jobs/{id}/cancel"))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(cancel(reader, by_api.clone()).await.status(), 403);
    let resp = cancel(operator, by_api.clone()).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["previous_state"], "pending", "{body}");
    assert_eq!(body["outcome"], "dead", "{body}");
    let job = c.show(&by_api).await.unwrap();
    assert!(
        job.error.as_deref().is_some_and(|e| e.contains("runbook")),
        "{:?}",
        job.error
    );

    let ops = board.sign_in(OPS.0, OPS.1).await.unwrap();
    let page = ops.get(&format!("/jobs/{by_board}")).await;
    assert!(
        page.body.contains("data-action=\"cancel\""),
        "no cancel button"
    );
    let done = ops.post(&format!("/jobs/{by_board}/cancel"), &[]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let job = c.show(&by_board).await.unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.error.as_deref(), Some("cancelled by ops"));
    let audit = ops.get("/audit").await;
    assert!(audit.body.contains("cancel"), "the audit log has no cancel");
}
