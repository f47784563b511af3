//! A stand-in for a Kubo node's RPC API, for the tests and the demo (no Kubo daemon can be
//! installed where they run). It implements the subset the jobs use as Kubo answers it:
//!
//! - POST only: any other method is 405 `405 - Method Not Allowed`; unknown paths are 404.
//! - `/api/v0/add`: multipart field `file`; answers `{"Name","Hash","Size"}` (Size a string)
//!   on one line, and pins unless `pin=false`. The CID is computed by `ipfs::cid`, the code
//!   `snapshots verify` uses, which the tests check against an independent computation.
//! - `/api/v0/cat?arg=CID`: the bytes; an unknown CID is Kubo's offline "block was not found".
//! - `/api/v0/pin/rm?arg=CID`: `{"Pins":[CID]}`, or Kubo's "not pinned or pinned indirectly".
//! - Errors are HTTP 500 with `{"Message","Code","Type"}`; a missing argument is a 400.
//!
//! What it does not do: Kubo's chunking. Files over one block (256 KiB) are refused with an
//! error saying so, since the snapshot job never sends them (it splits a day into parts), and
//! `cid-version=0` is refused (CIDv0 would be a dag-pb node). Blocks and pins live in memory.
//! Tests can make the next N calls fail with a 500 and make `cat` serve tampered bytes.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ipfs::cid::{self as cids, MAX_BLOCK};
use crate::ipfs::client::NOT_PINNED;

type Args = Query<HashMap<String, String>>;

#[derive(Debug, Default)]
struct Node {
    blocks: Mutex<HashMap<String, Vec<u8>>>,
    pins: Mutex<BTreeSet<String>>,
    /// Bytes `cat` serves instead of a block's own, to test verification.
    tampered: Mutex<HashMap<String, Vec<u8>>>,
    fail_next: AtomicU32,
    adds: AtomicU64,
    calls: AtomicU64,
}

/// The stand-in's state; clones share it, so a test keeps one to steer the running server.
#[derive(Clone, Debug, Default)]
pub struct KuboStandIn {
    node: Arc<Node>,
}

/// A stand-in serving on a port until `stop`.
#[derive(Debug)]
pub struct RunningStandIn {
    pub addr: SocketAddr,
    pub node: KuboStandIn,
    stop: CancellationToken,
    handle: JoinHandle<std::io::Result<()>>,
}

impl RunningStandIn {
    /// The endpoint URL to configure, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) -> std::io::Result<()> {
        self.stop.cancel();
        self.handle.await.map_err(std::io::Error::other)?
    }
}

impl KuboStandIn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v0/add", only_post(post(add)))
            .route("/api/v0/cat", only_post(post(cat)))
            .route("/api/v0/pin/rm", only_post(post(pin_rm)))
            .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
            // Room for a block plus the multipart framing; bigger adds are refused in `add`
            // with a message rather than cut off by the body limit.
            .layer(DefaultBodyLimit::max(16 * MAX_BLOCK))
            .with_state(self.clone())
    }

    /// Serves on `addr` (port 0 picks a free one) in a background task.
    pub async fn start(addr: &str) -> std::io::Result<RunningStandIn> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let node = Self::new();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let router = node.router();
        let handle = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
        });
        Ok(RunningStandIn {
            addr,
            node,
            stop,
            handle,
        })
    }

    /// The next `n` calls (of any kind) answer HTTP 500 with a Kubo error.
    pub fn fail_next(&self, n: u32) {
        self.node.fail_next.store(n, Ordering::SeqCst);
    }

    /// From now on `cat` of `cid` serves `bytes` instead of the block's content.
    pub fn tamper(&self, cid: &str, bytes: Vec<u8>) {
        lock(&self.node.tampered).insert(cid.to_owned(), bytes);
    }

    pub fn is_pinned(&self, cid: &str) -> bool {
        lock(&self.node.pins).contains(cid)
    }

    pub fn pins(&self) -> Vec<String> {
        lock(&self.node.pins).iter().cloned().collect()
    }

    /// The stored content of `cid`.
    pub fn block(&self, cid: &str) -> Option<Vec<u8>> {
        lock(&self.node.blocks).get(cid).cloned()
    }

    /// Successful adds so far (a re-add of the same bytes counts again).
    pub fn adds(&self) -> u64 {
        self.node.adds.load(Ordering::SeqCst)
    }

    /// Every call that reached a handler, failed ones included.
    pub fn calls(&self) -> u64 {
        self.node.calls.load(Ordering::SeqCst)
    }

    /// Counts the call, and answers the injected failure if one is due.
    fn enter(&self) -> Result<(), KuboFailure> {
        self.node.calls.fetch_add(1, Ordering::SeqCst);
        let due = self
            .node
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if due {
            return Err(internal("stand-in: injected failure"));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-changed, so go on.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kubo answers every method but POST on the RPC API with 405.
fn only_post(route: MethodRouter<KuboStandIn>) -> MethodRouter<KuboStandIn> {
    route.fallback(|| async { (StatusCode::METHOD_NOT_ALLOWED, "405 - Method Not Allowed\n") })
}

/// A Kubo error answer: `{"Message","Code","Type":"error"}` (Code 1 for a bad request).
#[derive(Debug)]
struct KuboFailure {
    status: StatusCode,
    message: String,
    code: i64,
}

impl IntoResponse for KuboFailure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"Message": self.message, "Code": self.code, "Type": "error"});
        (self.status, axum::Json(body)).into_response()
    }
}

fn internal(message: &str) -> KuboFailure {
    KuboFailure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: message.to_owned(),
        code: 0,
    }
}

fn bad_request(message: &str) -> KuboFailure {
    KuboFailure {
        status: StatusCode::BAD_REQUEST,
        message: message.to_owned(),
        code: 1,
    }
}

/// The `arg` of cat and pin/rm, parsed as Kubo parses a path.
fn cid_arg(args: &HashMap<String, String>, name: &str) -> Result<String, KuboFailure> {
    let Some(arg) = args.get("arg") else {
        return Err(bad_request(&format!("argument \"{name}\" is required")));
    };
    let bare = arg.strip_prefix("/ipfs/").unwrap_or(arg);
    cids::parse(bare)
        .map(|c| c.to_string())
        .map_err(|e| internal(&format!("invalid path {arg:?}: {e}")))
}

async fn add(
    State(node): State<KuboStandIn>,
    Query(args): Args,
    mut form: Multipart,
) -> Result<Response, KuboFailure> {
    node.enter()?;
    let flag = |k: &str| args.get(k).map(String::as_str);
    if flag("cid-version") != Some("1") || flag("raw-leaves") == Some("false") {
        return Err(internal(
            "stand-in: only cid-version=1 with raw leaves is implemented (CIDv0 is dag-pb)",
        ));
    }
    if flag("hash").is_some_and(|h| h != "sha2-256") {
        return Err(internal("stand-in: only hash=sha2-256 is implemented"));
    }
    let mut file = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| internal(&format!("multipart: {e}")))?
    {
        if field.name() == Some("file") {
            let name = field.file_name().map(str::to_owned);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| internal(&format!("multipart: {e}")))?;
            file = Some((name, bytes.to_vec()));
            break;
        }
    }
    let Some((name, bytes)) = file else {
        return Err(bad_request("file argument 'path' is required"));
    };
    if bytes.len() > MAX_BLOCK {
        return Err(internal(&format!(
            "stand-in: {} bytes need Kubo's chunking into a dag-pb tree, which is not implemented (at most {MAX_BLOCK} bytes)",
            bytes.len()
        )));
    }
    let cid = cids::raw_cid(&bytes).to_string();
    let size = bytes.len();
    lock(&node.node.blocks).insert(cid.clone(), bytes);
    if flag("pin") != Some("false") {
        lock(&node.node.pins).insert(cid.clone());
    }
    node.node.adds.fetch_add(1, Ordering::SeqCst);
    let line = serde_json::json!({
        "Name": name.unwrap_or_else(|| cid.clone()),
        "Hash": cid,
        "Size": size.to_string(),
    });
    let mut response = format!("{line}\n").into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("X-Chunked-Output", HeaderValue::from_static("1"));
    Ok(response)
}

async fn cat(State(node): State<KuboStandIn>, Query(args): Args) -> Result<Response, KuboFailure> {
    node.enter()?;
    let cid = cid_arg(&args, "ipfs-path")?;
    let tampered = lock(&node.node.tampered).get(&cid).cloned();
    let Some(bytes) = tampered.or_else(|| node.block(&cid)) else {
        return Err(internal(&format!(
            "block was not found locally (offline): ipld: could not find {cid}"
        )));
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert("X-Stream-Output", HeaderValue::from_static("1"));
    Ok(response)
}

async fn pin_rm(
    State(node): State<KuboStandIn>,
    Query(args): Args,
) -> Result<Response, KuboFailure> {
    node.enter()?;
    let cid = cid_arg(&args, "ipfs-path")?;
    if !lock(&node.node.pins).remove(&cid) {
        return Err(internal(NOT_PINNED));
    }
    Ok(axum::Json(serde_json::json!({ "Pins": [cid] })).into_response())
}
