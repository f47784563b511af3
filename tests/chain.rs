//! The chain jobs against a real anvil, real PostgreSQL (a fresh database per test) and, for
//! the crash tests, real `jobfleet` processes killed at the exact points between their steps.

mod support;

use std::process::Command;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use jobfleet::chain::sender::Sender;
use jobfleet::chain::{indexer, receipts};
use jobfleet::db::governance::{Rule, decide_proposals};
use sqlx::PgPool;
use support::TestRedis;
use support::chain::{ChainWorld, address, database_url, people};

const PROPOSAL: Rule = Rule { threshold_bp: 7000, min_votes: 10, window: Duration::from_secs(72 * 3600) };

/// A proposed market with on-chain id `on_chain`, liked by the first `likes` wallets.
async fn proposed_market(pool: &PgPool, on_chain: i64, likes: i64) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO markets (on_chain_id, proposer_id, title, resolves_at)
         VALUES ($1, (SELECT min(id) FROM users), 'Will it rain on Friday?', now() + interval '7 days') RETURNING id",
    )
    .bind(on_chain)
    .fetch_one(pool).await.unwrap();
    sqlx::query("INSERT INTO proposal_votes (market_id, wallet_id, likes) SELECT $1, id, true FROM wallets ORDER BY id LIMIT $2")
        .bind(id).bind(likes).execute(pool).await.unwrap();
    id
}

async fn outbox(pool: &PgPool, id: i64) -> (String, Option<i64>, Option<String>, Option<String>, Vec<String>) {
    sqlx::query_as("SELECT status::text, nonce, tx_hash, last_error, previous_hashes FROM chain_outbox WHERE id = $1")
        .bind(id).fetch_one(pool).await.unwrap()
}

async fn outbox_id(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM chain_outbox WHERE idempotency_key = $1").bind(key).fetch_one(pool).await.unwrap()
}

async fn ten_people(pool: &PgPool) {
    let addrs: Vec<Address> = (0..10).map(address).collect();
    people(pool, &addrs).await;
}

#[sqlx::test]
async fn votes_become_an_approval_on_chain_confirmed_and_indexed(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    ten_people(&pool).await;
    let market = proposed_market(&pool, 41, 10).await;

    let decided = decide_proposals(&pool, PROPOSAL, chrono::Utc::now()).await.unwrap();
    assert_eq!((decided.approved, decided.outbox_rows), (1, 1));
    let row = outbox_id(&pool, &format!("approveMarket:{market}")).await;
    // The signer deployed the markets contract, so its sequence does not start at 0.
    let first = w.signer_nonce().await;

    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    let sent = sender.run(100).await.unwrap();
    assert_eq!(sent.sent, 1, "{sent:?}");
    let (status, nonce, hash, _, _) = outbox(&pool, row).await;
    assert_eq!((status.as_str(), nonce), ("SUBMITTED", Some(first as i64)));
    assert_eq!(w.signer_nonce().await, first + 1);

    // Mined, but one confirmation is required on top of... itself: confirmed at once with
    // confirmations = 1; with 2 it would wait for one more block.
    let report = receipts::confirm(&w.chain, &pool, chrono::Utc::now()).await.unwrap();
    assert_eq!(report.confirmed, 1, "{report:?}");
    let (status, ..) = outbox(&pool, row).await;
    assert_eq!(status, "CONFIRMED");
    let (state, approval, block): (String, Option<String>, Option<i64>) =
        sqlx::query_as("SELECT state::text, approval_tx_hash, approval_block FROM markets WHERE id = $1")
            .bind(market).fetch_one(&pool).await.unwrap();
    assert_eq!(state, "APPROVED");
    assert_eq!(approval, hash);
    assert!(block.is_some());
    let notified: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE event = 'market.approved'")
        .fetch_one(&pool).await.unwrap();
    assert_eq!(notified, 1);

    // The indexer sees the MarketApproved event (after one more block: it stays a
    // confirmation behind the head).
    w.mine(1).await;
    let indexed = indexer::index(&w.chain, &pool).await.unwrap();
    assert_eq!(indexed.events, 1, "{indexed:?}");
    let (event, tx, data): (String, String, serde_json::Value) =
        sqlx::query_as("SELECT event, tx_hash, data FROM chain_events").fetch_one(&pool).await.unwrap();
    assert_eq!(event, "MarketApproved");
    assert_eq!(Some(tx), hash);
    assert_eq!(data["marketId"], "41");
    // Idempotent: nothing new on a second pass; nothing sent twice.
    assert_eq!(indexer::index(&w.chain, &pool).await.unwrap().events, 0);
    assert_eq!(sender.run(100).await.unwrap().sent, 0);
    assert_eq!(w.signer_nonce().await, first + 1);
}
