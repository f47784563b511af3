//! Operators' calls: statistics, listings, and repairs of queue state.
//!
//! None of these is on a worker's path. A job is found by id the way Sidekiq finds one: by
//! scanning the structures of its queue in bounded steps (SCAN-style cursors for the sets,
//! ranges of the pending list), never with KEYS and never in one blocking command. Every
//! repair moves exact stored jobs with `replace.lua`, which skips a job that a worker took in
//! the meantime.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use super::client::QueueClient;
use super::envelope::{Envelope, JobState};
use super::keys::QueueKeys;
use super::payload::{Header, MalformedHeader, escape_bytes, peek_id, undecodable_id};
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
    /// Runs that already ended in failure.
    pub attempts: u32,
    pub max_attempts: u32,
    /// The envelope, or None when the stored JSON cannot be decoded.
    pub envelope: Option<Envelope>,
    /// Why the stored job cannot be decoded, for a job that cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecodable: Option<String>,
    /// The stored job when it could not be decoded, with every byte that is not UTF-8 escaped
    /// as `\xNN` (see `payload::escape_bytes`).
    pub raw: Option<String>,
    /// The worker holding an active job.
    pub worker: Option<String>,
    pub error: Option<String>,
    pub failed_at: Option<i64>,
    /// Due time (scheduled, retry) or time of death (dead), in ms.
    pub score: Option<i64>,
    /// The job exactly as stored, which repairs act on.
    #[serde(skip)]
    pub stored: Vec<u8>,
}

impl JobInfo {
    /// Reads a stored job for display. Never fails: whatever cannot be decoded is shown as
    /// such, so one bad entry cannot break a listing.
    pub fn from_stored(queue: &str, state: JobState, stored: Vec<u8>, score: Option<i64>) -> Self {
        let decoded = Header::decode(&stored);
        let envelope = match &decoded {
            Ok((_, body)) => std::str::from_utf8(body)
                .map_err(|e| {
                    let at = stored.len() - body.len() + e.valid_up_to();
                    MalformedHeader::NotUtf8(at).to_string()
                })
                .and_then(|body| serde_json::from_str::<Envelope>(body).map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        let (header, id) = match decoded {
            Ok((h, _)) => {
                let id = h.id.clone();
                (h, id)
            }
            Err(_) => (Header::default(), undecodable_id(&stored)),
        };
        let (envelope, undecodable) = match envelope {
            Ok(env) => (Some(env), None),
            Err(why) => (None, Some(why)),
        };
        Self {
            id,
            queue: queue.to_owned(),
            kind: envelope
                .as_ref()
                .map_or_else(|| "?".to_owned(), |e| e.kind.clone()),
            state: state.as_str().to_owned(),
            attempts: header.attempts,
            max_attempts: header.max_attempts,
            raw: envelope.is_none().then(|| escape_bytes(&stored)),
            envelope,
            undecodable,
            worker: None,
            error: (!header.error.is_empty()).then_some(header.error),
            failed_at: (header.failed_at > 0).then_some(header.failed_at),
            score,
            stored,
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

/// Where a found job is: the key and whether it is a list.
fn location(k: &QueueKeys, info: &JobInfo) -> (String, bool) {
    match info.state.as_str() {
        "pending" => (k.pending(), true),
        "active" => (k.inflight(info.worker.as_deref().unwrap_or_default()), true),
        "scheduled" => (k.scheduled(), false),
        "retry" => (k.retry(), false),
        _ => (k.dead(), false),
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

    /// The counters of one queue in one pipelined round trip.
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let k = self.queue(queue)?;
        #[allow(clippy::type_complexity)]
        let (pending, scheduled, retry, dead, paused, counters, head): (
            u64,
            u64,
            u64,
            u64,
            bool,
            HashMap<String, String>,
            Option<Vec<u8>>,
        ) = redis::pipe()
            .llen(k.pending())
            .zcard(k.scheduled())
            .zcard(k.retry())
            .zcard(k.dead())
            .exists(k.paused())
            .hgetall(k.stats())
            .lindex(k.pending(), 0)
            .query_async(&mut self.connection())
            .await?;
        let oldest_pending_ms = head
            .map(|stored| JobInfo::from_stored(queue, JobState::Pending, stored, None))
            .and_then(|j| j.envelope)
            .map(|e| {
                let since = e.run_at.unwrap_or(e.created_at).max(e.created_at);
                now_ms().saturating_sub(since).max(0)
            });
        Ok(QueueStats {
            queue: queue.to_owned(),
            paused,
            pending,
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

    /// Every active job of a queue, by worker.
    async fn active_jobs(&self, queue: &str) -> Result<Vec<JobInfo>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        // Read as bytes: a member that is not UTF-8 must not make the listing fail.
        let workers: Vec<Vec<u8>> = con.zrange(k.leases(), 0, -1).await?;
        let mut out = Vec::new();
        for w in workers {
            let jobs: Vec<Vec<u8>> = con.lrange(k.inflight_bytes(&w), 0, -1).await?;
            let name = String::from_utf8_lossy(&w);
            for stored in jobs {
                let mut info = JobInfo::from_stored(queue, JobState::Active, stored, None);
                info.worker = Some(name.clone().into_owned());
                out.push(info);
            }
        }
        Ok(out)
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
        let jobs: Vec<JobInfo> = match state {
            JobState::Pending => {
                let stored: Vec<Vec<u8>> = con.lrange(k.pending(), start, stop).await?;
                stored
                    .into_iter()
                    .map(|s| JobInfo::from_stored(queue, state, s, None))
                    .collect()
            }
            JobState::Active => self
                .active_jobs(queue)
                .await?
                .into_iter()
                .skip(usize::try_from(cursor).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(10_000))
                .collect(),
            _ => {
                let set = match state {
                    JobState::Scheduled => k.scheduled(),
                    JobState::Retry => k.retry(),
                    _ => k.dead(),
                };
                let pairs: Vec<(Vec<u8>, f64)> = con.zrange_withscores(set, start, stop).await?;
                #[allow(clippy::cast_possible_truncation)]
                pairs
                    .into_iter()
                    .map(|(s, score)| JobInfo::from_stored(queue, state, s, Some(score as i64)))
                    .collect()
            }
        };
        let full = jobs.len() as u64 == limit;
        Ok(Page {
            jobs,
            next_cursor: full.then_some(cursor + limit),
        })
    }

    /// Finds a job by id in one queue: the sorted sets by SCAN cursor, then the in-flight
    /// lists, then the pending list in ranges of 1,000.
    async fn find_in(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        // An undecodable entry has no header to match, only the name derived from its bytes.
        let derived = id.starts_with("undecodable-");
        let pattern = if derived {
            "*".to_owned()
        } else {
            format!("jf|*|*|{id}|*")
        };
        let is = |s: &[u8]| peek_id(s) == Some(id) || (derived && undecodable_id(s) == id);
        for (state, set) in [
            (JobState::Retry, k.retry()),
            (JobState::Scheduled, k.scheduled()),
            (JobState::Dead, k.dead()),
        ] {
            let mut cursor: u64 = 0;
            loop {
                let (next, items): (u64, Vec<(Vec<u8>, f64)>) = redis::cmd("ZSCAN")
                    .arg(&set)
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut con)
                    .await?;
                if let Some((stored, score)) = items.into_iter().find(|(s, _)| is(s)) {
                    #[allow(clippy::cast_possible_truncation)]
                    return Ok(Some(JobInfo::from_stored(
                        queue,
                        state,
                        stored,
                        Some(score as i64),
                    )));
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        if let Some(job) = self
            .active_jobs(queue)
            .await?
            .into_iter()
            .find(|j| j.id == id)
        {
            return Ok(Some(job));
        }
        let mut start = 0isize;
        loop {
            let chunk: Vec<Vec<u8>> = con.lrange(k.pending(), start, start + 999).await?;
            if let Some(stored) = chunk.iter().find(|s| is(s)) {
                return Ok(Some(JobInfo::from_stored(
                    queue,
                    JobState::Pending,
                    stored.clone(),
                    None,
                )));
            }
            if chunk.len() < 1000 {
                return Ok(None);
            }
            start += 1000;
        }
    }

    /// Finds a job by id in any queue.
    pub async fn show(&self, id: &str) -> Result<JobInfo> {
        for queue in self.queue_names().await? {
            if let Some(job) = self.find_in(&queue, id).await? {
                return Ok(job);
            }
        }
        Err(QueueError::NotFound(id.to_owned()))
    }

    /// Moves exact stored jobs out of `from` (a list or a sorted set): to the tail of pending
    /// (with a replacement, or unchanged) or nowhere (delete). Returns how many moved.
    async fn replace(
        &self,
        queue: &str,
        from: (&str, bool),
        to_pending: bool,
        jobs: &[(&JobInfo, Option<Vec<u8>>)],
    ) -> Result<u64> {
        let k = self.queue(queue)?;
        let mut inv = self.scripts.replace.prepare_invoke();
        inv.key(from.0)
            .key(k.pending())
            .key(k.stats())
            .arg(k.prefix())
            .arg(if from.1 { "list" } else { "zset" })
            .arg(if to_pending { "pending" } else { "delete" });
        for (job, new) in jobs {
            let unique = Header::decode(&job.stored)
                .map(|(h, _)| h.unique)
                .unwrap_or_default();
            inv.arg(&job.stored)
                .arg(new.as_deref().unwrap_or(b""))
                .arg(&job.id)
                .arg(unique);
        }
        Ok(inv.invoke_async(&mut self.connection()).await?)
    }

    /// A dead job made new: no attempts used, its last error kept for the record.
    fn revived(job: &JobInfo) -> Option<Vec<u8>> {
        let (h, body) = Header::decode(&job.stored).ok()?;
        Some(Header { attempts: 0, ..h }.encode_bytes(body))
    }

    /// Runs one job again now: a dead job gets a fresh set of attempts, a retrying or
    /// scheduled job is made due at once. Returns the state it was in.
    pub async fn retry_job(&self, id: &str) -> Result<String> {
        let job = self.show(id).await?;
        if !matches!(job.state.as_str(), "dead" | "retry" | "scheduled") {
            return Err(QueueError::Invalid(format!(
                "job {id} is {}; only dead, retry and scheduled jobs can be retried",
                job.state
            )));
        }
        let k = self.keys.queue(&job.queue);
        let (key, is_list) = location(&k, &job);
        let new = if job.state == "dead" {
            Self::revived(&job)
        } else {
            None
        };
        if self
            .replace(&job.queue, (&key, is_list), true, &[(&job, new)])
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
                    .replace(queue, (&k.dead(), false), true, &pairs)
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
    pub async fn delete(&self, id: &str) -> Result<String> {
        let job = self.show(id).await?;
        let k = self.keys.queue(&job.queue);
        let (key, is_list) = location(&k, &job);
        if self
            .replace(&job.queue, (&key, is_list), false, &[(&job, None)])
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
        let mut con = self.connection();
        let _: () = con.del(k.paused()).await?;
        let _: () = con.publish(k.wake(), 1).await?;
        Ok(())
    }
}
