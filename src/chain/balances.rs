//! Balance sync: the native and ERC-20 balances of a batch of wallets, read through
//! Multicall3 at one block, written when they changed, with a notification for a large change.
//!
//! Every balance of a batch is read at the same block (pinned before the first call), so a
//! batch is one consistent snapshot and its block number is the one stored. Calls are grouped
//! `multicall_chunk` to an `eth_call`, and the chunks run concurrently.

use std::collections::BTreeMap;

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;

use super::contracts::{Multicall3, Token};
use super::{Chain, ChainError};
use crate::db::balances::{self, Reading, Wallet};

/// Chunks of one batch in flight at once.
const CONCURRENT_CALLS: usize = 4;

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub wallets: u32,
    pub read: u32,
    pub changed: u32,
    pub notified: u32,
    pub block: u64,
}

/// The balances to read for each wallet: "native" first, then each token by symbol.
fn calls(
    wallets: &[Wallet],
    multicall: Address,
    tokens: &BTreeMap<String, Address>,
) -> Vec<Multicall3::Call3> {
    let mut out = Vec::with_capacity(wallets.len() * (tokens.len() + 1));
    for w in wallets {
        out.push(Multicall3::Call3 {
            target: multicall,
            allowFailure: false,
            callData: Multicall3::getEthBalanceCall { addr: w.address }
                .abi_encode()
                .into(),
        });
        for token in tokens.values() {
            out.push(Multicall3::Call3 {
                target: *token,
                allowFailure: false,
                callData: Token::balanceOfCall(w.address).abi_encode().into(),
            });
        }
    }
    out
}

/// Reads and stores the balances of `wallets`.
pub async fn sync_batch(
    chain: &Chain,
    pool: &PgPool,
    wallets: &[Wallet],
) -> Result<BatchReport, ChainError> {
    let tokens = chain
        .settings
        .token_list()
        .map_err(|e| ChainError::Fatal(format!("chain.tokens: {e}")))?;
    let multicall = chain.multicall()?;
    let block = chain.provider.get_block_number().await?;
    let calls = calls(wallets, multicall, &tokens);
    let contract = Multicall3::new(multicall, chain.provider.clone());
    let chunks: Vec<Vec<Multicall3::Call3>> = calls
        .chunks(chain.settings.multicall_chunk)
        .map(<[_]>::to_vec)
        .collect();
    let calls_len = calls.len();
    let results: Vec<Vec<Bytes>> = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| aggregate(contract.clone(), c, block)),
    )
    .buffered(CONCURRENT_CALLS)
    .try_collect()
    .await?;
    let values = results.into_iter().flatten().map(|data| decode_u256(&data));
    let names =
        std::iter::once("native".to_owned()).chain(tokens.values().map(|a| super::addr_lower(*a)));
    let names: Vec<String> = names.collect();
    let mut readings = Vec::with_capacity(calls_len);
    for (i, value) in values.enumerate() {
        let wallet = &wallets[i / names.len()];
        readings.push(Reading {
            wallet_id: wallet.id,
            token: names[i % names.len()].clone(),
            balance: value?.to_string(),
        });
    }
    let symbols: BTreeMap<String, String> = tokens
        .iter()
        .map(|(s, a)| (super::addr_lower(*a), s.clone()))
        .collect();
    let written = balances::write(
        pool,
        &readings,
        block as i64,
        chain.settings.large_change_bp,
        &symbols,
    )
    .await?;
    Ok(BatchReport {
        wallets: wallets.len() as u32,
        read: readings.len() as u32,
        changed: written.changed,
        notified: written.notified,
        block,
    })
}

/// One Multicall3 `aggregate3` at `block`: each call's return data, in order.
async fn aggregate(
    contract: Multicall3::Multicall3Instance<alloy::providers::DynProvider>,
    calls: Vec<Multicall3::Call3>,
    block: u64,
) -> Result<Vec<Bytes>, ChainError> {
    let out = contract
        .aggregate3(calls)
        .block(BlockId::number(block))
        .call()
        .await
        .map_err(ChainError::from_contract)?;
    Ok(out.into_iter().map(|r| r.returnData).collect())
}

/// A balance is one uint256; anything else means the target is not an ERC-20 (fatal).
fn decode_u256(data: &[u8]) -> Result<U256, ChainError> {
    if data.len() != 32 {
        return Err(ChainError::Fatal(format!(
            "a balance call returned {} bytes, not 32: is every chain.tokens address an ERC-20?",
            data.len()
        )));
    }
    Ok(U256::from_be_slice(data))
}
