//! The acker: settles finished jobs in batches, and hands held jobs back at shutdown.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::runner::{Outcome, Ran};
use super::state::{MAX_BATCH, Shared, WorkerReport};
use crate::queue::{Call, Leased, QueueError, Settle, SettleAction};

/// A finished run on its way to the acker.
pub(super) struct Finished {
    pub seq: u64,
    pub job: Arc<Leased>,
    pub ran: Ran,
}

/// The two kinds of settling call, each a lane of its own (see `queue::Call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lane {
    Ack,
    Settle,
}

impl Lane {
    fn of(f: &Finished) -> Self {
        if f.ran.outcome == Outcome::Ack {
            Lane::Ack
        } else {
            Lane::Settle
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lane::Ack => "ack",
            Lane::Settle => "settle",
        }
    }
}

/// A call that got no answer: kept whole (the same jobs in the same order under the same
/// `Call`) and sent again as it is, so that if Redis ran it before the answer was lost it
/// answers what it did. Until it has an answer, no other call goes out on its queue and lane:
/// Redis remembers only a lane's last reply.
struct Unanswered {
    queue: String,
    lane: Lane,
    call: Call,
    items: Vec<Finished>,
}

/// Settles finished jobs: everything that finished since the last call goes in one script
/// call per queue and lane. Results that could not be written are kept (the jobs stay held, so
/// their leases are renewed) and tried again.
pub(super) async fn ack_loop<S: Send + Sync + 'static>(
    shared: Arc<Shared<S>>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    let mut unanswered: Vec<Unanswered> = Vec::new();
    let mut waiting: Vec<Finished> = Vec::new();
    let small = shared.w.cfg.concurrency.div_ceil(2);
    loop {
        let received = if unanswered.is_empty() && waiting.is_empty() {
            rx.recv_many(&mut buf, MAX_BATCH).await
        } else {
            // On timeout it is time to try the unanswered calls again.
            tokio::time::timeout(Duration::from_secs(1), rx.recv_many(&mut buf, MAX_BATCH))
                .await
                .unwrap_or(1)
        };
        if received == 0 {
            break;
        }
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
        let mut results = std::mem::take(&mut waiting);
        results.append(&mut buf);
        (unanswered, waiting) = flush(&shared, std::mem::take(&mut unanswered), results).await;
    }
    if !unanswered.is_empty() || !waiting.is_empty() {
        let (left, rest) = flush(&shared, unanswered, waiting).await;
        let jobs = left.iter().map(|u| u.items.len()).sum::<usize>() + rest.len();
        if jobs > 0 {
            tracing::error!(
                jobs,
                "results could not be written; those jobs are handed back or their leases expire"
            );
        }
    }
}

/// Sends the unanswered calls again, then one new call per queue and lane for `results`
/// (holding back those whose lane still has an unanswered call). Returns what is still
/// unanswered and the results held back.
async fn flush<S: Send + Sync + 'static>(
    shared: &Shared<S>,
    unanswered: Vec<Unanswered>,
    results: Vec<Finished>,
) -> (Vec<Unanswered>, Vec<Finished>) {
    let mut report = WorkerReport::default();
    // Each written result with whether the store found it stale (and so changed nothing).
    let mut written: Vec<(Finished, bool)> = Vec::new();
    let mut still: Vec<Unanswered> = Vec::new();
    for u in unanswered {
        match send(shared, &u, &mut report).await {
            Some(stale_at) => written.extend(flag_stale(u.items, &stale_at)),
            None => still.push(u),
        }
    }
    let blocked: HashSet<(String, Lane)> =
        still.iter().map(|u| (u.queue.clone(), u.lane)).collect();
    let mut waiting = Vec::new();
    let mut calls: HashMap<(String, Lane), Vec<Finished>> = HashMap::new();
    for f in results {
        let key = (f.job.queue.clone(), Lane::of(&f));
        if blocked.contains(&key) {
            waiting.push(f);
        } else {
            calls.entry(key).or_default().push(f);
        }
    }
    for ((queue, lane), items) in calls {
        let u = Unanswered {
            queue,
            lane,
            call: Call::new(lane.name()),
            items,
        };
        match send(shared, &u, &mut report).await {
            Some(stale_at) => written.extend(flag_stale(u.items, &stale_at)),
            None => still.push(u),
        }
    }
    {
        let mut held = shared.held();
        for (f, _) in &written {
            held.remove(&f.seq);
        }
    }
    record_metrics(shared, &written);
    deliver_flows(shared, &written);
    if report.stale > 0 {
        tracing::warn!(
            stale = report.stale,
            "results ignored: those jobs' leases had expired and moved on"
        );
    }
    shared.add_report(report);
    (still, waiting)
}

/// Delivers the ends of flow children this flush wrote to their flows' outboxes, in the
/// background: the acker goes on, and what a delivery misses the maintenance loop finds.
fn deliver_flows<S: Send + Sync + 'static>(shared: &Shared<S>, written: &[(Finished, bool)]) {
    let queues: HashSet<&str> = written
        .iter()
        .filter(|(f, stale)| !stale && f.job.may_be_flow_child())
        .map(|(f, _)| f.job.queue.as_str())
        .collect();
    for queue in queues {
        let client = shared.w.client.clone();
        let queue = queue.to_owned();
        tokio::spawn(async move {
            if let Err(e) = client.deliver_flow_reports(&queue).await {
                tracing::warn!(queue, error = %e, "could not deliver the ends of flow children; the maintenance loop will");
            }
        });
    }
}

/// Sends one call (retrying it for up to a lease) and adds what the store did to `report`.
/// Returns the positions of the stale results, or None when the call got no answer.
async fn send<S: Send + Sync + 'static>(
    shared: &Shared<S>,
    u: &Unanswered,
    report: &mut WorkerReport,
) -> Option<Vec<usize>> {
    let w = &shared.w;
    let me = w.cfg.id.as_str();
    match u.lane {
        Lane::Ack => {
            let jobs: Vec<&Leased> = u.items.iter().map(|f| f.job.as_ref()).collect();
            let r = persist(shared, "ack", || w.client.ack(&u.queue, me, &u.call, &jobs)).await?;
            report.completed += r.acked;
            report.stale += r.stale;
            Some(r.stale_at)
        }
        Lane::Settle => {
            let outcomes: Vec<Settle<'_>> = u.items.iter().map(settle_of).collect();
            let r = persist(shared, "settle", || {
                w.client.settle(&u.queue, me, &u.call, &outcomes)
            })
            .await?;
            report.retried += r.retried;
            report.dead += r.killed;
            report.snoozed += r.snoozed;
            report.requeued += r.requeued;
            report.stale += r.stale;
            w.metrics
                .evicted(&u.queue, r.evicted_by_age, r.evicted_by_count);
            Some(r.stale_at)
        }
    }
}

/// Pairs each result with whether the store reported it stale (by position in the call).
fn flag_stale(batch: Vec<Finished>, stale_at: &[usize]) -> impl Iterator<Item = (Finished, bool)> {
    let mut stale = vec![false; batch.len()];
    for &i in stale_at {
        if let Some(s) = stale.get_mut(i) {
            *s = true;
        }
    }
    batch.into_iter().zip(stale)
}

fn settle_of(f: &Finished) -> Settle<'_> {
    match &f.ran.outcome {
        Outcome::Settle {
            action,
            due_ms,
            error,
        } => Settle {
            job: &f.job,
            action: *action,
            due_ms: *due_ms,
            error: error.clone(),
        },
        Outcome::Ack => unreachable!("acks are written by ack, not settle"),
    }
}

/// One counter update per (queue, kind, outcome) and one histogram lookup per (queue, kind)
/// for the whole batch: label lookups hash strings, which is not free at 100,000 jobs/s. A
/// result the store found stale changed nothing, so it counts as `stale`, never as what the
/// handler returned: another worker's result for the same job is the one that counts.
fn record_metrics<S: Send + Sync + 'static>(shared: &Shared<S>, batch: &[(Finished, bool)]) {
    let metrics = &shared.w.metrics;
    let mut counts: HashMap<(&str, &str, &str), u64> = HashMap::new();
    let mut timings: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
    for (f, stale) in batch {
        let (queue, kind) = (f.job.queue.as_str(), f.ran.kind.as_str());
        let outcome = if *stale {
            "stale"
        } else {
            f.ran.outcome.label()
        };
        *counts.entry((queue, kind, outcome)).or_default() += 1;
        timings
            .entry((queue, kind))
            .or_default()
            .push(f.ran.elapsed.as_secs_f64());
    }
    for ((queue, kind, outcome), n) in counts {
        metrics
            .jobs
            .with_label_values(&[queue, kind, outcome])
            .inc_by(n);
    }
    for ((queue, kind), secs) in timings {
        let histogram = metrics.duration.with_label_values(&[queue, kind]);
        for s in secs {
            histogram.observe(s);
        }
    }
}

/// Retries a settlement until it lands, for at most one lease: after that the lease has run
/// out and the reaper gives the job to another worker anyway (at-least-once delivery).
async fn persist<S: Send + Sync + 'static, T, F, Fut>(
    shared: &Shared<S>,
    op: &str,
    call: F,
) -> Option<T>
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
                    tracing::error!(op, error = %e, "giving up for now; the results are kept and tried again");
                    return None;
                }
                tracing::warn!(op, error = %e, "settling failed, retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Hands every job still held (cancelled at the deadline, or never settled) back to pending.
pub(super) async fn hand_back<S: Send + Sync + 'static>(shared: &Shared<S>) {
    let leftovers = shared.held_by_queue();
    shared.held().clear();
    let mut report = WorkerReport::default();
    let me = shared.w.cfg.id.as_str();
    for (queue, jobs) in leftovers {
        let settles: Vec<Settle<'_>> = jobs
            .iter()
            .map(|(_, job)| Settle {
                job,
                action: SettleAction::Requeue,
                due_ms: 0,
                error: String::new(),
            })
            .collect();
        let call = Call::new("requeue");
        match persist(shared, "requeue", || {
            shared.w.client.settle(&queue, me, &call, &settles)
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
    shared.add_report(report);
}
