//! The marketplace's flows, run by a real worker process against a real anvil and PostgreSQL:
//! a balance sync records one run once its batches are done, and a resolve run settles its
//! markets in child jobs, then dispatches the stakers' notifications.

mod support;

use std::time::Duration;

use jobfleet::db::sync_runs;
use jobfleet::queue::{FlowStatus, NewJob};
use serde_json::json;
use sqlx::PgPool;
use support::TestRedis;
use support::app::{client, eventually};
use support::chain::*;
use support::process::Process;

/// A worker of the shipped specs on this world, with `extra` settings.
fn worker(w: &ChainWorld, pool: &PgPool, redis: &TestRedis, extra: &[(&str, &str)]) -> Process {
    let env = w.env(&database_url(pool), &redis.url());
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push(("JOBFLEET__WORKER__LEASE", "2s"));
    vars.extend_from_slice(extra);
    Process::start(&redis.url(), &vars, &["worker", "--concurrency", "4"])
}

#[sqlx::test]
async fn a_balance_sync_records_one_run_when_its_batches_are_done(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    let redis = TestRedis::start();
    let addrs: Vec<_> = (0..7).map(|i| address(300 + i)).collect();
    people(&pool, &addrs).await;
    let mut worker = worker(
        &w,
        &pool,
        &redis,
        &[("JOBFLEET__CHAIN__BALANCE_BATCH", "3")],
    );
    let c = client(&redis.url()).await;
    c.enqueue(NewJob::new("sync_balances", "chain", json!({})).id("sync-test"))
        .await
        .unwrap();
    let recorded = eventually(Duration::from_secs(60), || async {
        !sync_runs::latest(&pool, 5).await.unwrap().is_empty()
    })
    .await;
    worker.terminate_cleanly();
    assert!(recorded, "no sync run recorded:\n{}", worker.output());
    let runs = sync_runs::latest(&pool, 5).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run.run_id, "sync-test:1");
    assert_eq!(
        (run.batches, run.failed_batches, run.wallets),
        (3, 0, 7),
        "{run:?}"
    );
    assert!(
        run.block_number.is_some() && run.duration_ms >= 0,
        "{run:?}"
    );
    let flow = c.flow(None, "sync-test:1").await.unwrap().unwrap();
    assert_eq!((flow.status, flow.total), (FlowStatus::Succeeded, 3));
    let callback = flow.on_complete.unwrap();
    assert_eq!(callback.kind, "record_sync_run");
    assert!(callback.enqueued_at.is_some());
}

#[sqlx::test]
async fn a_resolve_run_settles_its_markets_then_dispatches_their_notifications(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    let redis = TestRedis::start();
    let users = people(&pool, &(0..3).map(|i| address(400 + i)).collect::<Vec<_>>()).await;
    let stakes = [(0, true, "1000"), (1, false, "500"), (2, true, "250")];
    let market = active_market(&pool, 71, &users, &stakes).await;
    w.report(71, true).await;
    let r = jobfleet::chain::resolution::advance(&w.chain, &pool, None, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(r.resolving, 1);
    // As if the oracle had reported a day ago: the dispute window closed an hour ago.
    sqlx::query(
        "UPDATE markets SET dispute_window_ends_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(market)
    .execute(&pool)
    .await
    .unwrap();
    let mut worker = worker(&w, &pool, &redis, &[]);
    let c = client(&redis.url()).await;
    c.enqueue(NewJob::new("resolve_markets", "chain", json!({})).id("resolve-test"))
        .await
        .unwrap();
    let dispatched = eventually(Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE event = 'market.resolved' AND dispatched_at IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        n == 3
    })
    .await;
    worker.terminate_cleanly();
    assert!(
        dispatched,
        "notifications not dispatched:\n{}",
        worker.output()
    );
    let state: String = sqlx::query_scalar("SELECT state::text FROM markets WHERE id = $1")
        .bind(market)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "RESOLVED");
    let flow = c
        .flow(None, "resolve-test:1:settle")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (flow.status, flow.total, flow.succeeded),
        (FlowStatus::Succeeded, 1, 1)
    );
    let callback = flow.on_complete.unwrap();
    assert_eq!(callback.kind, "dispatch_notifications");
    // The notifications were written with the payouts, and dispatched after them.
    let order_ok: bool = sqlx::query_scalar(
        "SELECT bool_and(n.dispatched_at >= m.resolved_at) FROM notifications n
         JOIN markets m ON m.id = $1 WHERE n.event = 'market.resolved'",
    )
    .bind(market)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(order_ok);
}
