//! A chain world for a test: its own anvil with the platform's contracts deployed, the
//! settings that point jobfleet at them, and helpers to act as the oracle, the token minter and
//! the node's operator (mine, drop, reorg).
#![allow(dead_code)]

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use jobfleet::chain::Chain;
use jobfleet::chain::contracts::{Oracle, Token};
use jobfleet::config::{Settings, Sources};
use jobfleet::db::governance::Rule;
use jobfleet::dev::deploy::{ANVIL_KEY_0, ANVIL_KEY_1, Deployment, deploy_local};
use sqlx::PgPool;
use std::time::Duration;

use super::anvil::TestAnvil;

pub struct ChainWorld {
    pub anvil: TestAnvil,
    pub deployment: Deployment,
    pub settings: Settings,
    pub chain: Chain,
    /// The platform's signer (the markets contract's owner).
    pub owner: PrivateKeySigner,
    /// The oracle's reporter and the tokens' minter.
    pub reporter: DynProvider,
}

impl ChainWorld {
    /// anvil (with `anvil_args`), the contracts, and settings with `overrides`
    /// (`JOBFLEET__CHAIN__...` variables) laid over the test environment.
    pub async fn start(anvil_args: &[&str], overrides: &[(&str, &str)]) -> Self {
        // The helpers below build HTTP clients of their own before jobfleet builds any, and
        // reqwest needs the process's TLS provider installed first.
        jobfleet::install_tls_provider();
        let anvil = TestAnvil::start_with(anvil_args);
        let owner: PrivateKeySigner = ANVIL_KEY_0.parse().unwrap();
        let reporter_key: PrivateKeySigner = ANVIL_KEY_1.parse().unwrap();
        // Deployments wait for their receipts: with mining off, they are mined as they come.
        let manual = anvil_args.contains(&"--no-mining");
        if manual {
            set_automine(&anvil, true).await;
        }
        let deployment = deploy_local(&anvil.url(), &owner, &reporter_key)
            .await
            .expect("contracts deploy");
        if manual {
            set_automine(&anvil, false).await;
        }
        let settings = settings_for(&anvil.url(), &deployment, overrides);
        let chain = Chain::new(&settings.chain).expect("chain");
        let reporter = ProviderBuilder::new()
            .wallet(EthereumWallet::from(reporter_key))
            .connect_http(anvil.url().parse().unwrap())
            .erased();
        Self {
            anvil,
            deployment,
            settings,
            chain,
            owner,
            reporter,
        }
    }

    /// The environment a `jobfleet` process needs to act on this world and `db_url`.
    pub fn env(&self, db_url: &str, redis_url: &str) -> Vec<(String, String)> {
        let mut env = base_vars(&self.anvil.url(), &self.deployment);
        env.push(("DATABASE_URL".into(), db_url.into()));
        env.push(("REDIS_URL".into(), redis_url.into()));
        env.push(("JOBFLEET_ENV".into(), "test".into()));
        env.push((
            "JOBFLEET_CONFIG_DIR".into(),
            format!("{}/config", env!("CARGO_MANIFEST_DIR")),
        ));
        env.push((
            "JOBFLEET__JOBS__DIR".into(),
            format!("{}/jobs", env!("CARGO_MANIFEST_DIR")),
        ));
        env
    }

    pub async fn report(&self, market: u64, outcome: bool) {
        Oracle::new(self.deployment.oracle, &self.reporter)
            .report(U256::from(market), outcome)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    pub async fn mint(&self, token: Address, to: Address, amount: U256) {
        Token::new(token, &self.reporter)
            .mint(to, amount)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    pub async fn rpc(&self, method: &'static str, params: serde_json::Value) -> serde_json::Value {
        self.chain
            .provider
            .raw_request(method.into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub async fn mine(&self, blocks: u64) {
        self.rpc("anvil_mine", serde_json::json!([blocks])).await;
    }

    pub async fn head(&self) -> u64 {
        self.chain.provider.get_block_number().await.unwrap()
    }

    /// How many transactions the platform's signer has had mined.
    pub async fn signer_nonce(&self) -> u64 {
        self.chain
            .provider
            .get_transaction_count(self.owner.address())
            .latest()
            .await
            .unwrap()
    }
}

async fn set_automine(anvil: &TestAnvil, on: bool) {
    let p = ProviderBuilder::new().connect_http(anvil.url().parse().unwrap());
    let _: () = p
        .raw_request("evm_setAutomine".into(), (on,))
        .await
        .unwrap();
}

fn base_vars(url: &str, d: &Deployment) -> Vec<(String, String)> {
    let mut vars = vec![
        ("JOBFLEET__CHAIN__RPC_URL".to_owned(), url.to_owned()),
        (
            "JOBFLEET__CHAIN__SIGNER_KEY".to_owned(),
            ANVIL_KEY_0.to_owned(),
        ),
        ("JOBFLEET__CHAIN__CONFIRMATIONS".to_owned(), "1".to_owned()),
    ];
    vars.extend(d.env());
    vars
}

pub fn settings_for(url: &str, d: &Deployment, overrides: &[(&str, &str)]) -> Settings {
    let mut vars = base_vars(url, d);
    vars.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Settings::load_from(&Sources {
        config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
        env: Some("test".into()),
        vars,
    })
    .expect("the test configuration loads")
}

/// The URL of the database a `#[sqlx::test]` pool is connected to.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let name = pool
        .connect_options()
        .get_database()
        .expect("a database name")
        .to_owned();
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => base,
    }
}

/// `users` users with one wallet each, at the given addresses (or generated ones).
pub async fn people(pool: &PgPool, addresses: &[Address]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for (i, a) in addresses.iter().enumerate() {
        let user: i64 =
            sqlx::query_scalar("INSERT INTO users (handle, email) VALUES ($1, $2) RETURNING id")
                .bind(format!("user{i}"))
                .bind(format!("user{i}@example.test"))
                .fetch_one(pool)
                .await
                .unwrap();
        let wallet: i64 = sqlx::query_scalar(
            "INSERT INTO wallets (user_id, address, chain_id, is_primary) VALUES ($1, $2, 31337, true) RETURNING id",
        )
        .bind(user)
        .bind(format!("{a:#x}"))
        .fetch_one(pool).await.unwrap();
        out.push((user, wallet));
    }
    out
}

/// A distinct address per index.
pub fn address(i: u64) -> Address {
    Address::left_padding_from(&(0x1000_0000u64 + i).to_be_bytes())
}

// Platform rows the chain tests start from.

pub const PROPOSAL: Rule = Rule {
    threshold_bp: 7000,
    min_votes: 10,
    window: Duration::from_secs(72 * 3600),
};

/// A proposed market with on-chain id `on_chain`, liked by the first `likes` wallets.
pub async fn proposed_market(pool: &PgPool, on_chain: i64, likes: i64) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO markets (on_chain_id, proposer_id, title, resolves_at)
         VALUES ($1, (SELECT min(id) FROM users), 'Will it rain on Friday?', now() + interval '7 days') RETURNING id",
    )
    .bind(on_chain)
    .fetch_one(pool).await.unwrap();
    sqlx::query("INSERT INTO proposal_votes (market_id, wallet_id, likes) SELECT $1, id, true FROM wallets ORDER BY id LIMIT $2")
        .bind(id).bind(likes).execute(pool).await.unwrap();
    id
}

pub async fn row_state(
    pool: &PgPool,
    id: i64,
) -> (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Vec<String>,
) {
    sqlx::query_as("SELECT status::text, nonce, tx_hash, last_error, previous_hashes FROM chain_outbox WHERE id = $1")
        .bind(id).fetch_one(pool).await.unwrap()
}

pub async fn outbox_id(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM chain_outbox WHERE idempotency_key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn ten_people(pool: &PgPool) {
    let addrs: Vec<Address> = (0..10).map(address).collect();
    people(pool, &addrs).await;
}

/// An outbox row written by hand, as aggregate_votes or resolve_markets would.
pub async fn outbox_row(pool: &PgPool, key: &str, kind: &str, args: serde_json::Value) -> i64 {
    sqlx::query_scalar("INSERT INTO chain_outbox (idempotency_key, kind, target, args) VALUES ($1, $2, 'markets', $3) RETURNING id")
        .bind(key).bind(kind).bind(args).fetch_one(pool).await.unwrap()
}

pub async fn approval(pool: &PgPool, market: i64) -> (Option<String>, Option<i64>) {
    sqlx::query_as("SELECT approval_tx_hash, approval_block FROM markets WHERE id = $1")
        .bind(market)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// An ACTIVE market past its resolution time, with positions (user index, outcome, stake).
pub async fn active_market(
    pool: &PgPool,
    on_chain: i64,
    users: &[(i64, i64)],
    stakes: &[(usize, bool, &str)],
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO markets (on_chain_id, proposer_id, title, state, resolves_at)
         VALUES ($1, $2, 'Will ETH close above 5k?', 'ACTIVE', now() - interval '1 minute') RETURNING id",
    )
    .bind(on_chain).bind(users[0].0).fetch_one(pool).await.unwrap();
    for (user, outcome, stake) in stakes {
        sqlx::query("INSERT INTO positions (market_id, user_id, outcome, stake) VALUES ($1, $2, $3, $4::numeric)")
            .bind(id).bind(users[*user].0).bind(outcome).bind(stake).execute(pool).await.unwrap();
    }
    id
}

/// An `approveMarket` row for the market with on-chain id `on_chain`.
pub async fn approve_row(pool: &PgPool, key: &str, on_chain: i64) -> i64 {
    outbox_row(
        pool,
        key,
        "approveMarket",
        serde_json::json!({"onChainId": on_chain}),
    )
    .await
}
