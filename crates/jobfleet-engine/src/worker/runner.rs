//! Runs one leased job: decode, find the handler, run it under its timeout with panics caught,
//! and turn the result into what happens next.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::Instrument;

use crate::job::registry::Entry;
use crate::job::{Attempt, Client, JobCancel, JobContext, JobError, Registry, error_chain};
use crate::queue::{Backoff, Envelope, Leased, SettleAction, now_ms};

/// What running a job needs besides the job: the kinds, the application's state, and the
/// client a handler enqueues further jobs with.
pub struct Runtime<S> {
    /// The kinds this worker runs.
    pub registry: Arc<Registry<S>>,
    /// The application's state, handed to every handler.
    pub state: Arc<S>,
    /// Enqueues with the specs of `registry` applied.
    pub client: Client,
}

impl<S> std::fmt::Debug for Runtime<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl<S> Runtime<S> {
    fn context(&self, attempt: Attempt) -> JobContext<S> {
        JobContext::new(attempt, self.state.clone(), self.client.clone())
    }
}

/// What happens to a job after a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Succeeded: its data is deleted.
    Ack,
    /// Did not succeed: retried, snoozed, handed back or killed, with the error text.
    Settle {
        /// Which of retry, snooze, hand-back or kill.
        action: SettleAction,
        /// When a retry or snooze is due, in ms since the epoch.
        due_ms: i64,
        /// The error text stored in the header.
        error: String,
    },
}

impl Outcome {
    /// The metric label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ack => "completed",
            Outcome::Settle { action, .. } => match action {
                SettleAction::Retry => "retried",
                SettleAction::Snooze => "snoozed",
                SettleAction::Requeue => "requeued",
                SettleAction::Kill => "dead",
            },
        }
    }

    pub(crate) fn kill(error: String) -> Self {
        Outcome::Settle {
            action: SettleAction::Kill,
            due_ms: 0,
            error,
        }
    }

    /// Run again after `after`, the attempt not consumed.
    pub(crate) fn snooze_for(after: Duration) -> Self {
        Outcome::Settle {
            action: SettleAction::Snooze,
            due_ms: now_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            error: String::new(),
        }
    }

    pub(crate) fn requeue() -> Self {
        Outcome::Settle {
            action: SettleAction::Requeue,
            due_ms: 0,
            error: String::new(),
        }
    }
}

/// The result of one run, with what the metrics and logs need.
#[derive(Debug)]
pub struct Ran {
    /// The kind of the job that ran.
    pub kind: String,
    /// What happens to the job now.
    pub outcome: Outcome,
    /// How long the run took.
    pub elapsed: Duration,
}

/// Decides between retry and dead for a failed attempt. Pure: clock and randomness passed in.
pub fn failure(
    attempt: u32,
    max_attempts: u32,
    backoff: &Backoff,
    error: String,
    now_ms: i64,
    unit: f64,
) -> Outcome {
    failure_after(
        attempt,
        max_attempts,
        backoff,
        Duration::ZERO,
        error,
        now_ms,
        unit,
    )
}

/// `failure` for an attempt that must not be retried before `not_before` (a 429's
/// Retry-After). The retry waits the longer of the two delays: the server's is a minimum, and
/// the backoff still spaces out retries against a server that keeps answering "retry in 1 s".
/// The attempt is consumed, so a server that never stops refusing ends in the dead set.
pub fn failure_after(
    attempt: u32,
    max_attempts: u32,
    backoff: &Backoff,
    not_before: Duration,
    error: String,
    now_ms: i64,
    unit: f64,
) -> Outcome {
    if attempt >= max_attempts {
        return Outcome::kill(format!("{error} (attempt {attempt} of {max_attempts})"));
    }
    let delay = backoff.delay(attempt, unit).max(not_before);
    Outcome::Settle {
        action: SettleAction::Retry,
        due_ms: now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        error,
    }
}

/// Runs one job to an outcome. Never panics and never returns an error: whatever goes wrong
/// becomes the job's outcome, so a bad job cannot take its worker down.
pub async fn run<S: Send + Sync + 'static>(rt: &Runtime<S>, job: &Leased) -> Ran {
    run_cancellable(rt, job, &JobCancel::new(), None).await
}

/// `run`, with the cancellation an operator's `jobs cancel` signals: a run asked to stop that
/// ends in an error ends as cancelled (dead, `cancelled by <who>`), not as a failure to retry.
///
/// `started_at_ms` is the start the kind's limits counted, for a kind that has them.
pub async fn run_cancellable<S: Send + Sync + 'static>(
    rt: &Runtime<S>,
    job: &Leased,
    cancel: &JobCancel,
    started_at_ms: Option<i64>,
) -> Ran {
    let started = Instant::now();
    let id = job.id();
    let decoded = job
        .header
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|h| job.body().map(|body| (h, body)).map_err(|e| e.to_string()))
        .and_then(|(h, body)| {
            serde_json::from_str::<Envelope>(body)
                .map(|env| (h, env))
                .map_err(|e| e.to_string())
        });
    let (header, mut env) = match decoded {
        Ok(ok) => ok,
        Err(e) => {
            tracing::error!(%id, queue = %job.queue, error = %e, "undecodable job payload, moving it to dead");
            return Ran {
                kind: "undecodable".to_owned(),
                outcome: Outcome::kill(format!("undecodable payload: {e}")),
                elapsed: started.elapsed(),
            };
        }
    };
    // A header whose attempts are used up (written by hand, by another producer, or damaged)
    // must not run: its run would be one the job's policy does not allow.
    if header.exhausted() {
        tracing::error!(%id, queue = %job.queue, kind = %env.kind, attempts = header.attempts, max_attempts = header.max_attempts, "job has no attempts left, moving it to dead");
        return Ran {
            outcome: Outcome::kill(format!(
                "no attempts left: {} of {} used",
                header.attempts, header.max_attempts
            )),
            kind: env.kind,
            elapsed: started.elapsed(),
        };
    }
    let Some(entry) = rt.registry.get(&env.kind) else {
        tracing::error!(%id, queue = %job.queue, kind = %env.kind, "unknown job kind, moving it to dead");
        return Ran {
            outcome: Outcome::kill(format!(
                "unknown job kind {:?}: no handler in this worker",
                env.kind
            )),
            kind: env.kind,
            elapsed: started.elapsed(),
        };
    };
    let attempt = header.next_attempt();
    let max_attempts = header.max_attempts;
    let span = tracing::info_span!("job", kind = %env.kind, %id, queue = %job.queue, attempt);
    let ctx = rt
        .context(Attempt {
            id,
            queue: job.queue.clone(),
            attempt,
            max_attempts,
            enqueued_at_ms: env.created_at,
        })
        .with_cancel(cancel.clone())
        .with_flow_result(env.flow_result.take());
    let ctx = match started_at_ms {
        Some(at) => ctx.with_started_at(at),
        None => ctx,
    };
    let timeout = entry.spec.timeout;
    let called = call(entry, std::mem::take(&mut env.args), ctx, span.clone()).await;
    let elapsed = started.elapsed();
    let backoff = env.backoff.unwrap_or_else(|| entry.spec.retry.backoff());
    let fail = |error: String, not_before: Duration| {
        failure_after(
            attempt,
            max_attempts,
            &backoff,
            not_before,
            error,
            now_ms(),
            rand::random(),
        )
    };
    let outcome = match called {
        Called::Done(Ok(())) => Outcome::Ack,
        _ if cancel.is_cancelled() => Outcome::kill(format!(
            "cancelled by {}",
            cancel.by().unwrap_or("an operator")
        )),
        Called::Done(Err(JobError::Snooze(after))) => Outcome::snooze_for(after),
        Called::Done(Err(JobError::Fatal(e))) => {
            Outcome::kill(format!("fatal: {}", error_chain(e.as_ref())))
        }
        Called::Done(Err(JobError::Retry(e))) => fail(error_chain(e.as_ref()), Duration::ZERO),
        Called::Done(Err(JobError::RetryAfter(e, after))) => fail(error_chain(e.as_ref()), after),
        broke => fail(broke.describe(timeout), Duration::ZERO),
    };
    span.in_scope(|| match &outcome {
        Outcome::Ack => tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "job completed"),
        Outcome::Settle { action, error, .. } => {
            tracing::warn!(elapsed_ms = elapsed.as_millis() as u64, outcome = ?action, %error, "job did not succeed")
        }
    });
    Ran {
        kind: env.kind,
        outcome,
        elapsed,
    }
}

/// Runs one job in the foreground, outside any queue (`jobfleet run`): the same handler,
/// timeout and panic handling as a worker, but the outcome is returned instead of settled.
pub async fn run_inline<S: Send + Sync + 'static>(
    rt: &Runtime<S>,
    kind: &str,
    args: serde_json::Value,
) -> Result<(), String> {
    let entry = rt.registry.get(kind).ok_or_else(|| {
        rt.registry
            .spec(kind)
            .map_or_else(|e| e.to_string(), |_| format!("no handler for {kind}"))
    })?;
    entry.validate(&args)?;
    let id = format!("inline-{}", ulid::Ulid::generate());
    let span = tracing::info_span!("job", kind, %id, queue = "inline", attempt = 1);
    let ctx = rt.context(Attempt {
        id,
        queue: "inline".to_owned(),
        attempt: 1,
        max_attempts: 1,
        enqueued_at_ms: now_ms(),
    });
    match call(entry, args, ctx, span).await {
        Called::Done(Ok(())) => Ok(()),
        Called::Done(Err(JobError::Snooze(after))) => Err(format!(
            "the job asked to run again in {}",
            humantime::format_duration(after)
        )),
        Called::Done(Err(JobError::Fatal(e) | JobError::Retry(e) | JobError::RetryAfter(e, _))) => {
            Err(error_chain(e.as_ref()))
        }
        broke => Err(broke.describe(entry.spec.timeout)),
    }
}

/// How a handler call ended.
enum Called {
    Done(Result<(), JobError>),
    TimedOut,
    Panicked(String),
}

impl Called {
    /// The error text of a call that did not return.
    fn describe(&self, timeout: std::time::Duration) -> String {
        match self {
            Called::TimedOut => format!("timed out after {}", humantime::format_duration(timeout)),
            Called::Panicked(message) => format!("panicked: {message}"),
            Called::Done(_) => "returned".to_owned(),
        }
    }
}

/// Calls a handler under its kind's timeout, inside its span, with panics caught: the one
/// place where a worker and `jobfleet run` execute job code.
async fn call<S>(
    entry: &Entry<S>,
    args: serde_json::Value,
    ctx: JobContext<S>,
    span: tracing::Span,
) -> Called {
    let fut = entry.run(args, ctx);
    match AssertUnwindSafe(tokio::time::timeout(entry.spec.timeout, fut))
        .catch_unwind()
        .instrument(span)
        .await
    {
        Ok(Ok(result)) => Called::Done(result),
        Ok(Err(_elapsed)) => Called::TimedOut,
        Err(panic) => Called::Panicked(panic_message(panic.as_ref())),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(60),
        jitter: 0.0,
    };

    #[test]
    fn failures_retry_with_backoff_until_the_last_attempt() {
        let o = failure(2, 5, &POLICY, "boom".into(), 1_000, 0.3);
        assert_eq!(
            o,
            Outcome::Settle {
                action: SettleAction::Retry,
                due_ms: 21_000,
                error: "boom".into()
            }
        );
        let o = failure(5, 5, &POLICY, "boom".into(), 1_000, 0.3);
        assert_eq!(o, Outcome::kill("boom (attempt 5 of 5)".into()));
    }

    #[test]
    fn retry_after_waits_the_longer_of_its_delay_and_the_backoff() {
        // Attempt 2 backs off 20 s: a Retry-After of 45 s wins, one of 5 s does not.
        let o = failure_after(
            2,
            5,
            &POLICY,
            Duration::from_secs(45),
            "429".into(),
            1_000,
            0.3,
        );
        assert_eq!(
            o,
            Outcome::Settle {
                action: SettleAction::Retry,
                due_ms: 46_000,
                error: "429".into()
            }
        );
        let o = failure_after(
            2,
            5,
            &POLICY,
            Duration::from_secs(5),
            "429".into(),
            1_000,
            0.3,
        );
        assert!(matches!(o, Outcome::Settle { due_ms: 21_000, .. }), "{o:?}");
        // It still consumes an attempt: on the last one the job goes to dead.
        let o = failure_after(
            5,
            5,
            &POLICY,
            Duration::from_secs(45),
            "429".into(),
            1_000,
            0.3,
        );
        assert_eq!(o, Outcome::kill("429 (attempt 5 of 5)".into()));
    }

    #[test]
    fn panic_payloads_become_text() {
        let p = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "at 3");
    }
}
