//! `jobfleet chain ...`: the chain's state for operators (status, the outbox, retrying a failed
//! row), the deployment of the contracts to a local node, and the balance-sync benchmark.

use std::process::ExitCode;
use std::time::Instant;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use clap::Subcommand;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;

use super::output::{errln, outln};
use super::{App, output};
use crate::chain::contracts::Token;
use crate::chain::{Chain, ChainIdentity, ChainSettings, DEV_CHAIN_IDS, balances, indexer};
use crate::db::outbox;
use crate::dev::deploy::{ANVIL_KEY_0, ANVIL_KEY_1, deploy_local};

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// The indexer's last block, the head and the lag; the outbox by status; the signer.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The outbox's rows, newest first.
    Outbox {
        /// Only rows in this status (PENDING, SIGNED, SUBMITTED, CONFIRMED, FAILED).
        #[arg(long, value_parser = parse_status)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Send a FAILED outbox row again (with a fresh nonce).
    Retry { id: i64 },
    /// After the node was reset (a development chain started afresh, a new chain with the
    /// old one's id): forget the earlier chains' signer nonces, cursor and events, and send
    /// their in-flight rows again on the node's chain. Only on a development chain.
    Reset {
        /// Required: this rewrites the chain bookkeeping of the configured database.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        live: Live,
    },
    /// Deploy the platform's contracts to a local development node (anvil) and print the
    /// environment variables that point jobfleet at them.
    Deploy {
        /// The oracle's reporter and the tokens' minter (default: anvil's second key).
        #[arg(long, default_value = ANVIL_KEY_1)]
        reporter_key: String,
        #[command(flatten)]
        live: Live,
    },
    /// Time the balance sync of many wallets against the configured node (a local anvil):
    /// a scratch database, contracts deployed and every wallet funded first.
    Bench {
        #[arg(long, default_value_t = 10_000)]
        wallets: i64,
        /// Batches synced at once (a worker's concurrency on the chain queue).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[command(flatten)]
        live: Live,
    },
}

/// The override of the development-chain guard of `reset`, `deploy` and `bench`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Live {
    /// Act even though the node's chain id is not a development chain's (31337, 1337).
    #[arg(long = "i-know-this-is-live")]
    pub i_know_this_is_live: bool,
}

fn parse_status(s: &str) -> Result<String, String> {
    let up = s.to_uppercase();
    match up.as_str() {
        "PENDING" | "SIGNED" | "SUBMITTED" | "CONFIRMED" | "FAILED" => Ok(up),
        _ => Err(format!(
            "{s:?} is not one of PENDING, SIGNED, SUBMITTED, CONFIRMED, FAILED"
        )),
    }
}

pub async fn run(app: &App, cmd: ChainCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ChainCommand::Status { json } => status(app, json).await,
        ChainCommand::Outbox {
            status,
            limit,
            json,
        } => list(app, status.as_deref(), limit, json).await,
        ChainCommand::Retry { id } => {
            let pool = pool(app).await?;
            if outbox::retry_failed(&pool, id).await? {
                outln!(
                    "outbox row {id} is PENDING again; the next send_transactions run signs it"
                )?;
                Ok(ExitCode::SUCCESS)
            } else {
                anyhow::bail!("outbox row {id} does not exist or is not FAILED")
            }
        }
        ChainCommand::Reset { yes, live } => reset(app, yes, live).await,
        ChainCommand::Deploy { reporter_key, live } => {
            dev_chain(&app.settings.chain, "deploy", live).await?;
            deploy(&app.settings.chain, &reporter_key).await
        }
        ChainCommand::Bench {
            wallets,
            concurrency,
            live,
        } => {
            dev_chain(&app.settings.chain, "bench", live).await?;
            bench(app, wallets, concurrency.max(1)).await
        }
    }
}

/// The node's chain, when it is a development chain or the operator said `--i-know-this-is-live`:
/// on a live chain `reset` would send mined-but-unconfirmed rows again, and `deploy` and
/// `bench` spend the signer's funds.
async fn dev_chain(
    settings: &ChainSettings,
    command: &str,
    live: Live,
) -> anyhow::Result<ChainIdentity> {
    let chain = Chain::new(settings)?;
    let identity = chain
        .identity()
        .await
        .context("cannot reach chain.rpc_url")?;
    if !DEV_CHAIN_IDS.contains(&identity.id) && !live.i_know_this_is_live {
        let danger = match command {
            "reset" => {
                "would forget this database's nonces, cursor and events and send its in-flight transactions again"
            }
            "deploy" => "would deploy contracts paid by chain.signer_key",
            _ => "would deploy contracts and fund wallets from chain.signer_key",
        };
        anyhow::bail!(
            "refusing `jobfleet chain {command}`: the node is on chain {}, not a development chain (31337, 1337), and this {danger}; pass --i-know-this-is-live if that is what you want",
            identity.id
        );
    }
    Ok(identity)
}

async fn pool(app: &App) -> anyhow::Result<PgPool> {
    let url = &app.settings.database.url;
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(crate::db::options(url.expose())?)
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

async fn status(app: &App, as_json: bool) -> anyhow::Result<ExitCode> {
    let pool = pool(app).await?;
    let chain = Chain::new(&app.settings.chain)?;
    let here = chain
        .identity()
        .await
        .context("cannot reach chain.rpc_url")?;
    let cursor = crate::db::events::cursor(&pool, indexer::CURSOR, here.key()).await?;
    let head = chain
        .provider
        .get_block_number()
        .await
        .context("cannot reach chain.rpc_url")?;
    let indexed = cursor.as_ref().map(|(n, _)| *n as u64);
    let lag = indexed.map(|n| head.saturating_sub(n));
    let counts = outbox::counts(&pool).await?;
    let signer = app
        .settings
        .chain
        .signer_key
        .signer()
        .ok()
        .map(|s| s.address());
    let next_nonce: Option<i64> = match signer {
        Some(a) => {
            sqlx::query_scalar(
                "SELECT next_nonce FROM chain_signers
                 WHERE address = $1 AND chain_id = $2 AND genesis_hash = $3",
            )
            .bind(crate::chain::addr_lower(a))
            .bind(here.key().0)
            .bind(&here.genesis)
            .fetch_optional(&pool)
            .await?
        }
        None => None,
    };
    if as_json {
        output::json(&json!({
            "chain_id": here.id, "genesis_hash": here.genesis,
            "head": head, "last_indexed_block": indexed, "lag": lag,
            "outbox": counts.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "signer": signer.map(|a| format!("{a:#x}")), "next_nonce": next_nonce,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let show = |v: Option<u64>| v.map_or("-".to_owned(), |n| n.to_string());
    outln!("chain               {}", here.describe())?;
    outln!("head                {head}")?;
    outln!("last indexed block  {}", show(indexed))?;
    outln!("lag                 {}", show(lag))?;
    outln!(
        "signer              {}",
        signer.map_or("- (chain.signer_key is not set)".into(), |a| format!(
            "{a:#x}"
        ))
    )?;
    outln!(
        "next nonce          {}",
        next_nonce.map_or("-".into(), |n| n.to_string())
    )?;
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|(s, n)| vec![s, n.to_string()])
        .collect();
    outln!()?;
    output::table(&["OUTBOX", "ROWS"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

async fn list(
    app: &App,
    status: Option<&str>,
    limit: i64,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let pool = pool(app).await?;
    let rows = outbox::list(&pool, status, limit.clamp(1, 10_000)).await?;
    if as_json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "key": r.idempotency_key, "kind": r.kind, "status": r.status,
                    "nonce": r.nonce, "tx_hash": r.tx_hash, "signer": r.signer,
                    "chain_id": r.chain_id, "genesis_hash": r.genesis_hash, "previous_hashes": r.previous_hashes,
                    "attempts": r.attempts, "block": r.block_number, "last_error": r.last_error,
                    "created_at": r.created_at,
                })
            })
            .collect();
        output::json(&items)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            vec![
                r.id.to_string(),
                r.idempotency_key.clone(),
                r.status.clone(),
                opt(r.nonce.map(|n| n.to_string())),
                opt(r.tx_hash.clone()),
                opt(r.block_number.map(|n| n.to_string())),
                opt(r.last_error.clone()),
            ]
        })
        .collect();
    output::table(
        &["ID", "KEY", "STATUS", "NONCE", "TX", "BLOCK", "ERROR"],
        &table,
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn reset(app: &App, yes: bool, live: Live) -> anyhow::Result<ExitCode> {
    if !yes {
        anyhow::bail!(
            "chain reset rewrites the database's chain bookkeeping; run it with --yes, and only after the node was reset"
        );
    }
    let here = dev_chain(&app.settings.chain, "reset", live).await?;
    let f = outbox::forget_chain(&pool(app).await?, here.key().0, &here.genesis).await?;
    outln!(
        "chain {}: forgot {} signer nonce(s), {} cursor(s) and {} event(s) of earlier chains; {} transaction(s) will be sent again",
        here.describe(),
        f.signers,
        f.cursors,
        f.events,
        f.requeued
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn deploy(settings: &ChainSettings, reporter_key: &str) -> anyhow::Result<ExitCode> {
    if settings.rpc_url.is_empty() {
        anyhow::bail!("chain.rpc_url is not set");
    }
    let owner = settings
        .signer_key
        .signer()
        .map_err(|e| anyhow::anyhow!("chain.signer_key {e}"))?;
    let reporter: PrivateKeySigner = reporter_key
        .parse()
        .map_err(|_| anyhow::anyhow!("--reporter-key is not a private key"))?;
    let d = deploy_local(settings.rpc_url.expose(), &owner, &reporter).await?;
    for (k, v) in d.env() {
        outln!("export {k}={v}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The benchmark: see `ChainCommand::Bench`.
async fn bench(app: &App, wallets: i64, concurrency: usize) -> anyhow::Result<ExitCode> {
    let base = app.settings.database.url.expose();
    let (server, _) = base
        .rsplit_once('/')
        .context("database.url has no database name")?;
    let url = format!("{server}/jobfleet_chainbench_{:08x}", rand::random::<u32>());
    sqlx::Postgres::create_database(&url)
        .await
        .context("cannot create the scratch database")?;
    let result = bench_in(app, &url, wallets, concurrency).await;
    if let Err(e) = sqlx::Postgres::force_drop_database(&url).await {
        errln!("warning: could not drop the scratch database: {e}");
    }
    result
}

async fn bench_in(
    app: &App,
    url: &str,
    wallets: i64,
    concurrency: usize,
) -> anyhow::Result<ExitCode> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(crate::db::options(url)?)
        .await?;
    crate::db::MIGRATOR.run(&pool).await?;
    let mut settings = app.settings.chain.clone();
    let owner: PrivateKeySigner = if settings.signer_key.is_empty() {
        ANVIL_KEY_0.parse()?
    } else {
        settings.signer_key.signer().map_err(anyhow::Error::msg)?
    };
    let reporter: PrivateKeySigner = ANVIL_KEY_1.parse()?;
    let t = Instant::now();
    let d = deploy_local(settings.rpc_url.expose(), &owner, &reporter).await?;
    settings.tokens = format!("USDC={:#x},USDT={:#x},PTS={:#x}", d.usdc, d.usdt, d.pts);
    settings.multicall_address = format!("{:#x}", d.multicall);
    let chain = Chain::new(&settings)?;
    sqlx::query("INSERT INTO users (handle) SELECT 'bench' || i FROM generate_series(1, $1) i")
        .bind(wallets)
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO wallets (user_id, address, chain_id, is_primary)
         SELECT id, '0x' || lpad(to_hex(id + 4096), 40, '0'), 31337, true FROM users",
    )
    .execute(&pool)
    .await?;
    let addresses: Vec<String> = sqlx::query_scalar("SELECT address FROM wallets ORDER BY id")
        .fetch_all(&pool)
        .await?;
    let addresses: Vec<Address> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
    fund(
        settings.rpc_url.expose(),
        &reporter,
        &chain,
        &[d.usdc, d.usdt, d.pts],
        &addresses,
    )
    .await?;
    outln!(
        "set up {wallets} wallets funded with ETH, USDC, USDT and PTS in {:.1}s",
        t.elapsed().as_secs_f64()
    )?;
    for round in [
        "first sync (every balance new)",
        "second sync (nothing changed)",
    ] {
        let t = Instant::now();
        let starts =
            crate::db::balances::batch_starts(&pool, i64::from(settings.balance_batch)).await?;
        let reports: Vec<balances::BatchReport> = futures::stream::iter(starts)
            .map(|from| {
                let (chain, pool, n) = (&chain, &pool, i64::from(settings.balance_batch));
                async move {
                    let batch = crate::db::balances::wallets(pool, from, n).await?;
                    balances::sync_batch(chain, pool, &batch)
                        .await
                        .map_err(anyhow::Error::from)
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        let secs = t.elapsed().as_secs_f64();
        let read: u32 = reports.iter().map(|r| r.read).sum();
        let changed: u32 = reports.iter().map(|r| r.changed).sum();
        outln!(
            "sync_balances {round}: {secs:>6.2}s  ({} batches of {}, {read} balances read, {changed} written, {:.0} wallets/s)",
            reports.len(),
            settings.balance_batch,
            wallets as f64 / secs
        )?;
    }
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Gives every wallet some of each token (mintBatch, 500 at a time) and some ether.
async fn fund(
    rpc_url: &str,
    minter: &PrivateKeySigner,
    chain: &Chain,
    tokens: &[Address],
    wallets: &[Address],
) -> anyhow::Result<()> {
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(minter.clone()))
        .connect_http(rpc_url.parse()?);
    for token in tokens {
        let t = Token::new(*token, &provider);
        for chunk in wallets.chunks(500) {
            let amounts: Vec<U256> = (0..chunk.len())
                .map(|i| U256::from(1_000_000 + i as u64))
                .collect();
            t.mintBatch(chunk.to_vec(), amounts)
                .send()
                .await?
                .get_receipt()
                .await?;
        }
    }
    futures::stream::iter(wallets.iter().enumerate())
        .map(|(i, a)| async move {
            let wei = U256::from(10u64).pow(U256::from(15u64)) * U256::from(i as u64 + 1);
            chain
                .provider
                .raw_request::<_, serde_json::Value>("anvil_setBalance".into(), (a, wei))
                .await
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}
