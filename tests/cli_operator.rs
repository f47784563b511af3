//! The operator commands at their edges, through the real binary: output into a closed pipe,
//! unknown and removed queues, listings without a state, and errors that say where the
//! specs are and each cause once.

mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use jobfleet::queue::{JobState, NewJob};
use serde_json::{Value, json};
use support::TestRedis;
use support::app::client;
use support::cli::{
    assert_counts, assert_one_line_error, jobfleet, ok, ok_json, queue_names, run, run_env, run_in,
    wait_bounded,
};

const LEASE: Duration = Duration::from_secs(30);

/// Runs a command whose stdout is closed after `read` bytes (0: before it writes anything),
/// as `| head -c N` does, and asserts that it ends quietly: exit 0, nothing on stderr.
fn assert_quiet_on_a_closed_pipe(url: &str, args: &[&str], read: usize) {
    let mut child = jobfleet(url)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts jobfleet");
    let mut out = child.stdout.take().expect("stdout piped");
    if read > 0 {
        let mut head = vec![0; read];
        out.read_exact(&mut head)
            .expect("reads the head of the output");
    }
    drop(out);
    let mut err = child.stderr.take().expect("stderr piped");
    let status = wait_bounded(&mut child, args);
    let mut stderr = String::new();
    err.read_to_string(&mut stderr).expect("reads stderr");
    assert!(
        !stderr.contains("panicked") && stderr.trim().is_empty(),
        "jobfleet {args:?} into a closed pipe printed: {stderr}"
    );
    assert_eq!(status.code(), Some(0), "jobfleet {args:?}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_ends_quietly() {
    let redis = TestRedis::start();
    let url = redis.url();
    // Far more than a pipe holds (64 KiB), so the command is still writing when it closes.
    let c = client(&url).await;
    c.enqueue_bulk(
        (0..2000)
            .map(|i| NewJob::new("noop", "default", json!({ "i": i, "pad": "x".repeat(100) })))
            .collect(),
    )
    .await
    .expect("enqueue");
    let list = [
        "jobs", "list", "default", "--state", "pending", "--limit", "2000",
    ];
    let json_list = [&list[..], &["--json"]].concat();
    assert_quiet_on_a_closed_pipe(&url, &json_list, 100);
    assert_quiet_on_a_closed_pipe(&url, &list, 100);
    assert_quiet_on_a_closed_pipe(&url, &["jobs", "list", "default"], 0);
    assert_quiet_on_a_closed_pipe(&url, &["queues", "--json"], 0);
    assert_quiet_on_a_closed_pipe(&url, &["enqueue", "noop"], 0);
    // That last one did its work before it found nobody reading.
    assert_counts(&url, "default", &[("pending", 2001)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_queues_are_refused_and_queues_can_be_removed() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    c.enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .expect("enqueue");

    // A mistyped pause leaves no phantom queue behind.
    let r = run(&url, &["queue", "pause", "defualt"]);
    assert_one_line_error(&r, &["unknown queue \"defualt\"", "known queues: default"]);
    assert_eq!(queue_names(&url), ["default"]);
    let r = run(&url, &["queue", "remove", "defualt"]);
    assert_one_line_error(&r, &["unknown queue \"defualt\""]);

    // A queue with jobs in every state, a unique lock, a tick and the pause flag.
    let q = "doomed";
    let job = |n: i32| NewJob::new("noop", q, json!({ "n": n }));
    c.enqueue_bulk(vec![
        job(1),
        job(2).unique("once", Duration::from_secs(3600)),
        job(3).run_at(jobfleet::queue::now_ms() + 3_600_000),
        job(4),
    ])
    .await
    .expect("enqueue");
    let leased = c.fetch(q, 1, LEASE, "w1").await.expect("fetch").jobs;
    assert_eq!(leased.len(), 1);
    ok(&url, &["queue", "pause", q]);
    assert_counts(&url, q, &[("pending", 2), ("scheduled", 1), ("active", 1)]);

    // Active jobs on a worker, then jobs at all, are refused without --force.
    let r = run(&url, &["queue", "remove", q]);
    assert_one_line_error(&r, &["has 1 job active on a worker (w1)", "--force"]);
    c.ack(
        q,
        "w1",
        &jobfleet::queue::Call::new("ack"),
        &leased.iter().collect::<Vec<_>>(),
    )
    .await
    .expect("ack");
    let r = run(&url, &["queue", "remove", q]);
    assert_one_line_error(&r, &["holds 3 jobs", "2 pending, 1 scheduled", "--force"]);
    assert!(queue_names(&url).contains(&q.to_owned()));

    // Forced, it says what it dropped and leaves no key of the queue.
    let out = ok(&url, &["queue", "remove", q, "--force"]);
    assert!(
        out.contains("removed, dropping 3 jobs (2 pending, 1 scheduled;"),
        "{out}"
    );
    assert_eq!(queue_names(&url), ["default"]);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("jobfleet:{doomed}:*")
        .query_async(&mut c.connection())
        .await
        .expect("KEYS on the test's own Redis");
    assert!(
        left.is_empty(),
        "keys of the removed queue remain: {left:?}"
    );
    assert_one_line_error(&run(&url, &["jobs", "list", q]), &["unknown queue"]);

    // An empty queue goes without --force; the others are untouched.
    c.register_queue("empty").await.expect("register");
    let out = ok(&url, &["queue", "remove", "empty"]);
    assert!(out.starts_with("empty: removed ("), "{out}");
    assert_eq!(queue_names(&url), ["default"]);
    assert_counts(&url, "default", &[("pending", 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_without_a_state_shows_every_state() {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    let now = jobfleet::queue::now_ms();
    let ids: Vec<String> = c
        .enqueue_bulk(vec![
            NewJob::new("noop", "default", json!({"n": 1})),
            NewJob::new("noop", "default", json!({"n": 2})),
            NewJob::new("noop", "default", json!({"n": 3})).run_at(now + 3_600_000),
        ])
        .await
        .expect("enqueue")
        .into_iter()
        .map(|e| e.id)
        .collect();

    let text = ok(&url, &["jobs", "list", "default", "--limit", "1"]);
    for expected in [
        "pending: 2 jobs",
        "next page: --state pending --cursor 1",
        "scheduled: 1 job\n",
        "active: no jobs",
        "retry: no jobs",
        "dead: no jobs",
        &ids[0],
        &ids[2],
    ] {
        assert!(text.contains(expected), "{expected:?} is not in:\n{text}");
    }

    let all = ok_json(&url, &["jobs", "list", "default", "--json"]);
    assert_eq!(all["queue"], "default", "{all:#}");
    for (state, total) in [
        (JobState::Pending, 2),
        (JobState::Scheduled, 1),
        (JobState::Active, 0),
        (JobState::Retry, 0),
        (JobState::Dead, 0),
    ] {
        let s = &all[state.as_str()];
        assert_eq!(s["total"], total, "{all:#}");
        assert_eq!(s["jobs"].as_array().map(Vec::len), Some(total), "{all:#}");
        assert_eq!(s["next_cursor"], Value::Null, "{all:#}");
    }
    // A cursor belongs to one state's pages.
    let r = run(&url, &["jobs", "list", "default", "--cursor", "5"]);
    assert_one_line_error(&r, &["--state"]);
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn errors_say_each_cause_once_and_where_the_specs_are() {
    let redis = TestRedis::start();
    let url = redis.url();
    let r = run_env(
        &url,
        &[("JOBFLEET__WORKER__CONCURRENCY", "abc")],
        &["queues"],
    );
    let line = assert_one_line_error(&r, &["worker.concurrency"]);
    assert_eq!(
        line.matches(r#"invalid type: string "abc""#).count(),
        1,
        "{line}"
    );

    // From another folder the specs are not found, and the error says how to point at them.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let r = run_in(
        elsewhere.path(),
        &url,
        &[("JOBFLEET_ENV", "")],
        &["enqueue", "noop"],
    );
    let line = assert_one_line_error(&r, &["job specs folder jobs", "JOBFLEET__JOBS__DIR"]);
    assert_eq!(
        line.matches("No such file or directory").count(),
        1,
        "{line}"
    );

    // With the config folder named, a relative jobs.dir is taken from the folder above it.
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let config = config.to_str().expect("utf-8 path");
    let r = run_in(
        elsewhere.path(),
        &url,
        &[("JOBFLEET_CONFIG_DIR", config)],
        &["enqueue", "noop"],
    );
    assert!(r.status.success(), "{r:?}");
    let r = run_in(elsewhere.path(), &url, &[], &["queues"]);
    assert_one_line_error(&r, &["config/test.toml", "JOBFLEET_CONFIG_DIR"]);
}

/// `jobfleet bench --profile --work incr` on a private Redis: every phase prints its line, the
/// profile a line per path, the `incr` jobs ran their `INCR`, and nothing of the benchmark is
/// left in Redis afterwards.
#[tokio::test]
async fn the_bench_profiles_each_path_and_leaves_nothing_behind() {
    let redis = TestRedis::start();
    let url = redis.url();
    let out = ok(
        &url,
        &[
            "bench",
            "--jobs",
            "300",
            "--processes",
            "1",
            "--concurrency",
            "4",
            "--trickle",
            "20",
            "--work",
            "incr",
            "--profile",
        ],
    );
    for line in [
        "enqueue (bulk)",
        "fetch (",
        "ack (",
        "settle (retry now)",
        "fetch (retried)",
        "ack (after a failure)",
        "drain (incr):",
        "drain (fail once):",
        "redis, by command",
        "workers ",
        "trickle start delay",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    assert!(out.contains("300 jobs, 300 failed attempts"), "{out}");
    // The drain's jobs ran their one command each, which the profile counts by name.
    assert!(out.contains("INCR "), "no INCR among the commands:\n{out}");
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(left.is_empty(), "the bench left keys behind: {left:?}");
}
