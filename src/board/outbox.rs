//! `/market/outbox`: the chain's transaction outbox, newest first, by status.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use jobfleet_web::Nav;
use jobfleet_web::access::{Refusal, Viewer};
use jobfleet_web::render::format::{clip, time};
use maud::html;
use serde::Deserialize;

use super::{LIMIT, Shared, failed, page};
use crate::db::outbox;

pub const PATH: &str = "/market/outbox";

const STATUSES: [&str; 5] = ["PENDING", "SIGNED", "SUBMITTED", "CONFIRMED", "FAILED"];

#[derive(Debug, Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
}

pub async fn show(
    State(db): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Extension(nav): Extension<Nav>,
    Query(q): Query<OutboxQuery>,
) -> Result<Response, Refusal> {
    let status = q.status.as_deref().filter(|s| STATUSES.contains(s));
    let counts = outbox::counts(&db.pool).await.map_err(failed)?;
    let rows = outbox::list(&db.pool, status, LIMIT)
        .await
        .map_err(failed)?;
    let body = html! {
        nav.tabs {
            a href=(PATH) aria-current=[status.is_none().then_some("page")] { "all" }
            @for s in STATUSES {
                @let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
                a href={(PATH) "?status=" (s)} aria-current=[(status == Some(s)).then_some("page")] { (s) " " span.count { (n) } }
            }
        }
        @if rows.is_empty() { p.empty { "No outbox row here." } }
        @else {
            table #outbox {
                thead { tr { th { "Row" } th { "Kind" } th { "Status" } th { "Attempts" } th { "Nonce" } th { "Tx hash" } th { "Last error" } th { "Created" } } }
                tbody { @for r in &rows { tr {
                    td.num { (r.id) } td { (r.kind) } td { (r.status) } td.num { (r.attempts) }
                    td.num { (r.nonce.map_or_else(|| "-".to_owned(), |n| n.to_string())) }
                    td { code { (r.tx_hash.clone().unwrap_or_else(|| "-".into())) } }
                    td.error { (clip(r.last_error.as_deref().unwrap_or(""), 160)) }
                    td { (time(Some(r.created_at.timestamp_millis()))) }
                } } }
            }
            p.note { "The newest " (LIMIT) " rows at most. `jobfleet chain outbox` and `jobfleet chain retry` act on them." }
        }
    };
    Ok(page(&viewer, &nav, PATH, "Chain outbox").render(body))
}
