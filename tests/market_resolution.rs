//! Market resolution against a real anvil (the oracle, the resolveMarket transaction) and real
//! PostgreSQL: the dispute window, the settlement in integer wei, points and notifications.

mod support;

use jobfleet::chain::sender::Sender;
use jobfleet::chain::{receipts, resolution};
use sqlx::PgPool;
use support::chain::*;

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
