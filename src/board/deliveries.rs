//! `/market/deliveries`: the notification deliveries' attempts, newest first, by status.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use jobfleet_web::Nav;
use jobfleet_web::access::{Refusal, Viewer};
use jobfleet_web::render::format::{clip, time};
use maud::html;
use serde::Deserialize;

use super::{LIMIT, Shared, failed, page};
use crate::db::notifications;

pub const PATH: &str = "/market/deliveries";

const STATUSES: [&str; 3] = ["sent", "retrying", "failed"];

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    status: Option<String>,
}

pub async fn show(
    State(db): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Extension(nav): Extension<Nav>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Response, Refusal> {
    let status = q.status.as_deref().filter(|s| STATUSES.contains(s));
    let rows = notifications::recent_deliveries(&db.pool, status, LIMIT)
        .await
        .map_err(failed)?;
    let body = html! {
        nav.tabs {
            a href=(PATH) aria-current=[status.is_none().then_some("page")] { "all" }
            @for s in STATUSES {
                a href={(PATH) "?status=" (s)} aria-current=[(status == Some(s)).then_some("page")] { (s) }
            }
        }
        @if rows.is_empty() { p.empty { "No delivery here." } }
        @else {
            table #deliveries {
                thead { tr { th { "Attempt" } th { "Notification" } th { "Channel" } th { "Try" } th { "Status" } th { "Code" } th { "Took" } th { "Error" } th { "At" } } }
                tbody { @for r in &rows { tr {
                    td.num { (r.id) } td { (r.notification_id) ": " (clip(&r.subject, 60)) } td { (r.channel) }
                    td.num { (r.attempt) } td { (r.status) }
                    td.num { (r.response_code.map_or_else(|| "-".to_owned(), |c| c.to_string())) }
                    td.num { (r.duration_ms.map_or_else(|| "-".to_owned(), |d| format!("{d} ms"))) }
                    td.error { (clip(r.error.as_deref().unwrap_or(""), 160)) }
                    td { (time(Some(r.created_at.timestamp_millis()))) }
                } } }
            }
        }
    };
    Ok(page(&viewer, &nav, PATH, "Notification deliveries").render(body))
}
