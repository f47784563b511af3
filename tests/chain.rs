//! The chain jobs against a real anvil, real PostgreSQL (a fresh database per test) and, for
//! the crash tests, real `jobfleet` processes killed at the exact points between their steps.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use jobfleet::chain::sender::Sender;
use jobfleet::chain::{indexer, receipts, resolution};
use jobfleet::db::governance::{Rule, decide_proposals};
use jobfleet::db::outbox;
use sqlx::PgPool;
use support::TestRedis;
use support::chain::{ChainWorld, address, database_url, people};

const PROPOSAL: Rule = Rule {
    threshold_bp: 7000,
    min_votes: 10,
    window: Duration::from_secs(72 * 3600),
};

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

async fn row_state(
    pool: &PgPool,
    id: i64,
) -> (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Vec<String>,
) {
    sqlx::query_as("SELECT status::text, nonce, tx_hash, last_error, previous_hashes FROM chain_outbox WHERE id = $1")
        .bind(id).fetch_one(pool).await.unwrap()
}

async fn outbox_id(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM chain_outbox WHERE idempotency_key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
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

    let decided = decide_proposals(&pool, PROPOSAL, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((decided.approved, decided.outbox_rows), (1, 1));
    let row = outbox_id(&pool, &format!("approveMarket:{market}")).await;
    // The signer deployed the markets contract, so its sequence does not start at 0.
    let first = w.signer_nonce().await;

    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    let sent = sender.run(100).await.unwrap();
    assert_eq!(sent.sent, 1, "{sent:?}");
    let (status, nonce, hash, _, _) = row_state(&pool, row).await;
    assert_eq!((status.as_str(), nonce), ("SUBMITTED", Some(first as i64)));
    assert_eq!(w.signer_nonce().await, first + 1);

    // Mined: with confirmations = 1 (its own block) it is final at once; with 2 it would
    // wait for one more block.
    let report = receipts::confirm(&w.chain, &pool, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.confirmed, 1, "{report:?}");
    let (status, ..) = row_state(&pool, row).await;
    assert_eq!(status, "CONFIRMED");
    let (state, approval, block): (String, Option<String>, Option<i64>) = sqlx::query_as(
        "SELECT state::text, approval_tx_hash, approval_block FROM markets WHERE id = $1",
    )
    .bind(market)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(state, "APPROVED");
    assert_eq!(approval, hash);
    assert!(block.is_some());
    let notified: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE event = 'market.approved'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(notified, 1);

    // The indexer sees the MarketApproved event (it reads up to the block with 1
    // confirmation, the head; one more block changes nothing).
    w.mine(1).await;
    let indexed = indexer::index(&w.chain, &pool).await.unwrap();
    assert_eq!(indexed.events, 1, "{indexed:?}");
    let (event, tx, data): (String, String, serde_json::Value) =
        sqlx::query_as("SELECT event, tx_hash, data FROM chain_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(event, "MarketApproved");
    assert_eq!(Some(tx), hash);
    assert_eq!(data["marketId"], "41");
    // Idempotent: nothing new on a second pass; nothing sent twice.
    assert_eq!(indexer::index(&w.chain, &pool).await.unwrap().events, 0);
    assert_eq!(sender.run(100).await.unwrap().sent, 0);
    assert_eq!(w.signer_nonce().await, first + 1);
}

/// An outbox row written by hand, as aggregate_votes or resolve_markets would.
async fn outbox_row(pool: &PgPool, key: &str, kind: &str, args: serde_json::Value) -> i64 {
    sqlx::query_scalar("INSERT INTO chain_outbox (idempotency_key, kind, target, args) VALUES ($1, $2, 'markets', $3) RETURNING id")
        .bind(key).bind(kind).bind(args).fetch_one(pool).await.unwrap()
}

#[sqlx::test]
async fn a_reverting_row_fails_with_its_reason_and_burns_no_nonce(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    ten_people(&pool).await;
    let first = w.signer_nonce().await;
    let a = outbox_row(
        &pool,
        "a",
        "approveMarket",
        serde_json::json!({"onChainId": 7}),
    )
    .await;
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    assert_eq!(sender.run(100).await.unwrap().sent, 1);
    // The same market again: the contract refuses a second approval.
    let again = outbox_row(
        &pool,
        "again",
        "approveMarket",
        serde_json::json!({"onChainId": 7}),
    )
    .await;
    let next = outbox_row(
        &pool,
        "next",
        "approveMarket",
        serde_json::json!({"onChainId": 8}),
    )
    .await;
    let report = sender.run(100).await.unwrap();
    assert_eq!((report.sent, report.failed), (1, 1), "{report:?}");
    let (status, nonce, _, error, _) = row_state(&pool, again).await;
    assert_eq!((status.as_str(), nonce), ("FAILED", None));
    assert!(error.unwrap().contains("Markets: market already approved"));
    // No gap: the next row took the very next nonce, and it was mined (nothing waits behind a
    // burnt nonce).
    assert_eq!(row_state(&pool, a).await.1, Some(first as i64));
    assert_eq!(row_state(&pool, next).await.1, Some(first as i64 + 1));
    assert_eq!(w.signer_nonce().await, first + 2);
    assert_eq!(
        receipts::confirm(&w.chain, &pool, chrono::Utc::now())
            .await
            .unwrap()
            .confirmed,
        2
    );
}

/// Runs `jobfleet run send_transactions` as a real process with the given failpoints armed.
fn send_process(
    w: &ChainWorld,
    pool: &PgPool,
    redis: &TestRedis,
    failpoints: &str,
) -> std::process::ExitStatus {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobfleet"));
    cmd.args(["run", "send_transactions"])
        .envs(w.env(&database_url(pool), &redis.url()));
    if !failpoints.is_empty() {
        cmd.env("JOBFLEET_FAILPOINTS", failpoints);
    }
    cmd.status().expect("jobfleet runs")
}

#[sqlx::test]
async fn a_crash_between_signing_and_broadcast_sends_once(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    let redis = TestRedis::start();
    let first = w.signer_nonce().await;
    let row = outbox_row(
        &pool,
        "crash-1",
        "approveMarket",
        serde_json::json!({"onChainId": 11}),
    )
    .await;

    let status = send_process(&w, &pool, &redis, "after-sign");
    assert_eq!(
        status.signal(),
        Some(6),
        "the process aborted at the failpoint: {status:?}"
    );
    let (state, nonce, hash, ..) = row_state(&pool, row).await;
    assert_eq!((state.as_str(), nonce), ("SIGNED", Some(first as i64)));
    assert_eq!(w.signer_nonce().await, first, "nothing reached the node");

    assert!(send_process(&w, &pool, &redis, "").success());
    let (state, _, after, ..) = row_state(&pool, row).await;
    assert_eq!(state, "SUBMITTED");
    assert_eq!(
        after, hash,
        "the stored transaction was broadcast, not a new one"
    );
    assert_eq!(w.signer_nonce().await, first + 1, "sent exactly once");
    assert_eq!(
        receipts::confirm(&w.chain, &pool, chrono::Utc::now())
            .await
            .unwrap()
            .confirmed,
        1
    );
}

#[sqlx::test]
async fn a_crash_between_broadcast_and_recording_loses_nothing_and_sends_once(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    let redis = TestRedis::start();
    let first = w.signer_nonce().await;
    let row = outbox_row(
        &pool,
        "crash-2",
        "approveMarket",
        serde_json::json!({"onChainId": 12}),
    )
    .await;
    let later = outbox_row(
        &pool,
        "crash-2b",
        "approveMarket",
        serde_json::json!({"onChainId": 13}),
    )
    .await;

    let status = send_process(&w, &pool, &redis, "after-broadcast");
    assert_eq!(
        status.signal(),
        Some(6),
        "the process aborted at the failpoint: {status:?}"
    );
    let (state, _, hash, ..) = row_state(&pool, row).await;
    assert_eq!(state, "SIGNED", "the broadcast was not recorded");
    assert_eq!(w.signer_nonce().await, first + 1, "but the node has it");
    assert_eq!(row_state(&pool, later).await.0, "PENDING");

    assert!(send_process(&w, &pool, &redis, "").success());
    let (state, _, after, ..) = row_state(&pool, row).await;
    assert_eq!((state.as_str(), after), ("SUBMITTED", hash));
    assert_eq!(row_state(&pool, later).await.1, Some(first as i64 + 1));
    assert_eq!(w.signer_nonce().await, first + 2, "each row sent once");
    assert_eq!(
        receipts::confirm(&w.chain, &pool, chrono::Utc::now())
            .await
            .unwrap()
            .confirmed,
        2
    );
}

#[sqlx::test]
async fn a_dropped_transaction_is_replaced_with_the_same_nonce_and_higher_fees(pool: PgPool) {
    let w = ChainWorld::start(
        &["--no-mining"],
        &[("JOBFLEET__CHAIN__REPLACE_AFTER", "0s")],
    )
    .await;
    let row = outbox_row(
        &pool,
        "dropped",
        "approveMarket",
        serde_json::json!({"onChainId": 21}),
    )
    .await;
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    assert_eq!(sender.run(100).await.unwrap().sent, 1);
    let (_, nonce, old, ..) = row_state(&pool, row).await;
    let old = old.unwrap();
    let fees: (String, String) = sqlx::query_as("SELECT max_fee_per_gas::text, max_priority_fee_per_gas::text FROM chain_outbox WHERE id = $1")
        .bind(row).fetch_one(&pool).await.unwrap();
    // The node loses it (evicted from its pool).
    w.rpc("anvil_dropTransaction", serde_json::json!([old]))
        .await;

    let report = receipts::confirm(&w.chain, &pool, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.replaced, 1, "{report:?}");
    let (state, same_nonce, new, _, previous) = row_state(&pool, row).await;
    assert_eq!(state, "SUBMITTED");
    assert_eq!(same_nonce, nonce);
    assert_ne!(new.as_deref(), Some(old.as_str()));
    assert_eq!(previous, vec![old.clone()]);
    let bumped: (String, String) = sqlx::query_as("SELECT max_fee_per_gas::text, max_priority_fee_per_gas::text FROM chain_outbox WHERE id = $1")
        .bind(row).fetch_one(&pool).await.unwrap();
    let n = |s: &str| s.parse::<u128>().unwrap();
    assert!(
        n(&bumped.0) >= n(&fees.0) * 120 / 100 && n(&bumped.1) >= n(&fees.1) * 120 / 100,
        "{fees:?} -> {bumped:?}"
    );

    w.mine(1).await;
    let report = receipts::confirm(&w.chain, &pool, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.confirmed, 1, "{report:?}");
    let (state, _, mined, ..) = row_state(&pool, row).await;
    assert_eq!((state.as_str(), mined), ("CONFIRMED", new));
}

async fn approval(pool: &PgPool, market: i64) -> (Option<String>, Option<i64>) {
    sqlx::query_as("SELECT approval_tx_hash, approval_block FROM markets WHERE id = $1")
        .bind(market)
        .fetch_one(pool)
        .await
        .unwrap()
}

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

/// An ACTIVE market past its resolution time, with positions (user index, outcome, stake).
async fn active_market(
    pool: &PgPool,
    on_chain: i64,
    users: &[(i64, i64)],
    stakes: &[(usize, bool, &str)],
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO markets (on_chain_id, proposer_id, title, state, resolves_at)
         VALUES ($1, $2, 'Will ETH close above 5k?', 'ACTIVE', now() - interval '1 minute') RETURNING id",
    )
    .bind(on_chain).bind(users[0].0).fetch_one(pool).await.unwrap();
    for (user, outcome, stake) in stakes {
        sqlx::query("INSERT INTO positions (market_id, user_id, outcome, stake) VALUES ($1, $2, $3, $4::numeric)")
            .bind(id).bind(users[*user].0).bind(outcome).bind(stake).execute(pool).await.unwrap();
    }
    id
}

#[sqlx::test]
async fn a_market_resolves_after_its_window_with_payouts_summing_to_the_pool(pool: PgPool) {
    let w = ChainWorld::start(
        &[],
        &[
            ("JOBFLEET__CHAIN__FEE_BP", "200"),
            ("JOBFLEET__CHAIN__WIN_POINTS", "100"),
        ],
    )
    .await;
    let users = people(&pool, &(0..4).map(|i| address(200 + i)).collect::<Vec<_>>()).await;
    let stakes = [
        (0, true, "1000000000000000001"),
        (1, false, "333"),
        (2, true, "7"),
        (3, false, "100000000000000000000"),
    ];
    let market = active_market(&pool, 61, &users, &stakes).await;
    // PostgreSQL keeps microseconds.
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);

    let r = resolution::resolve(&w.chain, &pool, None, now)
        .await
        .unwrap();
    assert_eq!(
        r.unreported,
        vec![market],
        "not reported yet: left for the waiting job"
    );
    assert_eq!(
        resolution::resolve(&w.chain, &pool, Some(market), now)
            .await
            .unwrap()
            .unreported,
        vec![market]
    );

    w.report(61, true).await;
    let r = resolution::resolve(&w.chain, &pool, None, now)
        .await
        .unwrap();
    assert_eq!(r.resolving, 1, "{r:?}");
    let (state, ends): (String, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT state::text, dispute_window_ends_at FROM markets WHERE id = $1")
            .bind(market)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "RESOLVING");
    assert_eq!(ends - now, chrono::Duration::hours(24));
    // The on-chain record of the resolution goes through the outbox.
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    assert_eq!(sender.run(100).await.unwrap().sent, 1);
    assert_eq!(
        receipts::confirm(&w.chain, &pool, now)
            .await
            .unwrap()
            .confirmed,
        1
    );
    let resolution_tx: Option<String> =
        sqlx::query_scalar("SELECT resolution_tx_hash FROM markets WHERE id = $1")
            .bind(market)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(resolution_tx.is_some());

    // The window is still open a minute before it closes.
    let early = resolution::resolve(&w.chain, &pool, None, ends - chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(early.resolved, 0);
    let r = resolution::resolve(&w.chain, &pool, None, ends)
        .await
        .unwrap();
    assert_eq!(r.resolved, 1);

    let (state, outcome, pool_wei, fee): (String, bool, String, String) = sqlx::query_as(
        "SELECT state::text, outcome, pool::text, fee::text FROM markets WHERE id = $1",
    )
    .bind(market)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), outcome), ("RESOLVED", true));
    assert_eq!(pool_wei, "101000000000000000341");
    assert_eq!(fee, "2020000000000000006"); // floor(pool * 2%)
    let exact: bool = sqlx::query_scalar(
        "SELECT sum(p.payout) + m.fee = m.pool FROM positions p JOIN markets m ON m.id = p.market_id WHERE m.id = $1 GROUP BY m.fee, m.pool",
    )
    .bind(market).fetch_one(&pool).await.unwrap();
    assert!(exact, "payouts plus fee equal the pool exactly");
    let payouts: Vec<(bool, String)> = sqlx::query_as(
        "SELECT outcome, payout::text FROM positions WHERE market_id = $1 ORDER BY id",
    )
    .bind(market)
    .fetch_all(&pool)
    .await
    .unwrap();
    // 98980000000000000335 to share 1000000000000000001 : 7. Floored: ...642 (fraction 0.14)
    // and 692 (fraction 0.86); the 1 wei left goes to the larger fraction (computed
    // independently in Python's integers).
    assert_eq!(payouts[1], (false, "0".into()));
    assert_eq!(payouts[3], (false, "0".into()));
    assert_eq!(payouts[0].1, "98979999999999999642");
    assert_eq!(payouts[2].1, "693");
    let points: Vec<i64> = sqlx::query_scalar(
        "SELECT user_id FROM points_transactions WHERE kind = 'EARNED' ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(points, vec![users[0].0, users[2].0]);
    let notified: Vec<(i64, serde_json::Value)> =
        sqlx::query_as("SELECT user_id, payload FROM notifications WHERE event = 'market.resolved' ORDER BY user_id").fetch_all(&pool).await.unwrap();
    assert_eq!(notified.len(), 4);
    assert_eq!(notified[0].1["winnings"], "97979999999999999641");
    assert_eq!(notified[1].1["payout"], "0");

    // Settled once: a re-run changes nothing.
    assert_eq!(
        resolution::resolve(&w.chain, &pool, None, ends)
            .await
            .unwrap()
            .resolved,
        0
    );
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM points_transactions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(again, 2);
}

#[sqlx::test]
async fn an_upheld_dispute_flips_the_outcome(pool: PgPool) {
    let w = ChainWorld::start(&[], &[("JOBFLEET__CHAIN__FEE_BP", "0")]).await;
    let users = people(&pool, &(0..2).map(|i| address(300 + i)).collect::<Vec<_>>()).await;
    let market = active_market(&pool, 62, &users, &[(0, true, "50"), (1, false, "70")]).await;
    w.report(62, true).await;
    let now = chrono::Utc::now();
    assert_eq!(
        resolution::resolve(&w.chain, &pool, None, now)
            .await
            .unwrap()
            .resolving,
        1
    );
    let dispute: i64 = sqlx::query_scalar("INSERT INTO disputes (market_id, raised_by, reason) VALUES ($1, $2, 'the feed was wrong') RETURNING id")
        .bind(market).bind(users[1].0).fetch_one(&pool).await.unwrap();
    let later = now + chrono::Duration::hours(25);
    let r = resolution::resolve(&w.chain, &pool, None, later)
        .await
        .unwrap();
    assert_eq!(
        (r.disputed, r.resolved),
        (1, 0),
        "an open dispute holds the market"
    );
    let raised: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE event = 'dispute.raised'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(raised, 2);
    sqlx::query("UPDATE disputes SET state = 'UPHELD' WHERE id = $1")
        .bind(dispute)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        resolution::resolve(&w.chain, &pool, None, later)
            .await
            .unwrap()
            .resolved,
        1
    );
    let (outcome, reported): (bool, bool) =
        sqlx::query_as("SELECT outcome, reported_outcome FROM markets WHERE id = $1")
            .bind(market)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((outcome, reported), (false, true));
    let payouts: Vec<String> =
        sqlx::query_scalar("SELECT payout::text FROM positions WHERE market_id = $1 ORDER BY id")
            .bind(market)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(payouts, vec!["0", "120"]);
}

#[sqlx::test]
async fn a_signed_transaction_the_node_refuses_is_signed_again_with_fresh_fees(pool: PgPool) {
    let w = ChainWorld::start(&[], &[("JOBFLEET__CHAIN__REPLACE_AFTER", "0s")]).await;
    let row = outbox_row(
        &pool,
        "underpriced",
        "approveMarket",
        serde_json::json!({"onChainId": 31}),
    )
    .await;
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    // As if signed just before a fee spike and a crash: a bid below the block's base fee,
    // which the node refuses to take.
    let nonce = w.signer_nonce().await;
    let first = outbox::by_status(&pool, "PENDING", 1)
        .await
        .unwrap()
        .remove(0);
    let (to, data) = sender.calldata(&first).unwrap();
    let cheap = sender.sign(nonce, 200_000, 1, 1, to, data).unwrap();
    let mut tx = pool.begin().await.unwrap();
    outbox::take_nonce(&mut tx, &cheap.signer, cheap.chain_id, nonce as i64)
        .await
        .unwrap();
    assert!(
        outbox::record_signed(&mut tx, row, "PENDING", None, &cheap)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let report = sender.run(100).await.unwrap();
    assert_eq!(report.rebroadcast, 1, "{report:?}");
    let (status, same_nonce, hash, error, previous) = row_state(&pool, row).await;
    assert_eq!(
        (status.as_str(), same_nonce),
        ("SUBMITTED", Some(nonce as i64))
    );
    assert_eq!(previous, vec![cheap.tx_hash.clone()]);
    assert_ne!(hash.as_deref(), Some(cheap.tx_hash.as_str()));
    assert_eq!(error, None);
    assert_eq!(
        receipts::confirm(&w.chain, &pool, chrono::Utc::now())
            .await
            .unwrap()
            .confirmed,
        1
    );
    assert_eq!(w.signer_nonce().await, nonce + 1);
}
