//! Wallet balances: the wallets of a sync batch, and the write of what changed.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256, U512};
use sqlx::PgPool;

use super::notifications::record;
use crate::notify::Event;

/// A wallet to read.
#[derive(Debug, Clone)]
pub struct Wallet {
    pub id: i64,
    pub address: Address,
}

/// One balance read at the batch's block.
#[derive(Debug, Clone)]
pub struct Reading {
    pub wallet_id: i64,
    /// "native" or the token's address.
    pub token: String,
    /// Wei, decimal.
    pub balance: String,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub changed: u32,
    pub notified: u32,
}

/// The first wallet id of each batch of `size` wallets, in id order: the fan-out's bounds.
pub async fn batch_starts(pool: &PgPool, size: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM wallets) w
         WHERE n % $1 = 0 ORDER BY id",
    )
    .bind(size)
    .fetch_all(pool)
    .await
}

/// Up to `limit` wallets from id `from` on, in id order.
pub async fn wallets(pool: &PgPool, from: i64, limit: i64) -> Result<Vec<Wallet>, sqlx::Error> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, address FROM wallets WHERE id >= $1 ORDER BY id LIMIT $2")
            .bind(from)
            .bind(limit)
            .fetch_all(pool)
            .await?;
    // The schema's CHECK guarantees the format, so a row that does not parse is skipped
    // rather than failing the batch.
    Ok(rows
        .into_iter()
        .filter_map(|(id, a)| {
            Some(Wallet {
                id,
                address: a.parse().ok()?,
            })
        })
        .collect())
}

/// Writes the readings that differ from the stored balances (and are not older than them),
/// and notifies large changes, in one transaction.
pub async fn write(
    pool: &PgPool,
    readings: &[Reading],
    block: i64,
    large_change_bp: u32,
    symbols: &BTreeMap<String, String>,
) -> Result<Written, sqlx::Error> {
    let ids: Vec<i64> = readings.iter().map(|r| r.wallet_id).collect();
    let tokens: Vec<&str> = readings.iter().map(|r| r.token.as_str()).collect();
    let values: Vec<&str> = readings.iter().map(|r| r.balance.as_str()).collect();
    let mut tx = pool.begin().await?;
    // All CTEs see the snapshot from before the upsert, so `old` holds the previous values.
    let changed: Vec<(i64, i64, String, String, Option<String>, String)> = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::numeric[]) AS t(wallet_id, token, balance)
         ), old AS (
             SELECT i.wallet_id, i.token, b.balance AS old
             FROM input i LEFT JOIN wallet_balances b USING (wallet_id, token)
         ), up AS (
             INSERT INTO wallet_balances AS b (wallet_id, token, balance, block_number, updated_at)
             SELECT wallet_id, token, balance, $4, now() FROM input
             ON CONFLICT (wallet_id, token) DO UPDATE
                 SET balance = EXCLUDED.balance, block_number = EXCLUDED.block_number, updated_at = now()
                 WHERE b.balance IS DISTINCT FROM EXCLUDED.balance AND b.block_number <= EXCLUDED.block_number
             RETURNING wallet_id, token, balance
         )
         SELECT up.wallet_id, w.user_id, w.address, up.token, old.old::text, up.balance::text
         FROM up JOIN old USING (wallet_id, token) JOIN wallets w ON w.id = up.wallet_id",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(&values)
    .bind(block)
    .fetch_all(&mut *tx)
    .await?;
    let mut written = Written {
        changed: changed.len() as u32,
        notified: 0,
    };
    for (wallet_id, user_id, address, token, old, new) in changed {
        let Some(old) = old else { continue };
        let (Ok(o), Ok(n)) = (
            U256::from_str_radix(&old, 10),
            U256::from_str_radix(&new, 10),
        ) else {
            continue;
        };
        if !is_large(o, n, large_change_bp) {
            continue;
        }
        let symbol = symbols
            .get(&token)
            .cloned()
            .unwrap_or_else(|| "ETH".to_owned());
        let key = format!("balance.changed:{wallet_id}:{token}:{block}");
        let event = Event::BalanceChanged {
            wallet: address,
            token,
            symbol,
            old: o.into(),
            new: n.into(),
            block,
        };
        if record(&mut tx, user_id, &event, &key).await? {
            written.notified += 1;
        }
    }
    tx.commit().await?;
    Ok(written)
}

/// Whether a change is large: at least `bp` basis points of the old balance. A first reading
/// (no old balance) is never large: there is nothing to compare with.
pub fn is_large(old: U256, new: U256, bp: u32) -> bool {
    let diff = if new > old { new - old } else { old - new };
    if diff.is_zero() {
        return false;
    }
    // diff / old >= bp / 10000, without division, in 512 bits so no product can overflow.
    U512::from(diff) * U512::from(10_000u32) >= U512::from(old) * U512::from(bp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_changes_are_relative_to_the_old_balance() {
        let u = U256::from;
        assert!(is_large(u(100u32), u(150u32), 5000));
        assert!(is_large(u(100u32), u(50u32), 5000));
        assert!(!is_large(u(100u32), u(149u32), 5000));
        assert!(!is_large(u(100u32), u(100u32), 0));
        assert!(is_large(U256::ZERO, u(1u32), 5000));
        assert!(is_large(U256::MAX, U256::ZERO, 10_000));
        // Products above 2^256 are compared exactly: a tiny change of a huge balance is small.
        assert!(!is_large(U256::MAX - U256::from(1u8), U256::MAX, 1));
    }
}
