//! The scheduler: enqueues every schedule of the job specs at its ticks, exactly once per tick
//! however many scheduler processes run.
//!
//! Every replica computes the same ticks and tries to enqueue each one through
//! `enqueue_tick.lua`, which claims (schedule, tick) and enqueues the job in one atomic step;
//! the job id is `<schedule>:<tick ms>`. The first replica wins, the others are told the tick is
//! taken, and a replica that dies takes no tick with it. Only this module enqueues periodic
//! jobs.

pub mod cron;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use crate::jobs::Registry;
use crate::jobs::spec::Missed;
use crate::queue::{NewJob, QueueClient};
use crate::telemetry::Metrics;
use crate::telemetry::http::Health;
use cron::Cron;

/// One schedule, ready to run.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub kind: String,
    pub queue: String,
    pub expr: String,
    pub cron: Cron,
    pub tz: Tz,
    pub args: serde_json::Value,
    pub missed: Missed,
    pub catch_up: Duration,
    pub max_attempts: u32,
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
pub fn schedules(registry: &Registry, disabled: &[String]) -> Result<Vec<Schedule>, String> {
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
                (entry.validate)(&args).map_err(|e| {
                    format!("jobs/{}.toml: schedule {:?} args: {e}", spec.kind, s.name)
                })?;
            }
            out.push(Schedule {
                name: s.name.clone(),
                kind: spec.kind.clone(),
                queue: spec.queue.clone(),
                expr: s.cron.clone(),
                cron: Cron::parse(&s.cron).map_err(|e| format!("jobs/{}.toml: {e}", spec.kind))?,
                tz: s.timezone.parse().map_err(|_| {
                    format!("jobs/{}.toml: bad time zone {:?}", spec.kind, s.timezone)
                })?,
                args,
                missed: s.missed,
                catch_up: s.catch_up,
                max_attempts: spec.retry.max_attempts,
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
}

fn millis(t: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(t).single()
}

impl Scheduler {
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
        }
    }

    /// Tries to enqueue one tick; returns whether this replica did, or the error.
    async fn fire(
        &self,
        s: &Schedule,
        tick: DateTime<Utc>,
    ) -> Result<bool, crate::queue::QueueError> {
        let won = self
            .client
            .enqueue_tick(&s.name, tick.timestamp_millis(), s.job(tick))
            .await?;
        self.health.ok();
        let outcome = if won { "enqueued" } else { "taken" };
        self.metrics
            .ticks
            .with_label_values(&[s.name.as_str(), outcome])
            .inc();
        if won {
            tracing::info!(schedule = %s.name, kind = %s.kind, tick = %tick, id = %s.job_id(tick), "tick enqueued");
        } else {
            tracing::debug!(schedule = %s.name, tick = %tick, "tick already enqueued by another scheduler");
        }
        Ok(won)
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

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let cancel = CancellationToken::new();
        let stopper = {
            let cancel = cancel.clone();
            async move {
                shutdown.await;
                cancel.cancel();
            }
        };
        tokio::join!(stopper, self.ticks(cancel));
    }

    async fn ticks(&self, cancel: CancellationToken) {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = self.catch_up(Utc::now()) => {}
        }
        let now = Utc::now();
        let mut next: Vec<Option<DateTime<Utc>>> =
            self.schedules.iter().map(|s| s.next_after(now)).collect();
        tracing::info!(schedules = self.schedules.len(), "scheduler started");
        loop {
            let soonest = next.iter().flatten().min().copied();
            // Sleep in short stretches: a suspended host or a stepped clock is noticed within
            // seconds, and the health check learns that Redis still answers while no tick is due.
            let wait = soonest.map_or(IDLE_CHECK, |t| {
                (t - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(IDLE_CHECK)
            });
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            let now = Utc::now();
            if soonest.is_none_or(|t| t > now) {
                self.check_redis(&cancel).await;
                continue;
            }
            let mut failed = false;
            for (s, n) in self.schedules.iter().zip(next.iter_mut()) {
                let Some(tick) = *n else { continue };
                if tick > now {
                    continue;
                }
                let fired = tokio::select! {
                    () = cancel.cancelled() => break,
                    r = self.fire(s, tick) => r,
                };
                match fired {
                    // The next tick after now, not after this one: ticks that passed while the
                    // scheduler was held up are not replayed in a burst (their policy is skip).
                    Ok(_) => *n = s.next_after(tick.max(Utc::now())),
                    Err(e) => {
                        self.metrics
                            .redis_errors
                            .with_label_values(&["enqueue_tick"])
                            .inc();
                        let following = s.next_after(tick);
                        if following.is_some_and(|f| f <= Utc::now()) {
                            tracing::error!(schedule = %s.name, %tick, error = %e, "tick lost: Redis was unreachable until the next tick");
                            *n = s.next_after(Utc::now());
                        } else {
                            tracing::warn!(schedule = %s.name, %tick, error = %e, "cannot enqueue the tick yet; retrying");
                        }
                        failed = true;
                    }
                }
            }
            if failed {
                // Redis refuses at once when it is down: do not spin.
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Tells the health check whether Redis answers, when no tick has done so lately.
    async fn check_redis(&self, cancel: &CancellationToken) {
        let mut con = self.client.connection();
        let ping = async { redis::cmd("PING").query_async::<String>(&mut con).await };
        tokio::select! {
            () = cancel.cancelled() => {}
            r = tokio::time::timeout(IDLE_CHECK, ping) => match r {
                Ok(Ok(_)) => self.health.ok(),
                Ok(Err(e)) => tracing::warn!(error = %e, "Redis does not answer"),
                Err(_) => tracing::warn!("Redis did not answer within {IDLE_CHECK:?}"),
            },
        }
    }
}

/// The longest the scheduler sleeps at once.
const IDLE_CHECK: Duration = Duration::from_secs(5);

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
