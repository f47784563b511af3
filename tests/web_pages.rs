//! The web board's pages against a real `jobfleet web` process and its own Redis: everything
//! from Redis shown escaped, the actions on jobs (picked, whole states, one job) and the audit
//! log of them, a job's failed attempts, the filter and the search of a queue's page, and the
//! marketplace's pages over a real database.

mod support;

use std::time::Duration;

use jobfleet::queue::payload::Header;
use jobfleet::queue::{JobState, NewJob, QueueClient};
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::json;
use support::TestRedis;
use support::app::client;
use support::web::{OPS, VIEWER, board_with_users};

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
        error: "<script>alert('error')</script>".into(),
        ..Header::default()
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
