//! What every request handler shares: the store, the board's records, the kinds' specs and
//! schedules, the settings, and the pages an application mounted. It holds no state of its
//! own beyond what Redis holds, so any number of replicas can serve behind a load balancer.

use std::sync::Arc;

use jobfleet_engine::job::{RegistryError, Specs};
use jobfleet_engine::queue::{NewJob, QueueClient};
use jobfleet_engine::scheduler::Schedule;
use jobfleet_engine::telemetry::Metrics;
use jobfleet_engine::telemetry::http::Health;
use serde_json::Value;

use crate::metrics::WebMetrics;
use crate::settings::WebSettings;
use crate::store::WebStore;
use crate::store::audit::AuditEntry;

/// Turns a kind's name and args into a job with its spec applied, refusing args the kind's
/// struct does not accept (the registry's `new_job`, without the handlers' state type).
pub type NewJobFn = Arc<dyn Fn(&str, Value) -> Result<NewJob, RegistryError> + Send + Sync>;

/// A link in the board's navigation to a page an application mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NavLink {
    /// The text of the link.
    pub label: String,
    /// Where it goes (a path of the board).
    pub path: String,
}

/// The state of every handler.
pub struct WebState {
    /// The queue store.
    pub client: QueueClient,
    /// The board's users, sessions, tokens and audit log.
    pub store: WebStore,
    /// The `[web]` section.
    pub settings: WebSettings,
    /// The kinds' specs, for their queues and the API's checks.
    pub specs: Arc<Specs>,
    /// Builds a job of a kind, checking its args.
    pub new_job: NewJobFn,
    /// The schedules of the specs (those the deployment disabled included, marked so).
    pub schedules: Vec<(Schedule, bool)>,
    /// How long a worker that stopped heartbeating is still listed.
    pub worker_ttl: std::time::Duration,
    /// Links to the application's pages.
    pub nav: Vec<NavLink>,
    /// The web process's metrics, served at `/metrics`.
    pub metrics: Metrics,
    /// Its readiness, served at `/readyz`.
    pub health: Arc<Health>,
    /// The board's own counters, in the same registry.
    pub web_metrics: WebMetrics,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("settings", &self.settings)
            .field("nav", &self.nav)
            .finish_non_exhaustive()
    }
}

/// The state as handlers receive it.
pub type Shared = Arc<WebState>;

impl WebState {
    /// The queues worth showing: every known one, and those the specs name.
    pub async fn queue_names(&self) -> jobfleet_engine::queue::Result<Vec<String>> {
        let mut names = self.client.queue_names().await?;
        for spec in self.specs.iter() {
            if !names.contains(&spec.queue) {
                names.push(spec.queue.clone());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Records an operator's action in the log and the audit log. A failure to record it is
    /// logged, not returned: the action itself is done, and saying otherwise would mislead.
    pub async fn audit(&self, entry: AuditEntry) {
        tracing::info!(actor = %entry.actor, action = %entry.action, target = %entry.target,
            jobs = entry.jobs.len() as u64 + entry.more_jobs, outcome = %entry.outcome,
            "operator action");
        if let Err(e) = self.store.audit(&entry, self.settings.audit_max).await {
            tracing::error!(error = %e, "cannot record an operator's action in the audit log");
        }
    }
}
