//! Putting jobs in: one at a time, in bulk, and schedule ticks.
//!
//! A bulk enqueue is one script call per chunk of up to [`ENQUEUE_CHUNK`] jobs, and each call
//! stores its whole chunk or nothing: Redis refuses a script for memory (`OOM` under
//! `maxmemory` with `noeviction`) only at its first write, never half-way. So when a call
//! fails, what went in is known chunk by chunk, and [`PartialEnqueue`] says exactly which jobs
//! were stored, so that a caller can resume without enqueueing any of them twice.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use redis::Value;

use super::client::QueueClient;
use super::envelope::{Enqueued, Envelope, NewJob};
use super::keys::{QueueKeys, validate_queue_name};
use super::payload::{Header, valid_id};
use super::priority::Priority;
use super::{QueueError, Result, bytes, int, now_ms};

/// Jobs per enqueue script call: large enough to amortise the round trip, small enough that
/// one call never blocks Redis for long.
const ENQUEUE_CHUNK: usize = 1000;
/// Enqueue script calls in flight at once on the multiplexed connection.
const ENQUEUE_PARALLEL: usize = 4;

/// The latest time a job may be due at or hold a unique key until, in ms since the epoch:
/// 9999-12-31T23:59:59.999Z. Later times are refused when they are enqueued: they are
/// mistakes (a delay in the wrong unit), they would overflow the arithmetic on them, and Lua,
/// whose numbers are doubles, cannot hold every integer beyond 2^53 ms exactly.
pub const LATEST_MS: i64 = 253_402_300_799_999;

/// A bulk enqueue that failed after some of its jobs may have been stored.
#[derive(Debug, thiserror::Error)]
#[error("{} of {} jobs stored{}, then: {error}", self.stored(), self.results.len(), self.unknown_text())]
pub struct PartialEnqueue {
    /// One entry per job, in input order: its result when it was stored (or found to be a
    /// duplicate of a stored job), None when it was not stored or its outcome is unknown.
    pub results: Vec<Option<Enqueued>>,
    /// Input positions of the jobs whose call got no answer (the connection broke or timed
    /// out), which may or may not have been stored.
    pub unknown: Vec<usize>,
    /// The failure that stopped the enqueue.
    pub error: QueueError,
}

impl PartialEnqueue {
    /// How many jobs were stored (duplicates of stored jobs included).
    pub fn stored(&self) -> usize {
        self.results.iter().filter(|r| r.is_some()).count()
    }

    /// The first input position from which on no job was stored or is of unknown outcome:
    /// where a resume that must not store anything twice starts.
    pub fn untouched_from(&self) -> usize {
        let last_stored = self.results.iter().rposition(Option::is_some);
        let last_unknown = self.unknown.iter().max().copied();
        last_stored.max(last_unknown).map_or(0, |p| p + 1)
    }

    fn unknown_text(&self) -> String {
        match self.unknown.len() {
            0 => String::new(),
            n => format!(" ({n} more of unknown outcome)"),
        }
    }
}

/// Whether a failed enqueue call may still have stored its chunk. An error reply from Redis
/// (OOM, READONLY, ...) means the script stopped before its first write; any other failure
/// (a broken connection, a timeout, a reply we cannot read) leaves the outcome unknown.
fn outcome_unknown(e: &QueueError) -> bool {
    match e {
        QueueError::Redis(r) => !matches!(
            r.kind(),
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
        ),
        QueueError::Reply { .. } => true,
        // Stored on the master, and lost if it fails before a replica has it.
        QueueError::NotReplicated { .. } => true,
        _ => false,
    }
}

/// One planned script call: a queue and up to [`ENQUEUE_CHUNK`] jobs with their positions.
type Call = (QueueKeys, Vec<(usize, NewJob)>);

impl QueueClient {
    /// Enqueues one job.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_bulk(vec![job]).await?;
        out.pop().ok_or(QueueError::Reply {
            script: "enqueue",
            detail: "empty reply".into(),
        })
    }

    /// Enqueues many jobs, possibly for several queues: one script call per queue and chunk,
    /// several calls in flight at once. Results come back in input order.
    ///
    /// Every job is checked before anything is written, so a bad one stores none. When a call
    /// fails, no further call is sent; the error is [`QueueError::Partial`] when some jobs
    /// were (or may have been) stored, listing exactly which, and any other error means that
    /// none was. Calls already in flight may still succeed after the one that failed, so the
    /// stored jobs need not be a prefix of the input: use [`Self::enqueue_bulk_ordered`] to
    /// resume from a position.
    pub async fn enqueue_bulk(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let now = now_ms();
        let total = jobs.len();
        check(&jobs, now)?;
        // Group by queue, remembering each job's input position.
        let mut groups: Vec<(String, Vec<(usize, NewJob)>)> = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            match groups.iter_mut().find(|(q, _)| *q == job.queue) {
                Some((_, g)) => g.push((i, job)),
                None => groups.push((job.queue.clone(), vec![(i, job)])),
            }
        }
        let mut calls = Vec::new();
        for (queue, group) in groups {
            let keys = self.keys.queue(&queue);
            let mut rest = group.into_iter().peekable();
            while rest.peek().is_some() {
                let chunk: Vec<(usize, NewJob)> = rest.by_ref().take(ENQUEUE_CHUNK).collect();
                calls.push((keys.clone(), chunk));
            }
        }
        self.run_calls(calls, total, now, ENQUEUE_PARALLEL).await
    }

    /// Like [`Self::enqueue_bulk`], but one call at a time over consecutive runs of the input,
    /// each sent once the previous one was stored. When it fails, the jobs stored are exactly
    /// the first [`PartialEnqueue::untouched_from`] of the input (less those of unknown
    /// outcome), so a caller can resume from there and store nothing twice. It is slower than
    /// `enqueue_bulk` by the round trips it does not overlap.
    pub async fn enqueue_bulk_ordered(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let now = now_ms();
        let total = jobs.len();
        check(&jobs, now)?;
        let mut calls: Vec<Call> = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            match calls.last_mut() {
                Some((keys, chunk)) if keys.name() == job.queue && chunk.len() < ENQUEUE_CHUNK => {
                    chunk.push((i, job));
                }
                _ => calls.push((self.keys.queue(&job.queue), vec![(i, job)])),
            }
        }
        self.run_calls(calls, total, now, 1).await
    }

    /// Sends the planned calls, `parallel` at a time, and gathers their results in input
    /// order; after the first failure it sends nothing more and reports what went in.
    async fn run_calls(
        &self,
        calls: Vec<Call>,
        total: usize,
        now: i64,
        parallel: usize,
    ) -> Result<Vec<Enqueued>> {
        let mut queues: Vec<&str> = calls.iter().map(|(k, _)| k.name()).collect();
        queues.dedup();
        self.register_queues(&queues).await?;
        let failed = AtomicBool::new(false);
        let failed = &failed;
        // Up to `parallel` calls in flight: while Redis runs one chunk, the next is
        // serialised and sent. A call that has not started when an earlier one failed is not
        // sent, so nothing more is written once the enqueue is known to fail.
        let mut replies =
            futures::stream::iter(calls.into_iter().map(|(keys, chunk)| async move {
                let (positions, jobs): (Vec<usize>, Vec<NewJob>) = chunk.into_iter().unzip();
                if failed.load(Ordering::Acquire) {
                    return (positions, None);
                }
                (positions, Some(self.enqueue_chunk(&keys, jobs, now).await))
            }))
            .buffered(parallel);
        let mut results: Vec<Option<Enqueued>> = vec![None; total];
        let mut unknown = Vec::new();
        let mut error = None;
        while let Some((positions, reply)) = replies.next().await {
            match reply {
                Some(Ok(enqueued)) => {
                    for (enq, pos) in enqueued.into_iter().zip(positions) {
                        results[pos] = Some(enq);
                    }
                }
                Some(Err(e)) => {
                    failed.store(true, Ordering::Release);
                    if outcome_unknown(&e) {
                        unknown.extend(positions);
                    }
                    // The first failure is the one to report; later calls failed after it.
                    error.get_or_insert(e);
                }
                None => {}
            }
        }
        match error {
            None => Ok(results.into_iter().flatten().collect()),
            Some(error) if unknown.is_empty() && results.iter().all(Option::is_none) => Err(error),
            Some(error) => Err(QueueError::Partial(Box::new(PartialEnqueue {
                results,
                unknown,
                error,
            }))),
        }
    }

    async fn enqueue_chunk(
        &self,
        keys: &QueueKeys,
        jobs: Vec<NewJob>,
        now: i64,
    ) -> Result<Vec<Enqueued>> {
        let mut inv = self.scripts.enqueue.prepare_invoke();
        inv.key(keys.pending())
            .key(keys.scheduled())
            .key(keys.stats())
            .arg(keys.prefix())
            .arg(now);
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            // A producer that chooses the id (the scheduler does) is protected against a second
            // enqueue with that id by an implied unique key, unless it gave one of its own.
            let (uniq, ttl) = match (&job.unique, &job.id) {
                (Some((k, ttl)), _) => (k.clone(), ttl.as_millis().max(1)),
                (None, Some(id)) => (
                    format!("id:{id}"),
                    self.settings.id_dedupe_ttl.as_millis().max(1),
                ),
                (None, None) => (String::new(), 0),
            };
            let priority = job.priority;
            let env = job.into_envelope(now);
            let run_at = env.run_at.unwrap_or(0);
            // A job ready now without a unique key, the common case, sends no options.
            let options = if uniq.is_empty() && run_at <= now {
                String::new()
            } else {
                format!("{}|{ttl}|{}|{uniq}", run_at.max(0), env.id)
            };
            inv.arg(stored(&env, uniq, priority)?).arg(options);
            ids.push(env.id);
        }
        let reply: Vec<Value> = self.invoke_write(&inv, "enqueue").await?;
        let mut enqueued: Vec<Enqueued> = ids
            .into_iter()
            .map(|id| Enqueued { id, created: true })
            .collect();
        for pair in reply.chunks(2) {
            let [position, holder] = pair else {
                return Err(QueueError::Reply {
                    script: "enqueue",
                    detail: "an odd number of values".to_owned(),
                });
            };
            let position = usize::try_from(int(position, "enqueue")?).unwrap_or(0);
            let Some(e) = position.checked_sub(1).and_then(|i| enqueued.get_mut(i)) else {
                return Err(QueueError::Reply {
                    script: "enqueue",
                    detail: format!("position {position} of {} jobs", enqueued.len()),
                });
            };
            *e = Enqueued {
                id: String::from_utf8_lossy(&bytes(holder, "enqueue")?).into_owned(),
                created: false,
            };
        }
        Ok(enqueued)
    }

    /// Enqueues one tick of a schedule unless it (or a later tick) was enqueued already.
    /// The job's id should be deterministic from (schedule, tick). Returns whether this call
    /// enqueued it.
    pub async fn enqueue_tick(&self, schedule: &str, tick_ms: i64, job: NewJob) -> Result<bool> {
        let keys = self.queue(&job.queue)?;
        let id = job.id.clone().unwrap_or_default();
        if !valid_id(&id) {
            return Err(QueueError::Invalid(format!(
                "tick job id {id:?} is not valid"
            )));
        }
        let priority = job.priority;
        let env = job.into_envelope(now_ms());
        let stored = stored(&env, String::new(), priority)?;
        self.register_queues(&[keys.name()]).await?;
        let mut inv = self.scripts.enqueue_tick.key(keys.pending_at(priority));
        inv.key(keys.ticks())
            .key(keys.stats())
            .key(keys.tick_history(schedule))
            .arg(keys.prefix())
            .arg(schedule)
            .arg(tick_ms)
            .arg(stored)
            .arg(&env.id)
            .arg(TICK_HISTORY);
        let created: i64 = self.invoke_write(&inv, "enqueue_tick").await?;
        Ok(created == 1)
    }

    /// The last tick a schedule enqueued into a queue: (tick ms, job id).
    pub async fn last_tick(&self, queue: &str, schedule: &str) -> Result<Option<(i64, String)>> {
        let keys = self.queue(queue)?;
        let v: Option<String> = redis::cmd("HGET")
            .arg(keys.ticks())
            .arg(schedule)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(v.as_deref().and_then(tick))
    }

    /// The last ticks (at most [`TICK_HISTORY`]) a schedule enqueued into a queue, newest
    /// first: (tick ms, job id). A schedule whose ticks predate the history has its last one.
    pub async fn ticks(&self, queue: &str, schedule: &str) -> Result<Vec<(i64, String)>> {
        let keys = self.queue(queue)?;
        let list: Vec<String> = redis::cmd("LRANGE")
            .arg(keys.tick_history(schedule))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.con.clone())
            .await?;
        if list.is_empty() {
            return Ok(self.last_tick(queue, schedule).await?.into_iter().collect());
        }
        Ok(list.iter().filter_map(|v| tick(v)).collect())
    }
}

/// Ticks kept in each schedule's history.
pub const TICK_HISTORY: u32 = 20;

/// A tick as stored, "tick ms|job id".
fn tick(v: &str) -> Option<(i64, String)> {
    let (t, id) = v.split_once('|')?;
    Some((t.parse().ok()?, id.to_owned()))
}

/// Checks every job before anything is written, so a bad job in a bulk enqueue leaves no part
/// of it stored: its queue name, its id, and that its due time and unique lock end by
/// [`LATEST_MS`].
fn check(jobs: &[NewJob], now: i64) -> Result<()> {
    for job in jobs {
        validate_queue_name(&job.queue)?;
        if let Some(id) = &job.id
            && !valid_id(id)
        {
            return Err(QueueError::Invalid(format!(
                "job id {id:?}: use 1-128 characters from a-z, A-Z, 0-9, '_', '-', '.', ':'"
            )));
        }
        if let Some(at) = job.run_at
            && at > LATEST_MS
        {
            return Err(QueueError::Invalid(format!(
                "job due at {at} ms since the epoch, after 9999-12-31, the latest time a job can have"
            )));
        }
        if let Some((key, ttl)) = &job.unique {
            let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            if ttl > LATEST_MS.saturating_sub(now) {
                return Err(QueueError::Invalid(format!(
                    "unique key {key:?}: a lock of {ttl} ms would last past 9999-12-31"
                )));
            }
        }
    }
    Ok(())
}

/// A new job as stored: a header with no attempts yet, then the envelope JSON.
pub(super) fn stored(env: &Envelope, unique: String, priority: Priority) -> Result<String> {
    let header = Header {
        max_attempts: env.max_attempts,
        id: env.id.clone(),
        unique,
        priority,
        ..Header::default()
    };
    Ok(header.encode(&serde_json::to_string(env)?))
}
