//! `jobfleet snapshots show MARKET` lists a market's discussion snapshots; `jobfleet snapshots
//! verify CID` fetches a snapshot back from the Kubo endpoints and checks that it hashes to its
//! CID, and for a split day that every part does.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;

use super::App;
use super::output::outln;
use super::output::{json, table};
use crate::db::snapshots;
use crate::ipfs::KuboClient;
use crate::ipfs::cid as cids;
use crate::ipfs::document::{self, KIND_INDEX, KIND_PART};

#[derive(Debug, Subcommand)]
pub enum SnapshotsCommand {
    /// List a market's snapshots, newest window first.
    Show {
        /// The market's id.
        market: i64,
        #[arg(long)]
        json: bool,
    },
    /// Fetch a snapshot (and its parts) and check it hashes to its CID (exit code 1 if not).
    Verify {
        /// The snapshot's CID, as `snapshots show` prints it.
        #[arg(value_parser = parse_cid)]
        cid: String,
        #[arg(long)]
        json: bool,
    },
}

fn parse_cid(s: &str) -> Result<String, String> {
    cids::parse_checkable(s)
        .map(|c| c.to_string())
        .map_err(|e| e.to_string())
}

pub async fn run(app: &App, cmd: SnapshotsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SnapshotsCommand::Show { market, json } => show(app, market, json).await,
        SnapshotsCommand::Verify { cid, json } => verify(app, &cid, json).await,
    }
}

async fn show(app: &App, market: i64, as_json: bool) -> anyhow::Result<ExitCode> {
    let db = &app.settings.database;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(crate::db::options(db.url.expose())?)
        .await
        .with_context(|| format!("cannot connect to {}", db.url))?;
    let rows = snapshots::for_market(&pool, market).await?;
    pool.close().await;
    if as_json {
        json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        outln!("market {market} has no snapshots")?;
        return Ok(ExitCode::SUCCESS);
    }
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let out: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{} .. {}", day(r.window_start), day(r.window_end)),
                r.message_count.to_string(),
                r.cid.clone(),
                if r.part_cids.is_empty() {
                    "-".to_owned()
                } else {
                    r.part_cids.len().to_string()
                },
                day(r.created_at),
                r.pruned_at.map_or_else(|| "-".to_owned(), day),
            ]
        })
        .collect();
    table(
        &[
            "WINDOW (UTC)",
            "MESSAGES",
            "CID",
            "PARTS",
            "CREATED",
            "PRUNED",
        ],
        &out,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The check of one block.
#[derive(Debug, Serialize)]
struct Checked {
    cid: String,
    ok: bool,
    bytes: Option<usize>,
    kind: Option<String>,
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct Verified {
    ok: bool,
    snapshot: Checked,
    parts: Vec<Checked>,
}

async fn verify(app: &App, cid: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let kubo = KuboClient::new(&app.settings.ipfs)?;
    let (snapshot, content) = check(&kubo, cid).await;
    let mut parts = Vec::new();
    if let Some(header) = content
        .as_deref()
        .and_then(document::header)
        .filter(|h| h.kind == KIND_INDEX)
    {
        let mut count = 0;
        for part in &header.parts {
            let (mut checked, bytes) = check(&kubo, part).await;
            match bytes.as_deref().and_then(document::header) {
                Some(h) if h.kind == KIND_PART && h.market_id == header.market_id => {
                    count += h.count
                }
                Some(_) if checked.ok => {
                    checked.ok = false;
                    checked.problem = Some("not a part of this snapshot".to_owned());
                }
                _ => {}
            }
            parts.push(checked);
        }
        if parts.iter().all(|p| p.ok) && count != header.count {
            parts.push(Checked {
                cid: cid.to_owned(),
                ok: false,
                bytes: None,
                kind: Some(KIND_INDEX.to_owned()),
                problem: Some(format!(
                    "the index counts {} messages, its parts {count}",
                    header.count
                )),
            });
        }
    }
    let ok = snapshot.ok && parts.iter().all(|p| p.ok);
    let report = Verified {
        ok,
        snapshot,
        parts,
    };
    if as_json {
        json(&report)?;
    } else {
        for c in std::iter::once(&report.snapshot).chain(&report.parts) {
            let what = c.kind.as_deref().unwrap_or("unknown content");
            match (&c.problem, c.bytes) {
                (None, Some(n)) => outln!("ok        {}  {n} bytes  {what}", c.cid)?,
                (Some(p), _) => outln!("FAILED    {}  {p}", c.cid)?,
                (None, None) => outln!("FAILED    {}", c.cid)?,
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Fetches one block and checks it against its CID; returns the bytes when they match.
async fn check(kubo: &KuboClient, cid: &str) -> (Checked, Option<Vec<u8>>) {
    let mut checked = Checked {
        cid: cid.to_owned(),
        ok: false,
        bytes: None,
        kind: None,
        problem: None,
    };
    let parsed = match cids::parse_checkable(cid) {
        Ok(c) => c,
        Err(e) => {
            checked.problem = Some(e.to_string());
            return (checked, None);
        }
    };
    let bytes = match kubo.cat(&parsed).await {
        Ok(b) => b,
        Err(e) => {
            checked.problem = Some(format!("cannot fetch it: {e}"));
            return (checked, None);
        }
    };
    checked.bytes = Some(bytes.len());
    checked.kind = document::header(&bytes).map(|h| h.kind);
    if !cids::matches(&parsed, &bytes) {
        checked.problem = Some(format!(
            "the content fetched hashes to {}, not to this CID",
            cids::raw_cid(&bytes)
        ));
        return (checked, None);
    }
    checked.ok = true;
    (checked, Some(bytes))
}
