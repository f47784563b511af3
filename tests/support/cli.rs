//! Running the real `jobfleet` binary as operators do: one command at a time against a test's
//! own Redis, with bounded waits and the checks every CLI test needs (one-line errors, JSON
//! output, a queue's counters).
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one CLI command may take before the test gives up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary, run from the crate root (so `config/` and `jobs/` are found) against `url`, in
/// the `test` environment, with no configuration leaking in from the test's own environment.
pub fn jobfleet(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobfleet"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("JOBFLEET")) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("REDIS_URL", url)
        .env("JOBFLEET_ENV", "test")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    cmd
}

/// The outcome of one finished command.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs a prepared `jobfleet` command with `args` and waits (bounded) for it to end.
pub fn run_command(mut cmd: Command, args: &[&str]) -> Run {
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starts jobfleet");
    // Read both pipes on threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, args);
    Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Waits for a child for at most [`COMMAND_TIMEOUT`], killing it (and failing) after that.
pub fn wait_bounded(child: &mut std::process::Child, args: &[&str]) -> ExitStatus {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("waits for jobfleet") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("jobfleet {args:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `jobfleet ARGS` with extra environment variables and waits (bounded) for it to end.
pub fn run_env(url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = jobfleet(url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(cmd, args)
}

/// Runs `jobfleet ARGS` from another working folder, with extra environment variables.
pub fn run_in(dir: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = jobfleet(url);
    cmd.current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(cmd, args)
}

pub fn run(url: &str, args: &[&str]) -> Run {
    run_env(url, &[], args)
}

/// Runs a command that must succeed and returns its stdout.
pub fn ok(url: &str, args: &[&str]) -> String {
    let r = run(url, args);
    assert!(
        r.status.success(),
        "jobfleet {:?} failed with {}\nstdout: {}\nstderr: {}",
        r.args,
        r.status,
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// Runs a command that must succeed and print JSON, and returns the JSON.
pub fn ok_json(url: &str, args: &[&str]) -> Value {
    let out = ok(url, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("jobfleet {args:?} printed no JSON ({e}):\n{out}"))
}

/// Asserts a command failed with a non-zero exit, printed nothing on stdout, and exactly one
/// line on stderr that contains every one of `needles`. Returns that line.
pub fn assert_one_line_error(r: &Run, needles: &[&str]) -> String {
    assert!(
        !r.status.success() && r.status.code().is_some_and(|c| c != 0),
        "jobfleet {:?} should fail, but exited with {}\nstdout: {}\nstderr: {}",
        r.args,
        r.status,
        r.stdout,
        r.stderr
    );
    let lines = r.stderr_lines();
    assert_eq!(
        lines.len(),
        1,
        "jobfleet {:?} should print exactly one line on stderr, got:\n{}",
        r.args,
        r.stderr
    );
    let line = lines[0].trim();
    assert!(
        !line.is_empty(),
        "jobfleet {:?} printed an empty error line",
        r.args
    );
    for needle in needles {
        assert!(
            line.contains(needle),
            "the error of jobfleet {:?} should mention {needle:?}: {line}",
            r.args
        );
    }
    assert!(
        r.stdout.trim().is_empty(),
        "jobfleet {:?} failed but printed on stdout: {}",
        r.args,
        r.stdout
    );
    line.to_owned()
}

/// The counters of one queue from `queues --json`, or Null if the queue is not listed.
pub fn queue_stats(url: &str, queue: &str) -> Value {
    let all = ok_json(url, &["queues", "--json"]);
    all.as_array()
        .unwrap_or_else(|| panic!("queues --json is not an array: {all}"))
        .iter()
        .find(|q| q["queue"] == queue)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Asserts the given counters of a queue, e.g. `[("pending", 4), ("dead", 0)]`.
pub fn assert_counts(url: &str, queue: &str, expected: &[(&str, u64)]) {
    let stats = queue_stats(url, queue);
    for (field, want) in expected {
        assert_eq!(
            stats[*field].as_u64(),
            Some(*want),
            "{queue}.{field} in queues --json: {stats:#}"
        );
    }
}

/// The names `queues --json` lists.
pub fn queue_names(url: &str) -> Vec<String> {
    ok_json(url, &["queues", "--json"])
        .as_array()
        .expect("queues --json is an array")
        .iter()
        .filter_map(|q| q["queue"].as_str().map(str::to_owned))
        .collect()
}
