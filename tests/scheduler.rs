//! The scheduler as real processes against a real redis-server: several replicas enqueue each
//! tick exactly once, a killed replica loses no tick, ticks lost in a Redis outage are each
//! logged and counted, missed ticks follow their policy, and bad specs stop the process at
//! start.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use jobfleet::queue::{JobState, QueueClient};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::TestRedis;
use support::app::{client, eventually, manifest_dir};
use support::process::{Process, Stopped, free_port, http_get};

const SLEEP_SPEC: &str = "queue = \"default\"\ntimeout = \"5m\"\n[retry]\nmax_attempts = 3\nbase = \"1s\"\ncap = \"30s\"\n";

/// A jobs folder whose `noop` spec carries `schedules` (TOML text appended to it).
fn jobs_dir(schedules: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let noop = format!(
        "queue = \"default\"\ntimeout = \"30s\"\n[retry]\nmax_attempts = 3\nbase = \"1s\"\ncap = \"1m\"\n{schedules}"
    );
    std::fs::write(dir.path().join("noop.toml"), noop).unwrap();
    // Every other kind the binary knows needs a spec too; these have no schedules.
    for kind in jobfleet::jobs::handlers().kinds().filter(|k| *k != "noop") {
        std::fs::write(dir.path().join(format!("{kind}.toml")), SLEEP_SPEC).unwrap();
    }
    dir
}

fn jobfleet(url: &str, jobs: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobfleet"));
    cmd.args(args)
        .current_dir(manifest_dir())
        .env("REDIS_URL", url)
        .env("JOBFLEET_ENV", "test")
        .env("JOBFLEET__JOBS__DIR", jobs)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn run(url: &str, jobs: &Path, args: &[&str]) -> Output {
    jobfleet(url, jobs, args).output().expect("jobfleet runs")
}

fn spawn_scheduler(url: &str, jobs: &Path) -> Child {
    jobfleet(url, jobs, &["scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts jobfleet scheduler")
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).expect("signal sent");
}

/// The tick times (ms) of the pending jobs of a schedule, from their deterministic ids.
async fn ticks(c: &QueueClient, schedule: &str) -> Vec<i64> {
    let page = c
        .list("default", JobState::Pending, 0, 10_000)
        .await
        .unwrap();
    page.jobs
        .iter()
        .filter_map(|j| {
            j.id.strip_prefix(&format!("{schedule}:"))
                .map(str::to_owned)
        })
        .map(|t| t.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_enqueue_every_tick_exactly_once_even_when_one_is_killed() {
    let redis = TestRedis::start();
    let url = redis.url();
    let jobs = jobs_dir("[[schedule]]\nname = \"every-second\"\ncron = \"* * * * * *\"\n");
    let c = client(&url).await;
    let mut replicas: Vec<Child> = (0..3).map(|_| spawn_scheduler(&url, jobs.path())).collect();
    tokio::time::sleep(Duration::from_secs(20)).await;
    signal(&replicas[0], Signal::SIGKILL);
    let _ = replicas[0].wait();
    let before_kill = ticks(&c, "every-second").await.len();
    tokio::time::sleep(Duration::from_secs(8)).await;
    for r in &replicas[1..] {
        signal(r, Signal::SIGTERM);
    }
    for r in &mut replicas[1..] {
        assert!(
            r.wait().unwrap().success(),
            "a scheduler exits cleanly on SIGTERM"
        );
    }
    let all = ticks(&c, "every-second").await;
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    let (first, last) = (*unique.first().unwrap(), *unique.last().unwrap());
    let expected = usize::try_from((last - first) / 1000 + 1).unwrap();
    eprintln!(
        "scheduler replicas: {expected} ticks expected from first to last, {} enqueued ({} before the kill), {} duplicates",
        all.len(),
        before_kill,
        all.len() - unique.len()
    );
    assert_eq!(all.len(), unique.len(), "no tick was enqueued twice");
    assert_eq!(
        unique.len(),
        expected,
        "no tick was missed, before or after the kill"
    );
    assert!(
        expected >= 26,
        "the test ran its 28 seconds ({expected} ticks)"
    );
    assert!(all.len() > before_kill + 5, "ticks went on after the kill");
    assert!(
        unique.iter().all(|t| t % 1000 == 0),
        "ticks fall on whole seconds"
    );
}

#[tokio::test]
async fn run_once_catches_up_on_a_missed_tick_and_skip_does_not() {
    let redis = TestRedis::start();
    let url = redis.url();
    let jobs = jobs_dir(
        "[[schedule]]\nname = \"catch\"\ncron = \"* * * * *\"\nmissed = \"run_once\"\n\
         [[schedule]]\nname = \"skip\"\ncron = \"* * * * *\"\n",
    );
    let c = client(&url).await;
    // Both schedules last ran ten minutes ago; the schedulers were down since.
    let now = jobfleet::queue::now_ms();
    let old = now - now % 60_000 - 10 * 60_000;
    let k = c.keys().queue("default");
    let _: () = redis::pipe()
        .hset(k.ticks(), "catch", format!("{old}|catch:{old}"))
        .hset(k.ticks(), "skip", format!("{old}|skip:{old}"))
        .query_async(&mut c.connection())
        .await
        .unwrap();
    let mut s = spawn_scheduler(&url, jobs.path());
    let caught = eventually(Duration::from_secs(10), || async {
        !ticks(&c, "catch").await.is_empty()
    })
    .await;
    let skipped = ticks(&c, "skip").await;
    signal(&s, Signal::SIGTERM);
    s.wait().unwrap();
    assert!(caught, "run_once enqueued a catch-up run");
    let latest_missed = now - now % 60_000;
    let catch = ticks(&c, "catch").await;
    assert_eq!(
        catch[0], latest_missed,
        "the catch-up is for the latest missed tick"
    );
    assert!(
        skipped.iter().all(|t| *t > now),
        "skip enqueues nothing for the past: {skipped:?}"
    );
}

#[test]
fn bad_specs_and_config_stop_the_scheduler_with_the_file_and_field() {
    let url = "redis://127.0.0.1:1/";
    for (schedules, expected) in [
        ("[[schedule]]\ncron = \"61 * * * *\"\n", "schedule[0].cron"),
        (
            "[[schedule]]\ncron = \"* * * * *\"\ntimezone = \"Mars/Base\"\n",
            "schedule[0].timezone",
        ),
        (
            "[[schedule]]\ncron = \"* * * * *\"\nmissed = \"sometimes\"\n",
            "missed",
        ),
    ] {
        let jobs = jobs_dir(schedules);
        let out = run(url, jobs.path(), &["scheduler"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{schedules}");
        assert!(
            err.contains("noop.toml") && err.contains(expected),
            "{expected}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // A spec for a kind nobody handles.
    let jobs = jobs_dir("");
    std::fs::write(jobs.path().join("ghost.toml"), SLEEP_SPEC).unwrap();
    let out = run(url, jobs.path(), &["scheduler"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ghost.toml") && err.contains("no handler"),
        "{err}"
    );
    // Disabling a schedule that does not exist.
    let jobs = jobs_dir("[[schedule]]\ncron = \"* * * * *\"\n");
    let out = jobfleet(url, jobs.path(), &["scheduler"])
        .env("JOBFLEET__SCHEDULER__DISABLED", "nope")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("scheduler.disabled") && err.contains("nope"),
        "{err}"
    );
}

#[tokio::test]
async fn operators_list_schedules_run_jobs_inline_and_trigger_by_hand() {
    let redis = TestRedis::start();
    let url = redis.url();
    let jobs = jobs_dir(
        "[[schedule]]\nname = \"hourly\"\ncron = \"0 * * * *\"\ntimezone = \"Europe/Berlin\"\n",
    );
    let c = client(&url).await;

    let out = run(&url, jobs.path(), &["run", "noop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &url,
        jobs.path(),
        &["run", "sleep", "--args", r#"{"fail": true}"#],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sleep job asked to fail"));
    let out = run(&url, jobs.path(), &["run", "nope"]);
    assert!(!out.status.success());

    let out = run(&url, jobs.path(), &["enqueue-now", "hourly"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.stats("default").await.unwrap().pending, 1);
    assert!(
        !run(&url, jobs.path(), &["enqueue-now", "weekly"])
            .status
            .success()
    );

    // A tick, as a scheduler would enqueue it.
    let tick = 1_795_342_400_000;
    let job = jobfleet::queue::NewJob::new("noop", "default", serde_json::json!({}))
        .id(format!("hourly:{tick}"));
    assert!(c.enqueue_tick("hourly", tick, job.clone()).await.unwrap());
    assert!(
        !c.enqueue_tick("hourly", tick, job).await.unwrap(),
        "a tick is enqueued once"
    );
    let out = run(&url, jobs.path(), &["schedules", "--json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &rows[0];
    assert_eq!(row["name"], "hourly");
    assert_eq!(row["timezone"], "Europe/Berlin");
    assert_eq!(row["last_tick"], tick);
    assert_eq!(row["last_job_id"], format!("hourly:{tick}"));
    assert_eq!(row["last_job_state"], "pending");
    assert!(
        row["next_run"].as_i64().unwrap() % 3_600_000 == 0,
        "on the hour"
    );
}

/// The `jobfleet_scheduler_ticks_total` counters of one schedule by outcome.
fn tick_counts(target: &str, schedule: &str) -> BTreeMap<String, u64> {
    let (_, body) = http_get(target, "/metrics").unwrap_or_default();
    body.lines()
        .filter(|l| {
            l.starts_with("jobfleet_scheduler_ticks_total{")
                && l.contains(&format!("schedule=\"{schedule}\""))
        })
        .filter_map(|l| {
            let outcome = l.split("outcome=\"").nth(1)?.split('"').next()?;
            let n = l.rsplit(' ').next()?.parse().ok()?;
            Some((outcome.to_owned(), n))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_lost_in_an_outage_is_logged_once_and_counted() {
    let redis = TestRedis::start();
    let url = redis.url();
    let jobs = jobs_dir("[[schedule]]\nname = \"every-second\"\ncron = \"* * * * * *\"\n");
    let c = client(&url).await;
    let target = format!("127.0.0.1:{}", free_port());
    let mut scheduler = Process::start_in(
        &url,
        Some(jobs.path()),
        &[
            ("JOBFLEET__SCHEDULER__HTTP_ADDR", &target),
            ("JOBFLEET__TELEMETRY__LOG_FORMAT", "json"),
        ],
        &["scheduler"],
    );
    let started = eventually(Duration::from_secs(20), || async {
        ticks(&c, "every-second").await.len() >= 3
    })
    .await;
    assert!(started, "ticks are enqueued:\n{}", scheduler.output());

    // Redis stops answering for six seconds, then goes on where it was.
    let stopped = Stopped::new(redis.pid());
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(stopped);
    let before = ticks(&c, "every-second").await.len();
    let resumed = eventually(Duration::from_secs(20), || async {
        ticks(&c, "every-second").await.len() >= before + 3
    })
    .await;
    assert!(
        resumed,
        "ticks go on after the outage:\n{}",
        scheduler.output()
    );

    // A consistent view: the counters did not move while the queue was read, and they have
    // caught up with it (Redis stores a tick a moment before the scheduler counts it). Bounded:
    // ticks come once a second, so a quiet moment comes within a few tries.
    let mut tries = 0;
    let (counts, enqueued) = loop {
        let counts = tick_counts(&target, "every-second");
        let enqueued: BTreeSet<i64> = ticks(&c, "every-second").await.into_iter().collect();
        let caught_up = counts.get("enqueued").copied() == Some(enqueued.len() as u64);
        tries += 1;
        if (tick_counts(&target, "every-second") == counts && caught_up) || tries > 100 {
            break (counts, enqueued);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lost_logged: Vec<i64> = scheduler
        .output()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "tick lost")
        .filter_map(|l| {
            l["id"]
                .as_str()?
                .strip_prefix("every-second:")?
                .parse()
                .ok()
        })
        .collect();
    scheduler.terminate_cleanly();
    let lost: BTreeSet<i64> = lost_logged.iter().copied().collect();
    assert_eq!(
        lost.len(),
        lost_logged.len(),
        "each lost tick is logged once"
    );
    let (first, last) = (*enqueued.first().unwrap(), *enqueued.last().unwrap());
    let passed: BTreeSet<i64> = (first..=last).step_by(1000).collect();
    let counted = |outcome: &str| counts.get(outcome).copied().unwrap_or(0);
    eprintln!(
        "outage: {} ticks passed, {} enqueued, {} lost {lost:?}",
        passed.len(),
        enqueued.len(),
        lost.len()
    );
    assert!(lost.len() >= 3, "the outage lost ticks: {lost:?}");
    assert!(lost.is_disjoint(&enqueued), "a lost tick is not enqueued");
    assert_eq!(
        lost.union(&enqueued).copied().collect::<BTreeSet<i64>>(),
        passed,
        "every tick that passed is enqueued or logged lost"
    );
    assert_eq!(counted("lost"), lost.len() as u64, "{counts:?}");
    assert_eq!(counted("enqueued"), enqueued.len() as u64, "{counts:?}");
    assert_eq!(
        counted("lost") + counted("enqueued"),
        passed.len() as u64,
        "the lost counter plus the enqueued ticks are the ticks that passed"
    );
}
