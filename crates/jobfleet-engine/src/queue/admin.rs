//! Operators' calls: statistics and repairs of queue state (listings and finding a job are in
//! `listing.rs`).
//!
//! None of these is on a worker's path. Every repair moves exact stored jobs with
//! `replace.lua`, which skips a job that a worker took in the meantime.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use super::client::QueueClient;
use super::envelope::JobState;
use super::keys::QueueKeys;
pub use super::listing::{JobInfo, Page};
use super::payload::Header;
use super::{QueueError, Result, now_ms};

/// Counters and depths of one queue; every figure is an O(1) read.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// True while workers take no jobs of the queue (see `pause`).
    pub paused: bool,
    /// Jobs ready to run, waiting for a worker.
    pub pending: u64,
    /// The pending jobs by priority, level 0 (the most urgent) first.
    pub pending_by_priority: [u64; 4],
    /// Jobs enqueued with a delay, not yet due.
    pub scheduled: u64,
    /// Jobs leased to workers right now.
    pub active: u64,
    /// Jobs that failed and wait for their next attempt.
    pub retry: u64,
    /// Jobs that used up their attempts or failed fatally; kept for operators until evicted.
    pub dead: u64,
    /// Jobs that succeeded, since the queue's counters began.
    pub processed: u64,
    /// Failed attempts (retried, dead, or lost with a worker's lease), since the counters began.
    pub failed: u64,
    /// Jobs enqueued, duplicates not included, since the counters began.
    pub enqueued: u64,
    /// Dead jobs evicted by the dead set's caps of age and count, since the counters began.
    pub dead_evicted: u64,
    /// How long the job that has waited longest in pending has waited, in milliseconds.
    pub oldest_pending_ms: Option<i64>,
}

impl QueueStats {
    /// How many jobs the queue holds in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        match state {
            JobState::Pending => self.pending,
            JobState::Scheduled => self.scheduled,
            JobState::Active => self.active,
            JobState::Retry => self.retry,
            JobState::Dead => self.dead,
        }
    }
}

/// Processed and failed jobs of one minute.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MinuteStats {
    /// Start of the minute, in seconds since the epoch.
    pub minute_start: i64,
    /// Jobs that succeeded in that minute.
    pub processed: u64,
    /// Failed attempts in that minute.
    pub failed: u64,
}

/// The result of a bulk retry of dead jobs.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RetryReport {
    /// Dead jobs that matched the filter (and were retried, unless this was a dry run).
    pub matched: u64,
    /// Dead jobs looked at.
    pub scanned: u64,
    /// True when nothing was changed, only counted.
    pub dry_run: bool,
}

/// The reply of `stats`'s pipeline: the lengths of the four pending lists (most urgent
/// first), of scheduled, retry and dead, whether the queue is paused, its counters hash, and
/// the job at the head of the default level's pending list.
type StatsReply = (
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    bool,
    HashMap<String, String>,
    Option<Vec<u8>>,
);

fn u(h: &HashMap<String, String>, k: &str) -> u64 {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Where an operator's repair moves jobs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Move {
    /// To the tail of pending, to run now.
    Pending,
    /// To the dead set, killed.
    Dead,
    /// Nowhere: deleted.
    Delete,
}

impl Move {
    fn as_str(self) -> &'static str {
        match self {
            Move::Pending => "pending",
            Move::Dead => "dead",
            Move::Delete => "delete",
        }
    }
}

/// What kind of structure holds the jobs an operator moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Holder {
    /// The pending lists: each job is in the one of its own priority.
    Pending,
    /// A worker's in-flight hash (or the list an earlier release wrote).
    InFlight,
    /// One sorted set (scheduled, retry or dead).
    Set,
}

impl Holder {
    fn as_str(self) -> &'static str {
        match self {
            Holder::Pending => "pending",
            Holder::InFlight => "inflight",
            Holder::Set => "zset",
        }
    }
}

/// Where a found job is: the key and what kind of structure it is. For a pending job the key
/// is the default level's list, and the script finds each job's own level from its header.
pub(super) fn location(k: &QueueKeys, info: &JobInfo) -> (String, Holder) {
    match info.state {
        JobState::Pending => (k.pending(), Holder::Pending),
        JobState::Active => (
            k.inflight(info.worker.as_deref().unwrap_or_default()),
            Holder::InFlight,
        ),
        JobState::Scheduled => (k.scheduled(), Holder::Set),
        JobState::Retry => (k.retry(), Holder::Set),
        JobState::Dead => (k.dead(), Holder::Set),
    }
}

impl QueueClient {
    /// Names of all known queues, sorted. Read as bytes: a member that is not a valid queue
    /// name (written by someone else) is left out rather than failing every command.
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        let raw: Vec<Vec<u8>> = self.connection().smembers(self.keys.queues()).await?;
        let mut names: Vec<String> = raw
            .into_iter()
            .filter_map(|n| String::from_utf8(n).ok())
            .filter(|n| super::keys::validate_queue_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Fails with a clear error for a queue that was never used, so that a mistyped name is
    /// not mistaken for an empty queue.
    pub async fn known_queue(&self, queue: &str) -> Result<()> {
        self.queue(queue)?;
        let known: bool = self
            .connection()
            .sismember(self.keys.queues(), queue)
            .await?;
        if known {
            Ok(())
        } else {
            let names = self.queue_names().await?;
            Err(QueueError::Invalid(format!(
                "unknown queue {queue:?} (known queues: {})",
                if names.is_empty() {
                    "none yet".to_owned()
                } else {
                    names.join(", ")
                }
            )))
        }
    }

    /// Registers a queue name so that it is listed before anything was enqueued to it.
    pub async fn register_queue(&self, queue: &str) -> Result<()> {
        self.queue(queue)?;
        self.register_queues(&[queue]).await
    }

    /// Adds queue names to the set of known queues (one SADD for all of them).
    pub(crate) async fn register_queues(&self, queues: &[&str]) -> Result<()> {
        if !queues.is_empty() {
            let _: () = self.connection().sadd(self.keys.queues(), queues).await?;
        }
        Ok(())
    }

    /// The counters of one queue in one pipelined round trip (two when jobs of other
    /// priorities than the default are pending, to read the heads of their lists).
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let k = self.queue(queue)?;
        let [l0, l1, l2, l3] = k.pending_lists();
        let mut con = self.connection();
        let reply: StatsReply = redis::pipe()
            .llen(&l0)
            .llen(&l1)
            .llen(&l2)
            .llen(&l3)
            .zcard(k.scheduled())
            .zcard(k.retry())
            .zcard(k.dead())
            .exists(k.paused())
            .hgetall(k.stats())
            .lindex(&l2, 0)
            .query_async(&mut con)
            .await?;
        let (p0, p1, p2, p3, scheduled, retry, dead, paused, counters, head) = reply;
        let mut heads = vec![head];
        let others: Vec<&String> = [(&l0, p0), (&l1, p1), (&l3, p3)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(l, _)| l)
            .collect();
        if !others.is_empty() {
            let mut pipe = redis::pipe();
            for l in others {
                pipe.lindex(l, 0);
            }
            let more: Vec<Option<Vec<u8>>> = pipe.query_async(&mut con).await?;
            heads.extend(more);
        }
        // The oldest job waiting is at the head of one of the lists: the longest wait is shown.
        let oldest_pending_ms = heads
            .into_iter()
            .flatten()
            .filter_map(|stored| {
                JobInfo::from_stored(queue, JobState::Pending, stored, None).envelope
            })
            .map(|e| {
                let since = e.run_at.unwrap_or(e.created_at).max(e.created_at);
                now_ms().saturating_sub(since).max(0)
            })
            .max();
        let pending = p0 + p1 + p2 + p3;
        Ok(QueueStats {
            queue: queue.to_owned(),
            paused,
            pending,
            pending_by_priority: [p0, p1, p2, p3],
            scheduled,
            active: u(&counters, "active"),
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

    /// Moves exact stored jobs out of `from` (a list or a sorted set): to the tail of pending
    /// or to the dead set (with a replacement, or unchanged), or nowhere (delete). Returns how
    /// many moved.
    pub(super) async fn replace(
        &self,
        queue: &str,
        from: (&str, Holder),
        to: Move,
        jobs: &[(&JobInfo, Option<Vec<u8>>)],
    ) -> Result<u64> {
        let k = self.queue(queue)?;
        let mut inv = self.scripts.replace.prepare_invoke();
        inv.key(from.0)
            .key(k.pending())
            .key(k.stats())
            .key(k.dead())
            .arg(k.prefix())
            .arg(from.1.as_str())
            .arg(to.as_str())
            .arg(now_ms());
        for (job, new) in jobs {
            let unique = Header::decode(&job.stored)
                .map(|(h, _)| h.unique)
                .unwrap_or_default();
            inv.arg(&job.stored)
                .arg(new.as_deref().unwrap_or(b""))
                .arg(&job.id)
                .arg(unique);
        }
        let moved = inv.invoke_async(&mut self.connection()).await?;
        // A flow child killed or deleted here is told to its flow now rather than at a
        // worker's next maintenance pass; a failure of that is left to the pass.
        let ended = jobs
            .iter()
            .any(|(j, _)| super::flow::may_be_flow_child(&j.stored));
        if ended
            && !matches!(to, Move::Pending)
            && let Err(e) = self.deliver_flow_reports(queue).await
        {
            tracing::warn!(queue, error = %e, "could not deliver the ends of flow children; the workers' maintenance will");
        }
        Ok(moved)
    }

    /// A dead job made new: no attempts used, its last error kept for the record.
    pub(super) fn revived(job: &JobInfo) -> Option<Vec<u8>> {
        let (h, body) = Header::decode(&job.stored).ok()?;
        Some(Header { attempts: 0, ..h }.encode_bytes(body))
    }

    /// Runs one job again now: a dead job gets a fresh set of attempts, a retrying or
    /// scheduled job is made due at once. Returns the state it was in.
    pub async fn retry_job(&self, id: &str) -> Result<JobState> {
        let job = self.show(id).await?;
        if !matches!(
            job.state,
            JobState::Dead | JobState::Retry | JobState::Scheduled
        ) {
            return Err(QueueError::Invalid(format!(
                "job {id} is {}; only dead, retry and scheduled jobs can be retried",
                job.state
            )));
        }
        let k = self.keys.queue(&job.queue);
        let (key, holder) = location(&k, &job);
        let new = if job.state == JobState::Dead {
            Self::revived(&job)
        } else {
            None
        };
        if self
            .replace(&job.queue, (&key, holder), Move::Pending, &[(&job, new)])
            .await?
            == 0
        {
            return Err(QueueError::Invalid(format!(
                "job {id} moved while it was being retried"
            )));
        }
        Ok(job.state)
    }

    /// Moves every dead job of a queue (optionally of one kind) back to pending. Only jobs
    /// that died before the call started are considered, so jobs that die again at once (an
    /// unknown kind, say) are not retried over and over within one call.
    pub async fn retry_dead(
        &self,
        queue: &str,
        kind: Option<&str>,
        dry_run: bool,
    ) -> Result<RetryReport> {
        const BATCH: usize = 1000;
        let k = self.queue(queue)?;
        let cutoff = now_ms();
        let mut con = self.connection();
        let mut report = RetryReport {
            dry_run,
            ..RetryReport::default()
        };
        let mut offset = 0usize;
        loop {
            let stored: Vec<Vec<u8>> = redis::cmd("ZRANGEBYSCORE")
                .arg(k.dead())
                .arg("-inf")
                .arg(cutoff)
                .arg("LIMIT")
                .arg(offset)
                .arg(BATCH)
                .query_async(&mut con)
                .await?;
            let scanned = stored.len();
            let matching: Vec<JobInfo> = stored
                .into_iter()
                .map(|s| JobInfo::from_stored(queue, JobState::Dead, s, None))
                .filter(|j| kind.is_none_or(|kind| j.kind == kind))
                .collect();
            report.scanned += scanned as u64;
            report.matched += matching.len() as u64;
            let mut moved = 0;
            if !dry_run && !matching.is_empty() {
                let pairs: Vec<(&JobInfo, Option<Vec<u8>>)> =
                    matching.iter().map(|j| (j, Self::revived(j))).collect();
                moved = self
                    .replace(queue, (&k.dead(), Holder::Set), Move::Pending, &pairs)
                    .await?;
            }
            if scanned < BATCH {
                return Ok(report);
            }
            // Moved jobs left the range; the others stay, so skip past them.
            offset += scanned - usize::try_from(moved).unwrap_or(scanned);
        }
    }

    /// Deletes one job in any state; returns the state it was in. Deleting an active job
    /// makes its worker's result stale: it is ignored.
    pub async fn delete(&self, id: &str) -> Result<JobState> {
        let job = self.show(id).await?;
        let k = self.keys.queue(&job.queue);
        let (key, holder) = location(&k, &job);
        if self
            .replace(&job.queue, (&key, holder), Move::Delete, &[(&job, None)])
            .await?
            == 0
        {
            return Err(QueueError::NotFound(id.to_owned()));
        }
        Ok(job.state)
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
        let _: () = self.connection().del(k.paused()).await?;
        self.publish_wake(queue).await
    }
}
