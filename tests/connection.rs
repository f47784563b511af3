//! Connecting the way production does: a password in the URL, TLS with `rediss://`, a server
//! that does not answer, which fails within the configured limit and says which, and a
//! replicated write that no replica confirms.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use jobfleet::queue::{NewJob, QueueClient, StoreSettings};
use serde_json::json;
use support::TestRedis;
use support::process::{jobfleet, run_bounded};

async fn round_trip(url: &str) {
    let c = QueueClient::connect(url, "jobfleet", StoreSettings::default())
        .await
        .unwrap_or_else(|e| panic!("connects to {url}: {e}"));
    let id = c
        .enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap()
        .id;
    let jobs = c
        .fetch("default", 1, std::time::Duration::from_secs(30), "w")
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs[0].id(), id);
}

#[tokio::test]
async fn a_password_in_the_url_is_used_and_a_wrong_one_is_a_clean_error() {
    let redis = TestRedis::start();
    redis.set_password("s3cret-pw");
    round_trip(&format!("redis://:s3cret-pw@127.0.0.1:{}/", redis.port())).await;
    let bad = QueueClient::connect(
        &format!("redis://:wrong@127.0.0.1:{}/", redis.port()),
        "jobfleet",
        StoreSettings::default(),
    )
    .await;
    let err = bad.expect_err("a wrong password is refused").to_string();
    assert!(!err.contains("wrong"), "the password is not echoed: {err}");
}

#[tokio::test]
async fn rediss_urls_connect_over_tls() {
    let (redis, tls_port) = TestRedis::start_tls();
    // The test certificate is self-signed; `#insecure` skips verification, as it would be
    // for a private CA. Production URLs are verified against the webpki roots.
    round_trip(&format!("rediss://127.0.0.1:{tls_port}/#insecure")).await;
    drop(redis);
}

#[test]
fn settings_never_show_the_password() {
    let settings = support::app::settings("redis://:hunter2@127.0.0.1:6379/0");
    let shown = format!("{settings:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("***"),
        "{shown}"
    );
}

/// A TCP listener on loopback that accepts every connection and never writes a byte; with
/// `handshake`, it answers the client's set-up pipeline (`CLIENT SETINFO` twice) and then
/// nothing more. The thread ends with the test process.
fn listener(handshake: bool) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            thread::spawn(move || serve_silently(socket, handshake));
        }
    });
    port
}

fn serve_silently(mut socket: TcpStream, handshake: bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered = !handshake;
    while let Ok(n) = socket.read(&mut buf) {
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        let setinfo = seen.windows(7).filter(|w| w == b"SETINFO").count();
        if !answered && setinfo >= 2 {
            let _ = socket.write_all(b"+OK\r\n+OK\r\n");
            answered = true;
        }
    }
}

/// Runs `jobfleet queues` against `url` with both limits set to one second, and checks it fails
/// with one line naming `setting` and the address within the limit plus slack.
fn fails_by(url: &str, setting: &str, shown_url: &str) -> String {
    let mut cmd = jobfleet(url);
    cmd.args(["queues"])
        .env("JOBFLEET__REDIS__CONNECT_TIMEOUT", "1s")
        .env("JOBFLEET__REDIS__RESPONSE_TIMEOUT", "1s");
    let (out, took) = run_bounded(&mut cmd, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(!out.status.success(), "{url}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&format!("{setting} (1s) expired")) && err.contains(shown_url),
        "{url}: the error names {setting} and the address: {err}"
    );
    assert!(
        took < Duration::from_secs(6),
        "{url}: failed after {took:?}, not within the 1s limit (plus slack): {err}"
    );
    err
}

#[test]
fn a_listener_that_never_answers_fails_by_the_connect_timeout() {
    let port = listener(false);
    let url = format!("redis://:hunter2@127.0.0.1:{port}/");
    let err = fails_by(
        &url,
        "redis.connect_timeout",
        &format!("redis://:***@127.0.0.1:{port}/"),
    );
    assert!(!err.contains("hunter2"), "the password is masked: {err}");
}

#[test]
fn tls_to_a_plain_listener_fails_by_the_connect_timeout() {
    let port = listener(false);
    let url = format!("rediss://127.0.0.1:{port}/#insecure");
    let err = fails_by(&url, "redis.connect_timeout", &format!("127.0.0.1:{port}"));
    assert!(err.contains("rediss://"), "{err}");
}

#[test]
fn a_server_that_stops_answering_after_the_handshake_fails_by_the_response_timeout() {
    let port = listener(true);
    let url = format!("redis://127.0.0.1:{port}/");
    fails_by(&url, "redis.response_timeout", &url);
}

#[tokio::test]
async fn a_replicated_write_without_a_replica_fails_and_says_the_master_has_it() {
    let redis = TestRedis::start();
    let store = StoreSettings {
        durability: jobfleet::queue::Durability::Replicated {
            replicas: 1,
            timeout: Duration::from_millis(100),
        },
        ..StoreSettings::default()
    };
    let c = QueueClient::connect(&redis.url(), "jobfleet", store)
        .await
        .unwrap();
    let err = c
        .enqueue(NewJob::new("noop", "default", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stored on the master, but 0 of 1 replicas confirmed it within 100ms"),
        "{err}"
    );
    // The write stands on the master, which is what the error says.
    assert_eq!(c.stats("default").await.unwrap().pending, 1);
    // The same settings from the command line: a one-line error and a non-zero exit.
    let out = jobfleet(&redis.url())
        .args(["enqueue", "noop"])
        .env("JOBFLEET__REDIS__DURABILITY", "replicated")
        .env("JOBFLEET__REDIS__REPLICATION_TIMEOUT", "100ms")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 of 1 replicas"), "{stderr}");
    // And a setting that cannot work is refused at start, naming the key.
    let out = jobfleet(&redis.url())
        .args(["queues"])
        .env("JOBFLEET__REDIS__DURABILITY", "replicated")
        .env("JOBFLEET__REDIS__REPLICAS", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("redis.replicas"),
        "{stderr}"
    );
}
