//! Fixtures of the snapshot tests: users, markets in a state, messages at a time, snapshot
//! rows, and the binary pointed at a test's database and Kubo stand-in.
#![allow(dead_code)]

use std::process::Stdio;

use chrono::{DateTime, Utc};
use jobfleet::db::snapshots::{SnapshotRow, for_market};
use jobfleet::ipfs::document::Window;
use sqlx::PgPool;

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The day the tests snapshot: 2026-11-29, as the 2026-11-30 00:00 tick sees it.
pub fn window() -> Window {
    Window::day_before(at("2026-11-30T00:00:00Z"))
}

pub async fn people(pool: &PgPool) {
    sqlx::query("INSERT INTO users (id, handle) VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')")
        .execute(pool)
        .await
        .unwrap();
}

pub async fn market(pool: &PgPool, state: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO markets (proposer_id, title, state, resolves_at)
         VALUES (1, 'Will it rain?', $1::market_state, '2027-01-01T00:00:00Z') RETURNING id",
    )
    .bind(state)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn say(pool: &PgPool, market: i64, author: i64, content: &str, time: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO discussions (market_id, author_id, content, created_at)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(market)
    .bind(author)
    .bind(content)
    .bind(at(time))
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn rows(pool: &PgPool) -> Vec<SnapshotRow> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT market_id FROM discussion_snapshots ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut all = Vec::new();
    for id in ids {
        all.extend(for_market(pool, id).await.unwrap());
    }
    all
}

/// A snapshot row for pruning tests, whose CID is added (and pinned) on the stand-in.
pub async fn pinned_snapshot(
    pool: &PgPool,
    kubo: &jobfleet::ipfs::KuboClient,
    market: i64,
    day: &str,
    created_at: DateTime<Utc>,
) -> (i64, String) {
    let bytes = format!("{{\"market\":{market},\"day\":\"{day}\"}}");
    let cid = kubo
        .add("x.json", bytes.as_bytes())
        .await
        .unwrap()
        .to_string();
    let id = sqlx::query_scalar(
        "INSERT INTO discussion_snapshots
             (market_id, cid, message_count, window_start, window_end, created_at)
         VALUES ($1, $2, 1, $3::timestamptz, $3::timestamptz + interval '1 day', $4) RETURNING id",
    )
    .bind(market)
    .bind(&cid)
    .bind(at(&format!("{day}T00:00:00Z")))
    .bind(created_at)
    .fetch_one(pool)
    .await
    .unwrap();
    (id, cid)
}

/// The binary, from the crate root, in the test environment, against this database and node.
pub fn jobfleet(pool: &PgPool, endpoint: &str) -> tokio::process::Command {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for sqlx tests");
    let (server, _) = base.rsplit_once('/').unwrap();
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_jobfleet"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("JOBFLEET")) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("JOBFLEET_ENV", "test")
        .env("DATABASE_URL", format!("{server}/{db}"))
        .env("JOBFLEET__IPFS__ENDPOINTS", endpoint)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

pub async fn cli(pool: &PgPool, endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let out = jobfleet(pool, endpoint).args(args).output().await.unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap(),
        text(out.stdout),
        text(out.stderr),
    )
}
