//! `/queues/<name>`: one queue's jobs, a tab per state, a page at a time by rank (never a
//! scan of the whole queue), a filter by kind and a search in args within a bounded window,
//! and the operators' actions: on picked jobs, on a whole state (after a confirm step), and
//! pausing or resuming the queue.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use jobfleet_engine::queue::admin::QueueStats;
use jobfleet_engine::queue::listing::JobInfo;
use jobfleet_engine::queue::{Action, JobState, now_ms, validate_queue_name};

use super::{failed, page};
use crate::access::{Refusal, SignedForm, Viewer};
use crate::render::format::{clip, count, relative};
use crate::render::layout::{Section, csrf, enc, with_msg};
use crate::state::{Shared, WebState};
use crate::store::audit::AuditEntry;

/// The most stored jobs one filtered page looks at, so that a filter never scans a queue.
pub const FILTER_WINDOW: u64 = 2000;

const STATES: [JobState; 5] = [
    JobState::Pending,
    JobState::Scheduled,
    JobState::Active,
    JobState::Retry,
    JobState::Dead,
];

/// The listing's query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    #[serde(default)]
    cursor: u64,
    kind: Option<String>,
    q: Option<String>,
    msg: Option<String>,
}

fn state_of(text: Option<&str>) -> Result<JobState, Refusal> {
    text.unwrap_or("pending")
        .parse()
        .map_err(|e: String| Refusal(StatusCode::BAD_REQUEST, e))
}

/// Checks that a queue is one the board knows.
async fn known(app: &WebState, queue: &str) -> Result<(), Refusal> {
    validate_queue_name(queue).map_err(|e| Refusal(StatusCode::NOT_FOUND, e.to_string()))?;
    if app
        .queue_names()
        .await
        .map_err(failed)?
        .iter()
        .any(|q| q == queue)
    {
        Ok(())
    } else {
        Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("No queue is named {queue:?}."),
        ))
    }
}

/// Whether a job passes the kind filter and the search (in its id, kind and args as JSON).
fn matches(job: &JobInfo, kind: Option<&str>, search: Option<&str>) -> bool {
    kind.is_none_or(|k| job.kind == k)
        && search.is_none_or(|s| {
            job.id.contains(s)
                || job.kind.contains(s)
                || job
                    .envelope
                    .as_ref()
                    .is_some_and(|e| e.args.to_string().contains(s))
                || job.raw.as_deref().is_some_and(|r| r.contains(s))
        })
}

/// One page of jobs and where the next starts: by rank, or, with a filter, the matches among
/// at most [`FILTER_WINDOW`] jobs from the cursor.
async fn page_of(
    app: &WebState,
    queue: &str,
    state: JobState,
    q: &ListQuery,
) -> Result<(Vec<JobInfo>, Option<u64>, u64), Refusal> {
    let size = app.settings.page_size;
    let kind = q.kind.as_deref().filter(|k| !k.is_empty());
    let search = q.q.as_deref().filter(|s| !s.is_empty());
    if kind.is_none() && search.is_none() {
        let p = app
            .client
            .list(queue, state, q.cursor, size)
            .await
            .map_err(failed)?;
        return Ok((p.jobs, p.next_cursor, size));
    }
    let mut found = Vec::new();
    let mut at = q.cursor;
    let end = q.cursor + FILTER_WINDOW;
    loop {
        if at >= end || found.len() as u64 >= size {
            return Ok((found, Some(at), at - q.cursor));
        }
        let p = app
            .client
            .list(queue, state, at, (end - at).min(500))
            .await
            .map_err(failed)?;
        let (last, got) = (p.next_cursor.is_none(), p.jobs.len());
        let mut read = 0;
        for job in p.jobs {
            read += 1;
            if matches(&job, kind, search) {
                found.push(job);
                if found.len() as u64 == size {
                    break;
                }
            }
        }
        at += read as u64;
        if last && read == got {
            return Ok((found, None, at - q.cursor));
        }
    }
}

/// The queue's page.
pub async fn show(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(queue): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, Refusal> {
    known(&app, &queue).await?;
    let state = state_of(q.state.as_deref())?;
    let stats = app.client.stats(&queue).await.map_err(failed)?;
    let (jobs, next, window) = page_of(&app, &queue, state, &q).await?;
    let filtered = q.kind.as_deref().is_some_and(|k| !k.is_empty())
        || q.q.as_deref().is_some_and(|s| !s.is_empty());
    let query = |cursor: u64| {
        let mut s = format!("?state={}&cursor={cursor}", state.as_str());
        if let Some(k) = q.kind.as_deref().filter(|k| !k.is_empty()) {
            s.push_str(&format!("&kind={}", enc(k)));
        }
        if let Some(t) = q.q.as_deref().filter(|t| !t.is_empty()) {
            s.push_str(&format!("&q={}", enc(t)));
        }
        s
    };
    let base = format!("/queues/{}", enc(&queue));
    let now = now_ms();
    let kinds: Vec<&str> = app
        .specs
        .iter()
        .filter(|s| s.queue == queue)
        .map(|s| s.kind.as_str())
        .collect();
    let body = html! {
        (controls(&viewer, &queue, &stats))
        nav.tabs {
            @for s in STATES {
                a href={(base) "?state=" (s.as_str())} aria-current=[(s == state).then_some("page")] data-state=(s.as_str()) {
                    (s.as_str()) " " span.count { (count(stats.count(s))) }
                }
            }
        }
        form.filter method="get" action=(base) {
            input type="hidden" name="state" value=(state.as_str());
            label { "Kind " select name="kind" {
                option value="" { "any" }
                @for k in &kinds { option value=(k) selected[q.kind.as_deref() == Some(*k)] { (k) } }
            } }
            label { "Search args " input type="search" name="q" value=(q.q.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
            @if filtered { " " a href={(base) "?state=" (state.as_str())} { "clear" } }
        }
        @if filtered {
            p.note { "Searched " (count(window)) " jobs from rank " (q.cursor) " (at most " (FILTER_WINDOW) " per page)." }
        }
        form #jobs-form method="post" action={(base) "/act"} {
            (csrf(&viewer))
            input type="hidden" name="state" value=(state.as_str());
            input type="hidden" name="cursor" value=(q.cursor);
            input type="hidden" name="limit" value=(app.settings.page_size);
            @if viewer.can_operate() && !jobs.is_empty() {
                div.bulk {
                    "With the picked jobs: "
                    @for a in [Action::Retry, Action::Delete, Action::Kill] {
                        @if a.applies_to(state) && (state != JobState::Active || a == Action::Delete) {
                            button type="submit" name="action" value=(a.as_str()) data-action=(a.as_str()) { (a.as_str()) }
                        }
                    }
                }
            }
            (job_table(&jobs, state, now, viewer.can_operate()))
        }
        nav.pager {
            @if q.cursor > 0 { a href={(base) (query(q.cursor.saturating_sub(if filtered { FILTER_WINDOW } else { app.settings.page_size })))} { "← previous" } " " }
            @if let Some(n) = next { a #next-page href={(base) (query(n))} { "next →" } }
        }
    };
    let mut p = page(
        &app,
        &viewer,
        Section::Queues,
        format!("Queue {queue}"),
        q.msg.clone(),
    );
    p.refresh = app.settings.refresh_seconds;
    Ok(p.render(body))
}

/// The queue's state and the whole-queue actions.
fn controls(viewer: &Viewer, queue: &str, stats: &QueueStats) -> Markup {
    let base = format!("/queues/{}", enc(queue));
    html! {
        div.controls {
            @if stats.paused { span.badge.paused #queue-paused { "paused" } } @else { span.badge.running { "running" } }
            @if viewer.can_operate() {
                @let (action, label) = if stats.paused { ("resume", "Resume") } else { ("pause", "Pause") };
                form.inline method="post" action={(base) "/" (action)} {
                    (csrf(viewer))
                    button #pause-toggle type="submit" { (label) }
                }
                " "
                a href={(base) "/all?state=dead&action=retry"} { "Retry all dead" } " · "
                a href={(base) "/all?state=dead&action=delete"} { "Delete all dead" } " · "
                a href={(base) "/all?state=retry&action=retry"} { "Retry all retrying" } " · "
                a href={(base) "/all?state=scheduled&action=delete"} { "Delete all scheduled" } " · "
                a href={(base) "/all?state=pending&action=delete"} { "Delete all pending" }
            }
        }
    }
}

fn job_table(jobs: &[JobInfo], state: JobState, now: i64, pick: bool) -> Markup {
    let when = match state {
        JobState::Dead => "Died",
        JobState::Scheduled | JobState::Retry => "Due",
        _ => "Enqueued",
    };
    html! {
        @if jobs.is_empty() {
            p.empty #no-jobs { "No " (state.as_str()) " jobs here." }
        } @else {
            table #job-list {
                thead { tr {
                    @if pick { th { input #pick-all type="checkbox" aria-label="pick every job of the page"; } }
                    th { "Job" } th { "Kind" } th { "Attempts" } th { (when) } th { "Args" } th { "Last error" }
                    @if state == JobState::Active { th { "Worker" } }
                } }
                tbody {
                    @for j in jobs {
                        tr data-id=(j.id) {
                            @if pick { td { input type="checkbox" name="id" value=(j.id) aria-label={"pick " (j.id)}; } }
                            td { a href={"/jobs/" (enc(&j.id))} { code { (j.id) } } }
                            td { (j.kind) }
                            td.num { (j.attempts) "/" (j.max_attempts) }
                            td { (relative(j.score.or_else(|| j.envelope.as_ref().map(|e| e.created_at)), now)) }
                            td { code { (clip(&j.envelope.as_ref().map_or_else(|| j.raw.clone().unwrap_or_default(), |e| e.args.to_string()), 80)) } }
                            td.error { (clip(j.error.as_deref().or(j.undecodable.as_deref()).unwrap_or(""), 120)) }
                            @if state == JobState::Active { td { (j.worker.clone().unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
    }
}

fn back(queue: &str, form: &SignedForm) -> String {
    format!(
        "/queues/{}?state={}&cursor={}",
        enc(queue),
        enc(form.get("state").unwrap_or("pending")),
        form.get("cursor")
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0)
    )
}

/// POST `/queues/<name>/act`: an action on the picked jobs.
pub async fn act(
    State(app): State<Shared>,
    Path(queue): Path<String>,
    form: SignedForm,
) -> Result<Response, Refusal> {
    let viewer = form.operator()?;
    let state = state_of(form.get("state"))?;
    let action: Action = form
        .get("action")
        .unwrap_or("")
        .parse()
        .map_err(|e: String| Refusal(StatusCode::BAD_REQUEST, e))?;
    let ids = form.all("id");
    let back = back(&queue, &form);
    if ids.is_empty() {
        return Ok(Redirect::to(&with_msg(&back, "No job was picked.")).into_response());
    }
    let cursor = form.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit = form
        .get("limit")
        .and_then(|c| c.parse().ok())
        .unwrap_or(app.settings.page_size);
    let report = app
        .client
        .act(&queue, state, &ids, action, Some((cursor, limit)))
        .await
        .map_err(failed)?;
    let mut msg = format!("{}: done to {} job(s)", action.as_str(), report.done);
    if !report.missed.is_empty() {
        msg.push_str(&format!(
            "; {} were no longer {} ({})",
            report.missed.len(),
            state.as_str(),
            clip(&report.missed.join(", "), 200)
        ));
    }
    let target = format!("{queue}/{}", state.as_str());
    app.audit(AuditEntry::new(
        &viewer.name,
        action.as_str(),
        &target,
        &ids,
        msg.clone(),
    ))
    .await;
    Ok(Redirect::to(&with_msg(&back, &msg)).into_response())
}

/// The query of the confirm step of an action on a whole state.
#[derive(Debug, Deserialize)]
pub struct AllQuery {
    state: String,
    action: String,
}

fn all_parts(state: &str, action: &str) -> Result<(JobState, Action), Refusal> {
    let state = state_of(Some(state))?;
    let action: Action = action
        .parse()
        .map_err(|e: String| Refusal(StatusCode::BAD_REQUEST, e))?;
    if !action.applies_to(state) || state == JobState::Active {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!(
                "{} all does not apply to {} jobs.",
                action.as_str(),
                state.as_str()
            ),
        ));
    }
    Ok((state, action))
}

/// GET `/queues/<name>/all`: the confirm step of an action on every job of a state.
pub async fn confirm_all(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(queue): Path<String>,
    Query(q): Query<AllQuery>,
) -> Result<Response, Refusal> {
    known(&app, &queue).await?;
    let (state, action) = all_parts(&q.state, &q.action)?;
    let n = app.client.stats(&queue).await.map_err(failed)?.count(state);
    let base = format!("/queues/{}", enc(&queue));
    let body = html! {
        p #confirm-text { (action.as_str()) " every " (state.as_str()) " job of " strong { (queue) } ": "
            (count(n)) " job(s) right now. This cannot be undone." }
        @if viewer.can_operate() {
            form method="post" action={(base) "/all"} {
                (csrf(&viewer))
                input type="hidden" name="state" value=(state.as_str());
                input type="hidden" name="action" value=(action.as_str());
                input type="hidden" name="confirm" value="yes";
                button #confirm type="submit" { "Yes, " (action.as_str()) " all " (count(n)) }
                " " a href={(base) "?state=" (state.as_str())} { "No, go back" }
            }
        } @else {
            p { "Viewers change nothing." }
        }
    };
    Ok(page(
        &app,
        &viewer,
        Section::Queues,
        format!("{} all {} jobs?", action.as_str(), state.as_str()),
        None,
    )
    .render(body))
}

/// POST `/queues/<name>/all`: the action on every job of a state, once confirmed.
pub async fn act_all(
    State(app): State<Shared>,
    Path(queue): Path<String>,
    form: SignedForm,
) -> Result<Response, Refusal> {
    let viewer = form.operator()?;
    let (state, action) = all_parts(
        form.get("state").unwrap_or(""),
        form.get("action").unwrap_or(""),
    )?;
    let back = format!("/queues/{}?state={}", enc(&queue), state.as_str());
    if form.get("confirm") != Some("yes") {
        return Ok(Redirect::to(&with_msg(
            &back,
            "Nothing was done: the action was not confirmed.",
        ))
        .into_response());
    }
    let n = app
        .client
        .act_all(&queue, state, action)
        .await
        .map_err(failed)?;
    let msg = format!(
        "{} all {}: done to {n} job(s)",
        action.as_str(),
        state.as_str()
    );
    app.audit(AuditEntry::new(
        &viewer.name,
        &format!("{}-all", action.as_str()),
        &format!("{queue}/{}", state.as_str()),
        &[],
        msg.clone(),
    ))
    .await;
    Ok(Redirect::to(&with_msg(&back, &msg)).into_response())
}

/// POST `/queues/<name>/pause` and `/resume`.
pub async fn pause(
    State(app): State<Shared>,
    Path((queue, what)): Path<(String, String)>,
    form: SignedForm,
) -> Result<Response, Refusal> {
    let viewer = form.operator()?;
    known(&app, &queue).await?;
    let result = match what.as_str() {
        "pause" => app.client.pause(&queue).await,
        "resume" => app.client.resume(&queue).await,
        _ => return Err(Refusal(StatusCode::NOT_FOUND, "No such action.".into())),
    };
    result.map_err(failed)?;
    let msg = format!("queue {queue}: {what}d");
    app.audit(AuditEntry::new(
        &viewer.name,
        &what,
        &queue,
        &[],
        msg.clone(),
    ))
    .await;
    Ok(Redirect::to(&with_msg(&format!("/queues/{}", enc(&queue)), &msg)).into_response())
}
