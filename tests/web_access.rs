//! Access to the web board, against a real `jobfleet web` process and its own Redis: sign-in
//! with the right and wrong password, every page behind it, the board's metrics, roles (a
//! viewer changes nothing), CSRF tokens, session expiry, failed sign-ins refused after the
//! limit, and the trusted proxy's user header.

mod support;

use std::time::Duration;

use jobfleet::queue::QueueClient;
use reqwest::StatusCode;
use support::TestRedis;
use support::app::client;
use support::web::{OPS, VIEWER, board_with_users};

async fn paused(client: &QueueClient, queue: &str) -> bool {
    client.stats(queue).await.expect("stats").paused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_needs_the_right_password_and_every_page_needs_a_sign_in() {
    let redis = TestRedis::start();
    let board = board_with_users(&redis, &[]).await;
    let http = board.http();
    for path in [
        "/",
        "/queues/default",
        "/jobs/x",
        "/workers",
        "/assets/board.css",
        "/market/outbox",
    ] {
        let resp = http
            .get(format!("{}{path}", board.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        let to = resp.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("/login?next="), "{path} -> {to}");
    }
    let refused = board
        .sign_in(OPS.0, "wrong password")
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(refused.contains("error="), "{refused}");
    assert!(board.sign_in("nobody", OPS.1).await.is_err());
    let s = board
        .sign_in(OPS.0, OPS.1)
        .await
        .expect("the right password signs in");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(s.set_cookie.contains(flag), "{}", s.set_cookie);
    }
    assert!(
        !s.set_cookie.contains("Secure"),
        "no HTTPS configured: {}",
        s.set_cookie
    );
    let home = s.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("ops (operator)"), "{}", home.body);
    let csp = http
        .get(format!("{}/login", board.base()))
        .send()
        .await
        .unwrap()
        .headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // The board counts what it answered, by route template, and the sign-ins by outcome.
    let _ = s.get("/queues/default").await;
    let metrics = http
        .get(format!("{}/metrics", board.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"jobfleet_web_requests_total{method="GET",route="/queues/{queue}",status="200"} 1"#,
        r#"jobfleet_web_sign_ins_total{outcome="failed"} 2"#,
        r#"jobfleet_web_sign_ins_total{outcome="ok"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    // Signing out ends the session on the server, not only in the browser.
    let out = s.post("/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(s.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_changes_nothing_and_a_form_without_its_csrf_token_is_refused() {
    let redis = TestRedis::start();
    let client = client(&redis.url()).await;
    client.register_queue("default").await.unwrap();
    let board = board_with_users(&redis, &[]).await;
    let viewer = board.sign_in(VIEWER.0, VIEWER.1).await.unwrap();
    let refused = viewer.post("/queues/default/pause", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!paused(&client, "default").await);
    assert!(
        !viewer
            .get("/queues/default")
            .await
            .body
            .contains("pause-toggle")
    );

    let ops = board.sign_in(OPS.0, OPS.1).await.unwrap();
    let no_token = ops.post_raw("/queues/default/pause", &[]).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let wrong = ops
        .post_raw("/queues/default/pause", &[("csrf", "0123")])
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Another session's token is no good either.
    let other = board.sign_in(OPS.0, OPS.1).await.unwrap();
    let theirs = other.csrf().await;
    let crossed = ops
        .post_raw("/queues/default/pause", &[("csrf", theirs.as_str())])
        .await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
    assert!(
        !paused(&client, "default").await,
        "no refused request paused the queue"
    );
    let done = ops.post("/queues/default/pause", &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(paused(&client, "default").await);
    let audit = ops.get("/audit").await.body;
    assert!(audit.contains("pause") && audit.contains("ops"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_failed_sign_ins_are_refused_after_the_limit() {
    let redis = TestRedis::start();
    let board = board_with_users(
        &redis,
        &[
            ("JOBFLEET__WEB__SESSION_TTL", "2s"),
            ("JOBFLEET__WEB__MAX_FAILED_LOGINS", "2"),
        ],
    )
    .await;
    let s = board.sign_in(OPS.0, OPS.1).await.unwrap();
    assert_eq!(s.get("/").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let after = s.get("/").await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "an expired session is sent to sign in"
    );

    for _ in 0..2 {
        assert!(board.sign_in(VIEWER.0, "guess").await.is_err());
    }
    let locked = board
        .sign_in(VIEWER.0, VIEWER.1)
        .await
        .err()
        .expect("refused after 2 failures");
    assert!(locked.contains("Too+many"), "{locked}");
    // Another name is not locked out by these failures.
    assert!(board.sign_in(OPS.0, OPS.1).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_user_and_nobody_else_can() {
    let redis = TestRedis::start();
    let board = board_with_users(&redis, &[("JOBFLEET__WEB__TRUSTED_PROXY", "127.0.0.1")]).await;
    let http = board.http();
    let resp = http
        .get(format!("{}/", board.base()))
        .header("X-Forwarded-User", "ops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("set-cookie").is_some(),
        "a session is made for the proxy's user"
    );
    assert!(resp.text().await.unwrap().contains("ops (operator)"));
    let stranger = http
        .get(format!("{}/", board.base()))
        .header("X-Forwarded-User", "someone-else")
        .send()
        .await
        .unwrap();
    assert!(
        stranger
            .text()
            .await
            .unwrap()
            .contains("someone-else (viewer)")
    );
    let none = http.get(format!("{}/", board.base())).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::SEE_OTHER);

    // A board that trusts another address ignores the header.
    let redis2 = TestRedis::start();
    let other = board_with_users(&redis2, &[("JOBFLEET__WEB__TRUSTED_PROXY", "10.9.8.7")]).await;
    let resp = other
        .http()
        .get(format!("{}/", other.base()))
        .header("X-Forwarded-User", "ops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}
