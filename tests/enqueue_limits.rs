//! Enqueueing at the edges: a bulk enqueue that Redis refuses part-way (out of memory under
//! `maxmemory` with `noeviction`) says exactly what went in and resumes without duplicates,
//! and delays and times that do not fit are refused before anything is stored.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use jobfleet::queue::{LATEST_MS, NewJob, QueueClient, QueueError};
use serde_json::{Value, json};
use support::TestRedis;
use support::app::client;
use support::cli::{assert_counts, assert_one_line_error, ok, ok_json, run};

/// Jobs in the test file; with their padding, a few times more than fits in memory.
const JOBS: usize = 5000;

/// A Redis that refuses writes (`OOM`) once about 3 MB are used; an empty one uses about 1.
fn small_redis() -> TestRedis {
    TestRedis::start_with(&[
        "--maxmemory".into(),
        "3mb".into(),
        "--maxmemory-policy".into(),
        "noeviction".into(),
    ])
}

async fn unlimit_memory(c: &QueueClient) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut c.connection())
        .await
        .expect("CONFIG SET maxmemory 0");
}

/// About 1 KB of args, so that a thousand jobs take about a megabyte.
fn args(n: usize) -> Value {
    json!({ "n": n, "pad": "x".repeat(1000) })
}

/// The `n` of every pending job of `default`, in queue order.
fn pending_ns(url: &str) -> Vec<u64> {
    let page = ok_json(
        url,
        &[
            "jobs", "list", "default", "--state", "pending", "--limit", "10000", "--json",
        ],
    );
    page["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .map(|j| j["envelope"]["args"]["n"].as_u64().expect("args.n"))
        .collect()
}

/// The number right after `word ` in `line`, e.g. 2000 for "enqueued" in "enqueued 2000 of".
fn number_after(line: &str, word: &str) -> usize {
    let at = line
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} is not in {line}"));
    line[at + word.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {word:?} in {line}"))
}

/// Writes the jobs' args one per line, with a blank line after the second job, so that line
/// numbers and job positions differ: job `n` is on line `n` up to 2 and on `n + 1` after.
fn write_jobs(path: &Path) {
    let mut text = String::new();
    for n in 1..=JOBS {
        text.push_str(&args(n).to_string());
        text.push('\n');
        if n == 2 {
            text.push('\n');
        }
    }
    std::fs::write(path, text).expect("write the jobs file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_enqueue_out_of_memory_says_where_to_resume_and_resumes_without_duplicates() {
    let redis = small_redis();
    let url = redis.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("jobs.jsonl");
    write_jobs(&file);
    let file = file.to_str().expect("utf-8 path");

    let r = run(&url, &["enqueue", "noop", "--jsonl", file]);
    let line = assert_one_line_error(&r, &["OOM", "--from-line", "nothing from line"]);
    assert_eq!(line.matches("OOM").count(), 1, "{line}");
    let stored = number_after(&line, "enqueued");
    let resume = number_after(&line, "--from-line");
    assert!(0 < stored && stored < JOBS, "{line}");
    assert!(line.contains(&format!("of {JOBS} jobs")), "{line}");
    // Exactly the jobs before the resume line went in, each once, in order.
    let ns = pending_ns(&url);
    assert_eq!(ns.len(), stored, "{line}");
    assert_eq!(ns, (1..=stored as u64).collect::<Vec<_>>(), "{line}");
    assert_eq!(resume, stored + 2, "job {stored} is on line {}", stored + 1);
    assert_eq!(number_after(&line, "nothing from line"), resume, "{line}");

    // With room again, resuming as told stores the rest, and nothing twice.
    unlimit_memory(&client(&url).await).await;
    let out = ok(
        &url,
        &[
            "enqueue",
            "noop",
            "--jsonl",
            file,
            "--from-line",
            &resume.to_string(),
        ],
    );
    assert!(
        out.contains(&format!("enqueued {} jobs", JOBS - stored)),
        "{out}"
    );
    let ns = pending_ns(&url);
    assert_eq!(ns.len(), JOBS);
    assert_eq!(
        ns.iter().copied().collect::<BTreeSet<_>>(),
        (1..=JOBS as u64).collect(),
        "every job once"
    );
    assert_counts(&url, "default", &[("pending", JOBS as u64)]);

    // A resume past the end of the file is refused rather than enqueueing nothing.
    let r = run(
        &url,
        &["enqueue", "noop", "--jsonl", file, "--from-line", "9999"],
    );
    assert_one_line_error(&r, &["--from-line 9999", "5001 lines"]);
}

async fn pending(c: &QueueClient) -> u64 {
    c.stats("default").await.expect("stats").pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_reports_exactly_which_jobs_were_stored() {
    let redis = small_redis();
    let c = client(&redis.url()).await;
    let jobs = || -> Vec<NewJob> {
        (1..=JOBS)
            .map(|n| NewJob::new("noop", "default", args(n)))
            .collect()
    };
    // In bulk: the error lists each stored job, and they are the ones in Redis.
    let Err(QueueError::Partial(p)) = c.enqueue_bulk(jobs()).await else {
        panic!("a bulk enqueue beyond maxmemory must fail part-way");
    };
    assert_eq!(p.results.len(), JOBS);
    assert!(p.unknown.is_empty(), "Redis answered every call: {p}");
    assert!(p.to_string().contains("OOM"), "{p}");
    let stored = p.stored();
    assert!(0 < stored && stored < JOBS, "{p}");
    assert_eq!(pending(&c).await, stored as u64);
    let first_page = c
        .list("default", jobfleet::queue::JobState::Pending, 0, 10_000)
        .await
        .expect("list");
    let in_redis: BTreeSet<String> = first_page.jobs.iter().map(|j| j.id.clone()).collect();
    let reported: BTreeSet<String> = p.results.iter().flatten().map(|e| e.id.clone()).collect();
    assert_eq!(in_redis, reported);

    // In order: the stored jobs are exactly a prefix, so a resume from there is exact.
    let redis = small_redis();
    let c = client(&redis.url()).await;
    let Err(QueueError::Partial(p)) = c.enqueue_bulk_ordered(jobs()).await else {
        panic!("an ordered bulk enqueue beyond maxmemory must fail part-way");
    };
    let from = p.untouched_from();
    assert_eq!(from, p.stored(), "{p}");
    assert!(p.results[..from].iter().all(Option::is_some), "{p}");
    assert!(p.results[from..].iter().all(Option::is_none), "{p}");
    unlimit_memory(&c).await;
    c.enqueue_bulk_ordered(jobs().split_off(from))
        .await
        .expect("the rest fits now");
    assert_eq!(pending(&c).await, JOBS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_and_times_that_do_not_fit_are_refused() {
    let redis = TestRedis::start();
    let url = redis.url();
    for (args, needle) in [
        (
            &["enqueue", "noop", "--in", "9223370240741137s"][..],
            "9223370240741137s",
        ),
        (&["enqueue", "noop", "--in", "292270967y"][..], "292270967y"),
        (&["enqueue", "noop", "--in", "8000years"][..], "8000years"),
        (
            &["enqueue", "noop", "--at", "9999-12-31T23:59:59-01:00"][..],
            "9999-12-31T23:59:59-01:00",
        ),
        (
            &["enqueue", "noop", "--at", "1969-12-31T23:59:59Z"][..],
            "1969",
        ),
    ] {
        let r = run(&url, args);
        assert_one_line_error(&r, &[needle, "9999-12-31"]);
        assert_eq!(r.status.code(), Some(2), "{r:?}");
    }
    // The longest delay that fits is taken: due before the end of the year 9999.
    let out = ok(&url, &["enqueue", "noop", "--in", "7000years", "--json"]);
    let id = serde_json::from_str::<Value>(&out).expect("JSON")[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let job = ok_json(&url, &["jobs", "show", &id, "--json"]);
    assert_eq!(job["state"], "scheduled", "{job:#}");
    let due = job["envelope"]["run_at"].as_i64().expect("run_at");
    assert!(due > 0 && due <= LATEST_MS, "{job:#}");
    assert_counts(&url, "default", &[("enqueued", 1), ("pending", 0)]);

    // The library refuses the same, whoever the producer is, and stores nothing.
    let c = client(&url).await;
    let late = NewJob::new("noop", "default", json!({})).run_at(LATEST_MS + 1);
    let e = c.enqueue(late).await.unwrap_err();
    assert!(e.to_string().contains("9999-12-31"), "{e}");
    let locked = NewJob::new("noop", "default", json!({}))
        .unique("forever", Duration::from_secs(u64::MAX / 2));
    let e = c.enqueue(locked).await.unwrap_err();
    assert!(e.to_string().contains("9999-12-31"), "{e}");
    assert_counts(&url, "default", &[("enqueued", 1)]);
}
