//! The board's state made from an engine: its store connection, its kinds' specs and
//! schedules, its settings; shared by `jobfleet web` and its benchmark.

use std::sync::Arc;
use std::time::Duration;

use jobfleet_engine::cli::Engine;
use jobfleet_engine::telemetry::Metrics;
use jobfleet_engine::telemetry::http::Health;

use crate::metrics::WebMetrics;
use crate::settings::WebSettings;
use crate::state::{NewJobFn, WebState};
use crate::store::WebStore;

/// The board's state from the engine: its store, its kinds' specs and schedules.
pub async fn state<S: Send + Sync + 'static>(
    engine: &Engine<S>,
    web: &WebSettings,
) -> anyhow::Result<WebState> {
    state_with(engine, web, engine.client().await?)
}

/// `state` over a client of the caller's (the bench's, in a namespace of its own).
pub fn state_with<S: Send + Sync + 'static>(
    engine: &Engine<S>,
    web: &WebSettings,
    client: jobfleet_engine::queue::QueueClient,
) -> anyhow::Result<WebState> {
    web.validate()?;
    let registry = engine.registry()?;
    let disabled = &engine.settings.scheduler.disabled;
    let schedules = jobfleet_engine::scheduler::schedules(&registry, &[])
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|s| {
            let off = disabled.contains(&s.name);
            (s, off)
        })
        .collect();
    let specs = registry.shared_specs().clone();
    let kinds = registry.clone();
    let new_job: NewJobFn = Arc::new(move |kind, args| kinds.new_job(kind, args));
    let metrics = Metrics::new();
    let web_metrics = WebMetrics::new(metrics.registry());
    Ok(WebState {
        store: WebStore::new(&client),
        client,
        settings: web.clone(),
        specs,
        new_job,
        schedules,
        worker_ttl: (engine.settings.worker.lease * 2).max(Duration::from_secs(10)),
        nav: Vec::new(),
        metrics,
        web_metrics,
        health: Arc::new(Health::new(engine.settings.telemetry.ready_timeout)),
    })
}
