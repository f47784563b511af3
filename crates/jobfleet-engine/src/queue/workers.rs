//! The registry of live worker and scheduler processes, so operators can see who is doing what
//! and Prometheus where to scrape them.
//!
//! Each process writes its description (a worker's with its in-flight jobs, both with their
//! metrics address) under a key with a TTL and its id into a sorted set by heartbeat time. A
//! process that dies simply stops heartbeating: its key expires and the next listing prunes
//! its id.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::client::QueueClient;
use super::{Result, now_ms};

/// One job a worker holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InFlight {
    /// The job's id.
    pub id: String,
    /// The queue it was leased from.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Milliseconds since the epoch; None while the job waits in the prefetch buffer.
    pub started_at: Option<i64>,
}

/// What a worker process tells about itself at every heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerInfo {
    /// host + pid + random suffix, unique across restarts.
    pub id: String,
    /// The host the process runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queues it serves, in the configured order.
    pub queues: Vec<String>,
    /// How many jobs it runs at once.
    pub concurrency: usize,
    /// When it started, in ms since the epoch.
    pub started_at: i64,
    /// When it last reported, in ms since the epoch; an entry that stops reporting expires.
    pub heartbeat_at: i64,
    /// The jobs it holds right now.
    pub in_flight: Vec<InFlight>,
    /// Where its `/metrics` is served, as a scrape target (`host:port`); None when the server
    /// is off. Absent in the descriptions of workers from before it was added.
    #[serde(default)]
    pub metrics_addr: Option<String>,
}

/// What a scheduler process tells about itself every few seconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SchedulerInfo {
    /// host + pid + random suffix, like a worker's.
    pub id: String,
    /// The host the process runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started, in ms since the epoch.
    pub started_at: i64,
    /// When it last reported, in ms since the epoch; an entry that stops reporting expires.
    pub heartbeat_at: i64,
    /// As for a worker.
    pub metrics_addr: Option<String>,
}

/// This host's name, or `unknown`.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A new worker id: host, pid and a random suffix.
pub fn new_worker_id() -> String {
    // Lease tokens are built from the worker id and must never contain '|' or '#'.
    let host: String = host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let suffix: u32 = rand::random();
    format!("{host}:{}:{suffix:08x}", std::process::id())
}

impl QueueClient {
    /// Records a heartbeat; the description expires after `ttl` without another one.
    pub async fn heartbeat_worker(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        let json = serde_json::to_string(info)?;
        let _: () = redis::pipe()
            .zadd(self.keys.workers(), &info.id, info.heartbeat_at)
            .set_ex(self.keys.worker(&info.id), json, ttl.as_secs().max(1))
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Removes a worker at shutdown.
    pub async fn deregister_worker(&self, id: &str) -> Result<()> {
        let _: () = redis::pipe()
            .zrem(self.keys.workers(), id)
            .del(self.keys.worker(id))
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Live workers, and prunes the ids of those whose heartbeat is older than `ttl`.
    pub async fn workers(&self, ttl: Duration) -> Result<Vec<WorkerInfo>> {
        self.live(&self.keys.workers(), |id| self.keys.worker(id), ttl)
            .await
    }

    /// Records a scheduler's heartbeat; the description expires after `ttl` without another.
    pub async fn heartbeat_scheduler(&self, info: &SchedulerInfo, ttl: Duration) -> Result<()> {
        let json = serde_json::to_string(info)?;
        let _: () = redis::pipe()
            .zadd(self.keys.schedulers(), &info.id, info.heartbeat_at)
            .set_ex(self.keys.scheduler(&info.id), json, ttl.as_secs().max(1))
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Removes a scheduler at shutdown.
    pub async fn deregister_scheduler(&self, id: &str) -> Result<()> {
        let _: () = redis::pipe()
            .zrem(self.keys.schedulers(), id)
            .del(self.keys.scheduler(id))
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Live schedulers, and prunes the ids of those whose heartbeat is older than `ttl`.
    pub async fn schedulers(&self, ttl: Duration) -> Result<Vec<SchedulerInfo>> {
        self.live(&self.keys.schedulers(), |id| self.keys.scheduler(id), ttl)
            .await
    }

    /// The descriptions of a registry's live processes (`set`: id -> last heartbeat; `key`:
    /// where a process's description is), pruning the ids whose heartbeat is older than `ttl`.
    /// A description that does not decode is left out.
    async fn live<T: serde::de::DeserializeOwned>(
        &self,
        set: &str,
        key: impl Fn(&str) -> String,
        ttl: Duration,
    ) -> Result<Vec<T>> {
        let mut con = self.connection();
        let cutoff = now_ms() - i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let _: () = con.zrembyscore(set, "-inf", cutoff).await?;
        let ids = utf8_members(con.zrange(set, 0, -1).await?);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| key(id)).collect();
        let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(keys).query_async(&mut con).await?;
        Ok(raw
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_slice(&j).ok())
            .collect())
    }
}

/// The members of a registry set that can be process ids. Read as bytes: one member that is
/// not UTF-8 (written by someone else) is left out rather than failing the listing.
fn utf8_members(raw: Vec<Vec<u8>>) -> Vec<String> {
    raw.into_iter()
        .filter_map(|m| String::from_utf8(m).ok())
        .collect()
}
