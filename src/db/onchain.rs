//! The platform's side of what happened on chain: the effects of a confirmed outbox
//! transaction and of an indexed event, and the notifications they cause, written in the same
//! database transaction as the effect.
//!
//! The confirmer (from a receipt) and the indexer (from the event) may both see the same
//! transaction, in either order. Each effect therefore keeps the first record
//! (`coalesce(column, new)`) and each notification has a dedupe key, so the second writer
//! changes nothing and notifies nobody twice.

use serde_json::Value;
use sqlx::PgConnection;

use super::notifications::record;
use super::outbox::OutboxRow;
use crate::notify::Event;

/// Records a confirmed outbox row and applies its effect on the platform's data.
pub async fn confirmed(
    conn: &mut PgConnection,
    row: &OutboxRow,
    tx_hash: &str,
    block_number: i64,
    block_hash: &str,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE chain_outbox SET status = 'CONFIRMED', tx_hash = $2, block_number = $3,
             block_hash = $4, confirmed_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'SUBMITTED'",
    )
    .bind(row.id)
    .bind(tx_hash)
    .bind(block_number)
    .bind(block_hash)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 0 {
        return Ok(false);
    }
    let id = |k: &str| row.args.get(k).and_then(Value::as_i64);
    match row.kind.as_str() {
        "approveMarket" => {
            if let Some(market) = id("marketId") {
                market_approved(conn, market, tx_hash, block_number).await?;
            }
        }
        "resolveMarket" => {
            if let Some(market) = id("marketId") {
                market_resolved_on_chain(conn, market, tx_hash, block_number).await?;
            }
        }
        "resolveDispute" => {
            if let Some(dispute) = id("disputeId") {
                let votes = (id("uphold").unwrap_or(0), id("reject").unwrap_or(0));
                dispute_resolved(conn, dispute, tx_hash, block_number, votes).await?;
            }
        }
        _ => {}
    }
    Ok(true)
}

/// The approval of a market is on chain: record where, and tell its proposer.
pub async fn market_approved(
    conn: &mut PgConnection,
    market_id: i64,
    tx_hash: &str,
    block_number: i64,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "UPDATE markets SET approval_tx_hash = coalesce(approval_tx_hash, $2),
                            approval_block = coalesce(approval_block, $3)
         WHERE id = $1
         RETURNING proposer_id, title",
    )
    .bind(market_id)
    .bind(tx_hash)
    .bind(block_number)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((proposer, title)) = row else {
        return Ok(false);
    };
    let event = Event::MarketApproved {
        market_id,
        title,
        tx_hash: tx_hash.to_owned(),
        block: block_number,
    };
    record(
        conn,
        proposer,
        &event,
        &format!("market.approved:{market_id}"),
    )
    .await?;
    Ok(true)
}

pub async fn market_resolved_on_chain(
    conn: &mut PgConnection,
    market_id: i64,
    tx_hash: &str,
    block_number: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE markets SET resolution_tx_hash = $2, resolution_block = $3
         WHERE id = $1 AND resolution_tx_hash IS NULL",
    )
    .bind(market_id)
    .bind(tx_hash)
    .bind(block_number)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A dispute's verdict is on chain: record where, and tell whoever raised it.
pub async fn dispute_resolved(
    conn: &mut PgConnection,
    dispute_id: i64,
    tx_hash: &str,
    block_number: i64,
    (votes_for, votes_against): (i64, i64),
) -> Result<bool, sqlx::Error> {
    let row: Option<(i64, i64, bool, String)> = sqlx::query_as(
        "UPDATE disputes d SET resolution_tx_hash = coalesce(d.resolution_tx_hash, $2),
                               resolution_block = coalesce(d.resolution_block, $3)
         FROM markets m
         WHERE d.id = $1 AND m.id = d.market_id
         RETURNING d.raised_by, d.market_id, d.state = 'UPHELD', m.title",
    )
    .bind(dispute_id)
    .bind(tx_hash)
    .bind(block_number)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((raised_by, market_id, upheld, title)) = row else {
        return Ok(false);
    };
    let event = Event::DisputeResolved {
        dispute_id,
        market_id,
        title,
        upheld,
        votes_for,
        votes_against,
    };
    record(
        conn,
        raised_by,
        &event,
        &format!("dispute.resolved:{dispute_id}"),
    )
    .await?;
    Ok(true)
}

/// An outbox transaction reverted on chain: FAILED with the reason, for operators to see
/// (`jobfleet chain outbox --status FAILED`) and retry (`jobfleet chain retry`).
pub async fn reverted(
    conn: &mut PgConnection,
    row: &OutboxRow,
    tx_hash: &str,
    block_number: i64,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE chain_outbox SET status = 'FAILED', tx_hash = $2, block_number = $3,
             last_error = $4, updated_at = now()
         WHERE id = $1 AND status = 'SUBMITTED'",
    )
    .bind(row.id)
    .bind(tx_hash)
    .bind(block_number)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A dispute's verdict seen on chain by the indexer: recorded without a notification (the
/// confirmer, which knows the vote counts, sends it).
pub async fn dispute_recorded(
    conn: &mut PgConnection,
    dispute_id: i64,
    tx_hash: &str,
    block_number: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE disputes SET resolution_tx_hash = $2, resolution_block = $3
         WHERE id = $1 AND resolution_tx_hash IS NULL",
    )
    .bind(dispute_id)
    .bind(tx_hash)
    .bind(block_number)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
