//! `/market/stats`: the platform's figures of the last day from `platform_stats` (one row per
//! quarter hour): charts of the points issued and the votes per period, and the latest rows.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use jobfleet_web::Nav;
use jobfleet_web::access::{Refusal, Viewer};
use jobfleet_web::render::chart::bars;
use jobfleet_web::render::format::{count, time};
use maud::html;
use serde_json::Value;

use super::{Shared, failed, page};
use crate::db::stats::{self, StatsRow};

pub const PATH: &str = "/market/stats";

/// A day of quarter hours.
const PERIODS: i64 = 96;
/// Rows shown in the table: the last six hours.
const ROWS: usize = 24;

/// A JSON object of counts as "state n" pairs, the non-zero ones.
fn counts(v: &Value) -> String {
    let Some(map) = v.as_object() else {
        return "-".to_owned();
    };
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, n)| n.as_i64().unwrap_or(0) != 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn series(rows: &[StatsRow], f: impl Fn(&StatsRow) -> i64) -> Vec<(i64, u64)> {
    rows.iter()
        .rev()
        .map(|r| {
            (
                r.period_start.timestamp_millis(),
                u64::try_from(f(r)).unwrap_or(0),
            )
        })
        .collect()
}

pub async fn show(
    State(db): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Extension(nav): Extension<Nav>,
) -> Result<Response, Refusal> {
    let rows = stats::recent(&db.pool, PERIODS).await.map_err(failed)?;
    let body = html! {
        @if rows.is_empty() {
            p.empty #no-stats { "No figures yet: platform_stats records them every 15 minutes." }
        } @else {
            (bars(&series(&rows, |r| r.points_issued), "Points issued per quarter hour"))
            (bars(&series(&rows, |r| r.proposal_votes_last_hour + r.dispute_votes_last_hour), "Votes in the hour before each quarter hour"))
            table #stats {
                thead { tr { th { "Period" } th { "Users" } th { "Wallets" } th { "Markets" } th { "Votes (last hour)" } th { "Outbox" } th { "Notifications pending" } th { "Points issued" } } }
                tbody { @for r in rows.iter().take(ROWS) { tr {
                    td { (time(Some(r.period_start.timestamp_millis()))) }
                    td.num { (count(u64::try_from(r.users).unwrap_or(0))) }
                    td.num { (count(u64::try_from(r.wallets).unwrap_or(0))) }
                    td { (counts(&r.markets_by_state)) }
                    td.num { (r.proposal_votes_last_hour) " + " (r.dispute_votes_last_hour) }
                    td { (counts(&r.outbox_by_status)) }
                    td.num { (r.notifications_pending) }
                    td.num { (count(u64::try_from(r.points_issued).unwrap_or(0))) }
                } } }
            }
        }
    };
    Ok(page(&viewer, &nav, PATH, "Platform figures").render(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_the_states_that_have_some() {
        let v = serde_json::json!({"ACTIVE": 2, "PROPOSED": 0, "RESOLVED": 5});
        assert_eq!(counts(&v), "ACTIVE 2, RESOLVED 5");
        assert_eq!(counts(&serde_json::json!({"A": 0})), "none");
    }
}
