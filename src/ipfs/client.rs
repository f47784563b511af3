//! A client of the Kubo RPC API (`/api/v0/...`): add, cat and pin/rm, over several endpoints.
//!
//! Every call goes to the configured endpoints in order. A connection error, a timeout or a
//! 5xx answer from one moves on to the next, because another node may be up or may have the
//! block; when all of them fail the error is retryable. A 4xx answer is a request the node
//! refuses, which no other node or later attempt would accept, so it stops there. Kubo's
//! errors (`{"Message","Code","Type"}`) are parsed into the error so the job's last error says
//! what Kubo said.

use std::time::Duration;

use cid::Cid;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::cid::{self as cids, CidError};
use super::settings::IpfsSettings;
use jobfleet_engine::settings::secret::SecretUrl;

/// How `add` is called: CIDv1 (which makes Kubo use raw leaves), spelled out with the hash and
/// the chunker so that a node's `Import.*` configuration cannot change the CID of a snapshot,
/// and pinned so that the node keeps it until `prune_snapshots` unpins it.
const ADD_QUERY: &str = "cid-version=1&raw-leaves=true&hash=sha2-256&chunker=size-262144&pin=true";

/// Kubo's answer to `pin/rm` of something that is not pinned (directly or recursively).
pub const NOT_PINNED: &str = "not pinned or pinned indirectly";

#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    #[error("every IPFS endpoint failed: {}", .0.join("; "))]
    AllFailed(Vec<String>),
    #[error("{endpoint} refused {call} with HTTP {status}: {message}")]
    Refused {
        endpoint: String,
        call: &'static str,
        status: u16,
        message: String,
    },
    #[error("{endpoint} answered {call} with something that is not Kubo's answer: {reason}")]
    BadAnswer {
        endpoint: String,
        call: &'static str,
        reason: String,
    },
    #[error(
        "{endpoint} stored the snapshot as {got}, not as {expected}: is it chunking or hashing differently?"
    )]
    CidMismatch {
        endpoint: String,
        expected: String,
        got: String,
    },
    /// reqwest keeps the reason in its error's sources; the message holds them all, and
    /// nothing is chained, so the reason is said once.
    #[error("cannot build the HTTP client: {}", crate::job::error::error_chain(.0))]
    Client(reqwest::Error),
    #[error(transparent)]
    Cid(#[from] CidError),
}

impl IpfsError {
    /// Whether trying again later may succeed: only when no endpoint could be used.
    pub fn is_retryable(&self) -> bool {
        matches!(self, IpfsError::AllFailed(_))
    }
}

/// Kubo's error body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KuboError {
    pub message: String,
    #[serde(default)]
    pub code: i64,
    #[serde(default, rename = "Type")]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Added {
    hash: String,
}

/// What `unpin` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unpinned {
    Removed,
    /// The node said it was not pinned: the goal is reached all the same.
    AlreadyUnpinned,
}

/// One endpoint's answer that ends the walk over the endpoints.
enum Answer {
    Ok(Vec<u8>),
    /// A Kubo error from a 5xx (or a dead endpoint): move on to the next one.
    Next(String),
    /// A 4xx: stop.
    Stop(IpfsError),
    /// The Kubo error of a 500, for the caller to interpret (pin/rm's "not pinned").
    Kubo(KuboError, String),
}

#[derive(Clone, Debug)]
pub struct KuboClient {
    http: reqwest::Client,
    /// Secret URLs: errors name an endpoint by its redacted form only.
    endpoints: Vec<SecretUrl>,
}

impl KuboClient {
    pub fn new(settings: &IpfsSettings) -> Result<Self, IpfsError> {
        Self::with_endpoints(settings.endpoints.clone(), settings.timeout)
    }

    pub fn with_endpoints(endpoints: Vec<SecretUrl>, timeout: Duration) -> Result<Self, IpfsError> {
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(IpfsError::Client)?;
        let endpoints = endpoints
            .into_iter()
            .map(|e| SecretUrl::new(e.expose().trim_end_matches('/')))
            .collect();
        Ok(Self { http, endpoints })
    }

    /// Adds and pins `bytes` (at most one block), checking that the node's CID is ours.
    pub async fn add(&self, name: &str, bytes: &[u8]) -> Result<Cid, IpfsError> {
        let expected = cids::raw_cid(bytes);
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            let url = format!("{}/api/v0/add?{ADD_QUERY}", endpoint.expose());
            let part = Part::bytes(bytes.to_vec())
                .file_name(name.to_owned())
                .mime_str("application/octet-stream")
                .map_err(IpfsError::Client)?;
            let request = self
                .http
                .post(url)
                .multipart(Form::new().part("file", part));
            match self.send(endpoint, "add", request).await {
                Answer::Ok(body) => {
                    let got = added_hash(&body).map_err(|reason| IpfsError::BadAnswer {
                        endpoint: endpoint.to_string(),
                        call: "add",
                        reason,
                    })?;
                    if got != expected.to_string() {
                        return Err(IpfsError::CidMismatch {
                            endpoint: endpoint.to_string(),
                            expected: expected.to_string(),
                            got,
                        });
                    }
                    return Ok(expected);
                }
                Answer::Next(why) | Answer::Kubo(_, why) => failures.push(why),
                Answer::Stop(e) => return Err(e),
            }
        }
        Err(IpfsError::AllFailed(failures))
    }

    /// The content of `cid`, from the first endpoint that has it.
    pub async fn cat(&self, cid: &Cid) -> Result<Vec<u8>, IpfsError> {
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            let url = format!("{}/api/v0/cat?arg={cid}", endpoint.expose());
            match self.send(endpoint, "cat", self.http.post(url)).await {
                Answer::Ok(body) => return Ok(body),
                Answer::Next(why) | Answer::Kubo(_, why) => failures.push(why),
                Answer::Stop(e) => return Err(e),
            }
        }
        Err(IpfsError::AllFailed(failures))
    }

    /// Unpins `cid` (recursively, Kubo's default); "not pinned" counts as done.
    pub async fn unpin(&self, cid: &str) -> Result<Unpinned, IpfsError> {
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            let url = format!("{}/api/v0/pin/rm?arg={cid}", endpoint.expose());
            match self.send(endpoint, "pin/rm", self.http.post(url)).await {
                Answer::Ok(_) => return Ok(Unpinned::Removed),
                Answer::Kubo(e, _) if e.message.contains(NOT_PINNED) => {
                    return Ok(Unpinned::AlreadyUnpinned);
                }
                Answer::Next(why) | Answer::Kubo(_, why) => failures.push(why),
                Answer::Stop(e) => return Err(e),
            }
        }
        Err(IpfsError::AllFailed(failures))
    }

    async fn send(
        &self,
        endpoint: &SecretUrl,
        call: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Answer {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Answer::Next(format!("{endpoint}: {call}: {}", error_text(e))),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return Answer::Next(format!("{endpoint}: {call}: {}", error_text(e))),
        };
        if status.is_success() {
            return Answer::Ok(body);
        }
        let message = serde_json::from_slice::<KuboError>(&body).ok();
        let text = message.as_ref().map_or_else(
            || String::from_utf8_lossy(&body).trim().to_owned(),
            |k| k.message.clone(),
        );
        if status.is_client_error() {
            return Answer::Stop(IpfsError::Refused {
                endpoint: endpoint.to_string(),
                call,
                status: status.as_u16(),
                message: text,
            });
        }
        let why = format!("{endpoint}: {call}: HTTP {}: {text}", status.as_u16());
        match message {
            Some(k) => Answer::Kubo(k, why),
            None => Answer::Next(why),
        }
    }
}

/// The `Hash` of the last line of `add`'s answer (Kubo streams one JSON object per line).
fn added_hash(body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .ok_or("an empty answer")?;
    serde_json::from_str::<Added>(line)
        .map(|a| a.hash)
        .map_err(|e| format!("{e} in {line:?}"))
}

/// reqwest's error with its sources, which is where "connection refused" is, without the URL
/// reqwest puts in it: the endpoint is a secret URL and the message names it redacted already.
fn error_text(e: reqwest::Error) -> String {
    crate::job::error::error_chain(&e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_read_from_the_last_line() {
        let body = b"{\"Name\":\"a\",\"Hash\":\"bafkfirst\",\"Size\":\"1\"}\n{\"Name\":\"b\",\"Hash\":\"bafklast\",\"Size\":\"2\"}\n";
        assert_eq!(added_hash(body).unwrap(), "bafklast");
        assert!(added_hash(b"").is_err());
        assert!(added_hash(b"<html>").is_err());
    }

    #[test]
    fn kubo_errors_parse() {
        let e: KuboError = serde_json::from_str(
            r#"{"Message":"not pinned or pinned indirectly","Code":0,"Type":"error"}"#,
        )
        .unwrap();
        assert!(e.message.contains(NOT_PINNED));
        assert_eq!((e.code, e.kind.as_str()), (0, "error"));
    }
}
