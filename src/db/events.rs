//! The indexer's storage: its cursor (last indexed block and that block's hash), the decoded
//! events, and the rewind after a reorg. A range's events, their effects and the cursor move
//! commit in one transaction. Cursors and events belong to one chain, named by its id and
//! genesis hash (`chain: (i64, &str)` below): another chain with the same id is not seen.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};

/// One decoded log of our contracts.
#[derive(Debug, Clone)]
pub struct Event {
    pub tx_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub block_hash: String,
    pub contract: String,
    pub event: String,
    pub data: Value,
}

/// The cursor of `chain`: the last indexed block and its hash.
pub async fn cursor(
    pool: &PgPool,
    name: &str,
    chain: (i64, &str),
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT block_number, block_hash FROM chain_cursors
         WHERE name = $1 AND chain_id = $2 AND genesis_hash = $3",
    )
    .bind(name)
    .bind(chain.0)
    .bind(chain.1)
    .fetch_optional(pool)
    .await
}

/// Moves the cursor from `from` (None: no cursor yet) to `to`; false when another indexer
/// moved it first (compare and set), in which case the caller's transaction must roll back.
pub async fn move_cursor(
    conn: &mut PgConnection,
    name: &str,
    chain: (i64, &str),
    from: Option<i64>,
    to: i64,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    let r =
        match from {
            None => sqlx::query(
                "INSERT INTO chain_cursors (name, chain_id, genesis_hash, block_number, block_hash)
                     VALUES ($1, $4, $5, $2, $3)
                     ON CONFLICT (name, chain_id, genesis_hash) DO NOTHING",
            )
            .bind(name)
            .bind(to)
            .bind(hash)
            .bind(chain.0)
            .bind(chain.1)
            .execute(&mut *conn)
            .await?,
            Some(from) => sqlx::query(
                "UPDATE chain_cursors SET block_number = $3, block_hash = $4, updated_at = now()
                 WHERE name = $1 AND block_number = $2 AND chain_id = $5 AND genesis_hash = $6",
            )
            .bind(name)
            .bind(from)
            .bind(to)
            .bind(hash)
            .bind(chain.0)
            .bind(chain.1)
            .execute(&mut *conn)
            .await?,
        };
    Ok(r.rows_affected() == 1)
}

/// Inserts an event of `chain` once (unique per chain by tx hash + log index); true when it
/// is new.
pub async fn insert(
    conn: &mut PgConnection,
    chain: (i64, &str),
    e: &Event,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO chain_events (tx_hash, log_index, block_number, block_hash, contract, event, data,
                                   chain_id, genesis_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (chain_id, genesis_hash, tx_hash, log_index) DO NOTHING",
    )
    .bind(&e.tx_hash)
    .bind(e.log_index as i32)
    .bind(e.block_number)
    .bind(&e.block_hash)
    .bind(&e.contract)
    .bind(&e.event)
    .bind(&e.data)
    .bind(chain.0)
    .bind(chain.1)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The market of an on-chain id.
pub async fn market_of(
    conn: &mut PgConnection,
    on_chain_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM markets WHERE on_chain_id = $1")
        .bind(on_chain_id)
        .fetch_optional(&mut *conn)
        .await
}

/// After a reorg: forgets every event above `to` and the effects recorded from those blocks,
/// and sets the cursor back to `to` (or removes it when `to` is None: start again).
/// Returns the number of events forgotten.
pub async fn rewind(
    pool: &PgPool,
    name: &str,
    chain: (i64, &str),
    to: Option<(i64, String)>,
) -> Result<u64, sqlx::Error> {
    let above = to.as_ref().map_or(-1, |(n, _)| *n);
    let mut tx = pool.begin().await?;
    let gone = sqlx::query(
        "DELETE FROM chain_events WHERE block_number > $1 AND chain_id = $2 AND genesis_hash = $3",
    )
    .bind(above)
    .bind(chain.0)
    .bind(chain.1)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The effects keep the first record of a transaction; ones from dropped blocks are
    // cleared so the re-indexed chain (or the confirmer) records the surviving ones.
    sqlx::query("UPDATE markets SET approval_tx_hash = NULL, approval_block = NULL WHERE approval_block > $1")
        .bind(above)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE disputes SET resolution_tx_hash = NULL, resolution_block = NULL WHERE resolution_block > $1")
        .bind(above)
        .execute(&mut *tx)
        .await?;
    match to {
        Some((n, hash)) => {
            sqlx::query(
                "UPDATE chain_cursors SET block_number = $2, block_hash = $3, updated_at = now()
                 WHERE name = $1 AND chain_id = $4 AND genesis_hash = $5",
            )
            .bind(name)
            .bind(n)
            .bind(hash)
            .bind(chain.0)
            .bind(chain.1)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM chain_cursors WHERE name = $1 AND chain_id = $2 AND genesis_hash = $3",
            )
            .bind(name)
            .bind(chain.0)
            .bind(chain.1)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(gone)
}
