//! `jobfleet web bench`: how fast the board's pages and the API answer while a queue holds a
//! million jobs, and how fast the API enqueues in bulk. It serves the board in-process in a
//! namespace of its own on the configured Redis, fills one queue, signs in over HTTP like a
//! browser, times each page and call, and deletes every key of the namespace afterwards.
//!
//! The HTTP client is a minimal HTTP/1.1 one over keep-alive connections, so that the figures
//! are the board's and Redis's, not a client library's.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use jobfleet_engine::cli::Engine;
use jobfleet_engine::outln;
use jobfleet_engine::queue::{NewJob, QueueClient};

use crate::board::{AppPages, router, serve};
use crate::settings::WebSettings;
use crate::store::WebStore;
use crate::store::tokens::Scope;
use crate::store::users::Role;

const QUEUE: &str = "webbench";
const PASSWORD: &str = "bench-password";

/// `jobfleet web bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Jobs the queue holds while the pages are timed.
    #[arg(long, default_value_t = 1_000_000)]
    jobs: u64,
    /// Requests per page or call timed.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Jobs enqueued through `POST /api/v1/jobs/bulk` for the bulk figure.
    #[arg(long, default_value_t = 200_000)]
    bulk_jobs: usize,
    /// Jobs per bulk request.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

/// One keep-alive HTTP/1.1 connection.
struct Http {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Http {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    /// Sends a request and reads the answer: its status, headers and body.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(req.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            body.resize(len, 0);
            self.reader.read_exact(&mut body).await?;
        } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                line.clear();
                self.reader.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16).context("bad chunk size")?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        Ok((status, headers, body))
    }
}

/// The percentile `p` of sorted durations, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// Runs the benchmark.
pub async fn run<S: Send + Sync + 'static>(
    engine: &Engine<S>,
    web: &WebSettings,
    args: BenchArgs,
) -> anyhow::Result<std::process::ExitCode> {
    if args.requests == 0 || args.batch == 0 || args.batch > crate::api::jobs::MAX_BULK {
        bail!(
            "--requests must be at least 1 and --batch between 1 and {}",
            crate::api::jobs::MAX_BULK
        );
    }
    let namespace = format!("jobfleet-webbench-{:08x}", rand::random::<u32>());
    let client = engine
        .client_in(&namespace, engine.settings.store())
        .await?;
    outln!(
        "jobfleet web bench: {} jobs in queue {QUEUE}, namespace {namespace}",
        args.jobs
    )?;
    let result = phases(engine, web, &client, &args).await;
    cleanup(&client, &namespace).await;
    result?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn phases<S: Send + Sync + 'static>(
    engine: &Engine<S>,
    web: &WebSettings,
    client: &QueueClient,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(10_000);
        let jobs = (0..n).map(|i| NewJob::new("noop", QUEUE, json!({ "n": i, "note": "bench" })));
        client.enqueue_bulk(jobs.collect()).await?;
        left -= n;
    }
    let dead = client
        .enqueue(NewJob::new("noop", QUEUE, json!({"dead": true})).id("webbench-dead"))
        .await?;
    client.kill(&dead.id).await?;
    let middle = client
        .list(
            QUEUE,
            jobfleet_engine::queue::JobState::Pending,
            args.jobs / 2,
            1,
        )
        .await?
        .jobs
        .pop()
        .map(|j| j.id)
        .unwrap_or_default();
    outln!("filled in {:.1} s", started.elapsed().as_secs_f64())?;

    let store = WebStore::new(client);
    store.put_user("bench", Role::Operator, PASSWORD).await?;
    let token = store.create_token("bench", &[Scope::Operate]).await?;
    let mut state = crate::setup::state_with(engine, web, client.clone())?;
    state.settings.max_failed_logins = u32::MAX;
    let cancel = CancellationToken::new();
    let (addr, task) = serve(
        "127.0.0.1:0".parse()?,
        router(state, AppPages::default()),
        cancel.clone(),
    )
    .await?;
    let outcome = measure(addr, &token, &middle, args).await;
    cancel.cancel();
    let _ = task.await;
    outcome
}

async fn sign_in(http: &mut Http) -> anyhow::Result<String> {
    let (_, headers, body) = http.send("GET", "/login", &[], b"").await?;
    let login = cookie(&headers, "jobfleet_login").context("no sign-in cookie")?;
    let page = String::from_utf8_lossy(&body);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no CSRF field on the sign-in page")?
        .to_owned();
    let form = format!("csrf={csrf}&next=%2F&username=bench&password={PASSWORD}");
    let cookie_header = format!("jobfleet_login={login}");
    let (_, headers, _) = http
        .send(
            "POST",
            "/login",
            &[
                ("Cookie", &cookie_header),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
        )
        .await?;
    cookie(&headers, "jobfleet_session").context("the bench user could not sign in")
}

fn cookie(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| {
            v.split(';')
                .next()?
                .strip_prefix(&format!("{name}="))
                .map(str::to_owned)
        })
        .find(|v| !v.is_empty())
}

async fn measure(
    addr: SocketAddr,
    token: &str,
    middle: &str,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let mut http = Http::connect(addr).await?;
    let session = format!("jobfleet_session={}", sign_in(&mut http).await?);
    let bearer = format!("Bearer {token}");
    let deep = format!(
        "/queues/{QUEUE}?state=pending&cursor={}",
        args.jobs.saturating_sub(100)
    );
    let job = format!("/jobs/{middle}");
    let api_job = format!("/api/v1/jobs/{middle}");
    let pages: Vec<(&str, &str, String)> = vec![
        ("overview", "GET", "/".into()),
        ("overview, last day", "GET", "/?range=day".into()),
        ("queue, first page", "GET", format!("/queues/{QUEUE}")),
        ("queue, last page", "GET", deep),
        (
            "queue, filtered",
            "GET",
            format!("/queues/{QUEUE}?state=pending&kind=noop&q=%22n%22%3A7"),
        ),
        (
            "queue, dead tab",
            "GET",
            format!("/queues/{QUEUE}?state=dead"),
        ),
        ("job page (dead)", "GET", "/jobs/webbench-dead".into()),
        ("job page (pending, mid-queue)", "GET", job),
        ("workers", "GET", "/workers".into()),
        ("audit", "GET", "/audit".into()),
        ("API GET /queues", "GET", "/api/v1/queues".into()),
        ("API GET /jobs/<id>", "GET", api_job),
        ("API POST /jobs", "POST", "/api/v1/jobs".into()),
    ];
    outln!(
        "{:<32} {:>9} {:>9} {:>9}   ({} requests each, one connection)",
        "page or call",
        "p50 ms",
        "p99 ms",
        "max ms",
        args.requests
    )?;
    let one = br#"{"kind":"noop","args":{"bench":true}}"#;
    for (name, method, path) in &pages {
        let api = path.starts_with("/api/");
        let auth: Vec<(&str, &str)> = if api {
            vec![
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ]
        } else {
            vec![("Cookie", session.as_str())]
        };
        let body: &[u8] = if *method == "POST" { one } else { b"" };
        let mut times = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let t = Instant::now();
            let (status, _, _) = http.send(method, path, &auth, body).await?;
            times.push(t.elapsed());
            if !(200..300).contains(&status) {
                bail!("{name}: {method} {path} answered {status}");
            }
        }
        times.sort();
        outln!(
            "{name:<32} {:>9.2} {:>9.2} {:>9.2}",
            pct(&times, 0.5),
            pct(&times, 0.99),
            pct(&times, 1.0)
        )?;
    }
    // The one search that reads all of pending: an id that is nowhere (a 404).
    let auth = [("Authorization", bearer.as_str())];
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let (status, _, _) = http
            .send("GET", "/api/v1/jobs/no-such-job", &auth, b"")
            .await?;
        times.push(t.elapsed());
        if status != 404 {
            bail!("an unknown id answered {status}, not 404");
        }
    }
    times.sort();
    outln!(
        "{:<32} {:>9.2} {:>9.2} {:>9.2}   (3 requests: it reads all of pending)",
        "API GET /jobs/<unknown id>",
        pct(&times, 0.5),
        pct(&times, 0.99),
        pct(&times, 1.0)
    )?;
    bulk(addr, &bearer, args).await
}

/// Enqueues `bulk_jobs` jobs through the bulk call, `concurrency` requests at a time.
async fn bulk(addr: SocketAddr, bearer: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let per = args.bulk_jobs.div_ceil(args.concurrency.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.concurrency.max(1) {
        let bearer = bearer.to_owned();
        let batch = args.batch;
        let n = per.min(args.bulk_jobs.saturating_sub(c * per));
        tasks.push(tokio::spawn(async move {
            let mut http = Http::connect(addr).await?;
            let mut done = 0;
            while done < n {
                let size = batch.min(n - done);
                let jobs: Vec<_> = (0..size)
                    .map(|i| json!({"kind": "noop", "args": {"c": c, "i": done + i}}))
                    .collect();
                let body = serde_json::to_vec(&json!({ "jobs": jobs }))?;
                let (status, _, reply) = http
                    .send(
                        "POST",
                        "/api/v1/jobs/bulk",
                        &[
                            ("Authorization", &bearer),
                            ("Content-Type", "application/json"),
                        ],
                        &body,
                    )
                    .await?;
                let created =
                    serde_json::from_slice::<serde_json::Value>(&reply)?["created"].as_u64();
                if status != 200 || created != Some(size as u64) {
                    bail!(
                        "bulk request answered {status}: {}",
                        String::from_utf8_lossy(&reply)
                    );
                }
                done += size;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    outln!(
        "API bulk enqueue: {total} jobs in {secs:.2} s = {:.0} jobs/s ({} per request, {} in flight)",
        total as f64 / secs,
        args.batch,
        args.concurrency
    )?;
    Ok(())
}

/// Deletes every key of the bench's namespace, in batches of 1,000.
async fn cleanup(client: &QueueClient, namespace: &str) {
    let mut con = client.connection();
    let mut cursor: u64 = 0;
    loop {
        let reply: redis::RedisResult<(u64, Vec<Vec<u8>>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{namespace}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await;
        let Ok((next, keys)) = reply else {
            jobfleet_engine::errln!("warning: could not delete the bench's keys ({namespace}:*)");
            return;
        };
        if !keys.is_empty() {
            let _: redis::RedisResult<()> =
                redis::cmd("UNLINK").arg(keys).query_async(&mut con).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
