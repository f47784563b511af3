//! Fleet-wide limits (`[limits]` in a spec) against a real redis-server and real worker
//! processes: a rate held across three workers, a concurrency never exceeded, a killed
//! worker's slot freed after its lease, budgets per key, and `jobfleet limits`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use jobfleet::queue::{NewJob, QueueClient};
use serde_json::{Value, json};
use support::TestRedis;
use support::app::eventually;
use support::cli::{jobfleet, run_command};
use support::fleet::{completed, history_client};
use support::process::Process;

/// The project's job specs with `[limits]` added to the `sleep` kind's.
fn specs_with_sleep_limits(limits: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
    for entry in std::fs::read_dir(jobs).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "sleep.toml" {
            text.push_str("\n[limits]\n");
            text.push_str(limits);
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

fn worker(url: &str, jobs: &Path, concurrency: u32) -> Process {
    let env = [
        ("JOBFLEET__WORKER__LEASE", "1s"),
        ("JOBFLEET__WORKER__COMPLETED_HISTORY", "100000"),
    ];
    Process::start_in(
        url,
        Some(jobs),
        &env,
        &["worker", "--concurrency", &concurrency.to_string()],
    )
}

fn sleep(ms: u64, key: Option<&str>) -> NewJob {
    let mut args = json!({ "ms": ms, "report_run": true });
    if let Some(k) = key {
        args["key"] = json!(k);
    }
    NewJob::new("sleep", "default", args)
}

/// The `sleep` rows of `jobfleet limits --json` with the test's specs.
fn limits_json(url: &str, jobs: &Path) -> Value {
    let mut cmd = jobfleet(url);
    cmd.env("JOBFLEET__JOBS__DIR", jobs);
    let r = run_command(cmd, &["limits", "--json"]);
    assert!(r.status.success(), "jobfleet limits: {}", r.stderr);
    let all: Value = serde_json::from_str(&r.stdout).unwrap();
    let sleep = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["kind"] == "sleep")
        .cloned();
    Value::Array(sleep.collect())
}

/// Each job's run as it reported it (`ran <start>..<end>`, ms), its attempt checked to be the
/// first: a job that waited for its limits used no attempt.
async fn runs(c: &QueueClient, ids: &[String]) -> Vec<(i64, i64)> {
    let asked: Vec<(String, u32)> = ids.iter().map(|id| (id.clone(), 0)).collect();
    let reports = c.progress_of("default", &asked).await.unwrap();
    reports
        .into_iter()
        .zip(ids)
        .map(|(p, id)| {
            let p = p.unwrap_or_else(|| panic!("job {id} reported no run"));
            assert_eq!(p.attempt, 1, "job {id} used an attempt while it waited");
            let (start, end) = p
                .message
                .strip_prefix("ran ")
                .and_then(|r| r.split_once(".."))
                .unwrap_or_else(|| panic!("job {id}: {:?}", p.message));
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect()
}

/// The most runs that overlapped at any moment.
fn most_at_once(runs: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = runs.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    // At equal times an end comes before a start: a slot given back and taken again.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

async fn enqueue_all(c: &QueueClient, jobs: Vec<NewJob>) -> Vec<String> {
    c.enqueue_bulk(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

async fn wait_done(c: &QueueClient, ids: &[String], limit: Duration) -> bool {
    eventually(limit, || async {
        let done = completed(c, "default").await;
        ids.iter().all(|id| done.contains(id))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_of_20_per_second_holds_across_three_worker_processes() {
    let redis = TestRedis::start();
    let url = redis.url();
    let jobs = specs_with_sleep_limits("rate = \"20/1s\"\n");
    let c = history_client(&url).await;
    let ids = enqueue_all(&c, (0..220).map(|_| sleep(5, None)).collect()).await;
    let workers: Vec<Process> = (0..3).map(|_| worker(&url, jobs.path(), 4)).collect();
    let began = Instant::now();
    let done = wait_done(&c, &ids, Duration::from_secs(60)).await;
    let outputs: String = workers.iter().map(Process::output).collect();
    assert!(done, "the jobs did not all run:\n{outputs}");
    let mut starts: Vec<i64> = runs(&c, &ids).await.into_iter().map(|r| r.0).collect();
    starts.sort_unstable();
    // 21 starts inside one second would be starts[i] and starts[i + 20] less than 1 s apart.
    for (i, w) in starts.windows(21).enumerate() {
        assert!(
            w[20] - w[0] >= 1000,
            "starts {i} to {} within {} ms",
            i + 20,
            w[20] - w[0]
        );
    }
    let span = starts[starts.len() - 1] - starts[0];
    let most = (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|&&t| t < starts[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!("220 starts over {span} ms; the most in any 1 s window: {most}");
    assert!(span >= 10_000, "220 starts at 20/s took only {span} ms");
    assert!(
        span <= 20_000,
        "the rate was not used: 220 starts took {span} ms ({:?} in all)",
        began.elapsed()
    );
    let s = c.stats("default").await.unwrap();
    assert_eq!((s.dead, s.retry, s.failed), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_of_2_is_never_exceeded_and_a_killed_workers_slot_comes_free() {
    let redis = TestRedis::start();
    let url = redis.url();
    let jobs = specs_with_sleep_limits("concurrency = 2\n");
    let c = history_client(&url).await;
    let ids = enqueue_all(&c, (0..12).map(|_| sleep(400, None)).collect()).await;
    let mut three: Vec<Process> = (0..3).map(|_| worker(&url, jobs.path(), 4)).collect();
    let done = wait_done(&c, &ids, Duration::from_secs(60)).await;
    assert!(done, "the jobs did not all run");
    let ran = runs(&c, &ids).await;
    eprintln!(
        "12 runs of 400 ms on 3 workers: at most {} at once",
        most_at_once(&ran)
    );
    assert_eq!(most_at_once(&ran), 2, "runs: {ran:?}");
    for w in &mut three {
        w.terminate_cleanly();
    }

    // One worker holds both slots with jobs that would run a minute; two more wait.
    let mut first = worker(&url, jobs.path(), 4);
    let long =
        (0..2).map(|_| NewJob::new("sleep", "default", json!({ "ms": 60_000 })).max_attempts(1));
    enqueue_all(&c, long.collect()).await;
    let holding = eventually(Duration::from_secs(20), || async {
        c.stats("default").await.is_ok_and(|s| s.active == 2)
    })
    .await;
    assert!(holding, "the long jobs never ran:\n{}", first.output());
    let short = enqueue_all(&c, (0..2).map(|_| sleep(300, None)).collect()).await;
    let waiting = eventually(Duration::from_secs(10), || async {
        let l = limits_json(&url, jobs.path());
        l[0]["running"] == 2 && l[0]["waiting"] == 2
    })
    .await;
    assert!(
        waiting,
        "jobfleet limits: {}\n{}",
        limits_json(&url, jobs.path()),
        first.output()
    );
    // Killed: its slots are free once its lease (1 s) has run out, without a release.
    let _ = first.kill();
    let killed = Instant::now();
    let second = worker(&url, jobs.path(), 4);
    let freed = wait_done(&c, &short, Duration::from_secs(20)).await;
    assert!(
        freed,
        "the waiting jobs never got the dead worker's slots:\n{}",
        second.output()
    );
    eprintln!(
        "the waiting jobs ran {:?} after the holder was killed",
        killed.elapsed()
    );
    assert!(killed.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_has_a_budget_of_its_own() {
    let redis = TestRedis::start();
    let url = redis.url();
    let jobs = specs_with_sleep_limits("concurrency = 1\nkey = \"key\"\n");
    let c = history_client(&url).await;
    let mut batch = Vec::new();
    for _ in 0..5 {
        batch.push(sleep(400, Some("discord.com")));
        batch.push(sleep(400, Some("hooks.slack.com")));
    }
    let ids = enqueue_all(&c, batch).await;
    let _workers: Vec<Process> = (0..2).map(|_| worker(&url, jobs.path(), 4)).collect();
    // While they run, `jobfleet limits` shows one budget per key, each with its one slot held.
    let listed = eventually(Duration::from_secs(20), || async {
        let l = limits_json(&url, jobs.path());
        let rows: Vec<(String, u64)> = l
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or("").to_owned(),
                    r["running"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        rows == [
            ("sleep=discord.com".to_owned(), 1),
            ("sleep=hooks.slack.com".to_owned(), 1),
        ]
    })
    .await;
    assert!(
        listed,
        "jobfleet limits: {}",
        limits_json(&url, jobs.path())
    );
    assert!(wait_done(&c, &ids, Duration::from_secs(60)).await);
    let ran = runs(&c, &ids).await;
    let per_key = |parity: usize| -> Vec<(i64, i64)> {
        ran.iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, r)| *r)
            .collect()
    };
    assert_eq!(most_at_once(&per_key(0)), 1);
    assert_eq!(most_at_once(&per_key(1)), 1);
    assert_eq!(most_at_once(&ran), 2, "the two keys never ran side by side");
}
