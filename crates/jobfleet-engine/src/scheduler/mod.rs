//! The scheduler: enqueues every schedule of the job specs at its ticks, exactly once per tick
//! however many scheduler processes run.
//!
//! Every replica computes the same ticks and tries to enqueue each one through
//! `enqueue_tick.lua`, which claims (schedule, tick) and enqueues the job in one atomic step;
//! the job id is `<schedule>:<tick ms>`. The first replica wins, the others are told the tick is
//! taken, and a replica that dies takes no tick with it. Only this module enqueues periodic
//! jobs. `ticks` is the accounting: every tick that passes is enqueued, a duplicate, or lost,
//! and each lost one is logged and counted.

/// The cron parser, which stands below the job layer (specs parse their schedules with it);
/// re-exported under the name it had.
pub use crate::cron;
pub mod ticks;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use crate::cron::Cron;
use crate::job::Registry;
use crate::job::spec::Missed;
use crate::queue::priority::Priority;
use crate::queue::workers::SchedulerInfo;
use crate::queue::{NewJob, QueueClient, QueueError, now_ms};
use crate::telemetry::Metrics;
use crate::telemetry::http::Health;
use ticks::{Due, Ticks};

/// One schedule, ready to run.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The schedule's name, unique across all specs; part of every tick's job id.
    pub name: String,
    /// The kind of job each tick enqueues.
    pub kind: String,
    /// The queue of the kind's spec, which the ticks' jobs go to.
    pub queue: String,
    /// The cron expression as written in the spec, for display.
    pub expr: String,
    /// The parsed expression, which computes the ticks.
    pub cron: Cron,
    /// The time zone the expression is read in.
    pub tz: Tz,
    /// The args of every job enqueued, as JSON.
    pub args: serde_json::Value,
    /// What happens to ticks missed while no scheduler ran.
    pub missed: Missed,
    /// How far back a `run_once` catch-up may reach.
    pub catch_up: Duration,
    /// Runs allowed in all for every tick's job, from the kind's retry policy.
    pub max_attempts: u32,
    /// The level of the kind's spec, which the ticks' jobs get.
    pub priority: Priority,
}

impl Schedule {
    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.next_after(self.tz, after)
    }

    /// The id of the job of one tick: the same on every replica.
    pub fn job_id(&self, tick: DateTime<Utc>) -> String {
        format!("{}:{}", self.name, tick.timestamp_millis())
    }

    /// The job one tick enqueues.
    pub fn job(&self, tick: DateTime<Utc>) -> NewJob {
        NewJob::new(&self.kind, &self.queue, self.args.clone())
            .id(self.job_id(tick))
            .max_attempts(self.max_attempts)
            .priority(self.priority)
    }

    /// The latest tick at or before `now` that `run_once` should catch up on: after `last`
    /// (the last tick enqueued) and not older than the catch-up window. Pure.
    pub fn missed_tick(
        &self,
        last: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if self.missed != Missed::RunOnce {
            return None;
        }
        let window = chrono::Duration::from_std(self.catch_up).ok()?;
        let from = match last {
            Some(last) => last.max(now - window),
            // Never ran: nothing was missed yet.
            None => return None,
        };
        let mut latest = None;
        let mut t = from;
        for _ in 0..1_000_000 {
            match self.next_after(t) {
                Some(n) if n <= now => {
                    latest = Some(n);
                    t = n;
                }
                _ => break,
            }
        }
        latest
    }
}

/// Every schedule of the registry's specs, less those disabled in the configuration. Names
/// must be unique; a disabled name that matches no schedule is an error (a typo would
/// otherwise silently leave the schedule running).
pub fn schedules<S>(registry: &Registry<S>, disabled: &[String]) -> Result<Vec<Schedule>, String> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for spec in registry.specs() {
        for s in &spec.schedules {
            if !names.insert(s.name.clone()) {
                return Err(format!(
                    "jobs/{}.toml: schedule name {:?} is used twice",
                    spec.kind, s.name
                ));
            }
            let args = serde_json::to_value(&s.args)
                .map_err(|e| format!("jobs/{}.toml: schedule {:?} args: {e}", spec.kind, s.name))?;
            // The kind's own check: a tick whose args cannot decode would only ever go to dead.
            if let Some(entry) = registry.get(&spec.kind) {
                entry.validate(&args).map_err(|e| {
                    format!("jobs/{}.toml: schedule {:?} args: {e}", spec.kind, s.name)
                })?;
            }
            out.push(Schedule {
                name: s.name.clone(),
                kind: spec.kind.clone(),
                queue: spec.queue.clone(),
                expr: s.cron.as_str().to_owned(),
                cron: s.cron.cron().clone(),
                tz: s.timezone,
                args,
                missed: s.missed,
                catch_up: s.catch_up,
                max_attempts: spec.retry.max_attempts,
                priority: spec.priority,
            });
        }
    }
    let disabled: Vec<String> = disabled
        .iter()
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect();
    if let Some(unknown) = disabled.iter().find(|d| !names.contains(*d)) {
        return Err(format!(
            "scheduler.disabled: no schedule is named {unknown:?}"
        ));
    }
    out.retain(|s| !disabled.contains(&s.name));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A scheduler process.
#[derive(Debug)]
pub struct Scheduler {
    client: QueueClient,
    schedules: Vec<Schedule>,
    metrics: Metrics,
    health: Arc<Health>,
    /// The scrape target of the process's telemetry server, published in the registry.
    metrics_addr: Option<String>,
}

fn millis(t: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(t).single()
}

impl Scheduler {
    /// `client` should wait for every reply (no response timeout): a tick call that timed out
    /// may still be executed by Redis later, and its tick would then be counted lost although
    /// it was enqueued.
    pub fn new(
        client: QueueClient,
        schedules: Vec<Schedule>,
        metrics: Metrics,
        health: Arc<Health>,
    ) -> Self {
        Self {
            client,
            schedules,
            metrics,
            health,
            metrics_addr: None,
        }
    }

    /// Publishes where this scheduler's `/metrics` is served (`host:port`) in the registry.
    pub fn with_metrics_addr(mut self, target: Option<String>) -> Self {
        self.metrics_addr = target;
        self
    }

    /// Tries to enqueue one tick and counts the outcome: enqueued here, or a duplicate of
    /// another replica's.
    async fn fire(&self, s: &Schedule, tick: DateTime<Utc>) -> Result<(), QueueError> {
        let won = self
            .client
            .enqueue_tick(&s.name, tick.timestamp_millis(), s.job(tick))
            .await?;
        self.health.ok();
        let outcome = if won { "enqueued" } else { "duplicate" };
        self.metrics
            .ticks
            .with_label_values(&[s.name.as_str(), outcome])
            .inc();
        if won {
            tracing::info!(schedule = %s.name, kind = %s.kind, tick = %tick, id = %s.job_id(tick), "tick enqueued");
        } else {
            tracing::debug!(schedule = %s.name, tick = %tick, "tick already enqueued by another scheduler");
        }
        Ok(())
    }

    /// Enqueues one catch-up run for each `run_once` schedule whose last tick was missed.
    async fn catch_up(&self, now: DateTime<Utc>) {
        for s in &self.schedules {
            let last = match self.client.last_tick(&s.queue, &s.name).await {
                Ok(last) => last.and_then(|(t, _)| millis(t)),
                Err(e) => {
                    tracing::warn!(schedule = %s.name, error = %e, "cannot read the last tick; no catch-up");
                    continue;
                }
            };
            if let Some(tick) = s.missed_tick(last, now) {
                tracing::info!(schedule = %s.name, %tick, "catching up on a missed tick");
                if let Err(e) = self.fire(s, tick).await {
                    tracing::error!(schedule = %s.name, error = %e, "catch-up failed");
                }
            }
        }
    }

    /// Runs until `shutdown` resolves, then leaves the registry.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let cancel = CancellationToken::new();
        let stopper = {
            let cancel = cancel.clone();
            async move {
                shutdown.await;
                cancel.cancel();
            }
        };
        let info = SchedulerInfo {
            id: crate::queue::workers::new_worker_id(),
            host: crate::queue::workers::host_name(),
            pid: std::process::id(),
            started_at: now_ms(),
            heartbeat_at: now_ms(),
            metrics_addr: self.metrics_addr.clone(),
        };
        tokio::join!(
            stopper,
            self.ticks(cancel.clone()),
            self.announce(info.clone(), cancel.clone())
        );
        let leave = self.client.deregister_scheduler(&info.id);
        if !matches!(tokio::time::timeout(REGISTRY_CALL, leave).await, Ok(Ok(()))) {
            tracing::warn!("could not deregister; the entry expires by itself");
        }
    }

    /// Keeps this scheduler's description in the registry (`jobfleet workers`).
    async fn announce(&self, mut info: SchedulerInfo, cancel: CancellationToken) {
        loop {
            info.heartbeat_at = now_ms();
            // Bounded here, as the client waits for every reply.
            let beat = self.client.heartbeat_scheduler(&info, SCHEDULER_TTL);
            if !matches!(tokio::time::timeout(REGISTRY_CALL, beat).await, Ok(Ok(()))) {
                self.metrics
                    .redis_errors
                    .with_label_values(&["heartbeat"])
                    .inc();
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(SCHEDULER_HEARTBEAT) => {}
            }
        }
    }

    async fn ticks(&self, cancel: CancellationToken) {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = self.catch_up(Utc::now()) => {}
        }
        let now = Utc::now();
        let mut state: Vec<Ticks> = self.schedules.iter().map(|s| Ticks::new(s, now)).collect();
        let mut failed = vec![false; state.len()];
        tracing::info!(schedules = self.schedules.len(), "scheduler started");
        'run: loop {
            for ((s, t), failed) in self.schedules.iter().zip(&mut state).zip(&mut failed) {
                // The clock is read per schedule: a call before this one may have waited long.
                let due = t.due(s, Utc::now());
                self.report_lost(s, &due);
                *failed = false;
                let Some(tick) = due.attempt else { continue };
                let fired = tokio::select! {
                    () = cancel.cancelled() => {
                        tracing::warn!(schedule = %s.name, %tick, "stopped while a tick call was waiting for Redis: that tick may or may not be enqueued");
                        break 'run;
                    }
                    r = self.fire(s, tick) => r,
                };
                match fired {
                    Ok(()) => t.settled(s, tick),
                    Err(e) => {
                        self.metrics
                            .redis_errors
                            .with_label_values(&["enqueue_tick"])
                            .inc();
                        if t.failed() == 1 {
                            tracing::warn!(schedule = %s.name, %tick, error = %e,
                                "cannot enqueue the tick yet; retrying every {RETRY_PAUSE:?} until the next tick is due");
                        }
                        *failed = true;
                    }
                }
            }
            // Sleep in short stretches: a suspended host or a stepped clock is noticed within
            // seconds. A failed tick is retried after a pause (Redis refuses at once when it is
            // down: do not spin); one that became due meanwhile is taken at once.
            let now = Utc::now();
            let wait = state
                .iter()
                .zip(&failed)
                .filter_map(|(t, failed)| {
                    let due = t.next_due()?;
                    Some(match (due - now).to_std() {
                        Ok(until) if !until.is_zero() => until,
                        _ if *failed => RETRY_PAUSE,
                        _ => Duration::ZERO,
                    })
                })
                .min()
                .unwrap_or(IDLE_CHECK)
                .min(IDLE_CHECK);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Logs and counts the ticks a step found lost: each one once, by itself, or past the
    /// first `LISTED` of a long stall, in one line with the count and the last.
    fn report_lost(&self, s: &Schedule, due: &Due) {
        if due.lost_count == 0 {
            return;
        }
        self.metrics
            .ticks
            .with_label_values(&[s.name.as_str(), "lost"])
            .inc_by(due.lost_count);
        for lost in &due.lost {
            let why = if lost.attempts > 0 {
                "Redis did not take it before the next tick was due"
            } else {
                "never attempted: the scheduler was held up (a call waiting for Redis, a paused host, a clock step)"
            };
            tracing::error!(schedule = %s.name, tick = %lost.tick, id = %s.job_id(lost.tick),
                attempts = lost.attempts, reason = why, "tick lost");
        }
        if let Some(last) = due.last_unlisted {
            let more = due.lost_count - due.lost.len() as u64;
            tracing::error!(schedule = %s.name, count = more, last = %last,
                "ticks lost: the scheduler was held up for more ticks than are listed one by one");
        }
    }
}

/// The longest the scheduler sleeps at once.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// The pause before a failed tick call is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How often a scheduler refreshes its registry entry, how long the entry lives without
/// one, and the limit of one registry call.
const SCHEDULER_HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a scheduler's registry entry lives without a heartbeat; a scheduler that stops
/// reporting for longer is no longer listed.
pub const SCHEDULER_TTL: Duration = Duration::from_secs(15);
const REGISTRY_CALL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(expr: &str, missed: Missed) -> Schedule {
        Schedule {
            name: "s".into(),
            kind: "noop".into(),
            queue: "default".into(),
            expr: expr.into(),
            cron: Cron::parse(expr).unwrap(),
            tz: Tz::UTC,
            args: serde_json::json!({}),
            missed,
            catch_up: Duration::from_secs(3600),
            max_attempts: 3,
            priority: Priority::NORMAL,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn run_once_catches_up_on_the_latest_missed_tick_within_the_window() {
        let s = schedule("*/5 * * * *", Missed::RunOnce);
        let now = t("2026-11-22T10:17:00Z");
        // Last ran at 10:00; 10:05, 10:10 and 10:15 were missed: one run, for 10:15.
        assert_eq!(
            s.missed_tick(Some(t("2026-11-22T10:00:00Z")), now),
            Some(t("2026-11-22T10:15:00Z"))
        );
        // Nothing missed.
        assert_eq!(s.missed_tick(Some(t("2026-11-22T10:15:00Z")), now), None);
        // Missed long ago only: the window is an hour, the latest tick in it is still 10:15.
        assert_eq!(
            s.missed_tick(Some(t("2026-11-21T10:00:00Z")), now),
            Some(t("2026-11-22T10:15:00Z"))
        );
        // A daily job whose tick is older than the window is not caught up.
        let daily = schedule("0 0 * * *", Missed::RunOnce);
        assert_eq!(
            daily.missed_tick(Some(t("2026-11-20T00:00:00Z")), now),
            None
        );
        // Never ran, or skip: nothing.
        assert_eq!(s.missed_tick(None, now), None);
        let skip = schedule("*/5 * * * *", Missed::Skip);
        assert_eq!(skip.missed_tick(Some(t("2026-11-22T10:00:00Z")), now), None);
    }

    #[test]
    fn tick_jobs_have_deterministic_ids() {
        let s = schedule("* * * * * *", Missed::Skip);
        let tick = t("2026-11-22T10:17:01Z");
        assert_eq!(s.job_id(tick), "s:1795342621000");
        assert_eq!(s.job(tick).id.as_deref(), Some("s:1795342621000"));
    }
}
