//! The web board and the HTTP API, against a real `jobfleet web` process and its own Redis:
//! sign-in, roles, CSRF, session expiry, the trusted proxy, escaping of everything that comes
//! from Redis, the board's actions on jobs, and the API's status codes, idempotent ids, bulk
//! results and OpenAPI document.

mod support;

use std::time::Duration;

use jobfleet::queue::payload::Header;
use jobfleet::queue::{JobState, NewJob, QueueClient};
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestRedis;
use support::app::client;
use support::web::{Board, add_user, token};

const OPS: (&str, &str) = ("ops", "operator-password");
const VIEWER: (&str, &str) = ("vic", "viewer-password");

async fn board_with_users(redis: &TestRedis, env: &[(&str, &str)]) -> Board {
    add_user(&redis.url(), OPS.0, "operator", OPS.1);
    add_user(&redis.url(), VIEWER.0, "viewer", VIEWER.1);
    Board::start(&redis.url(), env).await
}

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

/// Stores a dead job whose kind, args and error hold markup, as a hostile producer could.
async fn hostile_dead_job(client: &QueueClient, queue: &str) -> String {
    let id = "hostile-1".to_owned();
    let envelope = json!({
        "id": id, "kind": "<script>alert('kind')</script>", "queue": queue,
        "args": {"note": "<script>alert('args')</script>"}, "max_attempts": 1, "created_at": 1
    });
    let stored = Header {
        attempts: 1,
        max_attempts: 1,
        id: id.clone(),
        failed_at: 2,
        unique: String::new(),
        error: "<script>alert('error')</script>".into(),
    }
    .encode(&envelope.to_string());
    client.register_queue(queue).await.unwrap();
    let dead = client.keys().queue(queue).dead();
    let _: () = client.connection().zadd(dead, stored, 1000).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_from_redis_is_shown_escaped_on_every_page() {
    let redis = TestRedis::start();
    let client = client(&redis.url()).await;
    let id = hostile_dead_job(&client, "default").await;
    let board = board_with_users(&redis, &[]).await;
    let s = board.sign_in(OPS.0, OPS.1).await.unwrap();
    // An action on it puts its id and the outcome into the audit log too.
    let _ = s
        .post(
            "/queues/default/act",
            &[("state", "dead"), ("action", "kill"), ("id", &id)],
        )
        .await;
    for path in [
        "/",
        "/queues/default?state=dead",
        "/jobs/hostile-1",
        "/audit",
        "/schedules",
        "/workers",
    ] {
        let p = s.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert!(
            !p.body.contains("<script>alert"),
            "{path} shows markup from Redis unescaped:\n{}",
            p.body
        );
    }
    let dead_tab = s.get("/queues/default?state=dead").await.body;
    assert!(
        dead_tab.contains("&lt;script&gt;alert('kind')"),
        "{dead_tab}"
    );
    let job = s.get("/jobs/hostile-1").await.body;
    for part in ["kind", "args", "error"] {
        assert!(
            job.contains(&format!("&lt;script&gt;alert('{part}')")),
            "{part}: {job}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_retries_kills_and_deletes_jobs() {
    let redis = TestRedis::start();
    let client = client(&redis.url()).await;
    let board = board_with_users(&redis, &[]).await;
    let s = board.sign_in(OPS.0, OPS.1).await.unwrap();
    let ids: Vec<String> = (0..3).map(|i| format!("job-{i}")).collect();
    for id in &ids {
        client
            .enqueue(NewJob::new("noop", "default", json!({})).id(id))
            .await
            .unwrap();
    }
    // Kill two pending jobs from the pending tab: they go to dead.
    let p = s
        .post(
            "/queues/default/act",
            &[
                ("state", "pending"),
                ("action", "kill"),
                ("id", &ids[0]),
                ("id", &ids[1]),
                ("cursor", "0"),
                ("limit", "50"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(p.location.contains("done+to+2"), "{}", p.location);
    assert_eq!(client.show(&ids[0]).await.unwrap().state, JobState::Dead);
    // Retry one from the dead tab: it leaves the dead set with a fresh set of attempts.
    let p = s
        .post(
            "/queues/default/act",
            &[("state", "dead"), ("action", "retry"), ("id", &ids[0])],
        )
        .await;
    assert!(p.location.contains("done+to+1"), "{}", p.location);
    let job = client.show(&ids[0]).await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
    // An id no longer in the state is reported, not acted on.
    let p = s
        .post(
            "/queues/default/act",
            &[("state", "dead"), ("action", "retry"), ("id", &ids[0])],
        )
        .await;
    assert!(p.location.contains("no+longer"), "{}", p.location);
    // "Delete all dead" needs its confirm step.
    let confirm = s.get("/queues/default/all?state=dead&action=delete").await;
    assert!(confirm.body.contains("1 job(s)"), "{}", confirm.body);
    let unconfirmed = s
        .post(
            "/queues/default/all",
            &[("state", "dead"), ("action", "delete")],
        )
        .await;
    assert!(unconfirmed.location.contains("not+confirmed"));
    assert_eq!(client.stats("default").await.unwrap().dead, 1);
    let p = s
        .post(
            "/queues/default/all",
            &[("state", "dead"), ("action", "delete"), ("confirm", "yes")],
        )
        .await;
    assert!(p.location.contains("done+to+1"), "{}", p.location);
    assert_eq!(client.stats("default").await.unwrap().dead, 0);
    // One job's own page deletes it.
    let p = s.post(&format!("/jobs/{}/delete", ids[2]), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(client.show(&ids[2]).await.is_err());
    // A job that failed shows each failed attempt, with its worker and error.
    let failing = client
        .enqueue(NewJob::new("noop", "default", json!({})).id("failing"))
        .await
        .unwrap();
    let leased = client
        .fetch("default", 10, Duration::from_secs(30), "host:1:w")
        .await
        .unwrap()
        .jobs;
    let mine = leased
        .iter()
        .find(|j| j.id() == failing.id)
        .expect("leased");
    let outcome = jobfleet::queue::Settle {
        job: mine,
        action: jobfleet::queue::SettleAction::Retry,
        due_ms: jobfleet::queue::now_ms() + 60_000,
        error: "<i>boom</i>".into(),
    };
    client
        .settle(
            "default",
            "host:1:w",
            &jobfleet::queue::Call::new("settle"),
            &[outcome],
        )
        .await
        .unwrap();
    let page = s.get("/jobs/failing").await.body;
    assert!(
        page.contains("Failed attempts") && page.contains("host:1:w"),
        "{page}"
    );
    assert!(
        page.contains("&lt;i&gt;boom&lt;/i&gt;") && !page.contains("<i>boom"),
        "{page}"
    );
    let audit = s.get("/audit").await.body;
    for action in ["kill", "retry", "delete-all", "delete"] {
        assert!(
            audit.contains(&format!("<td>{action}</td>")),
            "{action}: {audit}"
        );
    }
}

/// The API as a producer calls it.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API call");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_with_the_status_codes_it_documents() {
    let redis = TestRedis::start();
    let url = redis.url();
    let producer = token(&url, "producer", "enqueue,read");
    let reader = token(&url, "reader", "read");
    let ops = token(&url, "ops", "operate");
    let board = Board::start(&url, &[]).await;
    let api = Api {
        http: board.http(),
        base: board.base(),
    };
    let j = "/api/v1/jobs";

    assert_eq!(
        api.get("/api/v1/queues", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/api/v1/queues", Some("jft_0000")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.post(j, &reader, json!({"kind": "noop"})).await.0,
        StatusCode::FORBIDDEN
    );

    let (st, body) = api
        .post(j, &producer, json!({"kind": "noop", "id": "order-7"}))
        .await;
    assert_eq!(
        (st, body["id"].clone()),
        (StatusCode::CREATED, json!("order-7")),
        "{body}"
    );
    let (st, again) = api
        .post(j, &producer, json!({"kind": "noop", "id": "order-7"}))
        .await;
    assert_eq!(
        (st, again["created"].clone()),
        (StatusCode::OK, json!(false)),
        "a retried request stores nothing new"
    );
    for (bad, why) in [
        (json!({"kind": "no_such_kind"}), "unknown job kind"),
        (
            json!({"kind": "sleep", "args": {"ms": "long"}}),
            "args do not decode",
        ),
        (json!({"kind": "noop", "queue": "nowhere"}), "unknown queue"),
        (json!({"kind": "noop", "in": "soon"}), "not a duration"),
        (json!({"kind": "noop", "extra": 1}), "unknown field"),
    ] {
        let (st, body) = api.post(j, &producer, bad.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(why),
            "{bad}: {body}"
        );
    }
    let (st, delayed) = api
        .post(j, &producer, json!({"kind": "noop", "in": 60}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let delayed_id = delayed["id"].as_str().unwrap().to_owned();

    let (st, job) = api.get(&format!("{j}/order-7"), Some(&reader)).await;
    assert_eq!(
        (st, job["state"].clone(), job["kind"].clone()),
        (StatusCode::OK, json!("pending"), json!("noop"))
    );
    assert_eq!(
        api.get(&format!("{j}/nope"), Some(&reader)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&format!("{j}/order-7"), &producer).await.0,
        StatusCode::FORBIDDEN
    );
    let (st, retried) = api
        .post(&format!("{j}/{delayed_id}/retry"), &ops, json!({}))
        .await;
    assert_eq!(
        (st, retried["previous_state"].clone()),
        (StatusCode::OK, json!("scheduled"))
    );
    let (st, _) = api
        .post(&format!("{j}/order-7/retry"), &ops, json!({}))
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a pending job is not retried"
    );
    let (st, deleted) = api.delete(&format!("{j}/order-7"), &ops).await;
    assert_eq!(
        (st, deleted["previous_state"].clone()),
        (StatusCode::OK, json!("pending"))
    );
    assert_eq!(
        api.delete(&format!("{j}/order-7"), &ops).await.0,
        StatusCode::NOT_FOUND
    );

    let jobs = json!({"jobs": [
        {"kind": "noop", "id": "b-1"}, {"kind": "nope"}, {"kind": "noop", "id": "b-1"}, {"kind": "noop", "args": []}
    ]});
    let (st, bulk) = api.post(&format!("{j}/bulk"), &producer, jobs).await;
    assert_eq!(st, StatusCode::OK, "{bulk}");
    let statuses: Vec<u64> = bulk["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 200, 422], "{bulk}");
    let counts = (
        bulk["created"].clone(),
        bulk["existing"].clone(),
        bulk["failed"].clone(),
    );
    assert_eq!(counts, (json!(1), json!(1), json!(2)));

    let (st, queues) = api.get("/api/v1/queues", Some(&reader)).await;
    assert_eq!(st, StatusCode::OK);
    let default = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "default")
        .expect("default listed");
    assert_eq!(default["pending"], json!(2), "{queues}");

    let (st, doc) = api.get("/api/v1/openapi.json", Some(&reader)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert!(doc["paths"]["/api/v1/jobs/bulk"]["post"].is_object());
    assert_eq!(
        api.get("/api/v1/openapi.json", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A revoked token stops working at once.
    let out = support::cli::jobfleet(&url)
        .args(["web", "token", "revoke", "reader"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        api.get("/api/v1/queues", Some(&reader)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn the_marketplace_pages_show_the_outbox_and_the_deliveries_escaped(pool: sqlx::PgPool) {
    let redis = TestRedis::start();
    let db = support::chain::database_url(&pool);
    let row =
        support::chain::outbox_row(&pool, "approve:7", "approveMarket", json!({"marketId": 7}))
            .await;
    sqlx::query("UPDATE chain_outbox SET status = 'FAILED', last_error = '<script>alert(1)</script> reverted' WHERE id = $1")
        .bind(row)
        .execute(&pool)
        .await
        .unwrap();
    let user: i64 = sqlx::query_scalar("INSERT INTO users (handle) VALUES ('ann') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    let note: i64 = sqlx::query_scalar(
        "INSERT INTO notifications (user_id, event, payload, dedupe_key) VALUES ($1, 'market.approved', '{}', 'n1') RETURNING id",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notification_deliveries (notification_id, channel, attempt, status, response_code, error)
         VALUES ($1, 'webhook', 2, 'failed', 500, '<b>upstream</b> said no')",
    )
    .bind(note)
    .execute(&pool)
    .await
    .unwrap();
    let board = board_with_users(&redis, &[("DATABASE_URL", &db)]).await;
    let s = board.sign_in(VIEWER.0, VIEWER.1).await.unwrap();
    let outbox = s.get("/market/outbox?status=FAILED").await;
    assert_eq!(outbox.status, StatusCode::OK, "{}", outbox.body);
    assert!(
        outbox.body.contains("approveMarket") && outbox.body.contains("&lt;script&gt;alert(1)"),
        "{}",
        outbox.body
    );
    assert!(!outbox.body.contains("<script>alert"));
    let empty = s.get("/market/outbox?status=CONFIRMED").await.body;
    assert!(empty.contains("No outbox row here."), "{empty}");
    let deliveries = s.get("/market/deliveries").await;
    assert_eq!(deliveries.status, StatusCode::OK);
    assert!(
        deliveries
            .body
            .contains("&lt;b&gt;upstream&lt;/b&gt; said no")
            && deliveries.body.contains("500"),
        "{}",
        deliveries.body
    );
    let empty = s.get("/market/stats").await.body;
    assert!(empty.contains("No figures yet"), "{empty}");
    let period = jobfleet::db::stats::StatsPeriod::ending_at(chrono::Utc::now());
    assert!(jobfleet::db::stats::record(&pool, period).await.unwrap());
    let figures = s.get("/market/stats").await;
    assert_eq!(figures.status, StatusCode::OK, "{}", figures.body);
    assert!(
        figures.body.contains("<table id=\"stats\">")
            && figures.body.contains("Points issued per quarter hour"),
        "{}",
        figures.body
    );
    assert!(
        s.get("/").await.body.contains("href=\"/market/outbox\""),
        "the pages are in the navigation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_page_filters_by_kind_and_searches_args_a_window_at_a_time() {
    let redis = TestRedis::start();
    let client = client(&redis.url()).await;
    let mut jobs = Vec::new();
    for i in 0..300 {
        let kind = if i % 3 == 0 { "sleep" } else { "noop" };
        let tag = if i == 250 { "needle" } else { "hay" };
        jobs.push(NewJob::new(kind, "default", json!({ "i": i, "tag": tag })));
    }
    // In order, so that a job's rank is its number.
    client.enqueue_bulk_ordered(jobs).await.unwrap();
    let board = board_with_users(&redis, &[]).await;
    let s = board.sign_in(VIEWER.0, VIEWER.1).await.unwrap();
    let rows = |body: &str| body.matches("<tr data-id=").count();
    let sleeps = s.get("/queues/default?state=pending&kind=sleep").await.body;
    assert_eq!(rows(&sleeps), 50, "a full page of the kind");
    assert!(!sleeps.contains("<td>noop</td>"), "only the kind asked for");
    assert!(sleeps.contains("id=\"next-page\""), "and a next page");
    let rest = s
        .get("/queues/default?state=pending&cursor=151&kind=sleep")
        .await
        .body;
    assert_eq!(rows(&rest), 49);
    assert!(
        !rest.contains("id=\"next-page\""),
        "the queue ends within this window"
    );
    let needle = s
        .get("/queues/default?state=pending&q=%22needle%22")
        .await
        .body;
    assert_eq!(rows(&needle), 1, "{needle}");
    assert!(needle.contains("Searched 300 jobs"), "{needle}");
}
