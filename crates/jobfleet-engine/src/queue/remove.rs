//! Removing a queue: every key under its prefix and its name in the set of queues.
//!
//! A queue comes into being when a job is first enqueued to it or a worker first serves it,
//! and until now nothing took one away: a mistyped `queue pause` left a phantom queue listed
//! for good. Removal refuses a queue that still holds jobs, and one whose jobs workers hold,
//! unless forced, so that it never drops work by surprise; forced, it says how many jobs it
//! dropped.
//!
//! The fixed keys of the queue come from `keys.rs`; the keys named after a worker, a unique
//! key or a minute (`inflight:<w>`, `reaped:<w>`, `unique:<k>`, `stats:<m>`) are found with a
//! SCAN over the queue's prefix, in bounded steps, like the other operators' paths. Nothing
//! here is on a worker's path.

use redis::AsyncCommands;
use serde::Serialize;

use super::client::QueueClient;
use super::{QueueError, Result};

/// Keys asked for per SCAN step (and unlinked per UNLINK).
const BATCH: usize = 1000;

/// What a queue held when it was removed.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Removed {
    /// The removed queue's name.
    pub queue: String,
    /// Jobs that were ready to run.
    pub pending: u64,
    /// Jobs that waited for their due time.
    pub scheduled: u64,
    /// Jobs that waited for their next attempt.
    pub retry: u64,
    /// Dead jobs.
    pub dead: u64,
    /// Jobs leased to workers (in their in-flight hashes).
    pub active: u64,
    /// The workers that held those jobs.
    pub workers: Vec<String>,
    /// Keys deleted, the queue's name in the set of queues not counted.
    pub keys_deleted: u64,
}

impl Removed {
    /// Every job the queue held, in any state.
    pub fn jobs(&self) -> u64 {
        self.pending + self.scheduled + self.retry + self.dead + self.active
    }

    /// "10 pending, 2 dead", or "no jobs".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("pending", self.pending),
            ("scheduled", self.scheduled),
            ("active", self.active),
            ("retry", self.retry),
            ("dead", self.dead),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
        if parts.is_empty() {
            "no jobs".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

impl QueueClient {
    /// What a queue holds now, by state, with the workers holding its active jobs.
    async fn contents(&self, queue: &str) -> Result<Removed> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        // Worker names and keys are read as bytes: a member that is not UTF-8 must not make
        // the removal fail.
        let [l0, l1, l2, l3] = k.pending_lists();
        type Contents = (u64, u64, u64, u64, u64, u64, u64, Vec<Vec<u8>>);
        let (p0, p1, p2, p3, scheduled, retry, dead, workers): Contents = redis::pipe()
            .llen(l0)
            .llen(l1)
            .llen(l2)
            .llen(l3)
            .zcard(k.scheduled())
            .zcard(k.retry())
            .zcard(k.dead())
            .zrange(k.leases(), 0, -1)
            .query_async(&mut con)
            .await?;
        let mut holding = Vec::new();
        let mut active = 0;
        for w in workers {
            let held = super::listing::held_count(&mut con, &k.inflight_bytes(&w)).await?;
            if held > 0 {
                active += held;
                holding.push(String::from_utf8_lossy(&w).into_owned());
            }
        }
        Ok(Removed {
            queue: queue.to_owned(),
            pending: p0 + p1 + p2 + p3,
            scheduled,
            retry,
            dead,
            active,
            workers: holding,
            keys_deleted: 0,
        })
    }

    /// Removes a queue: all its keys (jobs in every state, leases, unique locks, counters,
    /// ticks, the pause flag) and its name from the set of queues. An unknown queue is an
    /// error. Without `force` it refuses a queue that holds jobs, naming how many and where;
    /// with `force` it drops them, and the report says how many it dropped.
    ///
    /// Stop the workers serving the queue and whatever enqueues to it first: a job enqueued
    /// while the keys are deleted brings the queue back, and it is then listed again rather
    /// than left hidden.
    pub async fn remove_queue(&self, queue: &str, force: bool) -> Result<Removed> {
        self.known_queue(queue).await?;
        let mut report = self.contents(queue).await?;
        if !force && report.active > 0 {
            return Err(QueueError::Invalid(format!(
                "queue {queue} has {} job{} active on {} ({}); stop those workers first, or use \
                 --force to drop every job of the queue ({})",
                report.active,
                if report.active == 1 { "" } else { "s" },
                if report.workers.len() == 1 {
                    "a worker".to_owned()
                } else {
                    format!("{} workers", report.workers.len())
                },
                report.workers.join(", "),
                report.describe()
            )));
        }
        if !force && report.jobs() > 0 {
            return Err(QueueError::Invalid(format!(
                "queue {queue} holds {} job{} ({}); use --force to drop them",
                report.jobs(),
                if report.jobs() == 1 { "" } else { "s" },
                report.describe()
            )));
        }
        let k = self.queue(queue)?;
        let mut con = self.connection();
        // The keys that hold jobs are checked and deleted in one script: a job enqueued after
        // the check above is either seen there (and the removal refused, or counted) or comes
        // after the deletion and brings the queue back (below). Never dropped unsaid.
        let r: Vec<u64> = self
            .scripts
            .remove
            .key(k.pending())
            .key(k.scheduled())
            .key(k.retry())
            .key(k.dead())
            .key(k.leases())
            .arg(k.prefix())
            .arg(u8::from(force))
            .invoke_async(&mut con)
            .await?;
        let [removed, pending, scheduled, retry, dead, active, unlinked] = r[..] else {
            return Err(QueueError::Reply {
                script: "remove",
                detail: format!("{} values", r.len()),
            });
        };
        report.pending = pending;
        report.scheduled = scheduled;
        report.retry = retry;
        report.dead = dead;
        report.active = active;
        if removed == 0 {
            return Err(QueueError::Invalid(format!(
                "jobs were added to queue {queue} while it was being removed ({}); nothing was \
                 removed: use --force to drop them",
                report.describe()
            )));
        }
        report.keys_deleted = unlinked;
        // The rest holds no jobs (counters, ticks, locks, per-minute stats, replies). UNLINK
        // frees memory in the background, so a big key does not block the server.
        let pattern = k.scan_pattern();
        let mut cursor: u64 = 0;
        loop {
            // In a cluster, on the node that holds the queue's slot.
            let (next, keys) = con.scan_step(&k.pending(), cursor, &pattern, BATCH).await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut con)
                    .await?;
                report.keys_deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // The name goes last: should anything above fail, the queue is still listed, and the
        // same command can be run again.
        let _: () = con.srem(self.keys.queues(), queue).await?;
        // A producer or worker that wrote to the queue meanwhile re-created some of its keys;
        // list the queue again rather than leave jobs that no command shows.
        let back: u64 = redis::cmd("EXISTS")
            .arg(&k.pending_lists())
            .arg(k.scheduled())
            .arg(k.retry())
            .arg(k.dead())
            .arg(k.leases())
            .query_async(&mut con)
            .await?;
        if back > 0 {
            self.register_queues(&[queue]).await?;
            return Err(QueueError::Invalid(format!(
                "jobs were added to queue {queue} while it was being removed, so it is listed \
                 again; stop what enqueues to it and its workers, then remove it again"
            )));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_what_was_dropped() {
        let r = Removed {
            pending: 10,
            dead: 2,
            ..Removed::default()
        };
        assert_eq!(
            (r.jobs(), r.describe().as_str()),
            (12, "10 pending, 2 dead")
        );
        assert_eq!(Removed::default().describe(), "no jobs");
    }
}
