//! One worker process: a fetcher that leases jobs in batches, a task per running job, an acker
//! that settles finished jobs in batches, and background loops for leases, the worker registry,
//! the reaper and wake-ups.
//!
//! Batching is what makes the throughput: one script call leases up to `concurrency + prefetch`
//! jobs, and one script call acks every job that finished since the last call, so Redis sees a
//! handful of calls per batch instead of several per job.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::WorkerConfig;
use super::runner::{self, Outcome, Ran};
use crate::jobs::{Registry, Resources};
use crate::queue::workers::{InFlight, WorkerInfo};
use crate::queue::{Leased, QueueClient, QueueError, Settle, SettleAction, now_ms};
use crate::telemetry::Metrics;
use crate::telemetry::http::Health;

/// Called just before a job starts running (the benchmark measures start latency with it).
pub type JobObserver = Arc<dyn Fn(&Leased) + Send + Sync>;

/// Most jobs leased by one fetch call.
const MAX_BATCH: usize = 1000;

/// What a worker did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub completed: u64,
    pub retried: u64,
    pub dead: u64,
    pub snoozed: u64,
    /// Handed back to pending at shutdown.
    pub requeued: u64,
    /// Settlements ignored because the lease had moved on.
    pub stale: u64,
}

/// A job this process holds a lease on.
struct Held {
    job: Arc<Leased>,
    kind: String,
    started_at: Option<i64>,
}

/// A finished run on its way to the acker.
struct Finished {
    id: String,
    job: Arc<Leased>,
    ran: Ran,
}

/// A worker process; build it, then `run` it until a shutdown signal.
pub struct Worker {
    client: QueueClient,
    registry: Arc<Registry>,
    resources: Arc<Resources>,
    cfg: WorkerConfig,
    metrics: Metrics,
    health: Arc<Health>,
    observer: Option<JobObserver>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

struct Shared {
    w: Worker,
    held: Mutex<HashMap<String, Held>>,
    wake: Notify,
    /// Stop fetching and starting jobs.
    stop: CancellationToken,
    /// Stop the background loops, once the jobs are drained.
    halt: CancellationToken,
    report: Mutex<WorkerReport>,
}

impl Shared {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The jobs held, grouped by queue.
    fn held_by_queue(&self) -> HashMap<String, Vec<Arc<Leased>>> {
        let mut by_queue: HashMap<String, Vec<Arc<Leased>>> = HashMap::new();
        for h in self.held().values() {
            by_queue
                .entry(h.job.queue.clone())
                .or_default()
                .push(h.job.clone());
        }
        by_queue
    }
}

impl Worker {
    pub fn new(
        client: QueueClient,
        registry: Arc<Registry>,
        resources: Arc<Resources>,
        cfg: WorkerConfig,
        metrics: Metrics,
        health: Arc<Health>,
    ) -> Self {
        Self {
            client,
            registry,
            resources,
            cfg,
            metrics,
            health,
            observer: None,
        }
    }

    pub fn with_observer(mut self, observer: JobObserver) -> Self {
        self.observer = Some(observer);
        self
    }

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

        let (tx, rx) = mpsc::unbounded_channel::<Finished>();
        let acker = tokio::spawn(ack_loop(shared.clone(), rx));
        let mut jobs = JoinSet::new();
        // The fetcher is never dropped mid-call: a fetch whose reply was lost would leave its
        // jobs leased to nobody until their leases expire. It stops at its next safe point.
        let stopper = async {
            shutdown.await;
            tracing::info!("shutdown requested: no new jobs are taken");
            shared.stop.cancel();
        };
        tokio::join!(stopper, fetch_loop(&shared, &tx, &mut jobs));
        drain(&shared, &mut jobs).await;
        drop(tx);
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
async fn fetch_loop(
    shared: &Arc<Shared>,
    tx: &mpsc::UnboundedSender<Finished>,
    jobs: &mut JoinSet<()>,
) {
    let w = &shared.w;
    let slots = Arc::new(Semaphore::new(w.cfg.concurrency + w.cfg.prefetch));
    let exec = Arc::new(Semaphore::new(w.cfg.concurrency));
    let capacity = w.cfg.concurrency + w.cfg.prefetch;
    let mut error_pause = Duration::from_millis(100);
    let mut backlog = false;
    loop {
        while jobs.try_join_next().is_some() {}
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
        let (leased, next_due, failed) = fetch_batch(shared, want).await;
        let got = leased.len();
        backlog = got == want;
        for job in leased {
            let slot = batch.split(1).expect("one permit per leased job");
            jobs.spawn(job_task(
                shared.clone(),
                job,
                slot,
                exec.clone(),
                tx.clone(),
            ));
        }
        drop(batch);
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
            let poll = w.cfg.poll_interval;
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
async fn fetch_batch(shared: &Shared, want: usize) -> (Vec<Arc<Leased>>, Option<i64>, bool) {
    let w = &shared.w;
    let units: Vec<f64> = (0..w.cfg.queues.names().len())
        .map(|_| rand::random())
        .collect();
    let mut leased: Vec<Arc<Leased>> = Vec::new();
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
                leased.extend(f.jobs.into_iter().map(Arc::new));
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
        for job in &leased {
            held.insert(
                job.id(),
                Held {
                    job: job.clone(),
                    kind: peek_kind(job.body()),
                    started_at: None,
                },
            );
        }
    }
    (leased, next_due, failed)
}

/// The kind of an envelope for the worker listing, without decoding it: the envelope is
/// written by `serde_json` from `Envelope`, whose `kind` field holds a plain name.
fn peek_kind(body: &str) -> String {
    body.split_once("\"kind\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| "?".to_owned(), |(kind, _)| kind.to_owned())
}

/// Waits for a run slot, runs the job and hands the result to the acker. A job still waiting
/// for its slot at shutdown is handed back without running.
async fn job_task(
    shared: Arc<Shared>,
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
    let id = job.id();
    let ran = if run_slot.is_some() {
        if let Some(h) = shared.held().get_mut(&id) {
            h.started_at = Some(now_ms());
        }
        if let Some(observe) = &shared.w.observer {
            observe(&job);
        }
        runner::run(&shared.w.registry, &shared.w.resources, &job).await
    } else {
        Ran {
            kind: peek_kind(job.body()),
            outcome: Outcome::requeue(),
            elapsed: Duration::ZERO,
        }
    };
    let _ = tx.send(Finished { id, job, ran });
}

/// Waits for running jobs up to the shutdown timeout, then cancels the rest.
async fn drain(shared: &Shared, jobs: &mut JoinSet<()>) {
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

/// Settles finished jobs in batches: everything that finished since the last call goes in one
/// script call per queue and outcome family.
async fn ack_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Finished>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    let small = shared.w.cfg.concurrency.div_ceil(2);
    while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
        // Under load, a millisecond gathers a real batch; a lone result waits at most that
        // long, which delays no job's start, only the moment its slot in Redis is freed.
        if buf.len() < small {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(1);
            while buf.len() < small {
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, MAX_BATCH)).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        flush(&shared, std::mem::take(&mut buf)).await;
    }
}

async fn flush(shared: &Shared, batch: Vec<Finished>) {
    let w = &shared.w;
    let mut by_queue: HashMap<&str, (Vec<&Leased>, Vec<Settle<'_>>)> = HashMap::new();
    for f in &batch {
        let (acks, settles) = by_queue.entry(f.job.queue.as_str()).or_default();
        match &f.ran.outcome {
            Outcome::Ack => acks.push(&f.job),
            Outcome::Settle {
                action,
                due_ms,
                error,
            } => settles.push(Settle {
                job: &f.job,
                action: *action,
                due_ms: *due_ms,
                error: error.clone(),
            }),
        }
    }
    let mut report = WorkerReport::default();
    let me = w.cfg.id.as_str();
    for (queue, (acks, settles)) in by_queue {
        if let Some((acked, stale)) =
            persist(shared, "ack", || w.client.ack(queue, me, &acks)).await
        {
            report.completed += acked;
            report.stale += stale;
        }
        if let Some(r) = persist(shared, "settle", || w.client.settle(queue, me, &settles)).await {
            report.retried += r.retried;
            report.dead += r.killed;
            report.snoozed += r.snoozed;
            report.requeued += r.requeued;
            report.stale += r.stale;
            w.metrics
                .evicted(queue, r.evicted_by_age, r.evicted_by_count);
        }
    }
    {
        let mut held = shared.held();
        for f in &batch {
            held.remove(&f.id);
        }
    }
    // One counter update per (queue, kind, outcome) and one histogram lookup per (queue, kind)
    // for the whole batch: label lookups hash strings, which is not free at 100,000 jobs/s.
    let mut counts: HashMap<(&str, &str, &str), u64> = HashMap::new();
    let mut timings: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
    for f in &batch {
        let (queue, kind) = (f.job.queue.as_str(), f.ran.kind.as_str());
        *counts
            .entry((queue, kind, f.ran.outcome.label()))
            .or_default() += 1;
        timings
            .entry((queue, kind))
            .or_default()
            .push(f.ran.elapsed.as_secs_f64());
    }
    for ((queue, kind, outcome), n) in counts {
        w.metrics
            .jobs
            .with_label_values(&[queue, kind, outcome])
            .inc_by(n);
    }
    for ((queue, kind), secs) in timings {
        let histogram = w.metrics.duration.with_label_values(&[queue, kind]);
        for s in secs {
            histogram.observe(s);
        }
    }
    if report.stale > 0 {
        tracing::warn!(
            stale = report.stale,
            "results ignored: those jobs' leases had expired and moved on"
        );
    }
    add_report(shared, report);
}

/// Retries a settlement until it lands, for at most one lease: after that the lease has run
/// out and the reaper gives the job to another worker anyway (at-least-once delivery).
async fn persist<T, F, Fut>(shared: &Shared, op: &str, call: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let give_up = tokio::time::Instant::now() + shared.w.cfg.lease;
    let mut pause = Duration::from_millis(50);
    loop {
        match call().await {
            Ok(v) => return Some(v),
            Err(e) => {
                shared.w.metrics.redis_errors.with_label_values(&[op]).inc();
                if tokio::time::Instant::now() + pause > give_up {
                    tracing::error!(op, error = %e, "giving up: the leases will expire and the jobs run again");
                    return None;
                }
                tracing::warn!(op, error = %e, "settling failed, retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn add_report(shared: &Shared, r: WorkerReport) {
    let mut t = shared
        .report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    t.completed += r.completed;
    t.retried += r.retried;
    t.dead += r.dead;
    t.snoozed += r.snoozed;
    t.requeued += r.requeued;
    t.stale += r.stale;
}

/// Hands every job still held (cancelled at the deadline, or never settled) back to pending.
async fn hand_back(shared: &Shared) {
    let leftovers = shared.held_by_queue();
    shared.held().clear();
    let mut report = WorkerReport::default();
    for (queue, jobs) in leftovers {
        let settles: Vec<Settle<'_>> = jobs
            .iter()
            .map(|job| Settle {
                job,
                action: SettleAction::Requeue,
                due_ms: 0,
                error: String::new(),
            })
            .collect();
        let me = shared.w.cfg.id.as_str();
        match persist(shared, "requeue", || {
            shared.w.client.settle(&queue, me, &settles)
        })
        .await
        {
            Some(r) => {
                report.requeued += r.requeued;
                report.stale += r.stale;
                tracing::info!(queue, requeued = r.requeued, "handed back jobs at shutdown");
            }
            None => tracing::error!(
                queue,
                jobs = jobs.len(),
                "could not hand back jobs; their leases will expire"
            ),
        }
    }
    add_report(shared, report);
}

/// Renews leases and the worker's registry entry every lease/3.
async fn heartbeat_loop(shared: Arc<Shared>) {
    let every = shared.w.cfg.lease / 3;
    loop {
        tokio::select! {
            () = shared.halt.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        heartbeat_once(&shared).await;
    }
}

async fn heartbeat_once(shared: &Shared) {
    let w = &shared.w;
    for (queue, jobs) in shared.held_by_queue() {
        match w.client.extend(&queue, &w.cfg.id, w.cfg.lease).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let lost: Vec<String> = jobs.iter().map(|j| j.id()).collect();
                tracing::warn!(queue, lost = ?lost, "lease lost: the reaper took these jobs back; their results will be ignored");
                w.metrics
                    .leases_lost
                    .with_label_values(&[queue.as_str()])
                    .inc_by(lost.len() as u64);
                let mut held = shared.held();
                for id in lost {
                    held.remove(&id);
                }
            }
            Err(e) => {
                w.metrics.redis_errors.with_label_values(&["extend"]).inc();
                tracing::error!(queue, error = %e, "could not renew leases");
            }
        }
    }
    let in_flight = shared
        .held()
        .iter()
        .map(|(id, h)| InFlight {
            id: id.clone(),
            queue: h.job.queue.clone(),
            kind: h.kind.clone(),
            started_at: h.started_at,
        })
        .collect();
    let info = WorkerInfo {
        id: w.cfg.id.clone(),
        host: w.cfg.id.split(':').next().unwrap_or_default().to_owned(),
        pid: std::process::id(),
        queues: w.cfg.queues.names(),
        concurrency: w.cfg.concurrency,
        started_at: START.get_or_init(now_ms).to_owned(),
        heartbeat_at: now_ms(),
        in_flight,
    };
    match w.client.heartbeat_worker(&info, w.cfg.lease * 2).await {
        Ok(()) => w.health.ok(),
        Err(e) => {
            w.metrics
                .redis_errors
                .with_label_values(&["heartbeat"])
                .inc();
            tracing::error!(error = %e, "worker heartbeat failed");
        }
    }
}

static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// Reaps expired leases, samples queue depths and enforces the dead set's age cap.
async fn maintenance_loop(shared: Arc<Shared>) {
    let w = &shared.w;
    let every = (w.cfg.lease / 2).min(Duration::from_secs(5));
    let mut tick = 0u64;
    loop {
        let jitter = every.mul_f64(0.8 + 0.4 * rand::random::<f64>());
        tokio::select! {
            () = shared.halt.cancelled() => return,
            () = tokio::time::sleep(jitter) => {}
        }
        tick += 1;
        for queue in w.cfg.queues.names() {
            reap_queue(w, &queue).await;
            match w.client.stats(&queue).await {
                Ok(s) => w.metrics.observe_queue(&s),
                Err(e) => tracing::warn!(queue, error = %e, "could not sample queue depths"),
            }
            if tick % 12 == 0 {
                match w.client.trim_dead(&queue).await {
                    Ok((age, count)) => w.metrics.evicted(&queue, age, count),
                    Err(e) => tracing::warn!(queue, error = %e, "could not trim the dead set"),
                }
            }
        }
    }
}

async fn reap_queue(w: &Worker, queue: &str) {
    const LIMIT: usize = 100;
    loop {
        match w.client.reap(queue, LIMIT).await {
            Ok(r) => {
                if !r.workers.is_empty() {
                    tracing::warn!(queue, requeued = r.requeued, dead = r.killed, workers = ?r.workers,
                        "took back the jobs of workers whose lease expired");
                    w.metrics
                        .reaped
                        .with_label_values(&[queue, "requeued"])
                        .inc_by(r.requeued);
                    w.metrics
                        .reaped
                        .with_label_values(&[queue, "dead"])
                        .inc_by(r.killed);
                }
                w.metrics
                    .evicted(queue, r.evicted_by_age, r.evicted_by_count);
                if r.workers.len() < LIMIT {
                    return;
                }
            }
            Err(e) => {
                w.metrics.redis_errors.with_label_values(&["reap"]).inc();
                tracing::warn!(queue, error = %e, "reap failed");
                return;
            }
        }
    }
}

/// Subscribes to the served queues' wake channels and wakes the fetcher on every message.
/// When the subscription drops, it reconnects; meanwhile the fetcher falls back to polling.
async fn wake_loop(shared: Arc<Shared>) {
    use futures::StreamExt;
    let w = &shared.w;
    let channels: Vec<String> = w
        .cfg
        .queues
        .names()
        .iter()
        .map(|q| w.client.keys().queue(q).wake())
        .collect();
    let mut pause = Duration::from_millis(100);
    loop {
        let subscribed = async {
            let mut pubsub = w.client.redis_client().get_async_pubsub().await?;
            pubsub.subscribe(&channels).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match subscribed.await {
            Ok(mut pubsub) => {
                pause = Duration::from_millis(100);
                // Anything published while unsubscribed was missed: look once.
                shared.wake.notify_one();
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        () = shared.halt.cancelled() => return,
                        m = messages.next() => match m {
                            Some(_) => shared.wake.notify_one(),
                            None => break,
                        },
                    }
                }
                tracing::warn!("wake-up subscription closed; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to wake-ups; polling meanwhile"),
        }
        tokio::select! {
            () = shared.halt.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
