//! A private, throw-away `redis-server` for one test.
//!
//! Every test that needs Redis starts its own server on a free loopback port
//! instead of sharing the machine's Redis on 6379. That keeps tests from
//! seeing each other's keys when they run in parallel, lets a test kill or
//! restart "its" Redis without hurting anyone else, and guarantees that no
//! test ever flushes a Redis that somebody else depends on.
//!
//! The readiness check speaks raw RESP over a std `TcpStream` on purpose: it
//! keeps this module independent of the `redis` crate's API (which the code
//! under test may use in a different way) and lets `start()` be synchronous,
//! so it can be called from plain tests and from inside `#[tokio::test]`
//! alike.

// Not every integration test uses every helper, and each test file compiles
// this module separately, so unused items would otherwise warn (and fail
// `clippy -D warnings`).
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one server may take to answer `PING` before we give up. Redis
/// without persistence normally answers within a few milliseconds; the
/// generous margin is for heavily loaded CI machines.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many ports we try. A port picked by binding to port 0 can be grabbed by
/// another process between our probe and redis-server's own bind, so a failed
/// start is retried on a fresh port rather than treated as fatal.
const MAX_ATTEMPTS: usize = 5;

/// A running `redis-server` child process that is killed when dropped.
#[derive(Debug)]
pub struct TestRedis {
    child: Child,
    port: u16,
    /// Held so the server's working directory outlives the server: the field
    /// is dropped (and the directory deleted) only after `Drop::drop` has
    /// killed and reaped the child.
    dir: tempfile::TempDir,
    /// The extra arguments it was started with, for `kill_and_restart`.
    extra: Vec<String>,
}

impl TestRedis {
    /// Starts a fresh, empty Redis on a free loopback port and waits until it
    /// answers `PING`. Panics with a descriptive message if that fails,
    /// because a test cannot do anything useful without its Redis.
    pub fn start() -> TestRedis {
        Self::start_with(&[])
    }

    /// Like `start`, with extra `redis-server` arguments (e.g. a TLS port).
    pub fn start_with(extra: &[String]) -> TestRedis {
        let binary = redis_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("jobfleet-test-redis-")
            .tempdir()
            .expect("cannot create a temporary directory for redis-server");

        let mut failures = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let port = free_port();
            let log_path = dir.path().join(format!("redis-{port}.log"));
            let mut child = spawn(&binary, port, dir.path(), &log_path, extra);
            match wait_until_ready(&mut child, port) {
                Startup::Ready => {
                    return TestRedis {
                        child,
                        port,
                        dir,
                        extra: extra.to_vec(),
                    };
                }
                Startup::Exited(status) => {
                    // Most likely the port was taken in the meantime; keep the
                    // log tail so the final panic explains repeated failures.
                    failures.push(format!(
                        "port {port}: redis-server exited with {status}; log:\n{}",
                        log_tail(&log_path)
                    ));
                }
                Startup::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "redis-server ({}) on 127.0.0.1:{port} did not answer PING within {:?}; log:\n{}",
                        binary.display(),
                        READY_TIMEOUT,
                        log_tail(&log_path)
                    );
                }
            }
        }
        panic!(
            "could not start redis-server ({}) after {MAX_ATTEMPTS} attempts:\n{}",
            binary.display(),
            failures.join("\n")
        );
    }

    /// The connection URL, e.g. `redis://127.0.0.1:40123/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port the server listens on (always on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The operating-system process id of the server, for tests that want to
    /// check which server they are talking to.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Requires a password from now on (set after start-up, so the readiness check above can
    /// still PING without one).
    pub fn set_password(&self, password: &str) {
        let mut conn = connect(self.port).expect("connect to set the password");
        let cmd = format!(
            "*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$11\r\nrequirepass\r\n${}\r\n{}\r\n",
            password.len(),
            password
        );
        conn.get_mut()
            .write_all(cmd.as_bytes())
            .expect("send CONFIG SET");
        let mut line = String::new();
        conn.read_line(&mut line).expect("read CONFIG SET reply");
        assert!(line.starts_with("+OK"), "CONFIG SET requirepass: {line}");
    }

    /// Starts a server that also speaks TLS, with a self-signed certificate made by `openssl`.
    /// Returns the server and its TLS port.
    pub fn start_tls() -> (TestRedis, u16) {
        let certs = tempfile::tempdir().expect("temp dir for certificates");
        let tls_port = free_port();
        let redis = Self::start_with(&tls_args(certs.path(), tls_port));
        // redis-server has read the files; the directory can go.
        drop(certs);
        (redis, tls_port)
    }

    /// Kills the server with SIGKILL, as a crash would, and starts it again on the same port
    /// and folder with the same arguments, so that with `--appendonly yes` it comes back with
    /// what it had written. Waits until it answers again.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// Starts a server killed with [`Self::kill`] again, on the same port and folder with the
    /// same arguments, and waits until it answers.
    pub fn restart(&mut self) {
        let log_path = self
            .dir
            .path()
            .join(format!("redis-{}-restarted.log", self.port));
        let binary = redis_server_binary();
        self.child = spawn(&binary, self.port, self.dir.path(), &log_path, &self.extra);
        match wait_until_ready(&mut self.child, self.port) {
            Startup::Ready => {}
            _ => panic!(
                "redis-server did not come back on port {}; log:\n{}",
                self.port,
                log_tail(&log_path)
            ),
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and leaves it down.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the server with SIGSTOP: connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a paused server go on with SIGCONT.
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, sig).expect("signal the test's redis-server");
    }

    /// Whether the server currently answers `PING`; useful in tests that stop
    /// or pause Redis to exercise reconnect logic.
    pub fn is_responding(&self) -> bool {
        matches!(ping(self.port), Ok(true))
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // SIGKILL is fine: the server holds nothing worth saving, and waiting
        // reaps the child so no zombie outlives the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Arguments of a redis-server that also speaks TLS on `tls_port`, with a self-signed
/// certificate for `localhost` that `openssl` makes in `dir` (once per folder).
pub fn tls_args(dir: &Path, tls_port: u16) -> Vec<String> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert.exists() {
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs (Debian package openssl)");
        assert!(made.success(), "openssl could not make a certificate");
    }
    let path = |p: &PathBuf| p.display().to_string();
    vec![
        "--tls-port".into(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        path(&cert),
        "--tls-key-file".into(),
        path(&key),
        "--tls-ca-cert-file".into(),
        path(&cert),
        "--tls-auth-clients".into(),
        "no".into(),
    ]
}

enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// Finds `redis-server`: `$REDIS_SERVER` wins so a developer can point tests
/// at a specific build; otherwise the first match on `PATH`.
fn redis_server_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("REDIS_SERVER").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        assert!(
            path.is_file(),
            "$REDIS_SERVER points to {}, which is not a file; unset it or fix it \
             (scripts/test installs redis-server if it is missing)",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server not found on PATH and $REDIS_SERVER is not set; \
                 the integration tests start their own private redis-server. \
                 Run the test suite with `scripts/test`, which installs it \
                 (Debian package redis-server)."
            )
        })
}

/// Asks the kernel for a currently free loopback port. The listener is
/// dropped before redis-server binds, so the port can in rare cases be taken
/// by someone else first; `start()` retries for that reason.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("cannot bind a TCP listener on 127.0.0.1 to find a free port");
    listener
        .local_addr()
        .expect("cannot read the local address of a bound listener")
        .port()
}

fn spawn(binary: &Path, port: u16, dir: &Path, log_path: &Path, extra: &[String]) -> Child {
    // Output goes to a file rather than the test's stdout so that a failing
    // start can be explained without cluttering every passing test.
    let log = File::create(log_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot duplicate handle of {}: {e}", log_path.display()));
    Command::new(binary)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        // An empty save schedule and no AOF: nothing is ever written to disk.
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", binary.display()))
}

/// Polls until our own child answers on `port`. Checking the reported
/// `process_id` matters: if another server grabbed the port first, a bare
/// PING would succeed against *that* server while ours is about to exit with
/// "address in use".
fn wait_until_ready(child: &mut Child, port: u16) -> Startup {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Startup::Exited(status);
        }
        if matches!(ping(port), Ok(true))
            && matches!(server_pid(port), Ok(Some(pid)) if pid == child.id())
        {
            return Startup::Ready;
        }
        if Instant::now() >= deadline {
            return Startup::TimedOut;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn connect(port: u16) -> io::Result<BufReader<TcpStream>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    // Timeouts keep a wedged server from hanging the test forever; the
    // overall deadline is enforced by the caller.
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(BufReader::new(stream))
}

/// Sends `PING` as raw RESP and reports whether the reply was `+PONG`.
fn ping(port: u16) -> io::Result<bool> {
    let mut conn = connect(port)?;
    conn.get_mut().write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    Ok(line.starts_with("+PONG"))
}

/// Reads `process_id` from `INFO server`, whose reply is a RESP bulk string:
/// `$<len>\r\n<len bytes>\r\n`.
fn server_pid(port: u16) -> io::Result<Option<u32>> {
    let mut conn = connect(port)?;
    conn.get_mut()
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;
    let mut header = String::new();
    conn.read_line(&mut header)?;
    let Some(len) = header
        .strip_prefix('$')
        .and_then(|rest| rest.trim_end().parse::<usize>().ok())
    else {
        return Ok(None);
    };
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body);
    Ok(body
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok()))
}

/// The last few lines of a server log, for panic messages.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(20);
            lines[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
