//! Fleet-wide limits of a kind's jobs (`[limits]` in its spec): how many may start per window
//! and how many may run at once, across every worker of the fleet, optionally per key.
//!
//! A worker asks `limit_take.lua` right before a leased job would start. The answer is either
//! a start, or a wait in the scheduled set that uses no attempt: until a start is free for the
//! job (rate), or until a running slot is released (concurrency; `limit_release.lua` makes the
//! waiting jobs due when one finishes). A running slot is a member of a sorted set tied to the
//! holder's lease, not a counter: a slot whose worker lost its lease is free at the next ask,
//! and a job waiting for a slot asks again after at most a lease even when no release comes.
//! Every key of a limit carries the queue's hash tag, so a limit is one queue's: jobs of one
//! kind sent to two queues have a budget in each.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;

use super::client::QueueClient;
use super::envelope::Leased;
use super::{QueueError, Result, now_ms};

/// What a job asks of its limits before it starts.
#[derive(Clone, Debug)]
pub struct LimitAsk<'a> {
    /// The limit's name: the kind, or `<kind>=<key>` for a keyed limit.
    pub name: &'a str,
    /// Jobs running at once across the fleet; 0 for no such limit.
    pub concurrency: u32,
    /// Starts per window across the fleet, and the window; None for no such limit.
    pub rate: Option<(u32, Duration)>,
    /// How long a job waiting for a running slot sleeps before it asks again should no slot be
    /// released: the workers' lease, after which a dead holder's slot is free.
    pub recheck: Duration,
}

/// The answer to a [`LimitAsk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// The job may start; it holds a running slot until released. The start time is Redis's.
    Granted {
        /// When the start was counted, in ms by the server's clock.
        start_ms: i64,
    },
    /// Every running slot is held: the job waits in the scheduled set until one is released,
    /// or until `due_ms` at the latest.
    WaitingForSlot {
        /// When it asks again if no slot was released before.
        due_ms: i64,
    },
    /// The window's starts are used up: the job waits in the scheduled set until `due_ms`.
    WaitingForRate {
        /// When a start is free for it.
        due_ms: i64,
    },
    /// The job is no longer leased to this worker (the reaper took it back).
    Lost,
}

/// The current use of one limit, for `jobfleet limits`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LimitUse {
    /// The queue the limit belongs to.
    pub queue: String,
    /// Its name: the kind, or `<kind>=<key>`.
    pub name: String,
    /// Slots held by workers whose lease is alive.
    pub running: u64,
    /// Starts in the current window.
    pub started: u64,
    /// Jobs the rate told when to come back, still waiting.
    pub reserved: u64,
    /// Jobs waiting for a running slot.
    pub waiting: u64,
}

impl QueueClient {
    /// Asks `ask`'s limits whether the leased `job` may start now (see `limit_take.lua`).
    pub async fn take_limit(&self, job: &Leased, ask: &LimitAsk<'_>) -> Result<Taken> {
        let k = self.queue(&job.queue)?;
        let l = k.limit(ask.name);
        let (count, window) = ask.rate.unwrap_or((0, Duration::ZERO));
        let reply: (i64, i64) = self
            .scripts
            .limit_take
            .key(k.inflight(&job.worker))
            .key(k.leases())
            .key(k.scheduled())
            .key(k.stats())
            .key(&l.running)
            .key(&l.starts)
            .key(&l.reserved)
            .key(&l.waiting)
            .key(k.limits())
            .arg(k.prefix())
            .arg(&job.stored)
            .arg(&job.worker)
            .arg(job.id())
            .arg(ask.name)
            .arg(ask.concurrency)
            .arg(count)
            .arg(millis(window).max(1))
            .arg(millis(ask.recheck).max(1))
            .arg(job.token)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(match reply {
            (1, start_ms) => Taken::Granted { start_ms },
            (2, due_ms) => Taken::WaitingForSlot { due_ms },
            (3, due_ms) => Taken::WaitingForRate { due_ms },
            (0, _) => Taken::Lost,
            (other, _) => {
                return Err(QueueError::Reply {
                    script: "limit_take",
                    detail: format!("outcome {other}"),
                });
            }
        })
    }

    /// Gives back the running slot `job` took under the limit `name`, and makes as many jobs
    /// waiting for a slot due as there are free slots. Returns how many it made due.
    pub async fn release_limit(&self, job: &Leased, name: &str, concurrency: u32) -> Result<u64> {
        let k = self.queue(&job.queue)?;
        let l = k.limit(name);
        Ok(self
            .scripts
            .limit_release
            .key(&l.running)
            .key(k.leases())
            .key(k.scheduled())
            .key(&l.waiting)
            .arg(k.prefix())
            .arg(format!("{}|{}", job.worker, job.id()))
            .arg(concurrency)
            .invoke_async(&mut self.connection())
            .await?)
    }

    /// The limits the jobs of `queue` have asked, by name. Names whose keys have all expired
    /// are forgotten on the way, so that keyed limits (one per webhook host, say) do not pile
    /// up.
    pub async fn limit_names(&self, queue: &str) -> Result<Vec<String>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        let mut names: Vec<String> = con.smembers(k.limits()).await?;
        if names.is_empty() {
            return Ok(names);
        }
        names.sort();
        // One round trip for every name, however many keys a keyed limit has.
        let mut pipe = redis::pipe();
        for name in &names {
            let l = k.limit(name);
            pipe.cmd("EXISTS")
                .arg(&l.running)
                .arg(&l.starts)
                .arg(&l.reserved)
                .arg(&l.waiting);
        }
        let exists: Vec<u64> = pipe.query_async(&mut con).await?;
        let (kept, gone): (Vec<_>, Vec<_>) =
            names.into_iter().zip(exists).partition(|(_, n)| *n > 0);
        if !gone.is_empty() {
            let gone: Vec<String> = gone.into_iter().map(|(name, _)| name).collect();
            let _: () = con.srem(k.limits(), gone).await?;
        }
        Ok(kept.into_iter().map(|(name, _)| name).collect())
    }

    /// What one limit of `queue` has in use now; `window` is its rate's window (zero for a
    /// limit without a rate).
    pub async fn limit_use(&self, queue: &str, name: &str, window: Duration) -> Result<LimitUse> {
        let k = self.queue(queue)?;
        let l = k.limit(name);
        let now = now_ms();
        let mut con = self.connection();
        let (holders, started, reserved, waiting, leases): UseReply = redis::pipe()
            .zrange(&l.running, 0, -1)
            .zcount(&l.starts, now - millis(window), "+inf")
            .zcard(&l.reserved)
            .zrange(&l.waiting, 0, 999)
            .zrange_withscores(k.leases(), 0, -1)
            .query_async(&mut con)
            .await?;
        let running = holders
            .iter()
            .filter(|m| {
                m.rsplit_once('|')
                    .and_then(|(w, _)| leases.get(w))
                    .is_some_and(|deadline| *deadline as i64 > now)
            })
            .count() as u64;
        // An entry of the waiting set whose job left the scheduled set is stale, not waiting.
        let mut still = 0;
        if !waiting.is_empty() {
            let mut pipe = redis::pipe();
            for job in &waiting {
                pipe.zscore(k.scheduled(), job);
            }
            let scores: Vec<Option<f64>> = pipe.query_async(&mut con).await?;
            still = scores.iter().filter(|s| s.is_some()).count() as u64;
        }
        Ok(LimitUse {
            queue: queue.to_owned(),
            name: name.to_owned(),
            running,
            started: if window.is_zero() { 0 } else { started },
            reserved,
            waiting: still,
        })
    }
}

/// The reply of `limit_use`'s pipeline: the running slots' members, the starts in the window,
/// the reservations, the 1,000 jobs that have waited longest and the queue's leases (worker -> deadline).
type UseReply = (Vec<String>, u64, u64, Vec<Vec<u8>>, HashMap<String, f64>);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
