//! `/schedules`: every schedule of the specs with its cron, zone and next run, its last ticks
//! and how their jobs fared, and "enqueue now".

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use jobfleet_engine::queue::find::Located;
use jobfleet_engine::queue::{NewJob, QueueError, now_ms};

use super::{failed, page};
use crate::access::{Refusal, SignedForm, Viewer};
use crate::render::format::{relative, time};
use crate::render::layout::{Section, csrf, enc, with_msg};
use crate::state::Shared;
use crate::store::audit::AuditEntry;

/// The page's query: a message from the last action.
#[derive(Debug, Deserialize)]
pub struct SchedulesQuery {
    msg: Option<String>,
}

/// The state of each tick's job in words, newest first: its state while it is stored,
/// `completed` while the queue's completed history keeps it, else that it ended. The ticks of
/// one schedule are looked for together (`locate`: a few calls for all of them); only the
/// newest, which may still wait in pending, is also looked for there.
async fn outcomes(
    app: &Shared,
    queue: &str,
    ticks: &[(i64, String)],
) -> Result<Vec<String>, Refusal> {
    let ids: Vec<String> = ticks.iter().map(|(_, id)| id.clone()).collect();
    let found = app.client.locate(queue, &ids).await.map_err(failed)?;
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let state = match found.get(id) {
            Some(Located::Stored(state)) => state.as_str().to_owned(),
            Some(Located::Completed(_)) => "completed".to_owned(),
            None if i == 0 => match app.client.show(id).await {
                Ok(job) => job.state.as_str().to_owned(),
                Err(QueueError::NotFound(_)) => "finished or removed".to_owned(),
                Err(e) => return Err(failed(e)),
            },
            // An older tick's job is not looked for in pending, where a backlog may still hold it.
            None => "finished or removed, or still pending".to_owned(),
        };
        out.push(state);
    }
    Ok(out)
}

/// The schedules' page.
pub async fn show(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<SchedulesQuery>,
) -> Result<Response, Refusal> {
    let now = now_ms();
    let mut rows = Vec::new();
    for (s, disabled) in &app.schedules {
        let ticks = app.client.ticks(&s.queue, &s.name).await.map_err(failed)?;
        let states = outcomes(&app, &s.queue, &ticks).await?;
        let shown: Vec<(i64, String, String)> = ticks
            .into_iter()
            .zip(states)
            .map(|((at, id), state)| (at, id, state))
            .collect();
        rows.push((
            s,
            *disabled,
            s.next_after(Utc::now()).map(|t| t.timestamp_millis()),
            shown,
        ));
    }
    let body = html! {
        @if rows.is_empty() { p.empty { "No spec has a schedule." } }
        table #schedules {
            thead { tr { th { "Schedule" } th { "Kind" } th { "Cron" } th { "Zone" } th { "Next run" } th { "Last ticks" } th {} } }
            tbody {
                @for (s, disabled, next, ticks) in &rows {
                    tr data-schedule=(s.name) {
                        td { (s.name) @if *disabled { " " span.badge.paused { "disabled here" } } }
                        td { (s.kind) }
                        td { code { (s.expr) } }
                        td { (s.tz.to_string()) }
                        td { (time(*next)) br; small { (relative(*next, now)) } }
                        td {
                            @if ticks.is_empty() { "none yet" }
                            ul.ticks { @for (at, id, state) in ticks {
                                li { (time(Some(*at))) ": " a href={"/jobs/" (enc(id))} { code { (id) } } " " span.state { (state) } }
                            } }
                        }
                        td {
                            @if viewer.can_operate() {
                                form.inline method="post" action={"/schedules/" (enc(&s.name)) "/enqueue"} {
                                    (csrf(&viewer))
                                    button type="submit" { "Enqueue now" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&app, &viewer, Section::Schedules, "Schedules", q.msg).render(body))
}

/// POST `/schedules/<name>/enqueue`: one job of the schedule now, outside its ticks.
pub async fn enqueue_now(
    State(app): State<Shared>,
    Path(name): Path<String>,
    form: SignedForm,
) -> Result<Response, Refusal> {
    let viewer = form.operator()?;
    let Some((s, _)) = app.schedules.iter().find(|(s, _)| s.name == name) else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("No schedule is named {name:?}."),
        ));
    };
    let job = NewJob::new(&s.kind, &s.queue, s.args.clone())
        .max_attempts(s.max_attempts)
        .priority(s.priority);
    let enqueued = app.client.enqueue(job).await.map_err(failed)?;
    let msg = format!("{name}: job {} enqueued now", enqueued.id);
    app.audit(AuditEntry::new(
        &viewer.name,
        "enqueue-now",
        &format!("schedule {name}"),
        std::slice::from_ref(&enqueued.id),
        msg.clone(),
    ))
    .await;
    Ok(Redirect::to(&with_msg("/schedules", &msg)).into_response())
}
