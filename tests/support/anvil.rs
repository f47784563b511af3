//! A private `anvil` (the local EVM node from the npm package `@foundry-rs/anvil`) per test, on
//! a free loopback port, killed when dropped.
//!
//! The binary is found through `ANVIL_BIN`, else in this repository's `node_modules` (where
//! `npm ci` puts it; `scripts/test` runs that), else on the `PATH`.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TestAnvil {
    child: Child,
    pub port: u16,
}

impl TestAnvil {
    /// Starts anvil with instant mining.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts anvil with extra arguments (e.g. `--no-mining`).
    pub fn start_with(extra: &[&str]) -> Self {
        let binary = binary();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&binary)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--silent",
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {} ({e}); run `npm ci` or set ANVIL_BIN",
                        binary.display()
                    )
                });
            let until = Instant::now() + Duration::from_secs(15);
            while Instant::now() < until {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("anvil exited with {status} on port {port}");
                    break;
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Self { child, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("anvil did not start: {last}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `--timestamp` arguments for a node that must be another chain than the nodes started
/// before it, with the same chain id: anvil's genesis hash depends on its start second only,
/// so two nodes started within one second would be one chain to jobfleet. A genesis two
/// seconds ahead differs from every earlier one.
pub fn later_genesis() -> [String; 2] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ["--timestamp".to_owned(), (now + 2).to_string()]
}

impl Drop for TestAnvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ANVIL_BIN") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if local.exists() {
        return local;
    }
    PathBuf::from("anvil")
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
