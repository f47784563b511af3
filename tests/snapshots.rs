//! Discussion snapshots against a real PostgreSQL (a fresh database per test) and the Kubo RPC
//! stand-in: the published bytes and CIDs, re-runs, parts, pruning, retries.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jobfleet::db::snapshots::for_market;
use jobfleet::ipfs::cid::MAX_BLOCK;
use jobfleet::job::{Attempt, Client, Specs};
use jobfleet::jobs::prune_snapshots::prune;
use jobfleet::jobs::snapshot_discussions::{SnapshotDiscussions, snapshot_window};
use jobfleet::jobs::{Job, JobContext, JobError, Resources};
use sqlx::PgPool;
use support::discussions::{at, market, people, pinned_snapshot, rows, say, window};
use support::kubo::{self, independent_cid};

const NINETY_DAYS: Duration = Duration::from_secs(90 * 86_400);

#[sqlx::test]
async fn a_day_is_published_byte_for_byte(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    let before = say(&pool, m, 1, "too early", "2026-11-28T23:59:59.999999Z").await;
    let first = say(&pool, m, 2, "Yes \"really\" — 70%", "2026-11-29T00:00:00Z").await;
    let gone = say(&pool, m, 3, "deleted later", "2026-11-29T09:00:00Z").await;
    let second = say(&pool, m, 1, "no", "2026-11-29T23:59:59.123456Z").await;
    let after = say(&pool, m, 1, "too late", "2026-11-30T00:00:00Z").await;
    sqlx::query("UPDATE discussions SET deleted_at = now() WHERE id = $1")
        .bind(gone)
        .execute(&pool)
        .await
        .unwrap();
    // Live for discussion, in the other two states: snapshotted.
    let resolving = market(&pool, "RESOLVING").await;
    say(&pool, resolving, 1, "r", "2026-11-29T12:00:00Z").await;
    let disputed = market(&pool, "DISPUTED").await;
    say(&pool, disputed, 1, "d", "2026-11-29T12:00:00Z").await;
    // Not live: not snapshotted, whatever their discussions.
    for state in ["PROPOSED", "APPROVED", "RESOLVED", "CANCELLED", "REJECTED"] {
        let other = market(&pool, state).await;
        say(&pool, other, 1, "x", "2026-11-29T12:00:00Z").await;
    }
    // Live but silent that day: no snapshot.
    market(&pool, "ACTIVE").await;

    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);
    let now = at("2026-11-30T00:00:07Z");
    let report = snapshot_window(&pool, &client, window(), now)
        .await
        .unwrap();
    assert_eq!(
        (report.snapshots, report.messages, report.blocks),
        (3, 4, 3)
    );

    let expected = format!(
        "{{\"kind\":\"discussion_snapshot\",\"market_id\":{m},\
         \"window_start\":\"2026-11-29T00:00:00.000000Z\",\"window_end\":\"2026-11-30T00:00:00.000000Z\",\
         \"count\":2,\"messages\":[\
         {{\"id\":{first},\"author_id\":2,\"created_at\":\"2026-11-29T00:00:00.000000Z\",\"content\":\"Yes \\\"really\\\" — 70%\"}},\
         {{\"id\":{second},\"author_id\":1,\"created_at\":\"2026-11-29T23:59:59.123456Z\",\"content\":\"no\"}}]}}"
    );
    let cid = independent_cid(expected.as_bytes());
    let stored = for_market(&pool, m).await.unwrap();
    assert_eq!(stored.len(), 1);
    let row = &stored[0];
    assert_eq!(row.cid, cid);
    assert_eq!(row.message_count, 2);
    assert!(row.part_cids.is_empty());
    assert_eq!(
        (row.window_start, row.window_end),
        (window().start, window().end)
    );
    assert_eq!(row.created_at, now);
    assert_eq!(row.pruned_at, None);
    let published = node.node.block(&cid).expect("the block is on the node");
    assert_eq!(String::from_utf8(published).unwrap(), expected);
    assert!(node.node.is_pinned(&cid));
    assert!(!expected.contains(&format!("\"id\":{before},")));
    assert!(!expected.contains(&format!("\"id\":{after},")));
    let markets: Vec<i64> = rows(&pool).await.iter().map(|r| r.market_id).collect();
    assert_eq!(markets, vec![m, resolving, disputed]);
}

#[sqlx::test]
async fn re_runs_publish_nothing_new(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    say(&pool, m, 1, "hello", "2026-11-29T10:00:00Z").await;
    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);
    let first = snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    assert_eq!(first.snapshots, 1);
    let cid = rows(&pool).await[0].cid.clone();
    assert_eq!(node.node.adds(), 1);

    // A second run finds the window done: no upload, no row.
    let again = snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    assert_eq!((again.snapshots, again.blocks), (0, 0));
    assert_eq!(node.node.adds(), 1);
    assert_eq!(rows(&pool).await.len(), 1);

    // A crash between the upload and the insert (the row missing): the retry uploads the same
    // bytes, so the same CID, and records it once.
    sqlx::query("DELETE FROM discussion_snapshots")
        .execute(&pool)
        .await
        .unwrap();
    let retry = snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    assert_eq!(retry.snapshots, 1);
    assert_eq!(node.node.adds(), 2);
    assert_eq!(node.node.pins(), vec![cid.clone()]);
    let after = rows(&pool).await;
    assert_eq!((after.len(), after[0].cid.as_str()), (1, cid.as_str()));
}

#[sqlx::test]
async fn a_day_over_one_block_is_split_into_parts(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    let text = "a considered opinion ".repeat(100); // 2,100 bytes
    sqlx::query(
        "INSERT INTO discussions (market_id, author_id, content, created_at)
         SELECT $1, 1 + i % 3, $2 || i, '2026-11-29T00:00:00Z'::timestamptz + i * interval '1 minute'
         FROM generate_series(1, 300) i",
    )
    .bind(m)
    .bind(&text)
    .execute(&pool)
    .await
    .unwrap();
    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);
    let report = snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    let row = rows(&pool).await.remove(0);
    assert_eq!(row.message_count, 300);
    assert!(row.part_cids.len() >= 3, "{} parts", row.part_cids.len());
    assert_eq!(report.blocks, row.part_cids.len() + 1);

    let mut contents = Vec::new();
    for (i, part) in row.part_cids.iter().enumerate() {
        let bytes = node.node.block(part).unwrap();
        assert!(
            bytes.len() <= MAX_BLOCK,
            "part {i} has {} bytes",
            bytes.len()
        );
        assert_eq!(independent_cid(&bytes), *part);
        assert!(node.node.is_pinned(part));
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["kind"], "discussion_snapshot_part");
        assert_eq!(doc["part"], i + 1);
        assert_eq!(doc["parts"], row.part_cids.len());
        for msg in doc["messages"].as_array().unwrap() {
            contents.push(msg["content"].as_str().unwrap().to_owned());
        }
    }
    let all: Vec<String> = (1..=300).map(|i| format!("{text}{i}")).collect();
    assert_eq!(contents, all, "every message once, oldest first");
    let index = node.node.block(&row.cid).unwrap();
    assert_eq!(independent_cid(&index), row.cid);
    let doc: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(doc["kind"], "discussion_snapshot_index");
    assert_eq!(doc["count"], 300);
    assert_eq!(doc["parts"], serde_json::json!(row.part_cids));

    // Pruning unpins every part and the index.
    sqlx::query("UPDATE discussion_snapshots SET created_at = now() - interval '91 days'")
        .execute(&pool)
        .await
        .unwrap();
    let pruned = prune(&pool, &client, NINETY_DAYS, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (pruned.pruned, pruned.unpinned),
        (1, row.part_cids.len() + 1)
    );
    assert!(node.node.pins().is_empty());
}

#[sqlx::test]
async fn pruning_keeps_89_days_23_hours_and_prunes_90_days(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);
    let now = at("2026-11-30T03:00:00Z");
    let day = chrono::Duration::days(1);
    let (old, old_cid) = pinned_snapshot(&pool, &client, m, "2026-08-31", now - day * 90).await;
    let young = now - day * 89 - chrono::Duration::hours(23);
    let (_, young_cid) = pinned_snapshot(&pool, &client, m, "2026-09-01", young).await;

    let report = prune(&pool, &client, NINETY_DAYS, now).await.unwrap();
    assert_eq!((report.pruned, report.unpinned), (1, 1));
    assert!(!node.node.is_pinned(&old_cid));
    assert!(node.node.is_pinned(&young_cid));
    let all = rows(&pool).await;
    assert_eq!(all.len(), 2, "pruned rows stay for the audit trail");
    for r in &all {
        let expected = (r.id == old).then_some(now);
        assert_eq!(r.pruned_at, expected, "snapshot {}", r.cid);
    }
    // A re-run has nothing left to do.
    let again = prune(&pool, &client, NINETY_DAYS, now).await.unwrap();
    assert_eq!(again.pruned, 0);
    assert_eq!(node.node.calls(), 2 + 1, "two adds and one pin/rm");
}

#[sqlx::test]
async fn an_already_unpinned_cid_is_pruned_without_error(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);
    let now = Utc::now();
    let (_, cid) = pinned_snapshot(&pool, &client, m, "2026-01-01", now - NINETY_DAYS * 2).await;
    client.unpin(&cid).await.unwrap();
    let report = prune(&pool, &client, NINETY_DAYS, now).await.unwrap();
    assert_eq!(
        (report.pruned, report.unpinned, report.already_unpinned),
        (1, 0, 1)
    );
    assert!(rows(&pool).await[0].pruned_at.is_some());
}

#[sqlx::test]
async fn a_500_is_a_retryable_error_and_the_next_run_succeeds(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    say(&pool, m, 1, "hello", "2026-11-29T10:00:00Z").await;
    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);

    node.node.fail_next(1);
    let e = snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("injected failure"), "{e}");
    assert!(matches!(e.into_job_error(), JobError::Retry(_)));
    assert!(rows(&pool).await.is_empty());
    snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    assert_eq!(rows(&pool).await.len(), 1);

    sqlx::query("UPDATE discussion_snapshots SET created_at = now() - interval '100 days'")
        .execute(&pool)
        .await
        .unwrap();
    node.node.fail_next(1);
    let e = prune(&pool, &client, NINETY_DAYS, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e.into_job_error(), JobError::Retry(_)));
    assert!(rows(&pool).await[0].pruned_at.is_none());
    let report = prune(&pool, &client, NINETY_DAYS, Utc::now())
        .await
        .unwrap();
    assert_eq!((report.pruned, report.unpinned), (1, 1));
}

#[sqlx::test]
async fn the_next_endpoint_is_used_when_the_first_is_down_or_failing(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    say(&pool, m, 1, "hello", "2026-11-29T10:00:00Z").await;
    let failing = kubo::start().await;
    failing.node.fail_next(1_000);
    let node = kubo::start().await;
    let client = kubo::client(&[kubo::dead_endpoint(), failing.url(), node.url()]);
    let report = snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    assert_eq!(report.snapshots, 1);
    assert_eq!(failing.node.calls(), 1);
    assert_eq!((failing.node.adds(), node.node.adds()), (0, 1));
    assert!(node.node.is_pinned(&rows(&pool).await[0].cid));

    // All of them failing: retryable, and the error names each one.
    let dead = kubo::client(&[kubo::dead_endpoint(), failing.url()]);
    let e = dead.unpin(&rows(&pool).await[0].cid).await.unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains(&failing.url()), "{e}");
}

#[sqlx::test]
async fn the_handler_snapshots_the_day_before_its_tick_or_the_day_given(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    say(&pool, m, 1, "in", "2026-11-29T10:00:00Z").await;
    say(&pool, m, 1, "out", "2026-11-30T00:30:00Z").await;
    let node = kubo::start().await;
    let redis = support::TestRedis::start();
    let mut settings = support::app::settings(&redis.url());
    settings.ipfs.endpoints = vec![jobfleet::config::SecretUrl::new(node.url())];
    let queue = support::app::client(&redis.url()).await;
    let resources = Arc::new(Resources::with_pool(queue.clone(), settings, pool.clone()));
    // A retry late in the day still snapshots the day before the tick.
    let attempt = Attempt {
        id: "snapshot-discussions:1".into(),
        queue: "default".into(),
        attempt: 1,
        max_attempts: 8,
        enqueued_at_ms: at("2026-11-30T00:00:00Z").timestamp_millis(),
    };
    let client = Client::new(queue, Arc::new(Specs::default()));
    let ctx = JobContext::new(attempt, resources, client);
    node.node.fail_next(1);
    let e = SnapshotDiscussions::default().run(ctx.clone()).await;
    assert!(matches!(e, Err(JobError::Retry(_))), "{e:?}");
    SnapshotDiscussions::default()
        .run(ctx.clone())
        .await
        .unwrap();
    let all = rows(&pool).await;
    assert_eq!((all.len(), all[0].message_count), (1, 1));
    assert_eq!(all[0].window_start, window().start);

    // A day named in the args: one that has not ended is refused, since it would be frozen
    // half-way; an earlier one is snapshotted whatever the tick.
    let today = SnapshotDiscussions {
        day: Some(Utc::now().date_naive()),
    };
    let e = today.run(ctx.clone()).await;
    assert!(matches!(e, Err(JobError::Fatal(_))), "{e:?}");
    say(&pool, m, 2, "earlier", "2026-11-27T10:00:00Z").await;
    let earlier = SnapshotDiscussions {
        day: chrono::NaiveDate::from_ymd_opt(2026, 11, 27),
    };
    earlier.run(ctx).await.unwrap();
    let all = rows(&pool).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].window_start, at("2026-11-27T00:00:00Z"));
}
