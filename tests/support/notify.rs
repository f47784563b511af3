//! Notification tests' helpers: a test's services (Redis, database, resources, registry), users
//! with addresses and choices, recorded events, and receivers on loopback.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobfleet::config::{Secret, Settings, SmtpTls};
use jobfleet::db::notifications::record;
use jobfleet::dev::sink::{self, Mail};
use jobfleet::job::{Attempt, Client};
use jobfleet::jobs::dispatch_notifications::DispatchNotifications;
use jobfleet::jobs::send_notification::SendNotification;
use jobfleet::jobs::{HandlerSet, Job, JobContext, JobError, Registry, Resources};
use jobfleet::notify::{Channel, Event, Wei};
use jobfleet::queue::QueueClient;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::TestRedis;
use super::app::{self, WorkerOpts};
use super::process::Process;

pub const SECRET: &str = "whsec_test_0123456789";

/// A test's services: its Redis, queue client, database and the resources handlers get.
pub struct Env {
    /// Kept so that the server lives as long as the test.
    _redis: TestRedis,
    pub client: QueueClient,
    pub pool: PgPool,
    pub resources: Arc<Resources>,
    pub registry: Arc<Registry>,
    _specs: tempfile::TempDir,
}

/// The test settings with short retries (100 ms base, no jitter, 3 attempts), adjusted.
pub async fn env(pool: PgPool, adjust: impl FnOnce(&mut Settings)) -> Env {
    let redis = TestRedis::start();
    let client = app::client(&redis.url()).await;
    let specs = app::spec_dir(&[
        ("send_notification", "notifications", "30s", 3, "100ms"),
        ("dispatch_notifications", "notifications", "30s", 3, "100ms"),
    ]);
    let mut settings = app::settings(&redis.url());
    settings.jobs.dir = specs.path().to_owned();
    // The receivers are on loopback.
    settings.notify.allow_private_webhooks = true;
    adjust(&mut settings);
    settings
        .validate()
        .expect("the adjusted settings are valid");
    let resources = Arc::new(Resources::with_pool(client.clone(), settings, pool.clone()));
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
    pub fn ctx(&self, attempt: u32) -> JobContext<Resources> {
        let attempt = Attempt {
            id: "test".into(),
            queue: "notifications".into(),
            attempt,
            max_attempts: 3,
            enqueued_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        let client = Client::new(self.client.clone(), self.registry.shared_specs().clone());
        JobContext::new(attempt, self.resources.clone(), client)
    }

    pub async fn send(&self, id: i64, channel: Channel, attempt: u32) -> Result<(), JobError> {
        let job = SendNotification {
            notification_id: id,
            channel,
            host: None,
        };
        job.run(self.ctx(attempt)).await
    }

    pub async fn dispatch(&self) {
        DispatchNotifications {}
            .run(self.ctx(1))
            .await
            .expect("dispatch runs");
    }

    /// A `jobfleet worker` process of the notifications queue on this test's Redis and
    /// database, with the repository's job specs (the binary needs one for every kind) and
    /// `extra` in its environment: the test environment's settings, so
    /// `notify.allow_private_webhooks` is off unless `extra` turns it on.
    pub fn worker_process(&self, extra: &[(&str, &str)]) -> Process {
        let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for sqlx tests");
        let (server, _) = base
            .rsplit_once('/')
            .expect("DATABASE_URL names a database");
        let db = self
            .pool
            .connect_options()
            .get_database()
            .unwrap()
            .to_owned();
        let url = format!("{server}/{db}");
        let mut env = vec![("DATABASE_URL", url.as_str())];
        env.extend_from_slice(extra);
        Process::start(
            &self._redis.url(),
            &env,
            &["worker", "--queues", "notifications"],
        )
    }

    pub fn worker(&self) -> app::RunningWorker {
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
    pub async fn deliveries(&self, id: i64, channel: Channel) -> Vec<Delivery> {
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
    pub async fn wait_for_deliveries(&self, id: i64, channel: Channel, n: usize) -> Vec<Delivery> {
        let found = app::eventually(Duration::from_secs(20), || async {
            self.deliveries(id, channel).await.len() >= n
        })
        .await;
        let rows = self.deliveries(id, channel).await;
        assert!(found, "expected {n} deliveries, found {rows:?}");
        rows
    }

    pub async fn job_state(&self, id: &str) -> Option<(String, Option<i64>, Option<String>)> {
        self.client
            .show(id)
            .await
            .ok()
            .map(|j| (j.state.to_string(), j.score, j.error))
    }
}

pub type Delivery = (i32, String, Option<i32>, Option<String>, Option<String>);

pub async fn user(pool: &PgPool, handle: &str, email: Option<&str>) -> i64 {
    sqlx::query_scalar("INSERT INTO users (handle, email) VALUES ($1, $2) RETURNING id")
        .bind(handle)
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn endpoint(pool: &PgPool, user: i64, url: &str) {
    sqlx::query("INSERT INTO notification_webhooks (user_id, url, secret) VALUES ($1, $2, $3)")
        .bind(user)
        .bind(url)
        .bind(SECRET)
        .execute(pool)
        .await
        .unwrap();
}

pub async fn prefer(pool: &PgPool, user: i64, channel: &str, event: &str, enabled: bool) {
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
pub async fn notify(pool: &PgPool, user: i64, event: &Event, key: &str) -> i64 {
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

pub fn dispute_raised(dispute_id: i64) -> Event {
    Event::DisputeRaised {
        dispute_id,
        market_id: 9,
        title: "<b>Rain</b> & co".into(),
        reason: "The oracle read the wrong city".into(),
    }
}

pub fn balance_changed() -> Event {
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
pub async fn hook_answering(status: u16, body: &str, retry_after: Option<&str>) -> MockServer {
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

pub async fn smtp_sink(credentials: (&str, &str)) -> (u16, mpsc::UnboundedReceiver<Mail>) {
    let listener = sink::loopback().await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let creds = Some((credentials.0.to_owned(), credentials.1.to_owned()));
    tokio::spawn(sink::serve_smtp(listener, creds, tx));
    (port, rx)
}

pub fn smtp_to(port: u16, password: &str) -> impl FnOnce(&mut Settings) {
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

/// The ids of the send jobs in the notifications queue (pending, as no worker runs).
pub async fn queued(env: &Env) -> Vec<String> {
    let page = env
        .client
        .list("notifications", jobfleet::queue::JobState::Pending, 0, 100)
        .await
        .unwrap();
    let mut ids: Vec<String> = page.jobs.into_iter().map(|j| j.id).collect();
    ids.sort();
    ids
}

/// An HTTP proxy stand-in on loopback: it records the first line of every request it gets
/// (`POST http://host/path HTTP/1.1`, or `CONNECT host:443 HTTP/1.1`) and answers each with
/// 200 and a body, as a proxy that reached an internal service would.
pub struct ProxyStandIn {
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ProxyStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut head = vec![0u8; 4096];
                    let n = stream.read(&mut head).await.unwrap_or(0);
                    let text = String::from_utf8_lossy(&head[..n]);
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    record.lock().unwrap().push(line);
                    let body = "{\"internal\": \"admin answer\"}";
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { url, seen }
    }

    /// The request lines it received so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The environment that points every client at it, lower and upper case, with nothing
    /// exempted (so a `NO_PROXY` of the test's own environment cannot hide a bypass).
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        let mut env = Vec::new();
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            env.push((var, self.url.as_str()));
        }
        env.push(("NO_PROXY", ""));
        env.push(("no_proxy", ""));
        env
    }
}
