//! The telemetry servers of real `jobfleet worker` and `jobfleet scheduler` processes:
//! readiness follows a Redis outage while liveness does not, and processes sharing one host and
//! one configured port all start, each on a port of its own, listed for Prometheus.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use serde_json::Value;
use support::TestRedis;
use support::app::eventually;
use support::process::{Process, Stopped, free_port, http_get, jobfleet, run_bounded, status};

/// How long a process gets to do something observable.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `jobfleet ARGS` against `url`, which must succeed and print JSON.
fn json(url: &str, args: &[&str]) -> Value {
    let (out, _) = run_bounded(jobfleet(url).args(args), LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "jobfleet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("jobfleet {args:?}: {e}: {stdout}"))
}

/// Waits until every target answers `path` with `code`; panics with the processes' output.
async fn all_answer(targets: &[&str], path: &str, code: u16, procs: &[&Process]) {
    let answered = eventually(LIMIT, || async {
        targets.iter().all(|t| status(t, path) == code)
    })
    .await;
    if !answered {
        let seen: Vec<u16> = targets.iter().map(|t| status(t, path)).collect();
        let logs: Vec<String> = procs.iter().map(|p| p.output()).collect();
        panic!(
            "{path} of {targets:?} did not all answer {code} (got {seen:?}); output:\n{}",
            logs.join("\n---\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_redis_outage_and_liveness_does_not() {
    let redis = TestRedis::start();
    let url = redis.url();
    let (w, s) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    // The worker serves a queue nobody uses, so the scheduler's jobs stay put.
    let mut worker = Process::start(
        &url,
        &[
            ("JOBFLEET__TELEMETRY__HTTP_ADDR", &w),
            ("JOBFLEET__TELEMETRY__LOG_FILTER", "info"),
        ],
        &["worker", "--queues", "idle"],
    );
    let mut scheduler = Process::start(
        &url,
        &[("JOBFLEET__SCHEDULER__HTTP_ADDR", &s)],
        &["scheduler"],
    );
    let targets = [w.as_str(), s.as_str()];
    all_answer(&targets, "/readyz", 200, &[&worker, &scheduler]).await;
    for target in targets {
        let (_, body) = http_get(target, "/readyz").expect("GET /readyz");
        assert!(body.starts_with("ok: redis reached"), "{target}: {body}");
    }

    // Redis stops answering (the processes' connections stay open, as in a network partition).
    let stopped = Stopped::new(redis.pid());
    all_answer(&targets, "/readyz", 503, &[&worker, &scheduler]).await;
    all_answer(&targets, "/healthz", 503, &[&worker, &scheduler]).await;
    for target in targets {
        assert_eq!(status(target, "/livez"), 200, "{target} is alive");
    }
    worker.assert_running();
    scheduler.assert_running();
    let said = eventually(LIMIT, || async {
        worker.output().contains("Redis does not answer")
    })
    .await;
    assert!(said, "the worker logs the outage:\n{}", worker.output());

    drop(stopped);
    all_answer(&targets, "/readyz", 200, &[&worker, &scheduler]).await;
    all_answer(&targets, "/healthz", 200, &[&worker, &scheduler]).await;
    let said = eventually(LIMIT, || async {
        worker.output().contains("Redis answers again")
    })
    .await;
    assert!(
        said,
        "the worker logs the end of the outage:\n{}",
        worker.output()
    );
    worker.terminate_cleanly();
    scheduler.terminate_cleanly();
}

/// The processes of `workers --json` by id, with their metrics address.
fn metrics_addrs(url: &str) -> Vec<(String, Option<String>)> {
    let listed = json(url, &["workers", "--json"]);
    listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap_or_default().to_owned(),
                w["metrics_addr"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_configured_port_all_start_and_are_listed_for_prometheus() {
    let redis = TestRedis::start();
    let url = redis.url();
    // What the default configuration does on one host, on a port of the test's own.
    let addr = format!("127.0.0.1:{}", free_port());
    let env = [("JOBFLEET__TELEMETRY__HTTP_ADDR", addr.as_str())];
    let first = Process::start(&url, &env, &["worker", "--queues", "idle"]);
    let one = eventually(LIMIT, || async { metrics_addrs(&url).len() == 1 }).await;
    assert!(one, "the first worker registers:\n{}", first.output());
    let second = Process::start(&url, &env, &["worker", "--queues", "idle"]);
    // A scheduler whose configured port is taken as well.
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
    let taken_addr = taken.local_addr().expect("address").to_string();
    let scheduler = Process::start(
        &url,
        &[("JOBFLEET__SCHEDULER__HTTP_ADDR", &taken_addr)],
        &["scheduler"],
    );
    let both = eventually(LIMIT, || async { metrics_addrs(&url).len() == 2 }).await;
    assert!(
        both,
        "both workers start and register:\n{}\n---\n{}",
        first.output(),
        second.output()
    );

    let workers = metrics_addrs(&url);
    let addrs: Vec<String> = workers.iter().filter_map(|(_, a)| a.clone()).collect();
    assert_eq!(
        addrs.len(),
        2,
        "each worker publishes its address: {workers:?}"
    );
    assert!(
        addrs.contains(&addr),
        "the first has the configured one: {addrs:?}"
    );
    assert_ne!(addrs[0], addrs[1], "{addrs:?}");
    for a in &addrs {
        let (code, _) = http_get(a, "/metrics").expect("GET /metrics");
        assert_eq!(code, 200, "{a} serves /metrics");
        assert_eq!(status(a, "/livez"), 200, "{a} is a jobfleet server");
    }
    assert!(
        second
            .output()
            .contains("the configured telemetry port is taken"),
        "the second worker says where it went:\n{}",
        second.output()
    );

    let registered = eventually(LIMIT, || async {
        let sd = json(&url, &["workers", "--prometheus-sd"]);
        sd.as_array().is_some_and(|g| g.len() == 3)
    })
    .await;
    let sd = json(&url, &["workers", "--prometheus-sd"]);
    assert!(
        registered,
        "two workers and the scheduler: {sd:#}\n{}",
        scheduler.output()
    );
    for (id, a) in &workers {
        let group = sd
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["labels"]["worker"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} in {sd:#}"));
        assert_eq!(group["targets"], serde_json::json!([a]), "{sd:#}");
        assert_eq!(group["labels"]["role"], "worker");
    }
    let group = sd
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["role"] == "scheduler")
        .unwrap_or_else(|| panic!("a scheduler in {sd:#}"));
    let target = group["targets"][0].as_str().expect("a target").to_owned();
    assert_ne!(target, taken_addr, "the scheduler moved off the taken port");
    assert_eq!(status(&target, "/readyz"), 200, "{target}");
    drop(taken);
}
