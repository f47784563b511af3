//! Prometheus metrics of one process.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::queue::admin::QueueStats;

/// The metrics a worker exports; cheap to clone (the collectors are shared).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Jobs finished, by queue, kind and outcome (completed, retried, dead, snoozed, requeued).
    pub jobs: IntCounterVec,
    /// Run time of jobs, by queue and kind.
    pub duration: HistogramVec,
    /// Jobs per state, sampled from Redis.
    pub depth: IntGaugeVec,
    /// Dead jobs evicted by the caps, by queue and reason (age, count).
    pub dead_evictions: IntCounterVec,
    /// Jobs whose lease expired, by queue and action (requeued, dead).
    pub reaped: IntCounterVec,
    /// Leases a worker found taken from it at renewal.
    pub leases_lost: IntCounterVec,
    /// Failed Redis calls, by operation.
    pub redis_errors: IntCounterVec,
    /// Schedule ticks, by schedule and outcome: enqueued by this replica, duplicate (another
    /// replica had enqueued it), or lost (not enqueued before the following tick was due).
    pub ticks: IntCounterVec,
    /// Runs held back by their kind's limits, by queue, kind and reason (rate, concurrency).
    pub limited: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    /// A fresh set of the engine's metrics in a registry of its own, which `/metrics` serves.
    pub fn new() -> Self {
        let registry = Registry::new();
        let duration = HistogramVec::new(
            HistogramOpts::new("jobfleet_job_duration_seconds", "Run time of jobs").buckets(vec![
                0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
            ]),
            &["queue", "kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        let depth = IntGaugeVec::new(
            Opts::new("jobfleet_queue_jobs", "Jobs in a queue by state"),
            &["queue", "state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(depth.clone()))
            .expect("metric registered once");
        Self {
            jobs: counter(
                &registry,
                "jobfleet_jobs_total",
                "Jobs finished by queue, kind and outcome",
                &["queue", "kind", "outcome"],
            ),
            dead_evictions: counter(
                &registry,
                "jobfleet_dead_evictions_total",
                "Dead jobs evicted by the dead set's caps",
                &["queue", "reason"],
            ),
            reaped: counter(
                &registry,
                "jobfleet_jobs_reaped_total",
                "Jobs whose lease expired",
                &["queue", "action"],
            ),
            leases_lost: counter(
                &registry,
                "jobfleet_leases_lost_total",
                "Leases taken from this worker",
                &["queue"],
            ),
            redis_errors: counter(
                &registry,
                "jobfleet_redis_errors_total",
                "Failed Redis calls",
                &["op"],
            ),
            ticks: counter(
                &registry,
                "jobfleet_scheduler_ticks_total",
                "Schedule ticks by outcome: enqueued here, duplicate of another scheduler's, or lost",
                &["schedule", "outcome"],
            ),
            limited: counter(
                &registry,
                "jobfleet_jobs_limited_total",
                "Runs held back by their kind's fleet-wide limits, by reason (rate, concurrency)",
                &["queue", "kind", "reason"],
            ),
            duration,
            depth,
            registry,
        }
    }

    /// Records the sampled depths of a queue.
    pub fn observe_queue(&self, s: &QueueStats) {
        for (state, n) in [
            ("pending", s.pending),
            ("scheduled", s.scheduled),
            ("active", s.active),
            ("retry", s.retry),
            ("dead", s.dead),
        ] {
            self.depth
                .with_label_values(&[s.queue.as_str(), state])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts evictions reported by a script and logs them: an eviction is never silent.
    pub fn evicted(&self, queue: &str, by_age: u64, by_count: u64) {
        if by_age + by_count == 0 {
            return;
        }
        tracing::warn!(
            queue,
            by_age,
            by_count,
            "dead jobs evicted by the dead set's caps"
        );
        self.dead_evictions
            .with_label_values(&[queue, "age"])
            .inc_by(by_age);
        self.dead_evictions
            .with_label_values(&[queue, "count"])
            .inc_by(by_count);
    }

    /// The registry `/metrics` serves, for a process that adds collectors of its own (the
    /// web board's request counters).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
