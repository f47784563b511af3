//! Notifications against real services: PostgreSQL (a fresh database per test), a private
//! Redis, HTTP receivers on loopback (wiremock) and an SMTP server on loopback (the `mailin`
//! state machine behind `dev::sink`).

mod support;

use std::time::Duration;

use jobfleet::config::Secret;
use jobfleet::jobs::JobError;
use jobfleet::notify::{Channel, signature};
use sqlx::PgPool;
use support::app;
use support::notify::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[sqlx::test]
async fn an_email_arrives_with_its_subject_text_and_html(pool: PgPool) {
    let (port, mut inbox) = smtp_sink(("jobfleet-bot", "s3cret")).await;
    let env = env(pool, smtp_to(port, "s3cret")).await;
    let alice = user(&env.pool, "alice", Some("alice@example.com")).await;
    let id = notify(
        &env.pool,
        alice,
        &dispute_raised(7),
        "dispute.raised:7:alice",
    )
    .await;

    env.send(id, Channel::Email, 1)
        .await
        .expect("the email is sent");

    let mail = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .expect("an email arrives")
        .unwrap();
    assert_eq!(mail.from, "noreply@jobfleet.test");
    assert_eq!(mail.to, vec!["alice@example.com".to_owned()]);
    assert_eq!(mail.user.as_deref(), Some("jobfleet-bot"));
    assert_eq!(
        mail.subject().as_deref(),
        Some("Dispute raised: <b>Rain</b> & co")
    );
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some(format!("<notification-{id}@jobfleet.test>").as_str())
    );
    let data = mail.data.replace("=\r\n", "");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("Content-Type: text/plain"), "{data}");
    assert!(
        data.contains("Reason: The oracle read the wrong city"),
        "{data}"
    );
    assert!(data.contains("Content-Type: text/html"), "{data}");
    // The HTML part escapes the title (quoted-printable writes '=' as =3D in attributes).
    assert!(
        data.contains("Dispute raised: &lt;b&gt;Rain&lt;/b&gt; &amp; co</h2>"),
        "{data}"
    );
    assert!(!data.contains("<b>Rain</b> &amp;"), "{data}");
    let rows = env.deliveries(id, Channel::Email).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0, rows[0].1.as_str(), rows[0].2),
        (1, "sent", Some(250))
    );
}

#[sqlx::test]
async fn required_starttls_never_falls_back_to_plain_text(pool: PgPool) {
    // The sink offers no STARTTLS, as a downgrading man in the middle would not.
    let listener = jobfleet::dev::sink::loopback().await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(jobfleet::dev::sink::serve_smtp(listener, None, tx));
    let env = env(pool, |s| {
        smtp_to(port, "")(s);
        s.notify.smtp.username = String::new();
        s.notify.smtp.tls = jobfleet::config::SmtpTls::Starttls;
    })
    .await;
    let alice = user(&env.pool, "alice", Some("alice@example.com")).await;
    let id = notify(&env.pool, alice, &dispute_raised(7), "k").await;

    let err = env.send(id, Channel::Email, 1).await.unwrap_err();
    assert!(matches!(err, JobError::Retry(_)), "{err}");
    assert!(
        err.to_string().contains("STARTTLS is not supported"),
        "{err}"
    );
    assert!(inbox.try_recv().is_err(), "nothing was sent in plain text");
    let rows = env.deliveries(id, Channel::Email).await;
    assert_eq!(rows[0].1, "retrying", "{rows:?}");
}

#[sqlx::test]
async fn refused_smtp_credentials_are_fatal_and_logged(pool: PgPool) {
    let (port, _inbox) = smtp_sink(("jobfleet-bot", "s3cret")).await;
    let env = env(pool, smtp_to(port, "wrong")).await;
    let alice = user(&env.pool, "alice", Some("alice@example.com")).await;
    let id = notify(&env.pool, alice, &dispute_raised(7), "k").await;

    let err = env.send(id, Channel::Email, 1).await.unwrap_err();
    assert!(matches!(err, JobError::Fatal(_)), "{err}");
    let rows = env.deliveries(id, Channel::Email).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("failed", Some(535)));
    assert!(rows[0].3.as_deref().unwrap().contains("SMTP"), "{rows:?}");
}

#[sqlx::test]
async fn feeds_and_signed_webhooks_get_their_bodies_through_the_queue(pool: PgPool) {
    let server = MockServer::start().await;
    for (p, status) in [("/discord", 204), ("/slack", 200), ("/hook", 200)] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(status).set_body_string("ok"))
            .expect(1)
            .mount(&server)
            .await;
    }
    let base = server.uri();
    let env = env(pool, |s| {
        s.notify.discord_webhook_url = Secret::new(format!("{base}/discord"));
        s.notify.slack_webhook_url = Secret::new(format!("{base}/slack"));
    })
    .await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{base}/hook")).await;
    let id = notify(&env.pool, bob, &dispute_raised(7), "dispute.raised:7:bob").await;

    env.dispatch().await;
    let worker = env.worker();
    for channel in [Channel::Discord, Channel::Slack, Channel::Webhook] {
        let rows = env.wait_for_deliveries(id, channel, 1).await;
        assert_eq!(rows[0].1, "sent", "{channel}: {rows:?}");
    }
    worker.stop().await;

    let requests = server.received_requests().await.unwrap();
    let body = |p: &str| -> (serde_json::Value, &wiremock::Request) {
        let r = requests.iter().find(|r| r.url.path() == p).unwrap();
        (serde_json::from_slice(&r.body).unwrap(), r)
    };
    let (discord, _) = body("/discord");
    let embed = &discord["embeds"][0];
    assert_eq!(embed["color"], 0xED4245, "red: a dispute raised");
    assert_eq!(embed["title"], "Dispute raised: <b>Rain</b> & co");
    assert_eq!(
        embed["fields"][2]["value"],
        "The oracle read the wrong city"
    );
    let (slack, _) = body("/slack");
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        "Dispute raised: <b>Rain</b> & co"
    );
    assert!(
        slack["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("dispute #7")
    );

    let (generic, request) = body("/hook");
    assert_eq!(generic["id"], id);
    assert_eq!(generic["event"], "dispute.raised");
    assert_eq!(
        generic["payload"]["reason"],
        "The oracle read the wrong city"
    );
    assert_eq!(request.headers["x-jobfleet-event"], "dispute.raised");
    assert_eq!(
        request.headers["x-jobfleet-delivery"],
        id.to_string().as_str()
    );
    let header = request.headers[signature::HEADER].to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let tolerance = Duration::from_secs(300);
    signature::verify(SECRET.as_bytes(), header, &request.body, now, tolerance)
        .expect("the signature verifies with the endpoint's secret");
    assert!(signature::verify(b"another secret!!", header, &request.body, now, tolerance).is_err());
    let mut tampered = request.body.clone();
    tampered[0] = b' ';
    assert!(signature::verify(SECRET.as_bytes(), header, &tampered, now, tolerance).is_err());
}

#[sqlx::test]
async fn a_500_is_retried_by_the_queue_then_delivered(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500).set_body_string("database is down"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_string("thanks"))
        .with_priority(2)
        .mount(&server)
        .await;
    let env = env(pool, |_| {}).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;

    env.dispatch().await;
    let worker = env.worker();
    let rows = env.wait_for_deliveries(id, Channel::Webhook, 2).await;
    worker.stop().await;
    assert_eq!(
        rows,
        vec![
            (
                1,
                "retrying".into(),
                Some(500),
                rows[0].3.clone(),
                Some("database is down".into())
            ),
            (2, "sent".into(), Some(200), None, Some("thanks".into())),
        ]
    );
    assert!(
        rows[0].3.as_deref().unwrap().contains("HTTP 500"),
        "{rows:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[sqlx::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after(pool: PgPool) {
    let server = hook_answering(429, "slow down", Some("120")).await;
    let env = env(pool, |_| {}).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;

    env.dispatch().await;
    let before = chrono::Utc::now().timestamp_millis();
    let worker = env.worker();
    let rows = env.wait_for_deliveries(id, Channel::Webhook, 1).await;
    let job = format!("notify:{id}:webhook");
    let retried = app::eventually(Duration::from_secs(10), || async {
        env.job_state(&job)
            .await
            .is_some_and(|(state, ..)| state == "retry")
    })
    .await;
    worker.stop().await;
    assert!(retried, "{:?}", env.job_state(&job).await);
    let (_, due, error) = env.job_state(&job).await.unwrap();
    // The backoff alone would retry after 100 ms; Retry-After says 120 s.
    let due = due.expect("a retry has a due time");
    assert!(
        due >= before + 120_000,
        "due {} ms after the start",
        due - before
    );
    assert!(due <= chrono::Utc::now().timestamp_millis() + 120_000);
    assert!(error.unwrap().contains("429"));
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("retrying", Some(429)));
    assert_eq!(rows[0].4.as_deref(), Some("slow down"));
}

/// Bob with a webhook at `server` and one balance notification, dispatched; a worker runs until
/// the webhook delivery is dead, which must happen within `limit`. Returns the notification id
/// and the delivery's job id.
async fn webhook_until_dead(env: &Env, server: &MockServer, limit: Duration) -> (i64, String) {
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;
    env.dispatch().await;
    let worker = env.worker();
    let job = format!("notify:{id}:webhook");
    let dead = app::eventually(limit, || async {
        env.job_state(&job)
            .await
            .is_some_and(|(state, ..)| state == "dead")
    })
    .await;
    worker.stop().await;
    assert!(dead, "{:?}", env.job_state(&job).await);
    (id, job)
}

#[sqlx::test]
async fn a_400_is_fatal_and_keeps_the_answer(pool: PgPool) {
    let server = hook_answering(400, "{\"message\": \"Invalid Form Body\"}", None).await;
    let env = env(pool, |_| {}).await;
    let (id, job) = webhook_until_dead(&env, &server, Duration::from_secs(10)).await;
    let (_, _, error) = env.job_state(&job).await.unwrap();
    let error = error.unwrap();
    assert!(error.starts_with("fatal: HTTP 400"), "{error}");
    assert!(error.contains("Invalid Form Body"), "{error}");
    let rows = env.deliveries(id, Channel::Webhook).await;
    assert_eq!(rows.len(), 1, "one attempt, no retry: {rows:?}");
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("failed", Some(400)));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[sqlx::test]
async fn dispatch_honours_preferences_and_never_enqueues_twice(pool: PgPool) {
    let env = env(pool, |s| {
        s.notify.smtp.host = "127.0.0.1".into();
        s.notify.discord_webhook_url = Secret::new("http://127.0.0.1:9/discord");
    })
    .await;
    // Alice: email and a webhook, but no email about disputes.
    let alice = user(&env.pool, "alice", Some("alice@example.com")).await;
    endpoint(&env.pool, alice, "http://127.0.0.1:9/alice").await;
    prefer(&env.pool, alice, "email", "dispute.raised", false).await;
    // Bob: email, opted out of everything by email, except balance changes.
    let bob = user(&env.pool, "bob", Some("bob@example.com")).await;
    prefer(&env.pool, bob, "email", "*", false).await;
    prefer(&env.pool, bob, "email", "balance.changed", true).await;
    // Carol: no address at all.
    let carol = user(&env.pool, "carol", None).await;

    let a1 = notify(&env.pool, alice, &dispute_raised(7), "d7:alice").await;
    notify(&env.pool, bob, &dispute_raised(7), "d7:bob").await;
    let a2 = notify(&env.pool, alice, &balance_changed(), "bal:alice").await;
    let b2 = notify(&env.pool, bob, &balance_changed(), "bal:bob").await;
    let c1 = notify(&env.pool, carol, &dispute_raised(8), "d8:carol").await;

    env.dispatch().await;
    let expected = {
        let mut ids = vec![
            // Alice's dispute: her webhook, and the feed's one post about dispute 7.
            format!("notify:{a1}:webhook"),
            format!("notify:{a1}:discord"),
            // Bob's dispute: nothing (email off, and dispute 7 is posted already).
            format!("notify:{a2}:email"),
            format!("notify:{a2}:webhook"),
            format!("notify:{b2}:email"),
            // Carol's dispute: the feed only.
            format!("notify:{c1}:discord"),
        ];
        ids.sort();
        ids
    };
    assert_eq!(queued(&env).await, expected);
    let undispatched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE dispatched_at IS NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(undispatched, 0);

    // A second run finds nothing to do.
    env.dispatch().await;
    assert_eq!(queued(&env).await, expected);
    // A run after a crash between enqueue and mark enqueues the same ids: deduplicated.
    sqlx::query("UPDATE notifications SET dispatched_at = NULL")
        .execute(&env.pool)
        .await
        .unwrap();
    env.dispatch().await;
    assert_eq!(queued(&env).await, expected);
}

#[sqlx::test]
async fn a_delivery_already_sent_is_not_sent_again(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/slack", server.uri());
    let env = env(pool, |s| s.notify.slack_webhook_url = Secret::new(url)).await;
    let alice = user(&env.pool, "alice", None).await;
    let bob = user(&env.pool, "bob", None).await;
    let a = notify(&env.pool, alice, &dispute_raised(7), "d7:alice").await;
    let b = notify(&env.pool, bob, &dispute_raised(7), "d7:bob").await;

    env.send(a, Channel::Slack, 1).await.unwrap();
    // The same job again (a retry after a lost ack), and the same subject from another row.
    env.send(a, Channel::Slack, 1).await.unwrap();
    env.send(b, Channel::Slack, 1).await.unwrap();
    assert_eq!(env.deliveries(a, Channel::Slack).await.len(), 1);
    assert!(env.deliveries(b, Channel::Slack).await.is_empty());
    server.verify().await;
}

#[sqlx::test]
async fn unknown_events_and_bad_payloads_are_fatal_with_the_reason(pool: PgPool) {
    let server = hook_answering(200, "", None).await;
    let env = env(pool, |_| {}).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let insert = |event: &'static str, payload: serde_json::Value, key: &'static str| {
        let pool = env.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO notifications (user_id, event, payload, dedupe_key)
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(bob)
            .bind(event)
            .bind(payload)
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let unknown = insert("market.exploded", serde_json::json!({}), "x1").await;
    let bad = insert(
        "market.resolved",
        serde_json::json!({"market_id": 1, "title": "T", "outcome": true,
                           "stake": 10, "payout": "0", "winnings": "0"}),
        "x2",
    )
    .await;

    let e = env.send(unknown, Channel::Webhook, 1).await.unwrap_err();
    assert!(matches!(&e, JobError::Fatal(_)), "{e}");
    assert!(e.to_string().contains("market.exploded"), "{e}");
    let e = env.send(bad, Channel::Webhook, 1).await.unwrap_err();
    assert!(e.to_string().contains("payload.stake"), "{e}");
    let rows = env.deliveries(bad, Channel::Webhook).await;
    assert_eq!(rows[0].1, "failed");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[sqlx::test]
async fn a_receiver_that_stays_down_ends_in_dead_with_every_attempt_logged(pool: PgPool) {
    let server = hook_answering(503, "maintenance", None).await;
    let env = env(pool, |_| {}).await;
    let (id, job) = webhook_until_dead(&env, &server, Duration::from_secs(20)).await;
    let rows = env.deliveries(id, Channel::Webhook).await;
    let summary: Vec<(i32, &str, Option<i32>)> =
        rows.iter().map(|r| (r.0, r.1.as_str(), r.2)).collect();
    // Three attempts (the test spec's max): the last one is logged as failed.
    assert_eq!(
        summary,
        vec![
            (1, "retrying", Some(503)),
            (2, "retrying", Some(503)),
            (3, "failed", Some(503))
        ]
    );
    let (_, _, error) = env.job_state(&job).await.unwrap();
    assert!(error.unwrap().contains("(attempt 3 of 3)"));
}

#[sqlx::test]
async fn a_receiver_slower_than_the_timeout_is_retried(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let env = env(pool, |s| s.notify.http_timeout = Duration::from_millis(200)).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;

    let e = env.send(id, Channel::Webhook, 1).await.unwrap_err();
    assert!(matches!(&e, JobError::Retry(_)), "{e}");
    assert!(e.to_string().contains("request failed"), "{e}");
    let rows = env.deliveries(id, Channel::Webhook).await;
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("retrying", None));
    assert!(
        rows[0].3.as_deref().unwrap().contains("timed out"),
        "{rows:?}"
    );
    // The URL (a Discord or Slack one holds its token) stays out of the error.
    assert!(!rows[0].3.as_deref().unwrap().contains("/hook"), "{rows:?}");
    assert!(!e.to_string().contains("/hook"), "{e}");
}
