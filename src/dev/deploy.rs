//! Deployment of the platform's contracts to a local development node (anvil), for the demo
//! and the tests: the markets contract from the platform's signer (its owner), the oracle and
//! the three tokens from a second key (the reporter and minter), and Multicall3 installed at
//! its canonical address with `anvil_setCode`.

use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use crate::chain::ChainError;
use crate::chain::contracts::{MULTICALL3_ADDRESS, Markets, Multicall3, Oracle, Token};

/// anvil's first two development keys (public knowledge: they hold test ether only).
pub const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const ANVIL_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// Where everything landed.
#[derive(Debug, Clone, Copy)]
pub struct Deployment {
    pub markets: Address,
    pub oracle: Address,
    pub multicall: Address,
    pub usdc: Address,
    pub usdt: Address,
    pub pts: Address,
    /// The block after the deployments: where the indexer can start.
    pub block: u64,
}

impl Deployment {
    /// The environment variables that point jobfleet at this deployment.
    pub fn env(&self) -> Vec<(String, String)> {
        let a = |x: Address| format!("{x:#x}");
        vec![
            ("JOBFLEET__CHAIN__MARKETS_ADDRESS".into(), a(self.markets)),
            ("JOBFLEET__CHAIN__ORACLE_ADDRESS".into(), a(self.oracle)),
            (
                "JOBFLEET__CHAIN__MULTICALL_ADDRESS".into(),
                a(self.multicall),
            ),
            (
                "JOBFLEET__CHAIN__TOKENS".into(),
                format!(
                    "USDC={},USDT={},PTS={}",
                    a(self.usdc),
                    a(self.usdt),
                    a(self.pts)
                ),
            ),
            (
                "JOBFLEET__CHAIN__START_BLOCK".into(),
                self.block.to_string(),
            ),
        ]
    }
}

fn url(rpc_url: &str) -> Result<reqwest::Url, ChainError> {
    rpc_url.parse().map_err(|e| {
        ChainError::Fatal(format!(
            "{}: {e}",
            jobfleet_engine::settings::secret::SecretUrl::new(rpc_url)
        ))
    })
}

/// Deploys everything; `owner` becomes the markets contract's owner (the platform's signer),
/// `reporter` the oracle's reporter and the tokens' minter.
pub async fn deploy_local(
    rpc_url: &str,
    owner: &PrivateKeySigner,
    reporter: &PrivateKeySigner,
) -> Result<Deployment, ChainError> {
    crate::install_tls_provider();
    let as_owner = ProviderBuilder::new()
        .wallet(EthereumWallet::from(owner.clone()))
        .connect_http(url(rpc_url)?);
    let as_reporter = ProviderBuilder::new()
        .wallet(EthereumWallet::from(reporter.clone()))
        .connect_http(url(rpc_url)?);
    let c = ChainError::from_contract;
    let markets = *Markets::deploy(&as_owner).await.map_err(c)?.address();
    let oracle = *Oracle::deploy(&as_reporter).await.map_err(c)?.address();
    let usdc = *Token::deploy(&as_reporter, "USD Coin".into(), "USDC".into(), 6)
        .await
        .map_err(c)?
        .address();
    let usdt = *Token::deploy(&as_reporter, "Tether USD".into(), "USDT".into(), 6)
        .await
        .map_err(c)?
        .address();
    let pts = *Token::deploy(&as_reporter, "Platform Points".into(), "PTS".into(), 18)
        .await
        .map_err(c)?
        .address();
    let _: () = as_owner
        .raw_request(
            "anvil_setCode".into(),
            (MULTICALL3_ADDRESS, Multicall3::DEPLOYED_BYTECODE.clone()),
        )
        .await?;
    let block = as_owner.get_block_number().await?;
    Ok(Deployment {
        markets,
        oracle,
        multicall: MULTICALL3_ADDRESS,
        usdc,
        usdt,
        pts,
        block,
    })
}
