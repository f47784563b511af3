//! The background loops of a worker: lease renewal and the registry entry (heartbeat), the
//! reaper and queue sampling (maintenance), and the wake-up subscription.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::state::{Shared, Worker};
use crate::queue::now_ms;
use crate::queue::workers::{InFlight, WorkerInfo};

/// Renews leases and the worker's registry entry every lease/3.
pub(super) async fn heartbeat_loop<S: Send + Sync + 'static>(shared: Arc<Shared<S>>) {
    let every = shared.w.cfg.lease / 3;
    loop {
        tokio::select! {
            () = shared.halt.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        heartbeat_once(&shared).await;
    }
}

pub(super) async fn heartbeat_once<S: Send + Sync + 'static>(shared: &Shared<S>) {
    let w = &shared.w;
    // Renewals run concurrently and each gets at most lease/3: one slow call must not let the
    // other queues' leases run out.
    let limit = w.cfg.lease / 3;
    let renewals = shared
        .held_by_queue()
        .into_iter()
        .map(|(queue, jobs)| async move {
            let result =
                tokio::time::timeout(limit, w.client.extend(&queue, &w.cfg.id, w.cfg.lease)).await;
            (queue, jobs, result)
        });
    for (queue, jobs, result) in futures::future::join_all(renewals).await {
        match result {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => {
                let lost: Vec<String> = jobs.iter().map(|(_, j)| j.id()).collect();
                tracing::warn!(queue, lost = ?lost, "lease lost: the reaper took these jobs back; their results will be ignored");
                w.metrics
                    .leases_lost
                    .with_label_values(&[queue.as_str()])
                    .inc_by(lost.len() as u64);
                let mut held = shared.held();
                for (seq, _) in &jobs {
                    held.remove(seq);
                }
            }
            Ok(Err(e)) => {
                w.metrics.redis_errors.with_label_values(&["extend"]).inc();
                tracing::error!(queue, error = %e, "could not renew the lease");
            }
            Err(_) => {
                w.metrics.redis_errors.with_label_values(&["extend"]).inc();
                tracing::error!(queue, "renewing the lease timed out");
            }
        }
    }
    let in_flight = shared
        .held()
        .values()
        .map(|h| InFlight {
            id: h.job.id(),
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
        metrics_addr: w.metrics_addr.clone(),
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
pub(super) async fn maintenance_loop<S: Send + Sync + 'static>(shared: Arc<Shared<S>>) {
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
            // The ends of flow children that the worker which ended them could not deliver
            // (it died, or Redis failed it), and those of the reaper's and operators' kills.
            if let Err(e) = w.client.deliver_flow_reports(&queue).await {
                tracing::warn!(queue, error = %e, "could not deliver the ends of flow children");
            }
            match w.client.stats(&queue).await {
                Ok(s) => w.metrics.observe_queue(&s),
                Err(e) => tracing::warn!(queue, error = %e, "could not sample queue depths"),
            }
            if tick.is_multiple_of(12) {
                match w.client.trim_dead(&queue).await {
                    Ok((age, count)) => w.metrics.evicted(&queue, age, count),
                    Err(e) => tracing::warn!(queue, error = %e, "could not trim the dead set"),
                }
            }
        }
    }
}

async fn reap_queue<S: Send + Sync + 'static>(w: &Worker<S>, queue: &str) {
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
pub(super) async fn wake_loop<S: Send + Sync + 'static>(shared: Arc<Shared<S>>) {
    use futures::StreamExt;
    let w = &shared.w;
    let queues = w.cfg.queues.names();
    let mut pause = Duration::from_millis(100);
    loop {
        match w.client.wake_ups(&queues).await {
            Ok(mut messages) => {
                pause = Duration::from_millis(100);
                // Anything published while unsubscribed was missed: look once.
                shared.wake.notify_one();
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

/// How often a worker looks for cancel marks on the jobs it runs.
const CANCEL_POLL: Duration = Duration::from_millis(500);

/// Reads the cancel marks (`jobfleet jobs cancel`) of the jobs this worker runs, one `MGET`
/// per queue every half second while it runs any, and signals the runs that were cancelled.
/// An idle worker sends nothing.
pub(super) async fn cancel_loop<S: Send + Sync + 'static>(shared: Arc<Shared<S>>) {
    loop {
        tokio::select! {
            () = shared.halt.cancelled() => return,
            () = tokio::time::sleep(CANCEL_POLL) => {}
        }
        for (queue, jobs) in running_by_queue(&shared) {
            let ids: Vec<String> = jobs.iter().map(|(_, id)| id.clone()).collect();
            match shared.w.client.cancel_requests(&queue, &ids).await {
                Ok(marks) => {
                    let held = shared.held();
                    for ((seq, id), who) in jobs.iter().zip(marks) {
                        if let (Some(who), Some(h)) = (who, held.get(seq))
                            && !h.cancel.is_cancelled()
                        {
                            tracing::info!(%id, %queue, by = %who, "job cancelled; asking its run to stop");
                            h.cancel.cancel(&who);
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, %queue, "cannot read cancel marks"),
            }
        }
    }
}

/// The running jobs (started, not cancelled yet), grouped by queue: (sequence, id).
fn running_by_queue<S>(shared: &Shared<S>) -> HashMap<String, Vec<(u64, String)>> {
    let mut by_queue: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for (seq, h) in shared.held().iter() {
        if h.started_at.is_some() && !h.cancel.is_cancelled() {
            by_queue
                .entry(h.job.queue.clone())
                .or_default()
                .push((*seq, h.job.id()));
        }
    }
    by_queue
}
