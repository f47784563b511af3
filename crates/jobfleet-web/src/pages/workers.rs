//! `/workers`: every live worker process (host, pid, queues, concurrency, what it runs and
//! for how long, where its metrics are) and the live schedulers.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use maud::html;

use jobfleet_engine::queue::now_ms;

use super::{failed, page};
use crate::access::{Refusal, Viewer};
use crate::render::format::{relative, span};
use crate::render::layout::{Section, enc};
use crate::state::Shared;

/// The workers' page.
pub async fn show(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, Refusal> {
    let workers = app.client.workers(app.worker_ttl).await.map_err(failed)?;
    let schedulers = app
        .client
        .schedulers(app.worker_ttl.max(std::time::Duration::from_secs(15)))
        .await
        .map_err(failed)?;
    let now = now_ms();
    let body = html! {
        @if workers.is_empty() { p.empty #no-workers { "No worker is running." } }
        @for w in &workers {
            section.worker data-worker=(w.id) {
                h2 { code { (w.id) } }
                dl.facts {
                    dt { "Host" } dd { (w.host) } dt { "Pid" } dd { (w.pid) }
                    dt { "Queues" } dd { (w.queues.join(", ")) }
                    dt { "Concurrency" } dd { (w.in_flight.iter().filter(|j| j.started_at.is_some()).count()) " of " (w.concurrency) " busy" }
                    dt { "Up" } dd { (span(now - w.started_at)) ", last heartbeat " (relative(Some(w.heartbeat_at), now)) }
                    dt { "Metrics" } dd { (w.metrics_addr.clone().unwrap_or_else(|| "-".into())) }
                }
                @if !w.in_flight.is_empty() {
                    table.inflight {
                        thead { tr { th { "Job" } th { "Kind" } th { "Queue" } th { "Running for" } } }
                        tbody { @for j in &w.in_flight { tr {
                            td { a href={"/jobs/" (enc(&j.id))} { code { (j.id) } } }
                            td { (j.kind) } td { (j.queue) }
                            td { (j.started_at.map_or_else(|| "prefetched".to_owned(), |t| span(now - t))) }
                        } } }
                    }
                }
            }
        }
        h2 { "Schedulers" }
        @if schedulers.is_empty() { p.empty { "No scheduler is running." } }
        @else {
            table { thead { tr { th { "Scheduler" } th { "Up" } th { "Last heartbeat" } th { "Metrics" } } }
                tbody { @for s in &schedulers { tr {
                    td { code { (s.id) } } td { (span(now - s.started_at)) }
                    td { (relative(Some(s.heartbeat_at), now)) } td { (s.metrics_addr.clone().unwrap_or_else(|| "-".into())) }
                } } } }
        }
    };
    let mut p = page(&app, &viewer, Section::Workers, "Workers", None);
    p.refresh = app.settings.refresh_seconds;
    Ok(p.render(body))
}
