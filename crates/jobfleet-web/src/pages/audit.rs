//! `/audit`: the operators' actions, newest first, a page at a time.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{page, store_failed};
use crate::access::{Refusal, Viewer};
use crate::render::format::{count, time};
use crate::render::layout::{Section, enc};
use crate::state::Shared;

const PAGE: u64 = 100;

/// The audit page's query.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    offset: u64,
}

/// The audit log's page.
pub async fn show(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Refusal> {
    let (entries, total) = app
        .store
        .audit_page(q.offset, PAGE)
        .await
        .map_err(store_failed)?;
    let body = html! {
        p { (count(total)) " action(s) kept (at most " (count(app.settings.audit_max)) ")." }
        @if entries.is_empty() { p.empty #no-audit { "No action yet." } }
        @else {
            table #audit { thead { tr { th { "When" } th { "Who" } th { "Action" } th { "On" } th { "Jobs" } th { "Outcome" } } }
                tbody { @for e in &entries { tr {
                    td { (time(Some(e.at))) } td { (e.actor) } td { (e.action) } td { (e.target) }
                    td { @for (i, id) in e.jobs.iter().enumerate() { @if i > 0 { ", " } a href={"/jobs/" (enc(id))} { code { (id) } } }
                        @if e.more_jobs > 0 { " and " (e.more_jobs) " more" } }
                    td { (e.outcome) }
                } } } }
        }
        nav.pager {
            @if q.offset > 0 { a href={"/audit?offset=" (q.offset.saturating_sub(PAGE))} { "← newer" } " " }
            @if q.offset + PAGE < total { a href={"/audit?offset=" (q.offset + PAGE)} { "older →" } }
        }
    };
    Ok(page(&app, &viewer, Section::Audit, "Audit log", None).render(body))
}
