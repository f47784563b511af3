//! Real `jobfleet` processes for the tests of long-running commands (`worker`, `scheduler`):
//! started in the `test` environment against a test's Redis with their output in a temporary
//! file, signalled by pid, and SIGKILLed if the test ends without stopping them. Also a minimal
//! HTTP client for their telemetry endpoints.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The binary, run from the crate root against `url` in the `test` environment (the same
/// command the one-shot CLI tests use).
pub use super::cli::jobfleet;

/// Runs a command to its end, killing it after `limit`; returns its output and how long it ran.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts jobfleet");
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    (child.wait_with_output().expect("output"), took)
}

/// A long-running `jobfleet` process; SIGKILLed on drop if still running.
pub struct Process {
    name: String,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Process {
    /// Starts `jobfleet ARGS` against `url` with extra environment variables.
    pub fn start(url: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::start_in(url, None, env, args)
    }

    /// `start` with another jobs folder.
    pub fn start_in(url: &str, jobs: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("temp log file");
        let mut cmd = jobfleet(url);
        cmd.args(args)
            .stdout(Stdio::from(log.reopen().expect("log file")))
            .stderr(Stdio::from(log.reopen().expect("log file")));
        if let Some(jobs) = jobs {
            cmd.env("JOBFLEET__JOBS__DIR", jobs);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starts jobfleet");
        Self {
            name: args.join(" "),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Panics (with the output) if the process is no longer running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "jobfleet {} exited early with {status}; its output:\n{}",
                self.name,
                self.output()
            );
        }
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "jobfleet {} did not exit within 30s of SIGTERM; its output:\n{}",
                self.name,
                self.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would, and waits for the process to be gone.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait for the killed process")
    }

    /// SIGTERM, and the process must exit 0.
    pub fn terminate_cleanly(&mut self) {
        let status = self.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "jobfleet {} should exit 0 on SIGTERM, got {status}; output:\n{}",
            self.name,
            self.output()
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Sends a signal to a process the test started.
pub fn signal(pid: u32, sig: Signal) {
    let pid = i32::try_from(pid).expect("pid fits i32");
    kill(Pid::from_raw(pid), sig).expect("signal sent");
}

/// A process stopped with SIGSTOP until this guard is dropped (then SIGCONT), so a failing
/// assertion never leaves it frozen.
pub struct Stopped(u32);

impl Stopped {
    pub fn new(pid: u32) -> Self {
        signal(pid, Signal::SIGSTOP);
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // The process may be gone already (a test that killed it); nothing to resume then.
        if let Ok(pid) = i32::try_from(self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        }
    }
}

/// Picks a currently free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binds a free port")
        .port()
}

/// A minimal HTTP/1.0 GET to `host:port`: the status code and the body.
pub fn http_get(target: &str, path: &str) -> std::io::Result<(u16, String)> {
    let addr: SocketAddr = target
        .parse()
        .map_err(|e| std::io::Error::other(format!("{target}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {target}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let bad = || std::io::Error::other(format!("not an HTTP response: {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

/// The status code of `GET path`, or 0 when nothing answers.
pub fn status(target: &str, path: &str) -> u16 {
    http_get(target, path).map_or(0, |(code, _)| code)
}
