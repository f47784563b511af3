//! `/`: every queue's counters and oldest job, the processed/failed chart of the last hour
//! (or day), busy workers, the dead jobs in all and the paused queues.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use jobfleet_engine::queue::admin::QueueStats;

use super::{failed, page};
use crate::access::{Refusal, Viewer};
use crate::render::chart::{buckets, chart};
use crate::render::format::{count, span};
use crate::render::layout::{Section, enc};
use crate::state::Shared;

/// The overview's query: `range=day` for the last day's chart, and a message.
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    range: Option<String>,
    msg: Option<String>,
}

/// The overview.
pub async fn show(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, Refusal> {
    let names = app.queue_names().await.map_err(failed)?;
    let mut stats: Vec<QueueStats> = Vec::with_capacity(names.len());
    for name in &names {
        stats.push(app.client.stats(name).await.map_err(failed)?);
    }
    let day = q.range.as_deref() == Some("day");
    let (minutes, per, label) = if day {
        (1440, 15, "Last day, per 15 minutes")
    } else {
        (60, 1, "Last hour, per minute")
    };
    let mut history = Vec::with_capacity(names.len());
    for name in &names {
        history.push(app.client.history(name, minutes).await.map_err(failed)?);
    }
    let workers = app.client.workers(app.worker_ttl).await.map_err(failed)?;
    let busy: usize = workers.iter().map(|w| w.in_flight.len()).sum();
    let slots: usize = workers.iter().map(|w| w.concurrency).sum();
    let dead: u64 = stats.iter().map(|s| s.dead).sum();
    let paused: Vec<&str> = stats
        .iter()
        .filter(|s| s.paused)
        .map(|s| s.queue.as_str())
        .collect();
    let body = html! {
        section.summary {
            div.figure { span.value #busy { (busy) " / " (slots) } span.label { "busy slots on " (workers.len()) " workers" } }
            div.figure { span.value #dead-total { (count(dead)) } span.label { "dead jobs" } }
            div.figure { span.value #paused-count { (paused.len()) } span.label {
                "paused queues" @if !paused.is_empty() { ": " (paused.join(", ")) } } }
        }
        nav.range {
            a href="/" aria-current=[(!day).then_some("page")] { "Last hour" }
            a href="/?range=day" aria-current=[day.then_some("page")] { "Last day" }
        }
        (chart(&buckets(&history, per), label))
        table #queues {
            thead { tr { th { "Queue" } th { "Pending" } th { "Scheduled" } th { "Active" } th { "Retry" } th { "Dead" } th { "Processed" } th { "Failed" } th { "Oldest pending" } } }
            tbody {
                @for s in &stats {
                    tr data-queue=(s.queue) {
                        td { a href={"/queues/" (enc(&s.queue))} { (s.queue) } @if s.paused { " " span.badge.paused { "paused" } } }
                        td.num { (count(s.pending)) }
                        td.num { (count(s.scheduled)) }
                        td.num { (count(s.active)) }
                        td.num { (count(s.retry)) }
                        td.num { a href={"/queues/" (enc(&s.queue)) "?state=dead"} { (count(s.dead)) } }
                        td.num { (count(s.processed)) }
                        td.num { (count(s.failed)) }
                        td.num { (s.oldest_pending_ms.map_or_else(|| "-".to_owned(), span)) }
                    }
                }
            }
        }
    };
    let mut p = page(&app, &viewer, Section::Queues, "Queues", q.msg);
    p.refresh = app.settings.refresh_seconds;
    Ok(p.render(body))
}
