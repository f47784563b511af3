//! The indexer (with a reorg made by `anvil_reorg`) and the balance sync against a real anvil
//! and real PostgreSQL.

mod support;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use jobfleet::chain::sender::Sender;
use jobfleet::chain::{indexer, receipts};
use jobfleet::db::governance::decide_proposals;
use jobfleet::db::outbox;
use sqlx::PgPool;
use support::chain::*;

#[sqlx::test]
async fn a_reorg_is_detected_and_the_index_healed(pool: PgPool) {
    let w = ChainWorld::start(
        &[],
        &[
            ("JOBFLEET__CHAIN__CONFIRMATIONS", "0"),
            ("JOBFLEET__CHAIN__REORG_DEPTH", "8"),
            ("JOBFLEET__CHAIN__REPLACE_AFTER", "0s"),
        ],
    )
    .await;
    ten_people(&pool).await;
    let market = proposed_market(&pool, 51, 10).await;
    decide_proposals(&pool, PROPOSAL, chrono::Utc::now())
        .await
        .unwrap();
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    assert_eq!(sender.run(100).await.unwrap().sent, 1);
    w.mine(2).await;
    let first = indexer::index(&w.chain, &pool).await.unwrap();
    assert_eq!(first.events, 1);
    let (old_tx, old_block) = approval(&pool, market).await;
    assert!(old_tx.is_some());

    // Replace the last 4 blocks (the approval among them) with empty ones: the approval is
    // no longer on the canonical chain.
    w.rpc("anvil_reorg", serde_json::json!([4, []])).await;
    let healed = indexer::index(&w.chain, &pool).await.unwrap();
    assert!(healed.reorg_to.is_some(), "{healed:?}");
    assert_eq!(healed.forgotten, 1, "{healed:?}");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM chain_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 0, "the orphaned event is gone");
    assert_eq!(
        approval(&pool, market).await,
        (None, None),
        "and so is its effect"
    );
    let (cursor, hash): (i64, String) =
        sqlx::query_as("SELECT block_number, block_hash FROM chain_cursors")
            .fetch_one(&pool)
            .await
            .unwrap();
    let block = w
        .chain
        .provider
        .get_block_by_number((cursor as u64).into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hash,
        format!("{:#x}", block.header.hash),
        "the cursor is on the new chain"
    );

    // The confirmer finds no receipt for the submitted approval any more and sends it again
    // with the same nonce; the indexer then finds it on the new chain.
    let report = receipts::confirm(&w.chain, &pool, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.replaced, 1, "{report:?}");
    w.mine(1).await;
    let again = indexer::index(&w.chain, &pool).await.unwrap();
    assert_eq!(again.events, 1, "{again:?}");
    let (new_tx, new_block) = approval(&pool, market).await;
    assert!(
        new_tx.is_some() && new_tx != old_tx,
        "{old_tx:?} {new_tx:?}"
    );
    assert!(new_block.is_some() && new_block != old_block || new_tx != old_tx);
}

#[sqlx::test]
async fn balances_sync_against_real_token_balances_and_write_only_changes(pool: PgPool) {
    let w = ChainWorld::start(&[], &[("JOBFLEET__CHAIN__LARGE_CHANGE_BP", "5000")]).await;
    let addrs: Vec<Address> = (0..3).map(|i| address(100 + i)).collect();
    let ids = people(&pool, &addrs).await;
    let d = w.deployment;
    w.mint(d.usdc, addrs[0], U256::from(1_000_000u64)).await;
    w.mint(d.usdt, addrs[1], U256::from(2_500_000u64)).await;
    w.mint(d.pts, addrs[2], U256::from(10u64).pow(U256::from(24u64)))
        .await;
    w.rpc(
        "anvil_setBalance",
        serde_json::json!([format!("{:#x}", addrs[0]), "0xde0b6b3a7640000"]),
    )
    .await;

    let wallets = jobfleet::db::balances::wallets(&pool, 0, 500)
        .await
        .unwrap();
    assert_eq!(wallets.len(), 3);
    let report = jobfleet::chain::balances::sync_batch(&w.chain, &pool, &wallets)
        .await
        .unwrap();
    assert_eq!(
        (report.wallets, report.read, report.changed),
        (3, 12, 12),
        "{report:?}"
    );
    let balance = |wallet: i64, token: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT balance::text FROM wallet_balances WHERE wallet_id = $1 AND token = $2",
            )
            .bind(wallet)
            .bind(token)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let lower = |a: Address| format!("{a:#x}");
    assert_eq!(
        balance(ids[0].1, "native".into()).await,
        "1000000000000000000"
    );
    assert_eq!(balance(ids[0].1, lower(d.usdc)).await, "1000000");
    assert_eq!(balance(ids[1].1, lower(d.usdt)).await, "2500000");
    assert_eq!(
        balance(ids[2].1, lower(d.pts)).await,
        "1000000000000000000000000"
    );
    assert_eq!(balance(ids[1].1, lower(d.usdc)).await, "0");
    let notified: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(notified, 0, "a first reading is not a change");

    // Nothing changed: nothing written.
    let again = jobfleet::chain::balances::sync_batch(&w.chain, &pool, &wallets)
        .await
        .unwrap();
    assert_eq!(again.changed, 0);
    // A small and a large change: both written with the new block, only the large notified.
    w.mint(d.usdc, addrs[0], U256::from(100_000u64)).await; // +10%
    w.mint(d.usdt, addrs[1], U256::from(5_000_000u64)).await; // +200%
    let third = jobfleet::chain::balances::sync_batch(&w.chain, &pool, &wallets)
        .await
        .unwrap();
    assert_eq!((third.changed, third.notified), (2, 1), "{third:?}");
    let (user, payload): (i64, serde_json::Value) = sqlx::query_as(
        "SELECT user_id, payload FROM notifications WHERE event = 'balance.changed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(user, ids[1].0);
    assert_eq!(payload["symbol"], "USDT");
    assert_eq!(
        (payload["old"].as_str(), payload["new"].as_str()),
        (Some("2500000"), Some("7500000"))
    );
    let blocks: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT block_number FROM wallet_balances ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        blocks,
        vec![report.block as i64, third.block as i64],
        "unchanged rows keep the block they were read at"
    );
}

#[sqlx::test]
async fn the_fan_out_splits_wallets_into_batches(pool: PgPool) {
    let addrs: Vec<Address> = (0..1201).map(address).collect();
    people(&pool, &addrs).await;
    let starts = jobfleet::db::balances::batch_starts(&pool, 500)
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM wallets ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(starts, vec![ids[0], ids[500], ids[1000]]);
}

#[sqlx::test]
async fn chain_status_shows_the_indexed_block_the_head_and_the_lag(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    let redis = support::TestRedis::start();
    indexer::index(&w.chain, &pool).await.unwrap();
    w.mine(3).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jobfleet"))
        .args(["chain", "status", "--json"])
        .envs(w.env(&database_url(&pool), &redis.url()))
        .output()
        .expect("jobfleet runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let head = w.head().await;
    assert_eq!(status["head"], head);
    assert_eq!(status["last_indexed_block"], head - 3);
    assert_eq!(status["lag"], 3);
    assert_eq!(status["signer"], format!("{:#x}", w.owner.address()));
}

#[sqlx::test]
async fn after_a_node_reset_the_chain_bookkeeping_is_forgotten_and_sending_resumes(pool: PgPool) {
    // A database that lived with one chain...
    let old = ChainWorld::start(&[], &[]).await;
    for n in 0..3 {
        approve_row(&pool, &format!("old-{n}"), 60 + n).await;
    }
    let sent = Sender::new(&old.chain, &pool).await.unwrap();
    assert_eq!(sent.run(100).await.unwrap().sent, 3);
    old.mine(5).await;
    indexer::index(&old.chain, &pool).await.unwrap();
    drop(old);
    // ... meets a fresh node (same chain id, another genesis): the old chain's nonce, cursor
    // and events are its own, so the indexer follows the new chain from its start at once,
    // and the old chain's in-flight rows are left alone until the reset sends them again.
    let later = support::anvil::later_genesis();
    let new = ChainWorld::start(&[&later[0], &later[1]], &[]).await;
    let here = new.chain.identity().await.unwrap();
    assert_eq!(indexer::index(&new.chain, &pool).await.unwrap().events, 0);
    let f = outbox::forget_chain(&pool, 31337, &here.genesis)
        .await
        .unwrap();
    assert_eq!(
        (f.signers, f.cursors, f.events, f.requeued),
        (1, 1, 3, 3),
        "{f:?}"
    );
    let first = new.signer_nonce().await;
    let report = Sender::new(&new.chain, &pool)
        .await
        .unwrap()
        .run(100)
        .await
        .unwrap();
    assert_eq!(report.sent, 3, "{report:?}");
    assert_eq!(
        new.signer_nonce().await,
        first + 3,
        "from the new chain's own nonce"
    );
    assert_eq!(
        receipts::confirm(&new.chain, &pool, chrono::Utc::now())
            .await
            .unwrap()
            .confirmed,
        3
    );
    assert_eq!(indexer::index(&new.chain, &pool).await.unwrap().events, 3);
}
