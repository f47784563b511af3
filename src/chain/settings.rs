//! `[chain]` of the configuration: the node, the signer, the contracts and the policies of the
//! chain jobs. Loaded with the rest of the settings by `config/`, validated here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use serde::Deserialize;

use jobfleet_engine::settings::duration;
use jobfleet_engine::settings::secret::SecretUrl;
use jobfleet_engine::settings::{ConfigError, invalid};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    /// The node's JSON-RPC endpoint (http or https). A secret URL: hosted providers put the
    /// API key in it (`https://host/v3/<KEY>`).
    pub rpc_url: SecretUrl,
    /// The chain the signer signs for; 0 takes the node's (refused in production, where a
    /// wrong endpoint must never receive our transactions). A node answering with another
    /// chain id is refused.
    pub chain_id: u64,
    /// The platform signer's private key, hex. Only from the environment
    /// (`JOBFLEET__CHAIN__SIGNER_KEY`); "" means this deployment sends nothing.
    pub signer_key: SecretKey,
    /// The markets contract (approveMarket, resolveMarket, resolveDispute).
    pub markets_address: String,
    /// The oracle that reports each market's outcome.
    pub oracle_address: String,
    /// Multicall3, used by the balance sync.
    pub multicall_address: String,
    /// ERC-20 tokens whose balances are synced: "SYMBOL=0xaddress,...".
    pub tokens: String,
    /// Confirmations a block needs before the jobs treat it as final: its own and the blocks
    /// on top of it (1: as soon as it is mined; 0 means 1). The confirmer and the indexer
    /// count alike.
    pub confirmations: u64,
    /// A submitted transaction without a receipt after this long is replaced (same nonce,
    /// higher fees).
    #[serde(with = "duration")]
    pub replace_after: Duration,
    /// How much a replacement raises both fees, in percent (nodes require at least 10).
    pub fee_bump_percent: u64,
    /// The most a transaction may pay per gas, in gwei, first signature and replacements
    /// alike: a row whose fee estimate is above it waits, so neither a fee spike nor a node
    /// answering absurd estimates can drain the signer.
    pub max_fee_gwei: u64,
    /// The most a transaction may tip the block producer per gas, in gwei, with the same rule.
    pub max_priority_fee_gwei: u64,
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Blocks per eth_getLogs call of the indexer.
    pub index_max_range: u64,
    /// On a reorg the indexer re-indexes from this many blocks below its cursor.
    pub reorg_depth: u64,
    /// The first block the indexer reads (the contracts' deployment block).
    pub start_block: u64,
    /// Wallets per balance-sync child job.
    pub balance_batch: u32,
    /// Calls per Multicall3 eth_call of the balance sync.
    pub multicall_chunk: usize,
    /// A balance change of at least this share of the old balance (basis points) is "large"
    /// and notified.
    pub large_change_bp: u32,
    /// After the oracle reports, disputes may be raised for this long.
    #[serde(with = "duration")]
    pub dispute_window: Duration,
    /// The platform's fee on a resolved market's pool, in basis points.
    pub fee_bp: u32,
    /// Points awarded to each winner of a resolved market.
    pub win_points: i64,
}

/// A private key that never shows in `Debug` or logs.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// The signer; only called where a transaction is signed.
    pub fn signer(&self) -> Result<PrivateKeySigner, String> {
        self.0
            .trim()
            .parse::<PrivateKeySigner>()
            .map_err(|_| "is not a 32-byte hex private key".to_owned())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl ChainSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.rpc_url.is_empty() {
            let url = reqwest::Url::parse(self.rpc_url.expose())
                .map_err(|e| invalid("chain.rpc_url", format!("{}: {e}", self.rpc_url)))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    "chain.rpc_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if !self.signer_key.is_empty() {
            self.signer_key
                .signer()
                .map_err(|e| invalid("chain.signer_key", e))?;
        }
        for (key, value) in [
            ("chain.markets_address", &self.markets_address),
            ("chain.oracle_address", &self.oracle_address),
            ("chain.multicall_address", &self.multicall_address),
        ] {
            parse_address(value).map_err(|e| invalid(key, e))?;
        }
        self.token_list().map_err(|e| invalid("chain.tokens", e))?;
        if self.fee_bump_percent < 10 {
            return Err(invalid("chain.fee_bump_percent", "must be at least 10"));
        }
        if self.max_fee_gwei == 0 {
            return Err(invalid("chain.max_fee_gwei", "must be at least 1"));
        }
        if self.max_priority_fee_gwei == 0 || self.max_priority_fee_gwei > self.max_fee_gwei {
            return Err(invalid(
                "chain.max_priority_fee_gwei",
                "must be between 1 and chain.max_fee_gwei",
            ));
        }
        if self.index_max_range == 0 {
            return Err(invalid("chain.index_max_range", "must be at least 1"));
        }
        if self.balance_batch == 0 || self.balance_batch > 10_000 {
            return Err(invalid(
                "chain.balance_batch",
                "must be between 1 and 10000",
            ));
        }
        if self.multicall_chunk == 0 {
            return Err(invalid("chain.multicall_chunk", "must be at least 1"));
        }
        if self.fee_bp >= 10_000 {
            return Err(invalid(
                "chain.fee_bp",
                "must be below 10000 (basis points)",
            ));
        }
        if self.win_points < 0 {
            return Err(invalid("chain.win_points", "must not be negative"));
        }
        Ok(())
    }

    /// The configured tokens, symbol to address, in symbol order.
    pub fn token_list(&self) -> Result<BTreeMap<String, Address>, String> {
        let mut out = BTreeMap::new();
        for item in self
            .tokens
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (symbol, addr) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not SYMBOL=0xaddress"))?;
            let addr =
                parse_address(addr.trim())?.ok_or_else(|| format!("{item:?} has no address"))?;
            if out.insert(symbol.trim().to_owned(), addr).is_some() {
                return Err(format!("token {symbol:?} is listed twice"));
            }
        }
        Ok(out)
    }

    /// What the environment `env` adds to `validate`: production names its chain, so that a
    /// node on another chain is refused instead of signed for.
    pub fn validate_for(&self, env: &str) -> Result<(), ConfigError> {
        if env == "production" && self.chain_id == 0 {
            return Err(invalid(
                "chain.chain_id",
                "must be set in production (JOBFLEET__CHAIN__CHAIN_ID): 0 would accept whatever chain the node is on",
            ));
        }
        Ok(())
    }

    /// `max_fee_gwei` and `max_priority_fee_gwei` in wei.
    pub fn fee_caps(&self) -> super::FeeCaps {
        super::FeeCaps {
            max_fee: u128::from(self.max_fee_gwei) * super::guards::GWEI,
            tip: u128::from(self.max_priority_fee_gwei) * super::guards::GWEI,
        }
    }

    pub fn markets(&self) -> Option<Address> {
        parse_address(&self.markets_address).ok().flatten()
    }

    pub fn oracle(&self) -> Option<Address> {
        parse_address(&self.oracle_address).ok().flatten()
    }

    pub fn multicall(&self) -> Option<Address> {
        parse_address(&self.multicall_address).ok().flatten()
    }
}

/// "" is no address; anything else must be a 20-byte hex address.
fn parse_address(s: &str) -> Result<Option<Address>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim()
        .parse::<Address>()
        .map(Some)
        .map_err(|_| format!("{s:?} is not a 20-byte hex address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_show() {
        let k =
            SecretKey::new("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
        assert_eq!(format!("{k:?}"), "\"***\"");
        assert!(k.signer().is_ok());
        assert!(SecretKey::new("0x12").signer().is_err());
    }

    #[test]
    fn token_lists_parse_or_name_the_problem() {
        let base = crate::config::Settings::load_from(&crate::config::Sources {
            config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            env: None,
            vars: vec![],
        })
        .unwrap()
        .chain;
        let mut s = base.clone();
        s.tokens = "USDC=0x5FbDB2315678afecb367f032d93F642f64180aa3, PTS=0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512".into();
        let t = s.token_list().unwrap();
        assert_eq!(t.keys().collect::<Vec<_>>(), ["PTS", "USDC"]);
        s.tokens = "USDC".into();
        assert!(s.token_list().unwrap_err().contains("SYMBOL=0xaddress"));
        s.tokens = "USDC=0x12".into();
        assert!(s.token_list().is_err());
    }

    #[test]
    fn production_requires_an_explicit_chain_id() {
        let load = |env: &str, vars: &[(&str, &str)]| {
            crate::config::Settings::load_from(&crate::config::Sources {
                config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
                env: Some(env.into()),
                vars: vars
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            })
        };
        let redis = ("REDIS_URL", "redis://127.0.0.1:6379");
        let err = load("production", &[redis]).unwrap_err().to_string();
        assert!(err.contains("chain.chain_id"), "{err}");
        assert!(err.contains("must be set in production"), "{err}");
        let ok = load("production", &[redis, ("JOBFLEET__CHAIN__CHAIN_ID", "1")]).unwrap();
        assert_eq!(ok.chain.chain_id, 1);
        // Development and test keep taking the node's id.
        assert_eq!(load("test", &[]).unwrap().chain.chain_id, 0);
    }

    #[test]
    fn the_tip_cap_lies_between_one_gwei_and_the_fee_cap() {
        let mut s = crate::config::Settings::load_from(&crate::config::Sources {
            config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            env: None,
            vars: vec![],
        })
        .unwrap()
        .chain;
        assert!(s.validate().is_ok());
        s.max_priority_fee_gwei = s.max_fee_gwei + 1;
        assert!(s.validate().is_err());
        s.max_priority_fee_gwei = 0;
        assert!(s.validate().is_err());
    }
}
