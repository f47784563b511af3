//! The worker's side of the kinds' fleet-wide limits (`[limits]` in a spec): a job of a
//! limited kind asks its limits right before it would run, and gives back its running slot
//! right after. A job told to wait is already in the scheduled set when the answer comes (the
//! script moved it there), so the worker only forgets it: nothing is settled, no attempt used.

use std::sync::Arc;

use super::state::Shared;
use crate::queue::limits::{LimitAsk, Taken};
use crate::queue::{Envelope, Leased};

/// A running slot taken for one run, given back when it ends.
pub(super) struct Slot {
    name: String,
    concurrency: u32,
}

/// Whether a job may run now.
pub(super) enum Gate {
    /// Run it: with a slot to give back (a kind with a concurrency), and the start time the
    /// limits counted (Redis's clock), for a kind with limits.
    Run {
        slot: Option<Slot>,
        start_ms: Option<i64>,
    },
    /// It waits in the scheduled set (or was taken back by the reaper): forget it.
    Gone,
    /// The limits could not be asked (Redis failed): hand it back to run a second later.
    Later,
}

/// Asks the limits of `kind`, if it has any, whether `job` may run now.
pub(super) async fn ask<S: Send + Sync + 'static>(
    shared: &Arc<Shared<S>>,
    job: &Leased,
    kind: &str,
) -> Gate {
    let free = Gate::Run {
        slot: None,
        start_ms: None,
    };
    let w = &shared.w;
    let Some(limits) = w.rt.registry.get(kind).and_then(|e| e.spec.limits.as_ref()) else {
        return free;
    };
    // A job that does not decode runs nowhere: the runner sends it to dead with the reason.
    let Ok(env) = serde_json::from_slice::<Envelope>(job.body_bytes()) else {
        return free;
    };
    let name = limits.name(kind, &env.args);
    let ask = LimitAsk {
        name: &name,
        concurrency: limits.concurrency(),
        rate: limits.rate.map(|r| (r.count, r.per)),
        recheck: w.cfg.lease,
    };
    let limited = |reason: &str| {
        w.metrics
            .limited
            .with_label_values(&[job.queue.as_str(), kind, reason])
            .inc();
    };
    match w.client.take_limit(job, &ask).await {
        Ok(Taken::Granted { start_ms }) => Gate::Run {
            slot: (ask.concurrency > 0).then_some(Slot {
                concurrency: ask.concurrency,
                name,
            }),
            start_ms: Some(start_ms),
        },
        Ok(Taken::WaitingForSlot { due_ms }) => {
            limited("concurrency");
            tracing::debug!(id = %job.id(), limit = %name, due_ms, "every running slot is held: waiting for one");
            Gate::Gone
        }
        Ok(Taken::WaitingForRate { due_ms }) => {
            limited("rate");
            tracing::debug!(id = %job.id(), limit = %name, due_ms, "the rate's starts are used up: waiting");
            Gate::Gone
        }
        Ok(Taken::Lost) => Gate::Gone,
        Err(e) => {
            w.metrics
                .redis_errors
                .with_label_values(&["limit_take"])
                .inc();
            tracing::warn!(id = %job.id(), limit = %name, error = %e, "could not ask the limits; the job is handed back");
            Gate::Later
        }
    }
}

/// Gives back the running slot of a run that ended. A failure only leaves the slot to the
/// end of this worker's lease, after which it is free anyway.
pub(super) async fn release<S: Send + Sync + 'static>(
    shared: &Arc<Shared<S>>,
    job: &Leased,
    slot: &Slot,
) {
    let w = &shared.w;
    if let Err(e) = w
        .client
        .release_limit(job, &slot.name, slot.concurrency)
        .await
    {
        w.metrics
            .redis_errors
            .with_label_values(&["limit_release"])
            .inc();
        tracing::warn!(id = %job.id(), limit = %slot.name, error = %e, "could not give back a running slot; it is free when this worker's lease ends");
    }
}
