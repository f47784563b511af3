//! The calls on a worker's path. Each is one script call for a whole batch of jobs.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::calls::ack_extra;
pub use super::calls::{AckReport, Call, Fetched, ReapReport, Settle, SettleAction, SettleReport};
use super::connection::Connection;
use super::envelope::Leased;
use super::keys::{Keys, QueueKeys, validate_queue_name};
use super::scripts::{Invocation, Scripts};
use super::tokens::LeaseTokens;
use super::{QueueError, Result, StoreSettings, bytes, int, now_ms};

/// A handle on the queue store; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct QueueClient {
    pub(crate) con: Connection,
    pub(crate) opened: Opened,
    pub(crate) keys: Keys,
    pub(crate) scripts: Arc<Scripts>,
    pub(crate) settings: StoreSettings,
}

/// What the store was opened as, for the connections that cannot be shared (pub/sub).
#[derive(Clone)]
pub(crate) enum Opened {
    Node(redis::Client),
    Cluster {
        nodes: Vec<String>,
        settings: StoreSettings,
    },
    Sentinel(super::sentinel::SentinelConnection),
}

impl std::fmt::Debug for QueueClient {
    // The connection info holds the Redis password, so it is left out on purpose.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueClient")
            .field("namespace", &self.keys.namespace())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How long Redis remembers a worker's last reply on a lane: longer than any retry of one call
/// (at most a lease), short enough that the replies of workers gone for good disappear.
const REPLY_TTL_SECS: u64 = 3600;

impl QueueClient {
    /// The namespace's key builder, from which every queue's keys are made.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The settings this client was connected with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// A multiplexed connection shared by all clones of this handle; in a cluster it routes
    /// each command to the node of its key's slot.
    pub fn connection(&self) -> Connection {
        self.con.clone()
    }

    /// The topology the store was opened as: `node`, `cluster` or `sentinel`.
    pub fn mode(&self) -> &'static str {
        match self.opened {
            Opened::Node(_) => "node",
            Opened::Cluster { .. } => "cluster",
            Opened::Sentinel(_) => "sentinel",
        }
    }

    /// Runs a script that writes what a caller relies on (an enqueue, an ack, a settle): under
    /// `Durability::Replicated` it fails with [`QueueError::NotReplicated`] when too few
    /// replicas confirmed the write in time.
    pub(crate) async fn invoke_write<T: redis::FromRedisValue>(
        &self,
        inv: &Invocation<'_>,
        what: &'static str,
    ) -> Result<T> {
        let durability = self.settings.durability;
        match inv
            .invoke_durably(&mut self.con.clone(), durability)
            .await?
        {
            Ok(reply) => Ok(reply),
            Err(not) => Err(QueueError::NotReplicated {
                what,
                confirmed: not.confirmed,
                wanted: not.wanted,
                timeout: not.timeout,
            }),
        }
    }

    /// The values of one per-job key (`key(queue keys, id)`) of these jobs of one queue, in
    /// one `MGET` (they share the queue's slot).
    pub(crate) async fn per_job(
        &self,
        queue: &str,
        ids: &[&str],
        key: fn(&QueueKeys, &str) -> String,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.queue(queue)?;
        let keys: Vec<String> = ids.iter().map(|id| key(&k, id)).collect();
        Ok(redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.connection())
            .await?)
    }

    pub(crate) fn queue(&self, name: &str) -> Result<QueueKeys> {
        validate_queue_name(name)?;
        Ok(self.keys.queue(name))
    }

    fn minute_ttl(&self) -> u64 {
        self.settings.minute_stats_ttl.as_secs().max(60)
    }

    fn dead_cutoff(&self, now: i64) -> i64 {
        let age = i64::try_from(self.settings.dead_max_age.as_millis()).unwrap_or(i64::MAX);
        now.saturating_sub(age)
    }

    /// Promotes due delayed jobs and leases up to `max` pending jobs of one queue to `worker`.
    pub async fn fetch(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
        worker: &str,
    ) -> Result<Fetched> {
        let keys = self.queue(queue)?;
        let now = now_ms();
        let max = max.max(1);
        let first = LeaseTokens::process().reserve(max);
        let reply: Vec<Value> = self
            .scripts
            .fetch
            .key(keys.pending())
            .key(keys.scheduled())
            .key(keys.retry())
            .key(keys.leases())
            .key(keys.paused())
            .key(keys.stats())
            .key(keys.inflight(worker))
            .arg(keys.prefix())
            .arg(now)
            .arg(max)
            .arg(lease_ms(lease))
            .arg(worker)
            .arg(self.settings.promote_batch)
            .arg(first)
            .invoke_async(&mut self.con.clone())
            .await?;
        if reply.len() < 3 {
            return Err(QueueError::Reply {
                script: "fetch",
                detail: format!("{} values", reply.len()),
            });
        }
        if int(&reply[0], "fetch")? == 2 {
            return Err(QueueError::Reply {
                script: "fetch",
                detail: "the call was sent again after its first run leased jobs, whose reply \
                         was lost; the worker hands them back when it reconciles"
                    .to_owned(),
            });
        }
        let next_due = int(&reply[1], "fetch")?;
        // Jobs are read as bytes: one entry that is not UTF-8 must not fail the whole batch.
        let jobs = (first..)
            .zip(&reply[3..])
            .map(|(token, v)| Ok(Leased::new(queue, worker, token, bytes(v, "fetch")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Fetched {
            paused: int(&reply[0], "fetch")? == 1,
            next_due_ms: (next_due >= 0).then_some(next_due),
            promoted: u64::try_from(int(&reply[2], "fetch")?).unwrap_or(0),
            jobs,
        })
    }

    /// Completes jobs a worker holds in one queue. Send a retry of a failed call with the same
    /// `call`.
    pub async fn ack(
        &self,
        queue: &str,
        worker: &str,
        call: &Call,
        jobs: &[&Leased],
    ) -> Result<AckReport> {
        if jobs.is_empty() {
            return Ok(AckReport::default());
        }
        let keys = self.queue(queue)?;
        let mut inv = self.scripts.ack.prepare_invoke();
        inv.key(keys.inflight(worker))
            .key(keys.leases())
            .key(keys.stats())
            .key(keys.completed())
            .arg(keys.prefix())
            .arg(now_ms())
            .arg(self.settings.completed_history)
            .arg(self.minute_ttl())
            .arg(worker)
            .arg(&call.id)
            .arg(REPLY_TTL_SECS)
            .arg(self.history_flag());
        for job in jobs {
            inv.arg(job.token).arg(job.id()).arg(ack_extra(job));
        }
        let r: Vec<u64> = self.invoke_write(&inv, "ack").await?;
        if r.len() < 2 {
            return Err(QueueError::Reply {
                script: "ack",
                detail: format!("{} values", r.len()),
            });
        }
        Ok(AckReport {
            acked: r[0],
            stale: r[1],
            stale_at: positions(&r[2..], jobs.len(), "ack")?,
        })
    }

    /// Applies non-success outcomes to jobs a worker holds in one queue. Send a retry of a
    /// failed call with the same `call`.
    pub async fn settle(
        &self,
        queue: &str,
        worker: &str,
        call: &Call,
        jobs: &[Settle<'_>],
    ) -> Result<SettleReport> {
        if jobs.is_empty() {
            return Ok(SettleReport::default());
        }
        let keys = self.queue(queue)?;
        let now = now_ms();
        let mut inv = self.scripts.settle.prepare_invoke();
        inv.key(keys.inflight(worker))
            .key(keys.leases())
            .key(keys.pending())
            .key(keys.scheduled())
            .key(keys.retry())
            .key(keys.dead())
            .key(keys.stats())
            .arg(keys.prefix())
            .arg(now)
            .arg(self.minute_ttl())
            .arg(self.settings.dead_max_jobs)
            .arg(self.dead_cutoff(now))
            .arg(worker)
            .arg(call.lane)
            .arg(&call.id)
            .arg(REPLY_TTL_SECS)
            .arg(self.history_flag());
        for s in jobs {
            inv.arg(s.job.token).arg(s.action.as_str()).arg(s.due_ms);
            // A snoozed or handed-back job is stored again as it was leased.
            let new = s.replacement(now);
            if new.is_empty() {
                inv.arg(&s.job.stored);
            } else {
                inv.arg(new);
            }
            inv.arg(s.job.id())
                .arg(s.job.unique())
                .arg(s.attempt_entry(now, worker));
        }
        let r: Vec<u64> = self.invoke_write(&inv, "settle").await?;
        if r.len() < 7 {
            return Err(QueueError::Reply {
                script: "settle",
                detail: format!("{} values", r.len()),
            });
        }
        Ok(SettleReport {
            retried: r[0],
            snoozed: r[1],
            requeued: r[2],
            killed: r[3],
            stale: r[4],
            evicted_by_age: r[5],
            evicted_by_count: r[6],
            stale_at: positions(&r[7..], jobs.len(), "settle")?,
        })
    }

    /// Renews a worker's lease on its jobs of one queue. Returns how many it still holds
    /// there, or None when the lease had expired and the reaper took them back.
    pub async fn extend(&self, queue: &str, worker: &str, lease: Duration) -> Result<Option<u64>> {
        let keys = self.queue(queue)?;
        let held: i64 = self
            .scripts
            .extend
            .key(keys.leases())
            .key(keys.inflight(worker))
            .arg(keys.prefix())
            .arg(worker)
            .arg(lease_ms(lease))
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(u64::try_from(held).ok())
    }

    /// The jobs a worker holds in one queue, exactly as stored, with their lease tokens. A
    /// field that is no token of ours (written by someone else) is left out.
    pub async fn inflight(&self, queue: &str, worker: &str) -> Result<Vec<(u64, Vec<u8>)>> {
        let keys = self.queue(queue)?;
        let all: std::collections::HashMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
            .arg(keys.inflight(worker))
            .query_async(&mut self.con.clone())
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(field, stored)| {
                let token = std::str::from_utf8(&field).ok()?.parse().ok()?;
                Some((token, stored))
            })
            .collect())
    }

    /// The scripts' switch of the history of failed attempts (`StoreSettings::attempt_history`).
    fn history_flag(&self) -> &'static str {
        if self.settings.attempt_history {
            "1"
        } else {
            "0"
        }
    }

    /// Takes back the jobs of up to `limit` workers whose lease expired.
    pub async fn reap(&self, queue: &str, limit: usize) -> Result<ReapReport> {
        let keys = self.queue(queue)?;
        let now = now_ms();
        let reply: Vec<Value> = self
            .scripts
            .reap
            .key(keys.leases())
            .key(keys.pending())
            .key(keys.dead())
            .key(keys.stats())
            .arg(keys.prefix())
            .arg(self.minute_ttl())
            .arg(self.settings.dead_max_jobs)
            .arg(self.dead_cutoff(now))
            .arg(limit.max(1))
            .arg(self.history_flag())
            .invoke_async(&mut self.con.clone())
            .await?;
        if reply.len() < 4 {
            return Err(QueueError::Reply {
                script: "reap",
                detail: format!("{} values", reply.len()),
            });
        }
        let n = |i: usize| int(&reply[i], "reap").map(|v| u64::try_from(v).unwrap_or(0));
        Ok(ReapReport {
            requeued: n(0)?,
            killed: n(1)?,
            evicted_by_age: n(2)?,
            evicted_by_count: n(3)?,
            // Worker names are for the log: a member of the leases set that is not UTF-8 (written
            // by someone else) is reaped like any other and named lossily.
            workers: reply[4..]
                .iter()
                .map(|v| bytes(v, "reap").map(|b| String::from_utf8_lossy(&b).into_owned()))
                .collect::<Result<_>>()?,
        })
    }

    /// Evicts dead jobs past the age and count caps; returns (by age, by count).
    pub async fn trim_dead(&self, queue: &str) -> Result<(u64, u64)> {
        let now = now_ms();
        self.trim_dead_with(
            queue,
            self.dead_cutoff(now),
            self.settings.dead_max_jobs,
            "dead_evicted",
        )
        .await
    }

    /// Runs the trim script until it removes less than a full batch: every dead job at or
    /// before `cutoff`, then beyond `max_count`, is removed and counted under `field`.
    pub(crate) async fn trim_dead_with(
        &self,
        queue: &str,
        cutoff: i64,
        max_count: u64,
        field: &str,
    ) -> Result<(u64, u64)> {
        const BATCH: u64 = 1000;
        let keys = self.queue(queue)?;
        let (mut by_age, mut by_count) = (0, 0);
        loop {
            let (a, c): (u64, u64) = self
                .scripts
                .trim_dead
                .key(keys.dead())
                .key(keys.stats())
                .arg(keys.prefix())
                .arg(cutoff)
                .arg(max_count)
                .arg(BATCH)
                .arg(field)
                .invoke_async(&mut self.con.clone())
                .await?;
            by_age += a;
            by_count += c;
            if a < BATCH && c < BATCH {
                return Ok((by_age, by_count));
            }
        }
    }
}

/// Reads the 1-based positions a script returns into 0-based indices below `len`.
fn positions(values: &[u64], len: usize, script: &'static str) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|&p| {
            usize::try_from(p)
                .ok()
                .and_then(|p| p.checked_sub(1))
                .filter(|&i| i < len)
                .ok_or_else(|| QueueError::Reply {
                    script,
                    detail: format!("position {p} of {len} jobs"),
                })
        })
        .collect()
}

fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX / 4)
}
