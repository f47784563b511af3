//! Connecting the way production does: a password in the URL, and TLS with `rediss://`.

mod support;

use jobfleet::queue::{NewJob, QueueClient, StoreSettings};
use serde_json::json;
use support::TestRedis;

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
