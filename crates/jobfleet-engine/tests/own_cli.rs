//! A binary of its own kinds gets the whole command line from `jobfleet_engine::cli::main`:
//! the example `own_cli` (examples/own_cli.rs), driven as an operator would, against a
//! redis-server of the test's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// The application's throw-away redis-server, shared rather than copied.
#[path = "../../../tests/support/redis.rs"]
mod redis;

/// The example's binary, which `cargo test` builds beside this test's.
fn own_cli() -> PathBuf {
    let deps = std::env::current_exe().expect("the test's path");
    let target = deps
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    target.join("examples").join("own_cli")
}

fn examples_jobs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs")
}

/// Runs the example with `args`, its specs from `jobs` and a config folder that does not
/// exist (so only the engine's defaults and these variables apply).
fn cli(url: &str, jobs: &Path, args: &[&str]) -> Output {
    Command::new(own_cli())
        .args(args)
        .env("REDIS_URL", url)
        .env("JOBFLEET__JOBS__DIR", jobs)
        .env("JOBFLEET_CONFIG_DIR", "/nonexistent-config")
        .env("JOBFLEET__TELEMETRY__HTTP_ADDR", "")
        .env_remove("JOBFLEET_ENV")
        .output()
        .expect("own_cli runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn enqueue_applies_the_kinds_spec_and_run_says_how_it_went() {
    let redis = redis::TestRedis::start();
    let jobs = examples_jobs();
    let args = r#"{"order_id": 7}"#;
    let out = cli(
        &redis.url(),
        &jobs,
        &["enqueue", "send_receipt", "--args", args, "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let enqueued: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = enqueued[0]["id"].as_str().expect("an id").to_owned();
    let out = cli(&redis.url(), &jobs, &["jobs", "show", &id, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // The spec's queue and attempts, not the defaults of an untyped job.
    assert_eq!(shown["queue"], "receipts", "{shown}");
    assert_eq!(shown["max_attempts"], 5, "{shown}");

    let out = cli(
        &redis.url(),
        &jobs,
        &["run", "send_receipt", "--args", args],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("receipt for order 7 sent"),
        "{}",
        text(&out)
    );
    let zero = r#"{"order_id": 0}"#;
    let out = cli(
        &redis.url(),
        &jobs,
        &["run", "send_receipt", "--args", zero],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("order 0 does not exist"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_spec_without_a_handler_stops_the_worker_at_start() {
    let redis = redis::TestRedis::start();
    let jobs = tempfile::tempdir().expect("temp dir");
    let spec = examples_jobs().join("send_receipt.toml");
    for name in ["send_receipt.toml", "ghost.toml"] {
        std::fs::copy(&spec, jobs.path().join(name)).expect("copy the spec");
    }
    let out = cli(&redis.url(), jobs.path(), &["worker"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("ghost.toml") && said.contains("no handler"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "one line: {said}");
}

#[test]
fn a_bad_argument_is_one_line_and_exit_code_2() {
    let out = Command::new(own_cli())
        .arg("--no-such-flag")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(text(&out).lines().count(), 1, "{}", text(&out));
}
