//! The chain outbox: the rows the transaction sender signs, broadcasts and confirms, and the
//! signer's nonce sequence.
//!
//! A row moves PENDING -> SIGNED (nonce, hash and signed bytes stored, not yet broadcast) ->
//! SUBMITTED (the node has it) -> CONFIRMED, or to FAILED with the reason (a revert at
//! estimation, before any nonce is taken; or a revert on chain). Every move is an `UPDATE`
//! guarded by the row's current status, so a stale or concurrent writer changes nothing.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

/// One outbox row as the sender and the confirmer see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub idempotency_key: String,
    pub kind: String,
    pub target: String,
    pub args: Value,
    /// The market's on-chain id, looked up from `args.marketId` when the args lack it.
    pub on_chain_id: Option<i64>,
    pub status: String,
    pub nonce: Option<i64>,
    pub tx_hash: Option<String>,
    pub raw_tx: Option<Vec<u8>>,
    pub signer: Option<String>,
    /// The chain the row was signed for: its id and genesis hash ("" for rows signed before
    /// chains were told apart by their genesis). None while the row was never signed.
    pub chain_id: Option<i64>,
    pub genesis_hash: Option<String>,
    pub gas_limit: Option<i64>,
    pub max_fee_per_gas: Option<String>,
    pub max_priority_fee_per_gas: Option<String>,
    pub previous_hashes: Vec<String>,
    pub signed_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub block_number: Option<i64>,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "
SELECT o.id, o.idempotency_key, o.kind, o.target, o.args,
       coalesce((o.args->>'onChainId')::bigint,
                (SELECT m.on_chain_id FROM markets m WHERE m.id = (o.args->>'marketId')::bigint))
           AS on_chain_id,
       o.status::text AS status, o.nonce, o.tx_hash, o.raw_tx, o.signer, o.chain_id, o.genesis_hash, o.gas_limit,
       o.max_fee_per_gas::text AS max_fee_per_gas,
       o.max_priority_fee_per_gas::text AS max_priority_fee_per_gas,
       o.previous_hashes, o.signed_at, o.submitted_at, o.attempts, o.last_error, o.block_number, o.created_at
FROM chain_outbox o";

/// Rows in `status`, oldest first (SIGNED and SUBMITTED rows by nonce, which is the order
/// the node must see them in).
pub async fn by_status(
    pool: &PgPool,
    status: &str,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let order = if status == "PENDING" {
        "o.id"
    } else {
        "o.nonce, o.id"
    };
    sqlx::query_as(&format!(
        "{SELECT} WHERE o.status = $1::outbox_status ORDER BY {order} LIMIT $2"
    ))
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every row, newest first, for operators; `status` filters when given.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE $1::text IS NULL OR o.status::text = $1 ORDER BY o.id DESC LIMIT $2"
    ))
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<OutboxRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE o.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A row that cannot be sent: straight to FAILED with the reason, no nonce taken.
pub async fn fail(pool: &PgPool, id: i64, from: &str, reason: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE chain_outbox SET status = 'FAILED', last_error = $3, updated_at = now()
         WHERE id = $1 AND status = $2::outbox_status",
    )
    .bind(id)
    .bind(from)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Takes the signer's next nonce on the chain (`chain_id`, `genesis`), locking its row until
/// the transaction ends: `at_least` is the node's count of the signer's transactions, which
/// wins when the key was used elsewhere. Each chain has its own sequence, so a new chain
/// with an old chain's id starts from its own count.
pub async fn take_nonce(
    conn: &mut PgConnection,
    signer: &str,
    (chain_id, genesis): (i64, &str),
    at_least: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO chain_signers (address, chain_id, genesis_hash, next_nonce)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (address, chain_id, genesis_hash) DO NOTHING",
    )
    .bind(signer)
    .bind(chain_id)
    .bind(genesis)
    .bind(at_least)
    .execute(&mut *conn)
    .await?;
    let stored: i64 = sqlx::query_scalar(
        "SELECT next_nonce FROM chain_signers
         WHERE address = $1 AND chain_id = $2 AND genesis_hash = $3 FOR UPDATE",
    )
    .bind(signer)
    .bind(chain_id)
    .bind(genesis)
    .fetch_one(&mut *conn)
    .await?;
    let nonce = stored.max(at_least);
    sqlx::query(
        "UPDATE chain_signers SET next_nonce = $4, updated_at = now()
         WHERE address = $1 AND chain_id = $2 AND genesis_hash = $3",
    )
    .bind(signer)
    .bind(chain_id)
    .bind(genesis)
    .bind(nonce + 1)
    .execute(&mut *conn)
    .await?;
    Ok(nonce)
}

/// The signed transaction of an attempt, stored before it is broadcast.
#[derive(Debug, Clone)]
pub struct Signed {
    pub signer: String,
    pub chain_id: i64,
    pub genesis_hash: String,
    pub nonce: i64,
    pub tx_hash: String,
    pub raw_tx: Vec<u8>,
    pub gas_limit: i64,
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: String,
}

/// Records a signed attempt: PENDING -> SIGNED, or, for a replacement, SUBMITTED or SIGNED ->
/// SIGNED with the old hash kept in `previous_hashes`. `current` is the hash the caller saw
/// (None for a PENDING row): a row that moved or was replaced meanwhile is left alone and
/// false is returned, so a writer working from a stale copy changes nothing.
pub async fn record_signed(
    conn: &mut PgConnection,
    id: i64,
    from: &str,
    current: Option<&str>,
    s: &Signed,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE chain_outbox SET
             status = 'SIGNED', signer = $3, chain_id = $4, genesis_hash = $12, nonce = $5,
             previous_hashes = CASE WHEN tx_hash IS NULL OR tx_hash = $6 THEN previous_hashes
                                    ELSE previous_hashes || tx_hash END,
             tx_hash = $6, raw_tx = $7, gas_limit = $8,
             max_fee_per_gas = $9::numeric, max_priority_fee_per_gas = $10::numeric,
             signed_at = now(), attempts = attempts + 1, last_error = NULL, updated_at = now()
         WHERE id = $1 AND status = $2::outbox_status AND tx_hash IS NOT DISTINCT FROM $11",
    )
    .bind(id)
    .bind(from)
    .bind(&s.signer)
    .bind(s.chain_id)
    .bind(s.nonce)
    .bind(&s.tx_hash)
    .bind(&s.raw_tx)
    .bind(s.gas_limit)
    .bind(&s.max_fee_per_gas)
    .bind(&s.max_priority_fee_per_gas)
    .bind(current)
    .bind(&s.genesis_hash)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The node has the signed transaction: SIGNED -> SUBMITTED.
pub async fn mark_submitted(pool: &PgPool, id: i64, tx_hash: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE chain_outbox SET status = 'SUBMITTED', submitted_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'SIGNED' AND tx_hash = $2",
    )
    .bind(id)
    .bind(tx_hash)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Our nonce was used by another transaction of the same key and none of our attempts was
/// mined: back to PENDING, to be signed again with a fresh nonce.
pub async fn requeue(
    pool: &PgPool,
    id: i64,
    current: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE chain_outbox SET status = 'PENDING', nonce = NULL, raw_tx = NULL,
             previous_hashes = CASE WHEN tx_hash IS NULL THEN previous_hashes
                                    ELSE previous_hashes || tx_hash END,
             tx_hash = NULL, last_error = $3, updated_at = now()
         WHERE id = $1 AND status IN ('SIGNED', 'SUBMITTED') AND tx_hash = $2",
    )
    .bind(id)
    .bind(current)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Why the node refused a signed row, for operators (the row stays SIGNED and is tried again).
pub async fn note_error(pool: &PgPool, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE chain_outbox SET last_error = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// Why PENDING rows wait without being signed (fees above the caps), for operators; signing
/// a row clears it.
pub async fn note_waiting(pool: &PgPool, ids: &[i64], why: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE chain_outbox SET last_error = $2, updated_at = now()
         WHERE id = ANY($1) AND status = 'PENDING' AND last_error IS DISTINCT FROM $2",
    )
    .bind(ids)
    .bind(why)
    .execute(pool)
    .await?;
    Ok(())
}

/// An operator's retry of a FAILED row: back to PENDING with a fresh nonce to come.
pub async fn retry_failed(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE chain_outbox SET status = 'PENDING', nonce = NULL, raw_tx = NULL,
             previous_hashes = CASE WHEN tx_hash IS NULL THEN previous_hashes
                                    ELSE previous_hashes || tx_hash END,
             tx_hash = NULL, escalated_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'FAILED'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Counts by status, for `jobfleet chain status` and the metrics.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status::text, count(*) FROM chain_outbox GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await
}

/// What `forget_chain` cleared.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    pub signers: u64,
    pub cursors: u64,
    pub events: u64,
    /// SIGNED and SUBMITTED rows sent back to PENDING.
    pub requeued: u64,
}

/// After the node of chain `chain_id` was replaced by a new chain with the same id (a
/// development chain started afresh, whose genesis is `genesis`): forgets the signers' nonces,
/// the indexer's cursors and events of every other chain with that id (and of any chain, for
/// cursors and events, as the indexer follows one chain), and sends every row that was in
/// flight there back to PENDING (its hashes kept in `previous_hashes`), in one transaction.
/// Records made before chains were told apart by genesis count as another chain's.
/// CONFIRMED and FAILED rows stay as the record of what happened, and whatever belongs to the
/// node's own chain is kept: a reset run against a node that was not reset changes nothing.
pub async fn forget_chain(
    pool: &PgPool,
    chain_id: i64,
    genesis: &str,
) -> Result<Forgotten, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let signers =
        sqlx::query("DELETE FROM chain_signers WHERE chain_id = $1 AND genesis_hash <> $2")
            .bind(chain_id)
            .bind(genesis)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let cursors =
        sqlx::query("DELETE FROM chain_cursors WHERE (chain_id, genesis_hash) <> ($1, $2)")
            .bind(chain_id)
            .bind(genesis)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let events = sqlx::query("DELETE FROM chain_events WHERE (chain_id, genesis_hash) <> ($1, $2)")
        .bind(chain_id)
        .bind(genesis)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let requeued = sqlx::query(
        "UPDATE chain_outbox SET status = 'PENDING', nonce = NULL, raw_tx = NULL,
             previous_hashes = CASE WHEN tx_hash IS NULL THEN previous_hashes
                                    ELSE previous_hashes || tx_hash END,
             tx_hash = NULL, last_error = 'the chain was reset; sent again', updated_at = now()
         WHERE status IN ('SIGNED', 'SUBMITTED') AND chain_id = $1 AND genesis_hash <> $2",
    )
    .bind(chain_id)
    .bind(genesis)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Forgotten {
        signers,
        cursors,
        events,
        requeued,
    })
}

/// Gives the records made before chains were told apart by genesis (genesis "") to the chain
/// the node is on now, the only reading an upgraded deployment allows: its signer's nonce row,
/// its in-flight rows (their history, CONFIRMED and FAILED, stays unassigned: its nonces take
/// no part in any sequence), the indexer's cursor and events. After `chain reset` there is
/// nothing left to adopt. Idempotent and cheap once done.
pub async fn adopt_legacy(pool: &PgPool, chain_id: i64, genesis: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE chain_signers s SET genesis_hash = $2
         WHERE chain_id = $1 AND genesis_hash = ''
           AND NOT EXISTS (SELECT 1 FROM chain_signers o
                           WHERE o.address = s.address AND o.chain_id = $1 AND o.genesis_hash = $2)",
    )
    .bind(chain_id)
    .bind(genesis)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE chain_outbox r SET genesis_hash = $2
         WHERE chain_id = $1 AND genesis_hash = '' AND status IN ('SIGNED', 'SUBMITTED')
           AND NOT EXISTS (SELECT 1 FROM chain_outbox o
                           WHERE o.signer = r.signer AND o.chain_id = $1
                             AND o.genesis_hash = $2 AND o.nonce = r.nonce)",
    )
    .bind(chain_id)
    .bind(genesis)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE chain_cursors c SET chain_id = $1, genesis_hash = $2
         WHERE genesis_hash = ''
           AND NOT EXISTS (SELECT 1 FROM chain_cursors o
                           WHERE o.name = c.name AND o.chain_id = $1 AND o.genesis_hash = $2)",
    )
    .bind(chain_id)
    .bind(genesis)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE chain_events e SET chain_id = $1, genesis_hash = $2
         WHERE genesis_hash = ''
           AND NOT EXISTS (SELECT 1 FROM chain_events o
                           WHERE o.chain_id = $1 AND o.genesis_hash = $2
                             AND o.tx_hash = e.tx_hash AND o.log_index = e.log_index)",
    )
    .bind(chain_id)
    .bind(genesis)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
