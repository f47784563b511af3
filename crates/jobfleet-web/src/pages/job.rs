//! `/jobs/<id>`: everything stored about one job (its envelope, its args pretty-printed, its
//! state and its failures), and the actions that apply to it.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use jobfleet_engine::queue::cancel::Cancelled;
use jobfleet_engine::queue::{Action, JobState, now_ms};

use super::{failed, page};
use crate::access::{Refusal, SignedForm, Viewer};
use crate::render::format::{relative, time};
use crate::render::layout::{Section, csrf, enc, with_msg};
use crate::state::{Shared, WebState};
use crate::store::audit::AuditEntry;

/// The job page's query: a message from the last action.
#[derive(Debug, Deserialize)]
pub struct JobQuery {
    msg: Option<String>,
}

/// The job's page.
pub async fn show(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(q): Query<JobQuery>,
) -> Result<Response, Refusal> {
    let job = match app.client.show(&id).await {
        Ok(job) => job,
        Err(e) => {
            let mut refusal = failed(e);
            if let Some(msg) = q.msg {
                refusal.1 = format!("{msg}. {}", refusal.1);
            }
            return Err(refusal);
        }
    };
    let attempts = app
        .client
        .attempts(&job.queue, &job.id)
        .await
        .map_err(failed)?;
    let progress = if job.state == JobState::Active {
        let ids = [(job.id.clone(), job.attempts)];
        let mut reports = app
            .client
            .progress_of(&job.queue, &ids)
            .await
            .map_err(failed)?;
        reports.pop().flatten()
    } else {
        None
    };
    // The flow the job counts in, if any: its counts so far. The reference is the stored
    // job's bytes: one that names no valid queue, or a flow that expired, shows nothing.
    let flow = match job.envelope.as_ref().and_then(|e| e.flow.as_ref()) {
        Some(f) => match app.client.flow(Some(&f.queue), &f.id).await {
            Ok(state) => state.map(|state| (f.id.clone(), state)),
            Err(e) => {
                tracing::warn!(job = %job.id, flow = %f.id, error = %e, "could not read the job's flow");
                None
            }
        },
        None => None,
    };
    let now = now_ms();
    let args = job
        .envelope
        .as_ref()
        .map(|e| serde_json::to_string_pretty(&e.args).unwrap_or_default());
    let base = format!("/jobs/{}", enc(&job.id));
    let body = html! {
        dl.facts #job-facts {
            dt { "Id" } dd #job-id { code { (job.id) } }
            dt { "Kind" } dd #job-kind { (job.kind) }
            dt { "Queue" } dd { a href={"/queues/" (enc(&job.queue)) "?state=" (job.state.as_str())} { (job.queue) } }
            dt { "State" } dd #job-state data-state=(job.state.as_str()) { (job.state.as_str()) }
            dt { "Attempts" } dd { (job.attempts) " failed of " (job.max_attempts) " allowed" }
            dt { "Priority" } dd #job-priority { (job.priority.to_string()) }
            @if let Some(env) = &job.envelope {
                dt { "Enqueued" } dd { (time(Some(env.created_at))) " (" (relative(Some(env.created_at), now)) ")" }
                @if let Some(at) = env.run_at { dt { "Run at" } dd { (time(Some(at))) } }
                @if let Some(u) = &env.unique_key { dt { "Unique key" } dd { code { (u) } } }
            }
            @if let Some(score) = job.score {
                dt { (if job.state == JobState::Dead { "Died" } else { "Due" }) } dd { (time(Some(score))) " (" (relative(Some(score), now)) ")" }
            }
            @if let Some(w) = &job.worker { dt { "Worker" } dd { code { (w) } } }
            @if let Some((id, f)) = &flow {
                dt { "Flow" }
                dd #job-flow data-status=(f.status.as_str()) {
                    code { (id) } ": " (f.succeeded) " of " (f.total) " succeeded, " (f.failed)
                    " failed, " (f.pending) " pending (" (f.status.as_str()) ")"
                }
            }
            @if let Some(r) = job.envelope.as_ref().and_then(|e| e.flow_result.as_ref()) {
                dt { "Flow result" }
                dd #job-flow-result {
                    "the callback of flow " code { (r.flow) } ": " (r.succeeded) " of " (r.total)
                    " succeeded, " (r.failed) " failed"
                    @if !r.failed_ids.is_empty() { " (" (r.failed_ids.join(", ")) ")" }
                }
            }
            @if let Some(p) = &progress {
                dt { "Progress" }
                dd #job-progress {
                    progress value=(p.fraction) max="1" {}
                    " " (p.describe()) " (" (relative(Some(p.at), now)) ")"
                }
            }
        }
        @if let Some(err) = &job.error {
            h2 { "Last failure" }
            p { "At " (time(job.failed_at)) ":" }
            pre.error #job-error { (err) }
        }
        @if !attempts.is_empty() {
            h2 { "Failed attempts" }
            table #job-attempts {
                thead { tr { th { "Attempt" } th { "Failed" } th { "Worker" } th { "Error" } } }
                tbody { @for a in &attempts { tr {
                    td.num { (a.attempt) } td { (time(Some(a.failed_at))) }
                    td { code { (a.worker) } } td.error { (a.error) }
                } } }
            }
        }
        @if let Some(why) = &job.undecodable {
            h2 { "This stored job cannot be decoded" }
            p.error { (why) }
            pre #job-raw { (job.raw.clone().unwrap_or_default()) }
        }
        @if let Some(args) = &args {
            h2 { "Args" }
            pre #job-args { (args) }
        }
        @if let Some(env) = &job.envelope {
            h2 { "Envelope" }
            pre #job-envelope { (serde_json::to_string_pretty(env).unwrap_or_default()) }
        }
        @if viewer.can_operate() {
            div.actions {
                @for a in [Action::Retry, Action::Kill, Action::Delete] {
                    @if a.applies_to(job.state) {
                        form.inline method="post" action={(base) "/" (a.as_str())} {
                            (csrf(&viewer))
                            button type="submit" data-action=(a.as_str()) { (a.as_str()) }
                        }
                    }
                }
                @if job.state != JobState::Dead {
                    form.inline method="post" action={(base) "/cancel"} {
                        (csrf(&viewer))
                        button type="submit" data-action="cancel" { "cancel" }
                    }
                }
            }
        }
    };
    Ok(page(
        &app,
        &viewer,
        Section::Queues,
        format!("Job {}", job.id),
        q.msg,
    )
    .render(body))
}

/// POST `/jobs/<id>/<action>`: retry, kill, delete or cancel one job.
pub async fn act(
    State(app): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    form: SignedForm,
) -> Result<Response, Refusal> {
    let viewer = form.operator()?;
    if action == "cancel" {
        return cancel(&app, &viewer.name, &id).await;
    }
    let action: Action = action
        .parse()
        .map_err(|e: String| Refusal(StatusCode::NOT_FOUND, e))?;
    let was = match action {
        Action::Retry => app.client.retry_job(&id).await,
        Action::Kill => app.client.kill(&id).await,
        Action::Delete => app.client.delete(&id).await,
    }
    .map_err(failed)?;
    let msg = format!("{} done (the job was {})", action.as_str(), was.as_str());
    app.audit(AuditEntry::new(
        &viewer.name,
        action.as_str(),
        &format!("job {id}"),
        std::slice::from_ref(&id),
        msg.clone(),
    ))
    .await;
    let to = if action == Action::Delete {
        with_msg("/", &format!("job {id} deleted"))
    } else {
        with_msg(&format!("/jobs/{}", enc(&id)), &msg)
    };
    Ok(Redirect::to(&to).into_response())
}

/// Cancels one job for the board's operator `who`, records it, and goes back to the job.
async fn cancel(app: &WebState, who: &str, id: &str) -> Result<Response, Refusal> {
    let msg = match app.client.cancel(id, who).await.map_err(failed)? {
        Cancelled::Removed(was) => format!("cancelled: the job was {was}, it is dead now"),
        Cancelled::Signalled => "the job is running: its worker was asked to stop it".to_owned(),
    };
    app.audit(AuditEntry::new(
        who,
        "cancel",
        &format!("job {id}"),
        &[id.to_owned()],
        msg.clone(),
    ))
    .await;
    Ok(Redirect::to(&with_msg(&format!("/jobs/{}", enc(id)), &msg)).into_response())
}
