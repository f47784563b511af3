//! Confirmation: the receipts of submitted transactions, counted confirmations, reverts with
//! their reasons, the effect of each confirmed transaction, and replacement of transactions
//! that were not mined in time.
//!
//! A row is looked up by every hash it was sent under (a replaced attempt may still be the
//! one mined). It is final once its block has `confirmations` confirmations (its own block
//! and those on top: `head - block + 1`, as `Chain::safe_head` counts); only then is it
//! CONFIRMED and its effect applied, in one database transaction.

use alloy::eips::BlockId;
use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::contracts::calldata;
use super::guards::other_chain;
use super::sender::Sender;
use super::{Chain, ChainError, hex_lower, waited};
use crate::db::{onchain, outbox};

/// What one confirmation run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmReport {
    pub confirmed: u32,
    pub reverted: u32,
    /// Mined but with fewer confirmations than required, or not mined yet.
    pub waiting: u32,
    pub replaced: u32,
    /// Rows signed for another chain (another id, or the same id with another genesis),
    /// left alone.
    pub elsewhere: u32,
}

/// Looks at every SUBMITTED row once.
pub async fn confirm(
    chain: &Chain,
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<ConfirmReport, ChainError> {
    let mut report = ConfirmReport::default();
    let rows = outbox::by_status(pool, "SUBMITTED", 1000).await?;
    if rows.is_empty() {
        return Ok(report);
    }
    let here = chain.identity().await?;
    outbox::adopt_legacy(pool, here.key().0, &here.genesis).await?;
    let head = chain.provider.get_block_number().await?;
    let need = chain.settings.confirmations.max(1);
    let mut stuck = Vec::new();
    for row in rows {
        if let Some(why) = other_chain(&row, &here) {
            if row.last_error.as_deref() != Some(why.as_str()) {
                tracing::warn!(outbox_id = row.id, reason = %why, "submitted row left alone");
                outbox::note_error(pool, row.id, &why).await?;
            }
            report.elsewhere += 1;
            continue;
        }
        match find_receipt(chain, &row).await? {
            Some((hash, receipt)) => {
                let block = receipt.block_number.unwrap_or(head);
                if head + 1 < block + need {
                    report.waiting += 1;
                    continue;
                }
                if settle(chain, pool, &row, &hash, &receipt).await? {
                    report.confirmed += 1;
                } else {
                    report.reverted += 1;
                }
            }
            None => {
                if waited(row.submitted_at, chain.settings.replace_after, now) {
                    stuck.push(row);
                } else {
                    report.waiting += 1;
                }
            }
        }
    }
    if !stuck.is_empty() {
        report.replaced = replace(chain, pool, &stuck).await?;
        report.waiting += stuck.len() as u32 - report.replaced;
    }
    Ok(report)
}

/// The receipt of whichever attempt of the row was mined.
async fn find_receipt(
    chain: &Chain,
    row: &outbox::OutboxRow,
) -> Result<Option<(String, TransactionReceipt)>, ChainError> {
    let hashes = row.tx_hash.iter().chain(row.previous_hashes.iter());
    for h in hashes {
        let Ok(parsed) = h.parse::<B256>() else {
            continue;
        };
        if let Some(r) = chain.provider.get_transaction_receipt(parsed).await? {
            return Ok(Some((h.clone(), r)));
        }
    }
    Ok(None)
}

/// Applies a final receipt: CONFIRMED with its effect, or FAILED with the revert reason.
/// Returns whether it succeeded on chain.
async fn settle(
    chain: &Chain,
    pool: &PgPool,
    row: &outbox::OutboxRow,
    hash: &str,
    receipt: &TransactionReceipt,
) -> Result<bool, ChainError> {
    let block = receipt.block_number.unwrap_or_default() as i64;
    let block_hash = receipt.block_hash.map(hex_lower).unwrap_or_default();
    let mut tx = pool.begin().await?;
    if receipt.status() {
        if onchain::confirmed(&mut tx, row, hash, block, &block_hash).await? {
            tracing::info!(outbox_id = row.id, kind = %row.kind, tx_hash = %hash, block, "transaction confirmed");
        }
        tx.commit().await?;
        return Ok(true);
    }
    let reason = revert_reason(chain, row, block).await;
    let message = format!("reverted on chain in block {block}: {reason}");
    if onchain::reverted(&mut tx, row, hash, block, &message).await? {
        // Operators see it in `jobfleet chain outbox --status FAILED` and retry it with
        // `jobfleet chain retry`; it is logged at error level so alerting picks it up.
        tracing::error!(outbox_id = row.id, kind = %row.kind, tx_hash = %hash, block, %reason,
            "transaction reverted on chain: row failed, needs an operator");
    }
    tx.commit().await?;
    Ok(false)
}

/// Why a mined transaction reverted: the same call replayed on the state before its block.
async fn revert_reason(chain: &Chain, row: &outbox::OutboxRow, block: i64) -> String {
    let Ok(markets) = chain.markets() else {
        return "unknown (chain.markets_address is not set)".into();
    };
    let Ok((to, data)) = calldata(row, markets) else {
        return "unknown (the row's call does not encode)".into();
    };
    let mut request = TransactionRequest::default().to(to).input(data.into());
    if let Some(from) = row.signer.as_deref().and_then(|s| s.parse().ok()) {
        request = request.from(from);
    }
    let at = BlockId::number((block - 1).max(0) as u64);
    match chain.provider.call(request).block(at).await {
        Ok(_) => "unknown (the call succeeds when replayed)".into(),
        Err(e) => match ChainError::from_rpc(e) {
            ChainError::Revert(reason) => reason,
            other => format!("unknown ({other})"),
        },
    }
}

/// Deals with transactions not mined in time, under the signer's lock; returns how many were
/// replaced. Only the signer's next nonce to be mined is replaced: later ones are stuck only
/// because they wait for it, and bidding them up would pay for nothing. A row whose nonce the
/// chain has passed without any of its hashes being mined had its nonce used by another
/// transaction of the key: broadcasting it again finds that out and sends it with a new nonce.
async fn replace(
    chain: &Chain,
    pool: &PgPool,
    rows: &[outbox::OutboxRow],
) -> Result<u32, ChainError> {
    let sender = Sender::new(chain, pool).await?;
    let Some(lock) = sender.lock().await? else {
        // The sender is running; the next confirmation run looks again.
        return Ok(0);
    };
    let result = replace_locked(chain, pool, &sender, rows).await;
    lock.rollback().await?;
    result
}

async fn replace_locked(
    chain: &Chain,
    pool: &PgPool,
    sender: &Sender<'_>,
    rows: &[outbox::OutboxRow],
) -> Result<u32, ChainError> {
    let next = chain
        .provider
        .get_transaction_count(sender.address())
        .latest()
        .await? as i64;
    let mut replaced = 0;
    for stale in rows {
        // Re-read under the lock: another run may have replaced it since this run read it.
        let Some(row) = outbox::get(pool, stale.id).await? else {
            continue;
        };
        let (Some(nonce), Some(hash), Some(raw)) =
            (row.nonce, row.tx_hash.as_deref(), row.raw_tx.as_deref())
        else {
            continue;
        };
        if row.status != "SUBMITTED" || Some(hash) != stale.tx_hash.as_deref() {
            continue;
        }
        if let Some(why) = sender.elsewhere(&row) {
            // Signed by a key that is not ours any more: its nonce is that key's, and only
            // that key could replace it.
            sender.leave_alone(&row, &why).await?;
            continue;
        }
        if nonce == next {
            if sender.replace(&row, "SUBMITTED").await? {
                replaced += 1;
            }
        } else if nonce < next {
            sender.broadcast(&row, hash, raw).await?;
        }
    }
    Ok(replaced)
}
