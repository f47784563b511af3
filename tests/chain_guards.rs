//! The chain's guards against real anvils and real PostgreSQL: the fee caps on a first
//! signature, rows sent only for the chain and key they were signed for, two chains with one
//! chain id over one database, and the operator commands that refuse a live chain.

use std::process::{Command, Output};

use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

mod support;

use jobfleet::chain::receipts;
use jobfleet::chain::sender::Sender;
use jobfleet::db::outbox;
use sqlx::PgPool;
use support::TestRedis;
use support::anvil::{TestAnvil, later_genesis};
use support::chain::*;

/// Anvil's third development key: "the rotated key".
const OTHER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// `jobfleet <args>` against the world `w` and the test's database.
fn jobfleet(w: &ChainWorld, pool: &PgPool, redis: &TestRedis, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jobfleet"))
        .args(args)
        .envs(w.env(&database_url(pool), &redis.url()))
        .output()
        .expect("jobfleet runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[sqlx::test]
async fn a_fee_estimate_above_the_cap_makes_the_row_wait_without_a_nonce(pool: PgPool) {
    // The node: a base fee of 5000 gwei, so its estimate is above 10000 gwei, over
    // the default cap of 1000 gwei.
    let w = ChainWorld::start(&["--base-fee", "5000000000000"], &[]).await;
    let redis = TestRedis::start();
    let row = approve_row(&pool, "spike", 51).await;
    let first = w.signer_nonce().await;
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    let report = sender.run(100).await.unwrap();
    assert_eq!((report.sent, report.waiting), (0, 1), "{report:?}");
    let (status, nonce, hash, error, _) = row_state(&pool, row).await;
    assert_eq!((status.as_str(), nonce, hash), ("PENDING", None, None));
    let error = error.unwrap();
    assert!(
        error.contains("above chain.max_fee_gwei (1000 gwei)"),
        "{error}"
    );
    let signers: i64 = sqlx::query_scalar("SELECT count(*) FROM chain_signers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(signers, 0, "no nonce was taken");
    assert_eq!(w.signer_nonce().await, first, "nothing was broadcast");

    // Operators see why in the outbox.
    let out = jobfleet(&w, &pool, &redis, &["chain", "outbox"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("waiting: the node's fee estimate of"),
        "{}",
        text(&out)
    );

    // Fees back to normal: the row goes out, its reason cleared.
    w.rpc(
        "anvil_setNextBlockBaseFeePerGas",
        serde_json::json!(["0x3b9aca00"]),
    )
    .await;
    w.mine(1).await;
    let report = sender.run(100).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let (status, nonce, _, error, _) = row_state(&pool, row).await;
    assert_eq!(
        (status.as_str(), nonce, error),
        ("SUBMITTED", Some(first as i64), None)
    );
    let bid: String =
        sqlx::query_scalar("SELECT max_fee_per_gas::text FROM chain_outbox WHERE id = $1")
            .bind(row)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(bid.parse::<u128>().unwrap() <= 1_000_000_000_000, "{bid}");
}

#[sqlx::test]
async fn rows_signed_by_another_key_are_neither_broadcast_nor_replaced(pool: PgPool) {
    let w = ChainWorld::start(&["--no-mining"], &[]).await;
    let submitted = approve_row(&pool, "submitted", 61).await;
    let sender = Sender::new(&w.chain, &pool).await.unwrap();
    assert_eq!(sender.run(100).await.unwrap().sent, 1);
    // A second row signed by the same key, then a crash before its broadcast.
    let signed = approve_row(&pool, "signed", 62).await;
    let pending = outbox::by_status(&pool, "PENDING", 1)
        .await
        .unwrap()
        .remove(0);
    let (to, data) = sender.calldata(&pending).unwrap();
    let nonce = w.signer_nonce().await + 1;
    let s = sender
        .sign(nonce, 200_000, 10_000_000_000, 1_000_000_000, to, data)
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    outbox::take_nonce(
        &mut tx,
        &s.signer,
        (s.chain_id, &s.genesis_hash),
        nonce as i64,
    )
    .await
    .unwrap();
    assert!(
        outbox::record_signed(&mut tx, signed, "PENDING", None, &s)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    // The key is rotated, and the replacement patience is over.
    let rotated = settings_for(
        &w.anvil.url(),
        &w.deployment,
        &[
            ("JOBFLEET__CHAIN__SIGNER_KEY", OTHER_KEY),
            ("JOBFLEET__CHAIN__REPLACE_AFTER", "0s"),
        ],
    );
    let chain = jobfleet::chain::Chain::new(&rotated.chain).unwrap();
    let report = Sender::new(&chain, &pool)
        .await
        .unwrap()
        .run(100)
        .await
        .unwrap();
    assert_eq!((report.rebroadcast, report.elsewhere), (0, 1), "{report:?}");
    let (status, _, _, error, _) = row_state(&pool, signed).await;
    assert_eq!(status, "SIGNED");
    assert!(
        error
            .unwrap()
            .contains("sent only by the key that signed it")
    );

    let report = receipts::confirm(&chain, &pool, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.replaced, 0, "{report:?}");
    let (status, _, hash, error, previous) = row_state(&pool, submitted).await;
    assert_eq!((status.as_str(), previous.len()), ("SUBMITTED", 0));
    assert!(
        error
            .unwrap()
            .contains("sent only by the key that signed it")
    );

    // The key that signed them still sends and confirms them.
    w.mine(1).await;
    assert_eq!(sender.run(100).await.unwrap().rebroadcast, 1);
    w.mine(1).await;
    let report = receipts::confirm(&w.chain, &pool, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.confirmed, 2, "{report:?}");
    assert_eq!(row_state(&pool, submitted).await.2, hash);
}

#[sqlx::test]
async fn a_second_chain_with_the_same_id_over_one_database_has_its_own_sequence(pool: PgPool) {
    // The first checkout's chain: three rows confirmed, one mined but not yet confirmed.
    let old = ChainWorld::start(&[], &[]).await;
    let first = old.signer_nonce().await;
    for n in 0..3 {
        approve_row(&pool, &format!("old-{n}"), 70 + n).await;
    }
    let sender = Sender::new(&old.chain, &pool).await.unwrap();
    assert_eq!(sender.run(100).await.unwrap().sent, 3);
    assert_eq!(
        receipts::confirm(&old.chain, &pool, chrono::Utc::now())
            .await
            .unwrap()
            .confirmed,
        3
    );
    let in_flight = approve_row(&pool, "old-in-flight", 73).await;
    assert_eq!(sender.run(100).await.unwrap().sent, 1);
    drop(sender);
    drop(old);

    // A second checkout: a new anvil, the same chain id 31337, the same database.
    let later = later_genesis();
    let new = ChainWorld::start(&[&later[0], &later[1]], &[]).await;
    let redis = TestRedis::start();
    assert_eq!(new.signer_nonce().await, first, "the same deployment");
    let fresh = approve_row(&pool, "new-0", 80).await;
    let sender = Sender::new(&new.chain, &pool).await.unwrap();
    let report = sender.run(100).await.unwrap();
    assert_eq!((report.sent, report.elsewhere), (1, 0), "{report:?}");
    // Its own sequence, from the node's count, beside the old chain's nonces.
    assert_eq!(row_state(&pool, fresh).await.1, Some(first as i64));
    // The old chain's in-flight row is not looked up on the new chain.
    let report = receipts::confirm(&new.chain, &pool, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((report.confirmed, report.elsewhere), (1, 1), "{report:?}");
    let (status, _, _, error, _) = row_state(&pool, in_flight).await;
    assert_eq!(status, "SUBMITTED");
    assert!(error.unwrap().contains("sent only where it was signed"));

    // The reset the demo runs sends it again, here, with the next nonce.
    let out = jobfleet(&new, &pool, &redis, &["chain", "reset", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("forgot 1 signer nonce(s), 0 cursor(s) and 0 event(s) of earlier chains; 1 transaction(s) will be sent again"),
        "{}",
        text(&out)
    );
    let report = sender.run(100).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(row_state(&pool, in_flight).await.1, Some(first as i64 + 1));
    assert_eq!(
        receipts::confirm(&new.chain, &pool, chrono::Utc::now())
            .await
            .unwrap()
            .confirmed,
        1
    );
    assert_eq!(new.signer_nonce().await, first + 2);
    // A second reset against the same node forgets nothing of it.
    let out = jobfleet(&new, &pool, &redis, &["chain", "reset", "--yes"]);
    assert!(
        text(&out).contains("forgot 0 signer nonce(s), 0 cursor(s) and 0 event(s)"),
        "{}",
        text(&out)
    );
}

#[sqlx::test]
async fn chain_commands_refuse_a_node_that_is_not_a_development_chain(pool: PgPool) {
    let live = TestAnvil::start_with(&["--chain-id", "5"]);
    let redis = TestRedis::start();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_jobfleet"))
            .args(args)
            .env("JOBFLEET_ENV", "test")
            .env(
                "JOBFLEET_CONFIG_DIR",
                format!("{}/config", env!("CARGO_MANIFEST_DIR")),
            )
            .env("DATABASE_URL", database_url(&pool))
            .env("REDIS_URL", redis.url())
            .env("JOBFLEET__CHAIN__RPC_URL", live.url())
            // Set, as a live chain requires: the commands' own guard is what is tested here.
            .env("JOBFLEET__CHAIN__CHAIN_ID", "5")
            .env(
                "JOBFLEET__CHAIN__SIGNER_KEY",
                jobfleet::dev::deploy::ANVIL_KEY_0,
            )
            .output()
            .expect("jobfleet runs")
    };
    for args in [
        &["chain", "reset", "--yes"][..],
        &["chain", "deploy"],
        &["chain", "bench", "--wallets", "1"],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains(&format!("refusing `jobfleet chain {}`", args[1]))
                && said.contains("the node is on chain 5, not a development chain")
                && said.contains("--i-know-this-is-live"),
            "{args:?}: {said}"
        );
    }
    // Nothing was deployed: the signer sent nothing.
    jobfleet::install_tls_provider();
    let node = ProviderBuilder::new().connect_http(live.url().parse().unwrap());
    let signer: PrivateKeySigner = jobfleet::dev::deploy::ANVIL_KEY_0.parse().unwrap();
    let sent = node.get_transaction_count(signer.address()).await.unwrap();
    assert_eq!(sent, 0);
    // Said explicitly, it goes ahead.
    let out = run(&["chain", "deploy", "--i-know-this-is-live"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("export JOBFLEET__CHAIN__MARKETS_ADDRESS="));
    // Without chain.chain_id, no command and no job uses a chain that is not a development
    // chain, whatever the environment is called.
    let unset = Command::new(env!("CARGO_BIN_EXE_jobfleet"))
        .args(["chain", "status"])
        .env(
            "JOBFLEET_CONFIG_DIR",
            format!("{}/config", env!("CARGO_MANIFEST_DIR")),
        )
        .env_remove("JOBFLEET_ENV")
        .env("DATABASE_URL", database_url(&pool))
        .env("REDIS_URL", redis.url())
        .env("JOBFLEET__CHAIN__RPC_URL", live.url())
        .output()
        .expect("jobfleet runs");
    assert!(!unset.status.success());
    assert!(
        text(&unset).contains("chain.chain_id is not set: set JOBFLEET__CHAIN__CHAIN_ID=5"),
        "{}",
        text(&unset)
    );
}
