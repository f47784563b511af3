//! Notifications against real services: PostgreSQL (a fresh database per test), a private
//! Redis, HTTP receivers on loopback (wiremock) and an SMTP server on loopback (the `mailin`
//! state machine behind `notify::sink`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use jobfleet::config::{Secret, Settings, SmtpTls};
use jobfleet::db::notifications::record;
use jobfleet::jobs::dispatch_notifications::DispatchNotifications;
use jobfleet::jobs::send_notification::SendNotification;
use jobfleet::jobs::{HandlerSet, Job, JobContext, JobError, Registry, Resources};
use jobfleet::notify::sink::{self, Mail};
use jobfleet::notify::{Channel, Event, Wei, signature};
use jobfleet::queue::QueueClient;
use sqlx::PgPool;
use support::TestRedis;
use support::app::{self, WorkerOpts};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_test_0123456789";

/// A test's services: its Redis, queue client, database and the resources handlers get.
struct Env {
    /// Kept so that the server lives as long as the test.
    _redis: TestRedis,
    client: QueueClient,
    pool: PgPool,
    resources: Arc<Resources>,
    registry: Arc<Registry>,
    _specs: tempfile::TempDir,
}

/// The test settings with short retries (100 ms base, no jitter, 3 attempts), adjusted.
async fn env(pool: PgPool, adjust: impl FnOnce(&mut Settings)) -> Env {
    let redis = TestRedis::start();
    let client = app::client(&redis.url()).await;
    let specs = app::spec_dir(&[
        ("send_notification", "notifications", "30s", 3, "100ms"),
        ("dispatch_notifications", "notifications", "30s", 3, "100ms"),
    ]);
    let mut settings = app::settings(&redis.url());
    settings.jobs.dir = specs.path().to_owned();
    adjust(&mut settings);
    settings
        .validate()
        .expect("the adjusted settings are valid");
    let resources = Arc::new(Resources {
        queue: client.clone(),
        db: pool.clone(),
        settings,
        notifier: tokio::sync::OnceCell::new(),
    });
    let handlers = HandlerSet::new()
        .register::<SendNotification>()
        .register::<DispatchNotifications>();
    let registry = app::registry(specs.path(), handlers);
    Env {
        _redis: redis,
        client,
        pool,
        resources,
        registry,
        _specs: specs,
    }
}

impl Env {
    fn ctx(&self, attempt: u32) -> JobContext {
        JobContext {
            id: "test".into(),
            queue: "notifications".into(),
            attempt,
            max_attempts: 3,
            enqueued_at: chrono::Utc::now(),
            resources: self.resources.clone(),
        }
    }

    async fn send(&self, id: i64, channel: Channel, attempt: u32) -> Result<(), JobError> {
        let job = SendNotification {
            notification_id: id,
            channel,
        };
        job.run(self.ctx(attempt)).await
    }

    async fn dispatch(&self) {
        DispatchNotifications {}
            .run(self.ctx(1))
            .await
            .expect("dispatch runs");
    }

    fn worker(&self) -> app::RunningWorker {
        let opts = WorkerOpts {
            queues: "notifications".into(),
            poll_interval: Duration::from_millis(50),
            ..WorkerOpts::default()
        };
        app::start_worker_with(
            &self.client,
            self.registry.clone(),
            self.resources.clone(),
            opts,
        )
    }

    /// (attempt, status, response code, error, excerpt) of a notification's deliveries.
    async fn deliveries(&self, id: i64, channel: Channel) -> Vec<Delivery> {
        sqlx::query_as(
            "SELECT attempt, status, response_code, error, response_excerpt
             FROM notification_deliveries WHERE notification_id = $1 AND channel = $2
             ORDER BY id",
        )
        .bind(id)
        .bind(channel.as_str())
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Waits until a delivery has `n` rows in its log.
    async fn wait_for_deliveries(&self, id: i64, channel: Channel, n: usize) -> Vec<Delivery> {
        let found = app::eventually(Duration::from_secs(20), || async {
            self.deliveries(id, channel).await.len() >= n
        })
        .await;
        let rows = self.deliveries(id, channel).await;
        assert!(found, "expected {n} deliveries, found {rows:?}");
        rows
    }

    async fn job_state(&self, id: &str) -> Option<(String, Option<i64>, Option<String>)> {
        self.client
            .show(id)
            .await
            .ok()
            .map(|j| (j.state, j.score, j.error))
    }
}

type Delivery = (i32, String, Option<i32>, Option<String>, Option<String>);

async fn user(pool: &PgPool, handle: &str, email: Option<&str>) -> i64 {
    sqlx::query_scalar("INSERT INTO users (handle, email) VALUES ($1, $2) RETURNING id")
        .bind(handle)
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn endpoint(pool: &PgPool, user: i64, url: &str) {
    sqlx::query("INSERT INTO notification_webhooks (user_id, url, secret) VALUES ($1, $2, $3)")
        .bind(user)
        .bind(url)
        .bind(SECRET)
        .execute(pool)
        .await
        .unwrap();
}

async fn prefer(pool: &PgPool, user: i64, channel: &str, event: &str, enabled: bool) {
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channel, event, enabled)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(user)
    .bind(channel)
    .bind(event)
    .bind(enabled)
    .execute(pool)
    .await
    .unwrap();
}

/// Records an event the way producers do, in a transaction, and returns the row's id.
async fn notify(pool: &PgPool, user: i64, event: &Event, key: &str) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    assert!(record(&mut tx, user, event, key).await.unwrap());
    // A producer's re-run with the same key writes nothing.
    assert!(!record(&mut tx, user, event, key).await.unwrap());
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT id FROM notifications WHERE dedupe_key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn dispute_raised(dispute_id: i64) -> Event {
    Event::DisputeRaised {
        dispute_id,
        market_id: 9,
        title: "<b>Rain</b> & co".into(),
        reason: "The oracle read the wrong city".into(),
    }
}

fn balance_changed() -> Event {
    Event::BalanceChanged {
        wallet: format!("0x{}", "ab".repeat(20)),
        token: "native".into(),
        symbol: "ETH".into(),
        old: Wei::new("1000000000000000000").unwrap(),
        new: Wei::new("250000000000000000000000000000").unwrap(),
        block: 123,
    }
}

/// A wiremock receiver at /hook answering `status` (with Retry-After when given).
async fn hook_answering(status: u16, body: &str, retry_after: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_string(body);
    if let Some(v) = retry_after {
        answer = answer.insert_header("Retry-After", v);
    }
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

async fn smtp_sink(credentials: (&str, &str)) -> (u16, mpsc::UnboundedReceiver<Mail>) {
    let listener = sink::loopback().await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let creds = Some((credentials.0.to_owned(), credentials.1.to_owned()));
    tokio::spawn(sink::serve_smtp(listener, creds, tx));
    (port, rx)
}

fn smtp_to(port: u16, password: &str) -> impl FnOnce(&mut Settings) {
    let password = password.to_owned();
    move |s: &mut Settings| {
        s.notify.smtp.host = "127.0.0.1".into();
        s.notify.smtp.port = port;
        s.notify.smtp.tls = SmtpTls::None;
        s.notify.smtp.username = "jobfleet-bot".into();
        s.notify.smtp.password = Secret::new(password);
        s.notify.smtp.from = "Jobfleet <noreply@jobfleet.test>".into();
    }
}

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

#[sqlx::test]
async fn a_400_is_fatal_and_keeps_the_answer(pool: PgPool) {
    let server = hook_answering(400, "{\"message\": \"Invalid Form Body\"}", None).await;
    let env = env(pool, |_| {}).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;

    env.dispatch().await;
    let worker = env.worker();
    let job = format!("notify:{id}:webhook");
    let dead = app::eventually(Duration::from_secs(10), || async {
        env.job_state(&job)
            .await
            .is_some_and(|(state, ..)| state == "dead")
    })
    .await;
    worker.stop().await;
    assert!(dead, "{:?}", env.job_state(&job).await);
    let (_, _, error) = env.job_state(&job).await.unwrap();
    let error = error.unwrap();
    assert!(error.starts_with("fatal: HTTP 400"), "{error}");
    assert!(error.contains("Invalid Form Body"), "{error}");
    let rows = env.deliveries(id, Channel::Webhook).await;
    assert_eq!(rows.len(), 1, "one attempt, no retry: {rows:?}");
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("failed", Some(400)));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// The ids of the send jobs in the notifications queue (pending, as no worker runs).
async fn queued(env: &Env) -> Vec<String> {
    let page = env
        .client
        .list("notifications", jobfleet::queue::JobState::Pending, 0, 100)
        .await
        .unwrap();
    let mut ids: Vec<String> = page.jobs.into_iter().map(|j| j.id).collect();
    ids.sort();
    ids
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
