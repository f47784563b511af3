//! The transaction sender: signs the outbox's rows from the platform's signer and broadcasts
//! them, one nonce sequence per signer with no gaps, recoverable after a crash at any point.
//!
//! The order of steps is the guarantee. A row is signed first and its signed bytes, hash and
//! nonce are committed (PENDING -> SIGNED) together with the signer's next nonce; only then
//! is it broadcast, and only then marked SUBMITTED. A crash before the commit leaves the row
//! PENDING and the nonce untaken; a crash after it leaves the row SIGNED, and the next run
//! broadcasts the very same bytes again (same hash: the node can only take it once). Gas is
//! estimated before a nonce is taken, so a call that would revert fails its row with the
//! revert reason and leaves no gap that would stall the next transaction (alloy's cached
//! nonce manager burns a nonce there, which is why the provider runs without fillers).
//!
//! One sender runs per signer at a time: each run holds a transaction-scoped advisory lock,
//! and a run that cannot take it leaves the work to the one that has it.
//!
//! A row is sent only where it was signed: the chain (id and genesis hash) and the signer are
//! stored with its signature, and a SIGNED or SUBMITTED row of another chain or another key
//! (the RPC pointed elsewhere, the key rotated) is never broadcast or replaced here; it waits,
//! the reason in `last_error`. Fees respect `chain::guards`'s caps before a nonce is taken.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use sqlx::{PgPool, Postgres, Transaction};

use super::guards::other_chain;
use super::{Chain, ChainError, ChainIdentity, addr_lower, failpoint, hex_lower, parse_wei};
use crate::db::outbox::{self, OutboxRow, Signed};

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// SIGNED rows (left by a crash or a failed broadcast) broadcast again.
    pub rebroadcast: u32,
    /// PENDING rows signed and broadcast.
    pub sent: u32,
    /// Rows failed before taking a nonce (a revert at estimation, args that do not encode).
    pub failed: u32,
    /// Rows whose nonce was used elsewhere, back to PENDING.
    pub requeued: u32,
    /// PENDING rows left unsigned because the fee estimate is above the caps.
    pub waiting: u32,
    /// SIGNED rows of another chain or signer, left alone.
    pub elsewhere: u32,
    /// True when another run held the signer's lock, so this one did nothing.
    pub busy: bool,
}

/// The signer of a chain, ready to sign.
#[derive(Debug)]
pub struct Sender<'a> {
    chain: &'a Chain,
    pool: &'a PgPool,
    signer: PrivateKeySigner,
    address: String,
    identity: ChainIdentity,
}

impl<'a> Sender<'a> {
    pub async fn new(chain: &'a Chain, pool: &'a PgPool) -> Result<Self, ChainError> {
        let key = &chain.settings.signer_key;
        if key.is_empty() {
            return Err(ChainError::NotConfigured("signer_key"));
        }
        let signer = key
            .signer()
            .map_err(|e| ChainError::Fatal(format!("chain.signer_key {e}")))?;
        let identity = chain.identity().await?;
        outbox::adopt_legacy(pool, identity.key().0, &identity.genesis).await?;
        Ok(Self {
            chain,
            pool,
            address: addr_lower(signer.address()),
            signer,
            identity,
        })
    }

    /// The chain this sender signs for.
    pub fn identity(&self) -> &ChainIdentity {
        &self.identity
    }

    /// Why a signed row must not be broadcast or replaced by this sender (None: it may): it
    /// was signed for another chain, or by another key.
    pub fn elsewhere(&self, row: &OutboxRow) -> Option<String> {
        if let Some(why) = other_chain(row, &self.identity) {
            return Some(why);
        }
        let signer = row.signer.as_deref().unwrap_or("");
        (signer != self.address).then(|| {
            format!(
                "signed by {signer}, chain.signer_key is now {}: sent only by the key that signed it",
                self.address
            )
        })
    }

    /// Stores why `row` is left alone, once, and logs it.
    pub async fn leave_alone(&self, row: &OutboxRow, why: &str) -> Result<(), ChainError> {
        if row.last_error.as_deref() != Some(why) {
            tracing::warn!(outbox_id = row.id, reason = %why, "signed row left alone");
            outbox::note_error(self.pool, row.id, why).await?;
        }
        Ok(())
    }

    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// Takes the signer's lock for the length of the returned transaction, or None when
    /// another run holds it.
    pub async fn lock(&self) -> Result<Option<Transaction<'static, Postgres>>, ChainError> {
        let mut tx = self.pool.begin().await?;
        let key = format!(
            "jobfleet:sender:{}:{}:{}",
            self.identity.id, self.identity.genesis, self.address
        );
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        Ok(got.then_some(tx))
    }

    /// One run: broadcast what a crash left SIGNED, then sign and send up to `limit` PENDING
    /// rows in order.
    pub async fn run(&self, limit: i64) -> Result<SendReport, ChainError> {
        let Some(lock) = self.lock().await? else {
            return Ok(SendReport {
                busy: true,
                ..SendReport::default()
            });
        };
        let mut report = SendReport::default();
        let result = self.run_locked(limit, &mut report).await;
        // Ending the lock's transaction releases the lock; nothing was written through it.
        lock.rollback().await?;
        result.map(|()| report)
    }

    async fn run_locked(&self, limit: i64, report: &mut SendReport) -> Result<(), ChainError> {
        for row in outbox::by_status(self.pool, "SIGNED", limit).await? {
            let (Some(hash), Some(raw)) = (&row.tx_hash, &row.raw_tx) else {
                continue;
            };
            if let Some(why) = self.elsewhere(&row) {
                // Another chain's rows take no part in this chain's nonce sequence, so
                // nothing here waits behind them.
                self.leave_alone(&row, &why).await?;
                report.elsewhere += 1;
                continue;
            }
            match self.broadcast(&row, hash, raw).await {
                Ok(true) => report.rebroadcast += 1,
                Ok(false) => report.requeued += 1,
                Err(e) if e.is_refusal() => {
                    // The node will not take these bytes (fees below its floor after a spike,
                    // an underpriced replacement, ...). Stored for operators; once the row has
                    // waited `replace_after`, it is signed again with the same nonce and fresh
                    // fees. Later rows wait behind it either way: their nonces come after.
                    outbox::note_error(self.pool, row.id, &format!("broadcast refused: {e}"))
                        .await?;
                    if self.waited(&row) && self.replace(&row, "SIGNED").await? {
                        report.rebroadcast += 1;
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        let pending = outbox::by_status(self.pool, "PENDING", limit).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let estimate = self.chain.provider.estimate_eip1559_fees().await?;
        let (max_fee, tip) = match self
            .chain
            .settings
            .fee_caps()
            .first((estimate.max_fee_per_gas, estimate.max_priority_fee_per_gas))
        {
            Ok(fees) => fees,
            Err(why) => {
                // Checked before any nonce is taken, so nothing is held while the rows wait;
                // the next run looks at the estimate again.
                tracing::warn!(rows = pending.len(), reason = %why, "outbox rows wait for fees under the caps");
                let ids: Vec<i64> = pending.iter().map(|r| r.id).collect();
                outbox::note_waiting(self.pool, &ids, &why).await?;
                report.waiting += pending.len() as u32;
                return Ok(());
            }
        };
        for row in pending {
            match self.sign_and_send(&row, max_fee, tip).await {
                Ok(()) => report.sent += 1,
                Err(ChainError::Revert(reason)) => {
                    tracing::error!(outbox_id = row.id, kind = %row.kind, %reason,
                        "transaction would revert: row failed, no nonce taken");
                    outbox::fail(
                        self.pool,
                        row.id,
                        "PENDING",
                        &format!("reverted at estimation: {reason}"),
                    )
                    .await?;
                    report.failed += 1;
                }
                Err(ChainError::Fatal(reason)) => {
                    tracing::error!(outbox_id = row.id, kind = %row.kind, %reason, "row cannot be sent");
                    outbox::fail(self.pool, row.id, "PENDING", &reason).await?;
                    report.failed += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Estimates, takes a nonce, signs and commits, then broadcasts.
    async fn sign_and_send(
        &self,
        row: &OutboxRow,
        max_fee: u128,
        tip: u128,
    ) -> Result<(), ChainError> {
        let (to, data) = self.calldata(row)?;
        let request = TransactionRequest::default()
            .from(self.address())
            .to(to)
            .input(data.clone().into());
        let gas = self.chain.provider.estimate_gas(request).await?;
        // Headroom: the state can change between estimation and inclusion.
        let gas_limit = gas + gas / 5;
        let on_chain = self
            .chain
            .provider
            .get_transaction_count(self.address())
            .pending()
            .await?;
        let mut tx = self.pool.begin().await?;
        let nonce =
            outbox::take_nonce(&mut tx, &self.address, self.identity.key(), on_chain as i64)
                .await?;
        let signed = self.sign(nonce as u64, gas_limit, max_fee, tip, to, data)?;
        if !outbox::record_signed(&mut tx, row.id, "PENDING", None, &signed).await? {
            // Another writer moved the row; the nonce is not taken (rolled back).
            tx.rollback().await?;
            return Ok(());
        }
        tx.commit().await?;
        tracing::info!(outbox_id = row.id, kind = %row.kind, nonce, tx_hash = %signed.tx_hash, "transaction signed");
        failpoint::hit("after-sign");
        self.broadcast(row, &signed.tx_hash, &signed.raw_tx).await?;
        Ok(())
    }

    /// Signs an EIP-1559 transaction and returns what the outbox stores of it.
    pub fn sign(
        &self,
        nonce: u64,
        gas_limit: u64,
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
        to: Address,
        data: Bytes,
    ) -> Result<Signed, ChainError> {
        let mut tx = TxEip1559 {
            chain_id: self.identity.id,
            nonce,
            gas_limit,
            max_fee_per_gas,
            max_priority_fee_per_gas,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input: data,
        };
        let signature = self
            .signer
            .sign_transaction_sync(&mut tx)
            .map_err(|e| ChainError::Fatal(format!("cannot sign: {e}")))?;
        let signed = tx.into_signed(signature);
        let hash = hex_lower(signed.hash().as_slice());
        let raw = TxEnvelope::from(signed).encoded_2718();
        Ok(Signed {
            signer: self.address.clone(),
            chain_id: self.identity.id as i64,
            genesis_hash: self.identity.genesis.clone(),
            nonce: nonce as i64,
            tx_hash: hash,
            raw_tx: raw,
            gas_limit: gas_limit as i64,
            max_fee_per_gas: max_fee_per_gas.to_string(),
            max_priority_fee_per_gas: max_priority_fee_per_gas.to_string(),
        })
    }

    /// Broadcasts a SIGNED row's bytes and marks it SUBMITTED. Returns false when its nonce
    /// turned out to be used by another transaction of this key and none of ours was mined,
    /// in which case the row is back to PENDING.
    pub async fn broadcast(
        &self,
        row: &OutboxRow,
        hash: &str,
        raw: &[u8],
    ) -> Result<bool, ChainError> {
        match self.chain.provider.send_raw_transaction(raw).await {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string().to_lowercase();
                if msg.contains("already known")
                    || msg.contains("already imported")
                    || msg.contains("known transaction")
                {
                    // A re-broadcast of bytes the node has: it is submitted.
                } else if msg.contains("nonce too low") {
                    if !self.any_receipt(row, hash).await? {
                        // Our own transaction may be mined with its receipt not visible yet (a
                        // lagging backend behind a load balancer): only a row that has waited
                        // `replace_after` is taken to have lost its nonce, so a slow receipt
                        // cannot make the same call go out twice.
                        if !self.waited(row) {
                            return Err(ChainError::NotReady(format!(
                                "nonce {:?} of outbox row {} is used on chain, and no receipt of ours is visible yet",
                                row.nonce, row.id
                            )));
                        }
                        tracing::warn!(
                            outbox_id = row.id,
                            "nonce used by another transaction of the signer: signing again"
                        );
                        outbox::requeue(
                            self.pool,
                            row.id,
                            hash,
                            "nonce used elsewhere; signed again",
                        )
                        .await?;
                        return Ok(false);
                    }
                } else {
                    return Err(ChainError::from_rpc(e));
                }
            }
        }
        failpoint::hit("after-broadcast");
        outbox::mark_submitted(self.pool, row.id, hash).await?;
        tracing::info!(outbox_id = row.id, tx_hash = %hash, "transaction submitted");
        Ok(true)
    }

    /// Whether the row's current attempt was signed at least `replace_after` ago.
    fn waited(&self, row: &OutboxRow) -> bool {
        super::waited(
            row.signed_at,
            self.chain.settings.replace_after,
            chrono::Utc::now(),
        )
    }

    /// Whether any attempt of the row (this hash or an earlier one) has a receipt.
    async fn any_receipt(&self, row: &OutboxRow, hash: &str) -> Result<bool, ChainError> {
        for h in std::iter::once(hash).chain(row.previous_hashes.iter().map(String::as_str)) {
            let Ok(h) = h.parse::<B256>() else { continue };
            if self
                .chain
                .provider
                .get_transaction_receipt(h)
                .await?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Replaces a row's transaction (SUBMITTED and not mined in time, or SIGNED and refused by
    /// the node): the same nonce, both fees raised by `fee_bump_percent` or to the current
    /// estimate if higher, never above the caps. Returns false when the row changed meanwhile,
    /// when it was signed for another chain or by another key, or when the caps leave no room
    /// for a replacement the node would accept (the row then waits, with the reason in
    /// `last_error`).
    pub async fn replace(&self, row: &OutboxRow, from: &str) -> Result<bool, ChainError> {
        let (Some(nonce), Some(gas_limit), Some(current)) =
            (row.nonce, row.gas_limit, row.tx_hash.as_deref())
        else {
            return Err(ChainError::Fatal(format!(
                "outbox row {} has no transaction to replace",
                row.id
            )));
        };
        if let Some(why) = self.elsewhere(row) {
            self.leave_alone(row, &why).await?;
            return Ok(false);
        }
        let fees = self.chain.provider.estimate_eip1559_fees().await?;
        let bump = self.chain.settings.fee_bump_percent;
        let old_tip =
            parse_wei(row.max_priority_fee_per_gas.as_deref().unwrap_or("0"))?.to::<u128>();
        let old_max = parse_wei(row.max_fee_per_gas.as_deref().unwrap_or("0"))?.to::<u128>();
        let Some((max_fee, tip)) = self.chain.settings.fee_caps().replacement(
            (old_max, old_tip),
            (fees.max_fee_per_gas, fees.max_priority_fee_per_gas),
            bump,
        ) else {
            let why = format!(
                "not mined, and a replacement would bid above chain.max_fee_gwei ({} gwei) or chain.max_priority_fee_gwei ({} gwei)",
                self.chain.settings.max_fee_gwei, self.chain.settings.max_priority_fee_gwei
            );
            tracing::error!(outbox_id = row.id, nonce, "{why}");
            outbox::note_error(self.pool, row.id, &why).await?;
            return Ok(false);
        };
        let (to, data) = self.calldata(row)?;
        let signed = self.sign(nonce as u64, gas_limit as u64, max_fee, tip, to, data)?;
        let mut tx = self.pool.begin().await?;
        if !outbox::record_signed(&mut tx, row.id, from, Some(current), &signed).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        tracing::warn!(outbox_id = row.id, nonce, old = %current, new = %signed.tx_hash,
            max_fee_per_gas = max_fee, "transaction not mined in time: replaced with higher fees");
        let mut updated = row.clone();
        updated.previous_hashes.push(current.to_owned());
        self.broadcast(&updated, &signed.tx_hash, &signed.raw_tx)
            .await?;
        Ok(true)
    }

    /// The contract call of a row. Args that do not encode are fatal for the row.
    pub fn calldata(&self, row: &OutboxRow) -> Result<(Address, Bytes), ChainError> {
        super::contracts::calldata(row, self.chain.markets()?)
    }
}
