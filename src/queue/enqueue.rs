//! Putting jobs in: one at a time, in bulk, and schedule ticks.

use futures::StreamExt;

use super::client::QueueClient;
use super::envelope::{Enqueued, Envelope, NewJob};
use super::keys::{QueueKeys, validate_queue_name};
use super::payload::{Header, valid_id};
use super::{QueueError, Result, now_ms};

/// Jobs per enqueue script call: large enough to amortise the round trip, small enough that
/// one call never blocks Redis for long.
const ENQUEUE_CHUNK: usize = 1000;
/// Enqueue script calls in flight at once on the multiplexed connection.
const ENQUEUE_PARALLEL: usize = 4;

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
    pub async fn enqueue_bulk(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let now = now_ms();
        let total = jobs.len();
        // Group by queue, remembering each job's input position.
        let mut groups: Vec<(String, Vec<(usize, NewJob)>)> = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            // Everything is checked before anything is written, so a bad job in a bulk enqueue
            // leaves no part of it stored.
            validate_queue_name(&job.queue)?;
            if let Some(id) = &job.id
                && !valid_id(id)
            {
                return Err(QueueError::Invalid(format!(
                    "job id {id:?}: use 1-128 characters from a-z, A-Z, 0-9, '_', '-', '.', ':'"
                )));
            }
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
        let mut results: Vec<Option<Enqueued>> = vec![None; total];
        let queues: Vec<&str> = calls.iter().map(|(k, _)| k.name()).collect();
        self.register_queues(&queues).await?;
        // Up to ENQUEUE_PARALLEL calls in flight: while Redis runs one chunk, the next is
        // serialised and sent.
        let mut replies =
            futures::stream::iter(calls.into_iter().map(|(keys, chunk)| async move {
                let (positions, jobs): (Vec<usize>, Vec<NewJob>) = chunk.into_iter().unzip();
                (positions, self.enqueue_chunk(&keys, jobs, now).await)
            }))
            .buffered(ENQUEUE_PARALLEL);
        while let Some((positions, reply)) = replies.next().await {
            for (enq, pos) in reply?.into_iter().zip(positions) {
                results[pos] = Some(enq);
            }
        }
        Ok(results.into_iter().flatten().collect())
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
            let env = job.into_envelope(now);
            inv.arg(stored(&env, uniq.clone())?)
                .arg(&env.id)
                .arg(uniq)
                .arg(ttl.to_string())
                .arg(env.run_at.unwrap_or(0));
            ids.push(env.id);
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.con.clone()).await?;
        if reply.len() != ids.len() {
            return Err(QueueError::Reply {
                script: "enqueue",
                detail: format!("{} replies for {} jobs", reply.len(), ids.len()),
            });
        }
        Ok(ids
            .into_iter()
            .zip(reply)
            .map(|(id, holder)| {
                if holder.is_empty() {
                    Enqueued { id, created: true }
                } else {
                    Enqueued {
                        id: holder,
                        created: false,
                    }
                }
            })
            .collect())
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
        let env = job.into_envelope(now_ms());
        let stored = stored(&env, String::new())?;
        self.register_queues(&[keys.name()]).await?;
        let created: i64 = self
            .scripts
            .enqueue_tick
            .key(keys.pending())
            .key(keys.ticks())
            .key(keys.stats())
            .arg(keys.prefix())
            .arg(schedule)
            .arg(tick_ms)
            .arg(stored)
            .arg(&env.id)
            .invoke_async(&mut self.con.clone())
            .await?;
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
        Ok(v.and_then(|v| {
            let (t, id) = v.split_once('|')?;
            Some((t.parse().ok()?, id.to_owned()))
        }))
    }
}

/// A new job as stored: a header with no attempts yet, then the envelope JSON.
fn stored(env: &Envelope, unique: String) -> Result<String> {
    let header = Header {
        max_attempts: env.max_attempts,
        id: env.id.clone(),
        unique,
        ..Header::default()
    };
    Ok(header.encode(&serde_json::to_string(env)?))
}
