//! A running job's progress against a real redis-server and a real worker process: the
//! built-in `sleep` kind reports it every second, and `jobfleet jobs show`, `jobfleet workers`
//! and the board's job page show it mid-run; a report of an earlier run is not shown.

mod support;

use std::time::Duration;

use jobfleet::queue::progress::Progress;
use jobfleet::queue::{JobState, NewJob};
use serde_json::json;
use support::TestRedis;
use support::app::{client, eventually};
use support::cli::{ok, ok_json};
use support::fleet::spawn_worker;
use support::web::{Board, OPS, add_user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_jobs_progress_is_shown_mid_run() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    let mut worker = spawn_worker(&url, 2, &[("JOBFLEET__WORKER__LEASE", "3s")]);
    let id = c
        .enqueue(NewJob::new("sleep", "default", json!({ "ms": 8000 })))
        .await
        .unwrap()
        .id;
    let reported = eventually(Duration::from_secs(20), || async {
        ok_json(&url, &["jobs", "show", &id, "--json"])["progress"]["fraction"]
            .as_f64()
            .is_some_and(|f| f > 0.0)
    })
    .await;
    assert!(reported, "no progress mid-run:\n{}", worker.output());
    let shown = ok(&url, &["jobs", "show", &id]);
    assert!(shown.contains("% slept"), "{shown}");
    // The worker's heartbeat (every lease/3) lists the run; the listing adds its progress.
    let listed = eventually(Duration::from_secs(10), || async {
        ok(&url, &["workers"]).contains("% slept")
    })
    .await;
    assert!(listed, "jobfleet workers: {}", ok(&url, &["workers"]));
    add_user(&url, OPS.0, "operator", OPS.1);
    let board = Board::start(&url, &[]).await;
    let ops = board.sign_in(OPS.0, OPS.1).await.unwrap();
    let page = ops.get(&format!("/jobs/{id}")).await;
    assert!(
        page.body.contains("id=\"job-progress\""),
        "no progress on the job page"
    );
    worker.terminate_cleanly();
}

#[tokio::test]
async fn a_report_of_an_earlier_run_is_not_shown() {
    let redis = TestRedis::start();
    let c = client(&redis.url()).await;
    let id = c
        .enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap()
        .id;
    c.set_progress("default", &id, &Progress::new(0.9, "first run", 1))
        .await
        .unwrap();
    let now = c.progress_of("default", &[(id.clone(), 0)]).await.unwrap();
    assert_eq!(now[0].as_ref().map(|p| p.attempt), Some(1));
    // After one failed run the running attempt is the second: the first's report is stale.
    let later = c.progress_of("default", &[(id.clone(), 1)]).await.unwrap();
    assert_eq!(later, vec![None]);
    let since = c
        .progress_since(
            "default",
            &[(id.clone(), jobfleet::queue::now_ms() + 60_000)],
        )
        .await
        .unwrap();
    assert_eq!(
        since,
        vec![None],
        "a report older than the run is not the run's"
    );
    assert_eq!(c.show(&id).await.unwrap().state, JobState::Pending);
}
