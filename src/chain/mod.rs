//! The EVM chain, through alloy: the provider, the contracts' bindings, and the errors of
//! everything that talks to the node, each saying what happens next.
//!
//! `sender` signs and broadcasts the outbox's transactions, `receipts` confirms them and
//! applies their effects, `indexer` follows the contracts' events, `balances` reads wallet
//! balances through Multicall3, `resolution` resolves markets (the pure settlement arithmetic
//! is `crate::payouts`, below both this module and the database's). The SQL they run lives in
//! `db::` (outbox, markets, balances, events).

pub mod balances;
pub mod contracts;
pub mod failpoint;
pub mod guards;
pub mod indexer;
pub mod receipts;
pub mod resolution;
pub mod sender;
pub mod settings;

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::transports::{RpcError, TransportErrorKind};

pub use guards::{ChainIdentity, DEV_CHAIN_IDS, FeeCaps};
pub use settings::{ChainSettings, SecretKey};

use crate::job::error::JobError;

/// What went wrong talking to the chain, and so what happens next (`into_job_error`).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached, timed out, rate-limited us or failed: try again.
    /// alloy's error and its sources (where "connection refused" is) are all in the message,
    /// and nothing is chained, so each cause is said once.
    /// reqwest's errors inside name the URL, which is a secret one, so every URL in the text
    /// is redacted.
    #[error("rpc: {}", jobfleet_engine::settings::secret::redact_urls(&crate::job::error::error_chain(.0)))]
    Rpc(RpcError<TransportErrorKind>),
    /// The node is not ready for the request (it lacks a block it should have): try again.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The EVM reverted the call; retrying the same call reverts again.
    #[error("reverted: {0}")]
    Revert(String),
    /// A setting the job needs is empty: nothing to do until an operator sets it.
    #[error("chain.{0} is not configured")]
    NotConfigured(&'static str),
    /// A bad address, an ABI that does not match the contract, a node on another chain:
    /// retrying cannot help.
    #[error("{0}")]
    Fatal(String),
    /// sqlx's error is in the message, not chained, for the same reason.
    #[error("database: {}", crate::job::error::error_chain(.0))]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for ChainError {
    fn from(e: sqlx::Error) -> Self {
        ChainError::Db(e)
    }
}

impl ChainError {
    /// Sorts an RPC error: a revert (with its decoded reason), an answer we cannot decode
    /// (fatal: the node or the ABI is not what we expect), or anything else (retryable).
    pub fn from_rpc(e: RpcError<TransportErrorKind>) -> Self {
        match &e {
            RpcError::ErrorResp(payload) => {
                if let Some(data) = payload.as_revert_data() {
                    let reason = alloy::sol_types::decode_revert_reason(&data)
                        .unwrap_or_else(|| format!("revert data {data}"));
                    return ChainError::Revert(reason);
                }
                if payload.message.contains("revert") {
                    return ChainError::Revert(payload.message.to_string());
                }
                ChainError::Rpc(e)
            }
            // An answer that does not decode is usually a proxy or rate limiter answering in
            // the node's place (HTML, a truncated body): worth another try, not a verdict.
            _ => ChainError::Rpc(e),
        }
    }

    /// Contract-call errors: reverts and transport errors as above, a return value that does
    /// not decode as the ABI says is an ABI mismatch (fatal).
    pub fn from_contract(e: alloy::contract::Error) -> Self {
        match e {
            alloy::contract::Error::TransportError(e) => Self::from_rpc(e),
            other => ChainError::Fatal(format!("ABI mismatch: {other}")),
        }
    }

    /// The node answered and said no (as opposed to not answering): retrying the same
    /// request unchanged will most likely get the same answer.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ChainError::Rpc(RpcError::ErrorResp(_)) | ChainError::Revert(_)
        )
    }

    pub fn into_job_error(self) -> JobError {
        match self {
            ChainError::Rpc(_) | ChainError::NotReady(_) | ChainError::Db(_) => {
                JobError::retry(self)
            }
            ChainError::Revert(_) | ChainError::NotConfigured(_) | ChainError::Fatal(_) => {
                JobError::fatal(self)
            }
        }
    }
}

impl From<RpcError<TransportErrorKind>> for ChainError {
    fn from(e: RpcError<TransportErrorKind>) -> Self {
        Self::from_rpc(e)
    }
}

/// A connection to the node: a provider without fillers (the sender fills nonce, gas and fees
/// itself, so nothing is cached behind its back), and the settings.
#[derive(Debug, Clone)]
pub struct Chain {
    pub provider: DynProvider,
    pub settings: ChainSettings,
}

impl Chain {
    /// Builds the provider; nothing is sent until the first call.
    pub fn new(settings: &ChainSettings) -> Result<Self, ChainError> {
        if settings.rpc_url.is_empty() {
            return Err(ChainError::NotConfigured("rpc_url"));
        }
        let url = reqwest::Url::parse(settings.rpc_url.expose())
            .map_err(|e| ChainError::Fatal(format!("chain.rpc_url: {e}")))?;
        crate::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .build()
            .map_err(|e| ChainError::Fatal(format!("cannot build the HTTP client: {e}")))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_reqwest(client, url)
            .erased();
        Ok(Self {
            provider,
            settings: settings.clone(),
        })
    }

    /// The node's chain id, checked against `chain.chain_id` when that is set. Unset (0), only
    /// a development chain is accepted, whatever the environment is called: a deployment that
    /// forgot the setting must not sign for whatever chain its node happens to be on.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        let id = self.provider.get_chain_id().await?;
        accept_chain(self.settings.chain_id, id)?;
        Ok(id)
    }

    /// Which chain the node is on: its chain id (checked as `chain_id` does) and its genesis
    /// block's hash. Asked on every run rather than cached, because a development node can be
    /// replaced behind the same URL while a worker runs.
    pub async fn identity(&self) -> Result<ChainIdentity, ChainError> {
        let id = self.chain_id().await?;
        let genesis = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Number(0))
            .await?
            .ok_or_else(|| ChainError::NotReady("the node has no genesis block".into()))?;
        Ok(ChainIdentity {
            id,
            genesis: hex_lower(genesis.header.hash.as_slice()),
        })
    }

    pub fn markets(&self) -> Result<Address, ChainError> {
        self.settings
            .markets()
            .ok_or(ChainError::NotConfigured("markets_address"))
    }

    pub fn oracle(&self) -> Result<Address, ChainError> {
        self.settings
            .oracle()
            .ok_or(ChainError::NotConfigured("oracle_address"))
    }

    pub fn multicall(&self) -> Result<Address, ChainError> {
        self.settings
            .multicall()
            .ok_or(ChainError::NotConfigured("multicall_address"))
    }

    /// The head, and the newest block the jobs treat as final: the one with
    /// `confirmations` confirmations (itself and the blocks on top of it).
    pub async fn safe_head(&self) -> Result<(u64, u64), ChainError> {
        let head = self.provider.get_block_number().await?;
        Ok((
            head,
            head.saturating_sub(self.settings.confirmations.max(1) - 1),
        ))
    }
}

/// Lowercase 0x-hex, the form the database stores (its CHECKs require it).
pub fn hex_lower(bytes: impl AsRef<[u8]>) -> String {
    format!("0x{}", alloy::hex::encode(bytes))
}

/// An address as the database stores it.
pub fn addr_lower(a: Address) -> String {
    hex_lower(a.as_slice())
}

/// A wei amount from the database's NUMERIC text form.
pub fn parse_wei(s: &str) -> Result<U256, ChainError> {
    U256::from_str_radix(s.trim(), 10)
        .map_err(|e| ChainError::Fatal(format!("{s:?} is not a wei amount: {e}")))
}

/// Whether `at` lies at least `patience` before `now`: the one rule for "has this attempt
/// waited `replace_after`", for the sender and the confirmer alike. An unknown time has not.
pub fn waited(
    at: Option<chrono::DateTime<chrono::Utc>>,
    patience: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let patience = chrono::Duration::from_std(patience).unwrap_or(chrono::TimeDelta::MAX);
    at.is_some_and(|at| now - at >= patience)
}

/// How long the jobs wait before looking again at a market whose outcome is not reported.
pub const ORACLE_SNOOZE: Duration = Duration::from_secs(60);

/// Whether a node on chain `id` may be used when `chain.chain_id` says `want` (0: unset).
pub fn accept_chain(want: u64, id: u64) -> Result<(), ChainError> {
    if want == 0 && !guards::DEV_CHAIN_IDS.contains(&id) {
        return Err(ChainError::Fatal(format!(
            "the node at chain.rpc_url is on chain {id}, not a development chain (31337, 1337), \
             and chain.chain_id is not set: set JOBFLEET__CHAIN__CHAIN_ID={id} if that is the \
             chain to use"
        )));
    }
    if want != 0 && want != id {
        return Err(ChainError::Fatal(format!(
            "the node at chain.rpc_url is on chain {id}, chain.chain_id says {want}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unset_chain_id_accepts_only_development_chains() {
        assert!(super::accept_chain(0, 31337).is_ok());
        assert!(super::accept_chain(0, 1337).is_ok());
        let err = super::accept_chain(0, 1).unwrap_err().to_string();
        assert!(err.contains("JOBFLEET__CHAIN__CHAIN_ID=1"), "{err}");
        assert!(super::accept_chain(1, 1).is_ok());
        assert!(super::accept_chain(5, 1).is_err());
    }

    use super::*;

    #[test]
    fn an_attempt_has_waited_from_exactly_its_patience_on() {
        let now = chrono::DateTime::from_timestamp(1_000, 0).unwrap();
        let at = |secs| chrono::DateTime::from_timestamp(secs, 0);
        let three_minutes = Duration::from_secs(180);
        assert!(waited(at(820), three_minutes, now));
        assert!(!waited(at(821), three_minutes, now));
        assert!(!waited(None, Duration::ZERO, now));
        assert!(waited(at(1_000), Duration::ZERO, now));
    }
}
