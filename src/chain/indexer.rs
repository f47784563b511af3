//! The event indexer: the markets and oracle contracts' logs, from the cursor to the head less
//! `confirmations`, in ranges of at most `index_max_range` blocks.
//!
//! Each range is one database transaction: its events (unique by tx hash and log index), their
//! effects and the cursor's move to the range's last block, with that block's hash. The next
//! run first checks that hash against the chain: a different hash means the blocks under the
//! cursor were replaced (a reorg), and the indexer forgets everything above
//! `cursor - reorg_depth` and indexes again from there.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, Log as PrimLog};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use serde_json::json;
use sqlx::PgPool;

use super::contracts::{Markets, Oracle};
use super::{Chain, ChainError, addr_lower, hex_lower};
use crate::db::events::{self, Event};
use crate::db::onchain;

/// The cursor's name in `chain_cursors`.
pub const CURSOR: &str = "contracts";
/// Ranges per run, so one run stays short; the next run goes on.
const RANGES_PER_RUN: usize = 20;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexReport {
    pub head: u64,
    /// The cursor after the run.
    pub indexed_to: Option<u64>,
    pub events: u32,
    /// The block re-indexing started above, when a reorg was found.
    pub reorg_to: Option<u64>,
    pub forgotten: u64,
}

pub async fn index(chain: &Chain, pool: &PgPool) -> Result<IndexReport, ChainError> {
    let addresses = [chain.markets()?, chain.oracle()?];
    let identity = chain.identity().await?;
    let here = identity.key();
    crate::db::outbox::adopt_legacy(pool, here.0, here.1).await?;
    let (head, safe) = chain.safe_head().await?;
    let mut report = IndexReport {
        head,
        ..IndexReport::default()
    };
    let mut cursor = events::cursor(pool, CURSOR, here).await?;
    if let Some((n, stored)) = &cursor {
        match block_hash(chain, *n as u64).await? {
            None => {
                // The node does not have the block we indexed last: it is behind (a lagging
                // backend), or was reset. Either way there is nothing to compare yet; once it
                // has a block at that height, the hash check below decides.
                tracing::warn!(
                    cursor = n,
                    head,
                    "the node does not have the last indexed block yet: waiting"
                );
                report.indexed_to = Some(*n as u64);
                return Ok(report);
            }
            Some(actual) if actual != *stored => {
                let (to, forgotten) = rewind(chain, pool, here, *n as u64).await?;
                tracing::warn!(cursor = n, stored_hash = %stored, chain_hash = %actual, rewound_to = ?to,
                    forgotten, "reorg: the indexed block was replaced; re-indexing");
                report.reorg_to = Some(
                    to.as_ref()
                        .map_or(chain.settings.start_block, |(n, _)| *n as u64),
                );
                report.forgotten = forgotten;
                cursor = to;
            }
            Some(_) => {}
        }
    }
    let mut from = cursor
        .as_ref()
        .map_or(chain.settings.start_block, |(n, _)| *n as u64 + 1);
    for _ in 0..RANGES_PER_RUN {
        if from > safe {
            break;
        }
        let to = (from + chain.settings.index_max_range - 1).min(safe);
        let filter = Filter::new()
            .address(addresses.to_vec())
            .from_block(from)
            .to_block(to);
        // The range's last block is read before and after its logs: if its hash changed in
        // between, a reorg happened while reading and the logs may be from either chain, so
        // the range is left for the next run. Otherwise the stored hash is the one the logs
        // were read against, and a later reorg is caught by the check above.
        let Some(hash) = block_hash(chain, to).await? else {
            // The node does not have the block yet (a load balancer behind it): next run.
            break;
        };
        let logs = chain.provider.get_logs(&filter).await?;
        let decoded = logs
            .iter()
            .map(|l| decode(l, &addresses))
            .collect::<Result<Vec<_>, _>>()?;
        if block_hash(chain, to).await?.as_deref() != Some(hash.as_str()) {
            tracing::warn!(
                block = to,
                "the chain changed while its logs were read: next run"
            );
            break;
        }
        let mut tx = pool.begin().await?;
        let previous = cursor.as_ref().map(|(n, _)| *n);
        if !events::move_cursor(&mut tx, CURSOR, here, previous, to as i64, &hash).await? {
            // Another indexer moved the cursor: it owns this range.
            tx.rollback().await?;
            break;
        }
        for e in decoded.into_iter().flatten() {
            if events::insert(&mut tx, here, &e).await? {
                report.events += 1;
            }
            apply(&mut tx, &e).await?;
        }
        tx.commit().await?;
        cursor = Some((to as i64, hash));
        from = to + 1;
    }
    report.indexed_to = cursor.map(|(n, _)| n as u64);
    Ok(report)
}

async fn block_hash(chain: &Chain, n: u64) -> Result<Option<String>, ChainError> {
    let block = chain
        .provider
        .get_block_by_number(BlockNumberOrTag::Number(n))
        .await?;
    Ok(block.map(|b| hex_lower(b.header.hash.as_slice())))
}

/// Forgets the indexed blocks above `cursor - reorg_depth` and returns the new cursor (None:
/// from the start block again) and the number of events forgotten.
async fn rewind(
    chain: &Chain,
    pool: &PgPool,
    here: (i64, &str),
    cursor: u64,
) -> Result<(Option<(i64, String)>, u64), ChainError> {
    let depth = chain.settings.reorg_depth;
    let start = chain.settings.start_block;
    let to = match cursor.checked_sub(depth.max(1)) {
        Some(n) if n >= start => match block_hash(chain, n).await? {
            Some(h) => Some((n as i64, h)),
            // Never wipe the index because one answer was missing: try again later.
            None => {
                return Err(ChainError::NotReady(format!(
                    "the node has no block {n} to rewind to"
                )));
            }
        },
        _ => None,
    };
    let forgotten = events::rewind(pool, CURSOR, here, to.clone()).await?;
    Ok((to, forgotten))
}

/// Decodes a log of our contracts. A log whose topic is one of our events but whose data does
/// not decode means the configured address is not the contract we think (fatal); a topic we
/// do not know is skipped.
fn decode(log: &Log, addresses: &[Address; 2]) -> Result<Option<Event>, ChainError> {
    let (Some(tx), Some(index), Some(block), Some(block_hash)) = (
        log.transaction_hash,
        log.log_index,
        log.block_number,
        log.block_hash,
    ) else {
        return Ok(None); // A pending log; eth_getLogs over mined blocks does not return these.
    };
    let inner: &PrimLog = &log.inner;
    let Some(topic) = inner.topics().first().copied() else {
        return Ok(None);
    };
    let mismatch = |e: alloy::sol_types::Error| {
        ChainError::Fatal(format!(
            "ABI mismatch decoding a log of {}: {e}",
            inner.address
        ))
    };
    let (contract, name, data) = if inner.address == addresses[0] {
        match topic {
            Markets::MarketApproved::SIGNATURE_HASH => {
                let e = Markets::MarketApproved::decode_log(inner).map_err(mismatch)?;
                (
                    "markets",
                    "MarketApproved",
                    json!({"marketId": e.marketId.to_string(), "by": addr_lower(e.by)}),
                )
            }
            Markets::MarketResolved::SIGNATURE_HASH => {
                let e = Markets::MarketResolved::decode_log(inner).map_err(mismatch)?;
                (
                    "markets",
                    "MarketResolved",
                    json!({"marketId": e.marketId.to_string(), "outcome": e.outcome}),
                )
            }
            Markets::DisputeResolved::SIGNATURE_HASH => {
                let e = Markets::DisputeResolved::decode_log(inner).map_err(mismatch)?;
                (
                    "markets",
                    "DisputeResolved",
                    json!({"marketId": e.marketId.to_string(), "disputeId": e.disputeId.to_string(), "upheld": e.upheld}),
                )
            }
            _ => return Ok(None),
        }
    } else {
        match topic {
            Oracle::OutcomeReported::SIGNATURE_HASH => {
                let e = Oracle::OutcomeReported::decode_log(inner).map_err(mismatch)?;
                (
                    "oracle",
                    "OutcomeReported",
                    json!({"marketId": e.marketId.to_string(), "outcome": e.outcome}),
                )
            }
            _ => return Ok(None),
        }
    };
    Ok(Some(Event {
        tx_hash: hex_lower(tx.as_slice()),
        log_index: index as i64,
        block_number: block as i64,
        block_hash: hex_lower(block_hash.as_slice()),
        contract: contract.to_owned(),
        event: name.to_owned(),
        data,
    }))
}

/// The effect of an event on the platform's data (the same the confirmer applies from the
/// receipt; whichever comes first records it).
async fn apply(conn: &mut sqlx::PgConnection, e: &Event) -> Result<(), ChainError> {
    let num = |k: &str| {
        e.data
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<i64>().ok())
    };
    match e.event.as_str() {
        "MarketApproved" => {
            if let Some(market) = num("marketId")
                && let Some(id) = events::market_of(conn, market).await?
            {
                onchain::market_approved(conn, id, &e.tx_hash, e.block_number).await?;
            }
        }
        "MarketResolved" => {
            if let Some(market) = num("marketId")
                && let Some(id) = events::market_of(conn, market).await?
            {
                onchain::market_resolved_on_chain(conn, id, &e.tx_hash, e.block_number).await?;
            }
        }
        "DisputeResolved" => {
            if let Some(dispute) = num("disputeId") {
                onchain::dispute_recorded(conn, dispute, &e.tx_hash, e.block_number).await?;
            }
        }
        _ => {}
    }
    Ok(())
}
