//! One worker process: a fetcher that leases jobs in batches and a task per running job. The
//! acker (`acker.rs`) settles finished jobs in batches; `background.rs` renews leases, keeps the
//! worker registry, reaps expired leases and listens for wake-ups.
//!
//! Batching is what makes the throughput: one script call leases up to `concurrency + prefetch`
//! jobs, and one script call acks every job that finished since the last call, so Redis sees a
//! handful of calls per batch instead of several per job.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::acker::{Finished, ack_loop, hand_back};
use super::background::{cancel_loop, heartbeat_loop, heartbeat_once, maintenance_loop, wake_loop};
use super::limiter::{self, Gate};
use super::runner::{self, Outcome, Ran};
use super::state::{Held, MAX_BATCH, Shared, Worker, WorkerReport};
use crate::job::JobCancel;
use crate::queue::{Call, Leased, QueueError, Settle, SettleAction, now_ms};

impl<S: Send + Sync + 'static> Worker<S> {
    /// The worker's id, as `jobfleet workers` shows it.
    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    /// Runs until `shutdown` resolves, then stops fetching, lets running jobs finish within the
    /// shutdown timeout, hands the rest back to pending and deregisters.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<WorkerReport, QueueError> {
        for q in self.cfg.queues.names() {
            self.client.register_queue(&q).await?;
        }
        let shared = Arc::new(Shared {
            w: self,
            held: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            halt: CancellationToken::new(),
            report: Mutex::new(WorkerReport::default()),
        });
        heartbeat_once(&shared).await;
        tracing::info!(worker = %shared.w.cfg.id, queues = ?shared.w.cfg.queues.names(),
            concurrency = shared.w.cfg.concurrency, "worker started");
        let mut background = JoinSet::new();
        background.spawn(heartbeat_loop(shared.clone()));
        background.spawn(maintenance_loop(shared.clone()));
        background.spawn(wake_loop(shared.clone()));
        background.spawn(cancel_loop(shared.clone()));

        let (tx, rx) = mpsc::unbounded_channel::<Finished>();
        let acker = tokio::spawn(ack_loop(shared.clone(), rx));
        // The fetcher runs as a task of its own, on the runtime's worker threads with the job
        // tasks it starts and the acker they report to, not in whatever future awaits `run`
        // (a `block_on` on the main thread, in our binaries): every batch would otherwise cross
        // threads several times. It is never dropped mid-call (a fetch whose reply was lost
        // would leave its jobs leased to nobody until their leases expire): it stops at its next
        // safe point once `stop` is cancelled. It is held in a JoinSet so that a caller who
        // drops `run` stops it too, as it stopped when it ran inside `run`.
        let mut fetcher = JoinSet::new();
        fetcher.spawn({
            let shared = shared.clone();
            async move {
                let mut jobs = JoinSet::new();
                fetch_loop(&shared, &tx, &mut jobs).await;
                drain(&shared, &mut jobs).await;
            }
        });
        shutdown.await;
        tracing::info!("shutdown requested: no new jobs are taken");
        shared.stop.cancel();
        if let Some(Err(_)) = fetcher.join_next().await {
            tracing::error!("the fetcher task failed; its jobs are handed back below");
        }
        if acker.await.is_err() {
            tracing::error!("the acker task failed; unsettled jobs are handed back below");
        }
        hand_back(&shared).await;
        shared.halt.cancel();
        while background.join_next().await.is_some() {}
        if let Err(e) = shared.w.client.deregister_worker(&shared.w.cfg.id).await {
            tracing::warn!(error = %e, "could not deregister; the entry expires by itself");
        }
        let report = *shared
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tracing::info!(?report, "worker stopped");
        Ok(report)
    }
}

/// Leases jobs whenever a slot is free, and sleeps until woken when there is nothing to do.
async fn fetch_loop<S: Send + Sync + 'static>(
    shared: &Arc<Shared<S>>,
    tx: &mpsc::UnboundedSender<Finished>,
    jobs: &mut JoinSet<()>,
) {
    let w = &shared.w;
    let capacity = w.cfg.concurrency + w.cfg.prefetch;
    let slots = Arc::new(Semaphore::new(capacity));
    let exec = Arc::new(Semaphore::new(w.cfg.concurrency));
    let mut seq = 0u64;
    let mut error_pause = Duration::from_millis(100);
    let mut backlog = false;
    let mut reconciled = Instant::now();
    loop {
        while jobs.try_join_next().is_some() {}
        if reconciled.elapsed() >= w.cfg.lease / 3 {
            reconcile(shared).await;
            reconciled = Instant::now();
        }
        let mut batch = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        if backlog {
            gather(&slots, &mut batch, capacity).await;
        }
        let free = slots
            .available_permits()
            .min(MAX_BATCH - batch.num_permits());
        if free > 0
            && let Ok(more) = slots
                .clone()
                .try_acquire_many_owned(u32::try_from(free).unwrap_or(1))
        {
            batch.merge(more);
        }
        let want = batch.num_permits();
        let (leased, next_due, failed) = fetch_batch(shared, want, &mut seq).await;
        let got = leased.len();
        backlog = got == want;
        for (seq, job) in leased {
            let slot = batch.split(1).expect("one permit per leased job");
            let task = job_task(shared.clone(), seq, job, slot, exec.clone(), tx.clone());
            jobs.spawn(task);
        }
        drop(batch);
        if failed {
            // A fetch whose reply was lost may have leased jobs to us that we never saw.
            reconcile(shared).await;
            reconciled = Instant::now();
        }
        if failed && got == 0 {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                () = tokio::time::sleep(error_pause) => {}
            }
            error_pause = (error_pause * 2).min(Duration::from_secs(5));
            continue;
        }
        error_pause = Duration::from_millis(100);
        if got == 0 {
            // Never longer than lease/3, so that reconcile() runs while the worker is idle too.
            let poll = w.cfg.poll_interval.min(w.cfg.lease / 3);
            let wait = next_due.map_or(poll, |t| {
                Duration::from_millis(u64::try_from((t - now_ms()).max(1)).unwrap_or(0)).min(poll)
            });
            tokio::select! {
                () = shared.stop.cancelled() => return,
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// While the queue has a backlog, waits up to a millisecond for half the slots to come free,
/// so that one script call leases a real batch instead of one job per call. An idle worker never
/// waits here: it only gathers after a fetch that came back full.
async fn gather(slots: &Arc<Semaphore>, batch: &mut OwnedSemaphorePermit, capacity: usize) {
    let target = (capacity / 2).clamp(1, MAX_BATCH);
    let missing = target.saturating_sub(batch.num_permits() + slots.available_permits());
    if missing == 0 {
        return;
    }
    let wanted = u32::try_from(target - batch.num_permits()).unwrap_or(1);
    if let Ok(Ok(more)) = tokio::time::timeout(
        Duration::from_millis(1),
        slots.clone().acquire_many_owned(wanted),
    )
    .await
    {
        batch.merge(more);
    }
}

/// One lease round over the queues in their order for this round.
async fn fetch_batch<S: Send + Sync + 'static>(
    shared: &Shared<S>,
    want: usize,
    seq: &mut u64,
) -> (Vec<(u64, Arc<Leased>)>, Option<i64>, bool) {
    let w = &shared.w;
    let units: Vec<f64> = (0..w.cfg.queues.len()).map(|_| rand::random()).collect();
    let mut leased: Vec<(u64, Arc<Leased>)> = Vec::new();
    let mut next_due: Option<i64> = None;
    let mut failed = false;
    for queue in w.cfg.queues.order(&units) {
        if leased.len() >= want {
            break;
        }
        match w
            .client
            .fetch(queue, want - leased.len(), w.cfg.lease, &w.cfg.id)
            .await
        {
            Ok(f) => {
                w.health.ok();
                if let Some(t) = f.next_due_ms {
                    next_due = Some(next_due.map_or(t, |n: i64| n.min(t)));
                }
                for job in f.jobs {
                    *seq += 1;
                    leased.push((*seq, Arc::new(job)));
                }
            }
            Err(e) => {
                failed = true;
                w.metrics.redis_errors.with_label_values(&["fetch"]).inc();
                tracing::error!(queue, error = %e, "fetch failed");
            }
        }
    }
    if !leased.is_empty() {
        let mut held = shared.held();
        for (seq, job) in &leased {
            let kind = peek_kind(job.body_bytes());
            held.insert(
                *seq,
                Held {
                    job: job.clone(),
                    kind,
                    started_at: None,
                    cancel: JobCancel::new(),
                },
            );
        }
    }
    (leased, next_due, failed)
}

/// Hands back jobs that are in this worker's in-flight hashes but unknown to the process: the
/// reply of a fetch that leased them was lost. Runs on the fetcher's task, between fetches, so
/// no fetch is half done; without it those jobs would be renewed forever and never run.
async fn reconcile<S: Send + Sync + 'static>(shared: &Shared<S>) {
    let w = &shared.w;
    for queue in w.cfg.queues.names() {
        let stored = match w.client.inflight(&queue, &w.cfg.id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(queue, error = %e, "could not check the in-flight jobs");
                continue;
            }
        };
        if stored.is_empty() {
            continue;
        }
        let orphans: Vec<Leased> = {
            let held = shared.held();
            let known: HashSet<u64> = held
                .values()
                .filter(|h| h.job.queue == queue)
                .map(|h| h.job.token)
                .collect();
            stored
                .into_iter()
                .filter(|(token, _)| !known.contains(token))
                .map(|(token, s)| Leased::new(&queue, &w.cfg.id, token, s))
                .collect()
        };
        if orphans.is_empty() {
            continue;
        }
        let settles: Vec<Settle<'_>> = orphans
            .iter()
            .map(|job| Settle {
                job,
                action: SettleAction::Requeue,
                due_ms: 0,
                error: String::new(),
            })
            .collect();
        let call = Call::new("reconcile");
        match w.client.settle(&queue, &w.cfg.id, &call, &settles).await {
            Ok(r) => {
                tracing::warn!(
                    queue,
                    requeued = r.requeued,
                    "handed back jobs leased by a fetch whose reply was lost"
                );
                shared.add_report(WorkerReport {
                    requeued: r.requeued,
                    ..WorkerReport::default()
                });
            }
            Err(e) => tracing::warn!(queue, error = %e, "could not hand back orphaned jobs"),
        }
    }
}

/// The kind of an envelope for the worker listing, without decoding it: the envelope is
/// written by `serde_json` from `Envelope`, whose `kind` field holds a plain name.
fn peek_kind(body: &[u8]) -> String {
    const KEY: &[u8] = b"\"kind\":\"";
    body.windows(KEY.len())
        .position(|w| w == KEY)
        .map(|at| &body[at + KEY.len()..])
        .and_then(|rest| rest.iter().position(|&b| b == b'"').map(|end| &rest[..end]))
        .map_or_else(
            || "?".to_owned(),
            |kind| String::from_utf8_lossy(kind).into_owned(),
        )
}

/// Waits for a run slot, runs the job and hands the result to the acker. A job still waiting
/// for its slot at shutdown is handed back without running.
async fn job_task<S: Send + Sync + 'static>(
    shared: Arc<Shared<S>>,
    seq: u64,
    job: Arc<Leased>,
    _lease_slot: OwnedSemaphorePermit,
    exec: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Finished>,
) {
    let run_slot = tokio::select! {
        biased;
        () = shared.stop.cancelled() => None,
        p = exec.acquire_owned() => Some(p.expect("the semaphore is never closed")),
    };
    let ran = if run_slot.is_some() {
        // The kind was peeked once, when the job was leased.
        let (kind, cancel) = match shared.held().get(&seq) {
            Some(h) => (h.kind.clone(), h.cancel.clone()),
            None => (peek_kind(job.body_bytes()), JobCancel::new()),
        };
        let (slot, start_ms) = match limiter::ask(&shared, &job, &kind).await {
            Gate::Run { slot, start_ms } => (slot, start_ms),
            Gate::Gone => {
                // The limits moved it to the scheduled set (or the reaper took it): it is no
                // longer this worker's, and nothing is settled.
                shared.held().remove(&seq);
                return;
            }
            Gate::Later => {
                let ran = Ran {
                    kind,
                    outcome: Outcome::snooze_for(Duration::from_secs(1)),
                    elapsed: Duration::ZERO,
                };
                let _ = tx.send(Finished { seq, job, ran });
                return;
            }
        };
        if let Some(h) = shared.held().get_mut(&seq) {
            h.started_at = Some(start_ms.unwrap_or_else(now_ms));
        }
        if let Some(observe) = &shared.w.observer {
            observe(&job);
        }
        let ran = runner::run_cancellable(&shared.w.rt, &job, &cancel, start_ms).await;
        if let Some(slot) = &slot {
            limiter::release(&shared, &job, slot).await;
        }
        if cancel.is_cancelled() {
            // The mark has done its work; a failure to delete it only leaves it to its TTL.
            let _ = shared.w.client.clear_cancel(&job.queue, &job.id()).await;
        }
        ran
    } else {
        Ran {
            kind: peek_kind(job.body_bytes()),
            outcome: Outcome::requeue(),
            elapsed: Duration::ZERO,
        }
    };
    let _ = tx.send(Finished { seq, job, ran });
}

/// Waits for running jobs up to the shutdown timeout, then cancels the rest.
async fn drain<S: Send + Sync + 'static>(shared: &Shared<S>, jobs: &mut JoinSet<()>) {
    let deadline = tokio::time::sleep(shared.w.cfg.shutdown_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = jobs.join_next() => if next.is_none() { return },
            () = &mut deadline => {
                tracing::warn!(running = jobs.len(), "shutdown timeout: cancelling running jobs and handing them back");
                jobs.abort_all();
                while jobs.join_next().await.is_some() {}
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_the_kind_of_an_envelope() {
        let env =
            crate::queue::NewJob::new("send_receipt", "emails", serde_json::json!({"kind": "x"}));
        let body = serde_json::to_string(&env.into_envelope(0)).unwrap();
        assert_eq!(peek_kind(body.as_bytes()), "send_receipt");
        assert_eq!(peek_kind(b"{}"), "?");
    }
}
