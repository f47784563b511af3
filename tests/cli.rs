//! The `jobfleet` binary as operators use it: bad input gives one line on stderr and a non-zero
//! exit; the operator commands work end to end against a private Redis; a real worker process
//! runs jobs, lists itself, serves `/healthz` and `/metrics`, and stops cleanly on SIGTERM.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use jobfleet::queue::NewJob;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use support::TestRedis;
use support::app::{client, eventually};
use support::cli::{
    assert_counts, assert_one_line_error, jobfleet, ok, ok_json, queue_stats, run, run_env,
};

/// How long the worker gets to do something observable.
const WORKER_TIMEOUT: Duration = Duration::from_secs(60);

fn is_job_id(s: &str) -> bool {
    s.len() == 26 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A `jobfleet worker` process whose output goes to a temporary file; it is SIGKILLed if the
/// test ends (or panics) without stopping it.
struct WorkerProcess {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl WorkerProcess {
    fn start(url: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("temp log file");
        let mut cmd = jobfleet(url);
        cmd.arg("worker")
            .args(args)
            .stdout(Stdio::from(log.reopen().expect("log file")))
            .stderr(Stdio::from(log.reopen().expect("log file")));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starts jobfleet worker");
        Self { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Panics (with the worker's output) if the worker is no longer running.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "the worker exited early with {status}; its output:\n{}",
                self.output()
            );
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    /// SIGTERM, and the worker must exit 0.
    fn terminate_cleanly(&mut self) {
        let status = self.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "the worker should exit 0 on SIGTERM, got {status}; output:\n{}",
            self.output()
        );
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM sent to the worker");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "the worker did not exit within 30s of SIGTERM; its output:\n{}",
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn bad_arguments_give_one_line_and_a_failure() {
    let redis = TestRedis::start();
    let url = redis.url();
    let cases: &[(&[&str], &[&str])] = &[
        (&["jobs", "list", "default", "--state", "bogus"], &["bogus"]),
        (&["enqueue"], &["KIND"]),
        (&["enqueue", "noop", "--in", "soon"], &["soon"]),
        (&["enqueue", "nope"], &["nope"]),
        (&["enqueue", "sleep", "--args", r#"{"ms":"x"}"#], &["sleep"]),
        (&["enqueue", "noop", "--args", "{bad"], &["--args", "JSON"]),
        (
            &["enqueue", "noop", "--at", "tomorrow"],
            &["--at", "tomorrow"],
        ),
        (&["worker", "--concurrency", "0"], &["--concurrency"]),
        (&["frobnicate"], &["frobnicate"]),
    ];
    for (args, needles) in cases {
        assert_one_line_error(&run(&url, args), needles);
    }
    // None of them enqueued anything.
    let queues = ok_json(&url, &["queues", "--json"]);
    let total: u64 = queues
        .as_array()
        .expect("queues --json is an array")
        .iter()
        .map(|q| q["enqueued"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 0, "a failed enqueue enqueued something: {queues:#}");
}

#[test]
fn a_bad_config_value_names_the_key() {
    let redis = TestRedis::start();
    let r = run_env(
        &redis.url(),
        &[("JOBFLEET__WORKER__CONCURRENCY", "0")],
        &["queues"],
    );
    assert_one_line_error(&r, &["worker.concurrency"]);
    let r = run_env(
        &redis.url(),
        &[("JOBFLEET__WORKER__CONCURRENCY", "0")],
        &["worker"],
    );
    assert_one_line_error(&r, &["worker.concurrency"]);
}

#[test]
fn an_unreachable_redis_gives_one_line() {
    let r = run("redis://127.0.0.1:1", &["queues"]);
    assert_one_line_error(&r, &["Redis", "127.0.0.1:1"]);
    let r = run("redis://127.0.0.1:1", &["enqueue", "noop", "--args", "{}"]);
    assert_one_line_error(&r, &["Redis"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_flow_works_end_to_end() {
    let redis = TestRedis::start();
    let url = redis.url();

    // One job: the id is all that is printed.
    let out = ok(&url, &["enqueue", "noop", "--args", "{}"]);
    let first = out.trim().to_owned();
    assert!(is_job_id(&first), "enqueue printed {out:?}, not an id");

    // A unique job: the second enqueue returns the first one's id.
    let out = ok(&url, &["enqueue", "noop", "--unique", "k", "--in", "1h"]);
    let scheduled = out.trim().to_owned();
    assert!(is_job_id(&scheduled), "enqueue printed {out:?}, not an id");
    assert_ne!(scheduled, first);
    let again = ok(&url, &["enqueue", "noop", "--unique", "k", "--in", "1h"]);
    assert_eq!(again.trim(), format!("{scheduled} (already enqueued)"));

    // JSON lines: all of them, or none when one line is bad.
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, "{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n").expect("write jsonl");
    let out = ok(
        &url,
        &["enqueue", "noop", "--jsonl", good.to_str().expect("utf-8")],
    );
    assert!(out.contains("enqueued 3 jobs"), "{out}");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"n\":1}\n{not json\n{\"n\":3}\n").expect("write jsonl");
    let r = run(
        &url,
        &["enqueue", "noop", "--jsonl", bad.to_str().expect("utf-8")],
    );
    assert_one_line_error(&r, &["line 2"]);
    assert_counts(
        &url,
        "default",
        &[
            ("pending", 4),
            ("scheduled", 1),
            ("dead", 0),
            ("enqueued", 5),
        ],
    );
    assert_eq!(queue_stats(&url, "default")["paused"], false);

    // Listings and one job's details.
    let page = ok_json(
        &url,
        &["jobs", "list", "default", "--state", "pending", "--json"],
    );
    let pending = page["jobs"].as_array().expect("jobs array");
    assert_eq!(pending.len(), 4, "{page:#}");
    assert!(
        pending.iter().any(|j| j["id"] == first.as_str()),
        "{page:#}"
    );
    assert!(pending.iter().all(|j| j["kind"] == "noop"), "{page:#}");
    let page = ok_json(
        &url,
        &["jobs", "list", "default", "--state", "scheduled", "--json"],
    );
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, [scheduled.as_str()], "{page:#}");
    let page = ok_json(
        &url,
        &[
            "jobs", "list", "default", "--state", "pending", "--limit", "3", "--json",
        ],
    );
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(3), "{page:#}");
    assert!(page["next_cursor"].is_u64(), "{page:#}");
    let table = ok(&url, &["jobs", "list", "default", "--state", "pending"]);
    assert!(table.contains(&first), "{table}");

    let job = ok_json(&url, &["jobs", "show", &first, "--json"]);
    assert_eq!(job["id"], first.as_str(), "{job:#}");
    assert_eq!(job["kind"], "noop", "{job:#}");
    assert_eq!(job["queue"], "default", "{job:#}");
    assert_eq!(job["state"], "pending", "{job:#}");
    assert_eq!(job["envelope"]["args"], json!({}), "{job:#}");
    let text = ok(&url, &["jobs", "show", &first]);
    assert!(text.contains("pending"), "{text}");

    // Pause and resume show in the counters.
    ok(&url, &["queue", "pause", "default"]);
    assert_eq!(queue_stats(&url, "default")["paused"], true);
    ok(&url, &["queue", "resume", "default"]);
    assert_eq!(queue_stats(&url, "default")["paused"], false);

    // Delete one job; it is gone.
    let out = ok(&url, &["jobs", "delete", &first]);
    assert!(out.contains(&first) && out.contains("pending"), "{out}");
    assert_one_line_error(&run(&url, &["jobs", "show", &first]), &[&first]);
    assert_counts(&url, "default", &[("pending", 3)]);

    // Retry the scheduled job now: it becomes pending.
    let out = ok(&url, &["jobs", "retry", &scheduled]);
    assert!(out.contains("scheduled"), "{out}");
    assert_counts(&url, "default", &[("pending", 4), ("scheduled", 0)]);

    // Two jobs that fail for good on their first run (the spec would retry them 3 times with
    // a 1s backoff, so they come from the library with max_attempts 1): one per queue.
    let c = client(&url).await;
    for queue in ["default", "other"] {
        c.enqueue(NewJob::new("sleep", queue, json!({"ms": 0, "fail": true})).max_attempts(1))
            .await
            .expect("enqueue a failing job");
    }

    // A real worker process runs them all and lists itself while it runs.
    let mut worker = WorkerProcess::start(
        &url,
        &[],
        &["--queues", "default,other", "--concurrency", "2"],
    );
    let pid = worker.pid();
    let listed = eventually(WORKER_TIMEOUT, || async {
        let workers = ok_json(&url, &["workers", "--json"]);
        workers
            .as_array()
            .is_some_and(|ws| ws.len() == 1 && ws[0]["pid"].as_u64() == Some(u64::from(pid)))
    })
    .await;
    worker.assert_running();
    let workers = ok_json(&url, &["workers", "--json"]);
    assert!(
        listed,
        "workers --json does not list the worker: {workers:#}"
    );
    assert_eq!(workers[0]["concurrency"], 2, "{workers:#}");
    assert_eq!(
        workers[0]["queues"],
        json!(["default", "other"]),
        "{workers:#}"
    );
    let table = ok(&url, &["workers"]);
    assert!(
        table.contains(workers[0]["id"].as_str().unwrap_or("?")),
        "{table}"
    );

    let drained = eventually(WORKER_TIMEOUT, || async {
        let d = queue_stats(&url, "default");
        let o = queue_stats(&url, "other");
        d["dead"] == 1 && d["pending"] == 0 && d["active"] == 0 && o["dead"] == 1
    })
    .await;
    assert!(
        drained,
        "the worker did not settle every job: {:#}\nworker output:\n{}",
        ok_json(&url, &["queues", "--json"]),
        worker.output()
    );
    worker.assert_running();
    worker.terminate_cleanly();
    let deregistered = eventually(Duration::from_secs(10), || async {
        ok_json(&url, &["workers", "--json"]) == json!([])
    })
    .await;
    assert!(
        deregistered,
        "a stopped worker is still listed: {:#}",
        ok_json(&url, &["workers", "--json"])
    );
    assert_counts(
        &url,
        "default",
        &[("pending", 0), ("retry", 0), ("dead", 1)],
    );

    // The dead job keeps its error.
    let page = ok_json(
        &url,
        &["jobs", "list", "default", "--state", "dead", "--json"],
    );
    let dead = &page["jobs"][0];
    assert_eq!(dead["kind"], "sleep", "{page:#}");
    assert!(
        dead["error"].as_str().is_some_and(|e| e.contains("fail")),
        "{page:#}"
    );

    // Retry dead jobs: a dry run changes nothing, a kind filter selects.
    let out = ok(&url, &["jobs", "retry", "--dead", "--dry-run"]);
    assert!(out.contains("default: would retry 1 of 1"), "{out}");
    assert!(out.contains("other: would retry 1 of 1"), "{out}");
    let report = ok_json(
        &url,
        &[
            "jobs",
            "retry",
            "--dead",
            "--queue",
            "default",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(report[0]["matched"], 1, "{report:#}");
    assert_eq!(report[0]["dry_run"], true, "{report:#}");
    assert_counts(&url, "default", &[("dead", 1), ("pending", 0)]);
    let out = ok(&url, &["jobs", "retry", "--dead", "--kind", "noop"]);
    assert!(out.contains("default: retried 0 of 1"), "{out}");
    assert_counts(&url, "default", &[("dead", 1), ("pending", 0)]);
    let out = ok(
        &url,
        &[
            "jobs", "retry", "--dead", "--queue", "default", "--kind", "sleep",
        ],
    );
    assert!(out.contains("default: retried 1 of 1"), "{out}");
    assert_counts(&url, "default", &[("dead", 0), ("pending", 1)]);
    assert_counts(&url, "other", &[("dead", 1)]);
    let retried = ok_json(
        &url,
        &["jobs", "list", "default", "--state", "pending", "--json"],
    );
    assert_eq!(retried["jobs"][0]["attempts"], 0, "{retried:#}");

    // Purge dead jobs: the age filter keeps a job that died just now.
    let out = ok(&url, &["dead", "purge", "other", "--older-than", "1h"]);
    assert!(out.contains("purged 0"), "{out}");
    assert_counts(&url, "other", &[("dead", 1)]);
    let out = ok(&url, &["dead", "purge", "other"]);
    assert!(out.contains("purged 1"), "{out}");
    assert_counts(&url, "other", &[("dead", 0)]);
    let out = ok(&url, &["dead", "purge", "default"]);
    assert!(out.contains("purged 0"), "{out}");
    assert_counts(&url, "default", &[("pending", 1)]);
}

/// Picks a currently free port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binds a free port")
        .port()
}

/// A minimal HTTP/1.0 GET to a port on loopback: the status code and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    support::process::http_get(&format!("127.0.0.1:{port}"), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_health_and_metrics() {
    let redis = TestRedis::start();
    let url = redis.url();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut worker = WorkerProcess::start(&url, &[("JOBFLEET__TELEMETRY__HTTP_ADDR", &addr)], &[]);

    let healthy = eventually(WORKER_TIMEOUT, || async {
        matches!(http_get(port, "/healthz"), Ok((200, ref body)) if body.starts_with("ok"))
    })
    .await;
    worker.assert_running();
    assert!(
        healthy,
        "GET /healthz never answered 200 ok: {:?}\nworker output:\n{}",
        http_get(port, "/healthz"),
        worker.output()
    );

    let id = ok(&url, &["enqueue", "noop", "--args", "{}"]);
    assert!(is_job_id(id.trim()), "{id}");
    let metrics = || {
        http_get(port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let counted = eventually(WORKER_TIMEOUT, || async {
        let m = metrics();
        m.lines().any(|l| {
            l.starts_with("jobfleet_jobs_total{")
                && l.contains("kind=\"noop\"")
                && l.contains("outcome=\"completed\"")
                && l.ends_with(" 1")
        }) && m.contains("jobfleet_queue_jobs{")
    })
    .await;
    assert!(
        counted,
        "/metrics never counted the noop job and the queue depths:\n{}\nworker output:\n{}",
        metrics(),
        worker.output()
    );
    let (status, _) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let (status, _) = http_get(port, "/nowhere").expect("GET /nowhere");
    assert_eq!(status, 404);

    worker.terminate_cleanly();
    assert!(
        http_get(port, "/healthz").is_err(),
        "the telemetry server still answers after the worker exited"
    );
}
