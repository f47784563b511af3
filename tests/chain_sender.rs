//! The transaction sender and the confirmer against a real anvil and real PostgreSQL (a fresh
//! database per test), and, for the crash tests, real `jobfleet` processes killed at the exact
//! points between their steps.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

mod support;

use jobfleet::chain::sender::Sender;
use jobfleet::chain::{indexer, receipts};
use jobfleet::db::governance::decide_proposals;
use jobfleet::db::outbox;
use sqlx::PgPool;
use support::TestRedis;
use support::chain::*;

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

#[sqlx::test]
async fn a_reverting_row_fails_with_its_reason_and_burns_no_nonce(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    ten_people(&pool).await;
    let first = w.signer_nonce().await;
    let a = approve_row(&pool, "a", 7).await;
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    assert_eq!(sender.run(100).await.unwrap().sent, 1);
    // The same market again: the contract refuses a second approval.
    let again = approve_row(&pool, "again", 7).await;
    let next = approve_row(&pool, "next", 8).await;
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
    assert_eq!(confirm_now(&w, &pool).await, 2);
}

/// How many submitted rows one confirmation run confirms.
async fn confirm_now(w: &ChainWorld, pool: &PgPool) -> u32 {
    receipts::confirm(&w.chain, pool, chrono::Utc::now())
        .await
        .unwrap()
        .confirmed
}

/// Runs the sender in a real process that aborts at `point`, and checks that it did.
fn crash_at(w: &ChainWorld, pool: &PgPool, redis: &TestRedis, point: &str) {
    let status = send_process(w, pool, redis, point);
    assert_eq!(
        status.signal(),
        Some(6),
        "the process aborted at {point}: {status:?}"
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
    let row = approve_row(&pool, "crash-1", 11).await;

    crash_at(&w, &pool, &redis, "after-sign");
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
    assert_eq!(confirm_now(&w, &pool).await, 1);
}

#[sqlx::test]
async fn a_crash_between_broadcast_and_recording_loses_nothing_and_sends_once(pool: PgPool) {
    let w = ChainWorld::start(&[], &[]).await;
    let redis = TestRedis::start();
    let first = w.signer_nonce().await;
    let row = approve_row(&pool, "crash-2", 12).await;
    let later = approve_row(&pool, "crash-2b", 13).await;

    crash_at(&w, &pool, &redis, "after-broadcast");
    let (state, _, hash, ..) = row_state(&pool, row).await;
    assert_eq!(state, "SIGNED", "the broadcast was not recorded");
    assert_eq!(w.signer_nonce().await, first + 1, "but the node has it");
    assert_eq!(row_state(&pool, later).await.0, "PENDING");

    assert!(send_process(&w, &pool, &redis, "").success());
    let (state, _, after, ..) = row_state(&pool, row).await;
    assert_eq!((state.as_str(), after), ("SUBMITTED", hash));
    assert_eq!(row_state(&pool, later).await.1, Some(first as i64 + 1));
    assert_eq!(w.signer_nonce().await, first + 2, "each row sent once");
    assert_eq!(confirm_now(&w, &pool).await, 2);
}

#[sqlx::test]
async fn a_dropped_transaction_is_replaced_with_the_same_nonce_and_higher_fees(pool: PgPool) {
    let w = ChainWorld::start(
        &["--no-mining"],
        &[("JOBFLEET__CHAIN__REPLACE_AFTER", "0s")],
    )
    .await;
    let row = approve_row(&pool, "dropped", 21).await;
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

#[sqlx::test]
async fn a_signed_transaction_the_node_refuses_is_signed_again_with_fresh_fees(pool: PgPool) {
    let w = ChainWorld::start(&[], &[("JOBFLEET__CHAIN__REPLACE_AFTER", "0s")]).await;
    let row = approve_row(&pool, "underpriced", 31).await;
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
    outbox::take_nonce(
        &mut tx,
        &cheap.signer,
        (cheap.chain_id, &cheap.genesis_hash),
        nonce as i64,
    )
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
    assert_eq!(confirm_now(&w, &pool).await, 1);
    assert_eq!(w.signer_nonce().await, nonce + 1);
}

#[sqlx::test]
async fn a_nonce_taken_by_another_transaction_of_the_key_is_signed_again_once_it_waited(
    pool: PgPool,
) {
    use alloy::network::{EthereumWallet, TransactionBuilder};
    use alloy::providers::{Provider, ProviderBuilder};

    let w = ChainWorld::start(&[], &[]).await;
    let row = approve_row(&pool, "nonce-taken", 41).await;
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    // Signed and stored, then a crash before the broadcast...
    let nonce = w.signer_nonce().await;
    let pending = outbox::by_status(&pool, "PENDING", 1)
        .await
        .unwrap()
        .remove(0);
    let (to, data) = sender.calldata(&pending).unwrap();
    let signed = sender
        .sign(nonce, 200_000, 10_000_000_000, 1_000_000_000, to, data)
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    outbox::take_nonce(
        &mut tx,
        &signed.signer,
        (signed.chain_id, &signed.genesis_hash),
        nonce as i64,
    )
    .await
    .unwrap();
    assert!(
        outbox::record_signed(&mut tx, row, "PENDING", None, &signed)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    // ... and meanwhile someone else used the key for that nonce.
    let other = ProviderBuilder::new()
        .wallet(EthereumWallet::from(w.owner.clone()))
        .connect_http(w.anvil.url().parse().unwrap());
    let transfer = alloy::rpc::types::TransactionRequest::default()
        .with_to(w.owner.address())
        .with_nonce(nonce);
    other
        .send_transaction(transfer)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    // Right after signing, a missing receipt may only be slow: the row waits.
    let e = sender.run(100).await.unwrap_err();
    assert!(e.to_string().contains("no receipt of ours"), "{e}");
    assert_eq!(row_state(&pool, row).await.0, "SIGNED");

    // Once it waited replace_after, the nonce counts as lost: signed again with the next one.
    let impatient = settings_for(
        &w.anvil.url(),
        &w.deployment,
        &[("JOBFLEET__CHAIN__REPLACE_AFTER", "0s")],
    );
    let chain = jobfleet::chain::Chain::new(&impatient.chain).unwrap();
    let sender = Sender::new(&chain, &pool).await.unwrap();
    let report = sender.run(100).await.unwrap();
    assert_eq!((report.requeued, report.sent), (1, 1), "{report:?}");
    let (status, new_nonce, _, _, previous) = row_state(&pool, row).await;
    assert_eq!(
        (status.as_str(), new_nonce),
        ("SUBMITTED", Some(nonce as i64 + 1))
    );
    assert_eq!(previous, vec![signed.tx_hash]);
    assert_eq!(confirm_now(&w, &pool).await, 1);
    assert_eq!(
        w.signer_nonce().await,
        nonce + 2,
        "the approval went out once"
    );
}
