//! Operators' calls: statistics, listings, and repairs of queue state.
//!
//! None of these is on a worker's path. Listings page by rank with a cursor instead of scanning,
//! and bulk repairs loop over bounded script calls so Redis is never blocked for long.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use super::client::QueueClient;
use super::envelope::{Envelope, JobState};
use super::{QueueError, Result, now_ms};

/// Counters and depths of one queue; every figure is an O(1) read.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    pub paused: bool,
    pub pending: u64,
    pub scheduled: u64,
    pub active: u64,
    pub retry: u64,
    pub dead: u64,
    pub processed: u64,
    pub failed: u64,
    pub enqueued: u64,
    pub dead_evicted: u64,
    /// Age of the job at the head of pending, in milliseconds.
    pub oldest_pending_ms: Option<i64>,
}

/// Processed and failed jobs of one minute.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MinuteStats {
    /// Start of the minute, in seconds since the epoch.
    pub minute_start: i64,
    pub processed: u64,
    pub failed: u64,
}

/// Everything stored about one job.
#[derive(Clone, Debug, Serialize)]
pub struct JobInfo {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub state: String,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The envelope, or None when the stored JSON cannot be decoded.
    pub envelope: Option<Envelope>,
    /// The stored JSON when it could not be decoded.
    pub raw: Option<String>,
    pub enqueued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub worker: Option<String>,
    pub error: Option<String>,
    pub failed_at: Option<i64>,
    pub dead_at: Option<i64>,
    /// Lease deadline (active), due time (scheduled, retry) or time of death (dead), in ms.
    pub score: Option<i64>,
}

/// What a lease record says: "attempt|max|started_ms|token|unique key".
struct LeaseRecord {
    attempt: u32,
    started_at: i64,
    worker: String,
}

fn parse_lease(v: &str) -> Option<LeaseRecord> {
    let mut parts = v.splitn(5, '|');
    let attempt = parts.next()?.parse().ok()?;
    let _max = parts.next()?;
    let started_at = parts.next()?.parse().ok()?;
    let token = parts.next()?;
    let worker = token.split_once('#').map_or(token, |(w, _)| w).to_owned();
    Some(LeaseRecord {
        attempt,
        started_at,
        worker,
    })
}

impl JobInfo {
    fn from_hash(
        id: &str,
        queue: &str,
        state: JobState,
        h: HashMap<String, String>,
        score: Option<i64>,
        lease: Option<&str>,
    ) -> Self {
        let num = |k: &str| h.get(k).and_then(|v| v.parse::<i64>().ok());
        let raw = h.get("env").cloned().unwrap_or_default();
        let envelope = serde_json::from_str::<Envelope>(&raw).ok();
        let lease = lease.and_then(parse_lease);
        let stored_attempt = num("attempt")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        Self {
            id: id.to_owned(),
            queue: queue.to_owned(),
            kind: h.get("kind").cloned().unwrap_or_default(),
            state: state.as_str().to_owned(),
            attempt: lease.as_ref().map_or(stored_attempt, |l| l.attempt),
            max_attempts: num("max").and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            raw: envelope.is_none().then_some(raw),
            envelope,
            enqueued_at: num("enq_at"),
            started_at: lease.as_ref().map(|l| l.started_at),
            worker: lease.map(|l| l.worker),
            error: h.get("error").cloned(),
            failed_at: num("failed_at"),
            dead_at: num("dead_at"),
            score,
        }
    }
}

/// A page of a listing and the cursor of the next one.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub jobs: Vec<JobInfo>,
    pub next_cursor: Option<u64>,
}

/// The result of a bulk retry of dead jobs.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RetryReport {
    pub matched: u64,
    pub scanned: u64,
    pub dry_run: bool,
}

fn u(h: &HashMap<String, String>, k: &str) -> u64 {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl QueueClient {
    /// Names of all known queues, sorted.
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.connection().smembers(self.keys.queues()).await?;
        names.sort();
        Ok(names)
    }

    /// Registers a queue name so that it is listed before anything was enqueued to it.
    pub async fn register_queue(&self, queue: &str) -> Result<()> {
        self.queue(queue)?;
        let _: () = self.connection().sadd(self.keys.queues(), queue).await?;
        Ok(())
    }

    /// The counters of one queue in one pipelined round trip (plus one for the oldest job).
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        #[allow(clippy::type_complexity)]
        let (pending, scheduled, active, retry, dead, paused, counters, head): (
            u64,
            u64,
            u64,
            u64,
            u64,
            bool,
            HashMap<String, String>,
            Option<String>,
        ) = redis::pipe()
            .llen(k.pending())
            .zcard(k.scheduled())
            .zcard(k.active())
            .zcard(k.retry())
            .zcard(k.dead())
            .exists(k.paused())
            .hgetall(k.stats())
            .lindex(k.pending(), 0)
            .query_async(&mut con)
            .await?;
        let oldest_pending_ms = match head {
            Some(id) => {
                let at: Option<i64> = con.hget(k.job(&id), "enq_at").await?;
                at.map(|t| (now_ms() - t).max(0))
            }
            None => None,
        };
        Ok(QueueStats {
            queue: queue.to_owned(),
            paused,
            pending,
            scheduled,
            active,
            retry,
            dead,
            processed: u(&counters, "processed"),
            failed: u(&counters, "failed"),
            enqueued: u(&counters, "enqueued"),
            dead_evicted: u(&counters, "dead_evicted"),
            oldest_pending_ms,
        })
    }

    /// Processed and failed counts of the last `minutes` minutes, oldest first.
    pub async fn history(&self, queue: &str, minutes: u32) -> Result<Vec<MinuteStats>> {
        let k = self.queue(queue)?;
        let current = now_ms().div_euclid(60_000);
        let range: Vec<i64> = (0..i64::from(minutes)).map(|i| current - i).rev().collect();
        let mut pipe = redis::pipe();
        for m in &range {
            pipe.hgetall(k.minute(*m));
        }
        let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut self.connection()).await?;
        Ok(range
            .iter()
            .zip(maps)
            .map(|(m, h)| MinuteStats {
                minute_start: m * 60,
                processed: u(&h, "processed"),
                failed: u(&h, "failed"),
            })
            .collect())
    }

    /// One page of the jobs of a queue in a state, by rank from `cursor`.
    pub async fn list(
        &self,
        queue: &str,
        state: JobState,
        cursor: u64,
        limit: u64,
    ) -> Result<Page> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        let limit = limit.clamp(1, 10_000);
        let start = isize::try_from(cursor).unwrap_or(isize::MAX);
        let stop = start.saturating_add(isize::try_from(limit).unwrap_or(10_000) - 1);
        let entries: Vec<(String, Option<i64>)> = match state {
            JobState::Pending => {
                let ids: Vec<String> = con.lrange(k.pending(), start, stop).await?;
                ids.into_iter().map(|id| (id, None)).collect()
            }
            _ => {
                let set = match state {
                    JobState::Scheduled => k.scheduled(),
                    JobState::Active => k.active(),
                    JobState::Retry => k.retry(),
                    _ => k.dead(),
                };
                let pairs: Vec<(String, f64)> = con.zrange_withscores(set, start, stop).await?;
                #[allow(clippy::cast_possible_truncation)]
                pairs
                    .into_iter()
                    .map(|(id, s)| (id, Some(s as i64)))
                    .collect()
            }
        };
        let mut pipe = redis::pipe();
        for (id, _) in &entries {
            pipe.hgetall(k.job(id));
        }
        let hashes: Vec<HashMap<String, String>> = if entries.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut con).await?
        };
        let leases: Vec<Option<String>> = if state == JobState::Active && !entries.is_empty() {
            let ids: Vec<&String> = entries.iter().map(|(id, _)| id).collect();
            redis::cmd("HMGET")
                .arg(k.leases())
                .arg(ids)
                .query_async(&mut con)
                .await?
        } else {
            vec![None; entries.len()]
        };
        let full = entries.len() as u64 == limit;
        let jobs = entries
            .into_iter()
            .zip(hashes)
            .zip(leases)
            .map(|(((id, score), h), lease)| {
                JobInfo::from_hash(&id, queue, state, h, score, lease.as_deref())
            })
            .collect();
        Ok(Page {
            jobs,
            next_cursor: full.then_some(cursor + limit),
        })
    }

    /// Finds a job by id in any queue. Its state is where its id is: the leases hash (active),
    /// the scheduled, retry or dead set, or else the pending list.
    pub async fn show(&self, id: &str) -> Result<JobInfo> {
        let mut con = self.connection();
        for queue in self.queue_names().await? {
            let k = self.keys.queue(&queue);
            #[allow(clippy::type_complexity)]
            let (h, lease, active, scheduled, retry, dead): (
                HashMap<String, String>,
                Option<String>,
                Option<f64>,
                Option<f64>,
                Option<f64>,
                Option<f64>,
            ) = redis::pipe()
                .hgetall(k.job(id))
                .hget(k.leases(), id)
                .zscore(k.active(), id)
                .zscore(k.scheduled(), id)
                .zscore(k.retry(), id)
                .zscore(k.dead(), id)
                .query_async(&mut con)
                .await?;
            if h.is_empty() {
                continue;
            }
            let (state, score) = if lease.is_some() {
                (JobState::Active, active)
            } else if scheduled.is_some() {
                (JobState::Scheduled, scheduled)
            } else if retry.is_some() {
                (JobState::Retry, retry)
            } else if dead.is_some() {
                (JobState::Dead, dead)
            } else {
                (JobState::Pending, None)
            };
            #[allow(clippy::cast_possible_truncation)]
            let score = score.map(|s| s as i64);
            return Ok(JobInfo::from_hash(
                id,
                &queue,
                state,
                h,
                score,
                lease.as_deref(),
            ));
        }
        Err(QueueError::NotFound(id.to_owned()))
    }

    /// Runs one job again now: a dead job gets a fresh set of attempts, a retrying or
    /// scheduled job is made due at once. Returns the state it was in.
    pub async fn retry_job(&self, id: &str) -> Result<String> {
        let info = self.show(id).await?;
        let k = self.keys.queue(&info.queue);
        match info.state.as_str() {
            "dead" => {
                self.retry_dead_script(&info.queue, 0, 0, "", false, &[id.to_owned()])
                    .await?;
            }
            "retry" | "scheduled" => {
                let set = if info.state == "retry" {
                    k.retry()
                } else {
                    k.scheduled()
                };
                let mut con = self.connection();
                let _: () = redis::cmd("ZADD")
                    .arg(set)
                    .arg("XX")
                    .arg(0)
                    .arg(id)
                    .query_async(&mut con)
                    .await?;
                let _: () = con.publish(k.wake(), 1).await?;
            }
            other => {
                return Err(QueueError::Invalid(format!(
                    "job {id} is {other}; only dead, retry and scheduled jobs can be retried"
                )));
            }
        }
        Ok(info.state)
    }

    /// Moves every dead job of a queue (optionally of one kind) back to pending.
    pub async fn retry_dead(
        &self,
        queue: &str,
        kind: Option<&str>,
        dry_run: bool,
    ) -> Result<RetryReport> {
        const BATCH: u64 = 1000;
        let mut report = RetryReport {
            dry_run,
            ..RetryReport::default()
        };
        let mut start = 0u64;
        loop {
            let (matched, scanned) = self
                .retry_dead_script(queue, start, BATCH, kind.unwrap_or(""), dry_run, &[])
                .await?;
            report.matched += matched;
            report.scanned += scanned;
            start += if dry_run { scanned } else { scanned - matched };
            if scanned < BATCH {
                return Ok(report);
            }
        }
    }

    async fn retry_dead_script(
        &self,
        queue: &str,
        start: u64,
        count: u64,
        kind: &str,
        dry_run: bool,
        ids: &[String],
    ) -> Result<(u64, u64)> {
        let k = self.queue(queue)?;
        let mut inv = self.scripts.retry_dead.prepare_invoke();
        inv.key(k.dead())
            .key(k.pending())
            .arg(k.prefix())
            .arg(start)
            .arg(count)
            .arg(kind)
            .arg(if dry_run { "1" } else { "0" });
        for id in ids {
            inv.arg(id);
        }
        Ok(inv.invoke_async(&mut self.connection()).await?)
    }

    /// Deletes one job in any state; returns the state it was in.
    pub async fn delete(&self, id: &str) -> Result<String> {
        let info = self.show(id).await?;
        let k = self.keys.queue(&info.queue);
        let deleted: u8 = self
            .scripts
            .delete
            .key(k.pending())
            .key(k.scheduled())
            .key(k.retry())
            .key(k.active())
            .key(k.dead())
            .key(k.leases())
            .arg(k.prefix())
            .arg(id)
            .invoke_async(&mut self.connection())
            .await?;
        if deleted == 0 {
            return Err(QueueError::NotFound(id.to_owned()));
        }
        Ok(info.state)
    }

    /// Deletes dead jobs that died more than `older_than_ms` ago (all of them for 0).
    pub async fn purge_dead(&self, queue: &str, older_than_ms: i64) -> Result<u64> {
        let cutoff = now_ms() - older_than_ms.max(0);
        let (by_age, _) = self
            .trim_dead_with(queue, cutoff, u64::MAX >> 12, "dead_purged")
            .await?;
        Ok(by_age)
    }

    /// Stops workers from taking jobs of a queue; enqueueing goes on.
    pub async fn pause(&self, queue: &str) -> Result<()> {
        let k = self.queue(queue)?;
        self.register_queue(queue).await?;
        let _: () = self.connection().set(k.paused(), 1).await?;
        Ok(())
    }

    /// Lets workers take jobs of a paused queue again, and wakes them.
    pub async fn resume(&self, queue: &str) -> Result<()> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        let _: () = con.del(k.paused()).await?;
        let _: () = con.publish(k.wake(), 1).await?;
        Ok(())
    }
}
