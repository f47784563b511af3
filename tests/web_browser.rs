//! The board in a real headless Chromium (`tests/browser/board.mjs`, with npm's
//! playwright-core and Debian's chromium), and the Node producer example
//! (`examples/node-producer/`) enqueueing through the API to a real worker. Both need `node`
//! and the packages `scripts/test` installs; a machine without them fails here with what to
//! install, rather than skipping.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jobfleet::queue::NewJob;
use serde_json::json;
use sqlx::PgPool;
use support::TestRedis;
use support::app::client;
use support::chain::database_url;
use support::process::Process;
use support::web::{Board, add_user, token};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the screenshots go: `JOBFLEET_SCREENSHOTS`, or `target/screenshots`.
fn screenshots() -> PathBuf {
    std::env::var_os("JOBFLEET_SCREENSHOTS")
        .map_or_else(|| root().join("target/screenshots"), PathBuf::from)
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: the browser tests need Debian's chromium (scripts/test installs it: \
         apt-get install chromium)"
    );
    assert!(
        root().join("node_modules/playwright-core").exists(),
        "node_modules/playwright-core is missing: run npm ci (scripts/test does)"
    );
    path
}

/// Runs `node SCRIPT` with `env`, bounded; panics with its output unless it exits 0.
fn node(script: &Path, env: &[(&str, String)], limit: Duration) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(script).current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (out, took) = support::process::run_bounded(&mut cmd, limit);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "node {} failed after {took:?} ({}):\n{text}",
        script.display(),
        out.status
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_dead_job_and_pauses_a_queue_in_a_real_browser() {
    let chromium = chromium();
    let redis = TestRedis::start();
    let url = redis.url();
    let client = client(&url).await;
    for i in 0..3 {
        client
            .enqueue(NewJob::new("noop", "browser", json!({ "n": i })))
            .await
            .unwrap();
    }
    let dead = client
        .enqueue(NewJob::new("noop", "browser", json!({"order": 7})).id("dead-order-7"))
        .await
        .unwrap();
    client.kill(&dead.id).await.unwrap();
    // Something for the other pages to show: a worker running a long job, and ticks.
    client
        .enqueue(NewJob::new("sleep", "default", json!({"ms": 120_000})))
        .await
        .unwrap();
    let _worker = Process::start(
        &url,
        &[
            ("JOBFLEET__WORKER__QUEUES", "default"),
            ("JOBFLEET__TELEMETRY__HTTP_ADDR", ""),
        ],
        &["worker"],
    );
    let minute = jobfleet::queue::now_ms() / 60_000 * 60_000;
    for i in (1..=3).rev() {
        let tick = minute - i * 30_000;
        let job = NewJob::new("noop", "default", json!({})).id(format!("fleet-heartbeat:{tick}"));
        client
            .enqueue_tick("fleet-heartbeat", tick, job)
            .await
            .unwrap();
    }
    add_user(&url, "ops", "operator", "operator-password");
    let board = Board::start(&url, &[]).await;
    let shots = screenshots();
    let out = node(
        &root().join("tests/browser/board.mjs"),
        &[
            ("BOARD_URL", board.base()),
            ("BOARD_USER", "ops".into()),
            ("BOARD_PASSWORD", "operator-password".into()),
            ("QUEUE", "browser".into()),
            ("DEAD_ID", dead.id.clone()),
            ("SCREENSHOTS", shots.display().to_string()),
            ("CHROMIUM", chromium),
        ],
        Duration::from_secs(120),
    );
    assert!(out.contains("board browser test passed"), "{out}");
    // What the browser did is what the store holds.
    let stats = client.stats("browser").await.unwrap();
    assert!(stats.paused);
    assert_eq!((stats.dead, stats.pending), (0, 4));
    assert!(shots.join("02-overview.png").exists());
}

#[sqlx::test]
async fn a_node_producer_enqueues_through_the_api_and_reads_the_states_back(pool: PgPool) {
    let redis = TestRedis::start();
    let url = redis.url();
    let db = database_url(&pool);
    let producer = token(&url, "node-producer", "enqueue,read");
    let board = Board::start(&url, &[("DATABASE_URL", &db)]).await;
    let mut worker = Process::start(
        &url,
        &[
            ("DATABASE_URL", &db),
            ("JOBFLEET__WORKER__QUEUES", "default,notifications"),
            ("JOBFLEET__WORKER__COMPLETED_HISTORY", "1000"),
            ("JOBFLEET__TELEMETRY__HTTP_ADDR", ""),
        ],
        &["worker"],
    );
    let out = node(
        &root().join("examples/node-producer/producer.mjs"),
        &[
            ("JOBFLEET_API", board.base()),
            ("JOBFLEET_TOKEN", producer),
            ("BULK", "100".into()),
            ("WAIT_SECONDS", "60".into()),
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.contains("all 101 jobs completed"),
        "{out}\nworker:\n{}",
        worker.output()
    );
    worker.terminate_cleanly();
}
