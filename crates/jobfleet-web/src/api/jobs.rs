//! The job calls: enqueue one or many, read one, retry one, delete one.
//!
//! Enqueueing goes through the kind's spec like every typed enqueue (queue, attempts,
//! uniqueness) and the kind's args struct (args it refuses are a 422 now, not a dead job
//! later). A producer that sends an `id` may retry a request safely: a second request with
//! that id answers 200 with the job the first one stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde_json::{Value, json};

use jobfleet_engine::queue::cancel::Cancelled;
use jobfleet_engine::queue::payload::valid_id;
use jobfleet_engine::queue::priority::Priority;
use jobfleet_engine::queue::{
    Action, Enqueued, LATEST_MS, NewJob, QueueError, now_ms, validate_queue_name,
};

use super::auth::Caller;
use super::types::{
    ActionResponse, BulkRequest, BulkResponse, BulkResult, CancelResponse, EnqueueRequest,
    EnqueueResponse, JobView,
};
use super::{ApiError, Failure};
use crate::state::{Shared, WebState};
use crate::store::audit::AuditEntry;
use crate::store::tokens::Scope;

/// The most jobs one bulk request may hold.
pub const MAX_BULK: usize = 10_000;

/// A delay given as seconds or as a duration's text, in ms.
fn delay_ms(v: &Value) -> Result<i64, String> {
    let ms = match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * 1000.0) as i64)
            .ok_or_else(|| format!("\"in\": {n} is not a number of seconds"))?,
        Value::String(s) => humantime::parse_duration(s)
            .map_err(|e| format!("\"in\": {s:?} is not a duration like 30s or 5m: {e}"))
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))?,
        other => return Err(format!("\"in\": {other} is neither seconds nor a duration")),
    };
    Ok(ms)
}

/// Turns a request into a job with its kind's spec applied, or says why it cannot be one.
/// `queues` are the queues the fleet knows.
fn build(
    app: &WebState,
    req: EnqueueRequest,
    queues: &[String],
    now: i64,
) -> Result<NewJob, String> {
    let args = req.args.unwrap_or_else(|| json!({}));
    if !args.is_object() {
        return Err("args must be a JSON object".to_owned());
    }
    let mut job = (app.new_job)(&req.kind, args).map_err(|e| e.to_string())?;
    if let Some(q) = req.queue {
        validate_queue_name(&q).map_err(|e| e.to_string())?;
        if !queues.contains(&q) {
            return Err(format!(
                "unknown queue {q:?} (known queues: {})",
                queues.join(", ")
            ));
        }
        job.queue = q;
    }
    let run_at = match (&req.delay, &req.at) {
        (Some(_), Some(_)) => return Err("give \"in\" or \"at\", not both".to_owned()),
        (Some(d), None) => Some(now.saturating_add(delay_ms(d)?)),
        (None, Some(at)) => Some(
            DateTime::parse_from_rfc3339(at)
                .map_err(|_| {
                    format!("\"at\": {at:?} is not an RFC 3339 time like 2026-12-01T10:00:00Z")
                })?
                .timestamp_millis(),
        ),
        (None, None) => None,
    };
    if let Some(at) = run_at {
        if !(0..=LATEST_MS).contains(&at) {
            return Err("the job would be due outside 1970 to 9999-12-31".to_owned());
        }
        job = job.run_at(at);
    }
    if let Some(p) = req.priority {
        let p = serde_json::from_value::<Priority>(p).map_err(|_| {
            "\"priority\": use 0 (most urgent) to 3, or \"critical\", \"high\", \"normal\" or \"low\""
                .to_owned()
        })?;
        job = job.priority(p);
    }
    if let Some(key) = req.unique {
        if key.is_empty() || key.len() > 256 {
            return Err("\"unique\" must be 1-256 characters".to_owned());
        }
        job = job.unique(key, app.specs.unique_ttl(&req.kind));
    }
    if let Some(id) = req.id {
        if !valid_id(&id) {
            return Err(format!(
                "id {id:?}: use 1-128 characters from a-z, A-Z, 0-9, '_', '-', '.', ':'"
            ));
        }
        job = job.id(id);
    }
    Ok(job)
}

fn response(job: &NewJob, e: Enqueued) -> EnqueueResponse {
    EnqueueResponse {
        id: e.id,
        kind: job.kind.clone(),
        queue: job.queue.clone(),
        created: e.created,
    }
}

/// Enqueue one job.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = EnqueueRequest,
    responses(
        (status = 201, description = "Stored", body = EnqueueResponse),
        (status = 200, description = "A job with this id or unique key is enqueued already; nothing new was stored", body = EnqueueResponse),
        (status = 401, description = "No token, or an unknown one", body = ApiError),
        (status = 403, description = "The token lacks the enqueue scope", body = ApiError),
        (status = 422, description = "An unknown kind or queue, or args the kind refuses", body = ApiError),
        (status = 503, description = "The store failed; the job was not stored", body = ApiError),
    ),
    security(("bearer" = [])))]
pub async fn enqueue(
    State(app): State<Shared>,
    caller: Caller,
    body: Result<Json<EnqueueRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    caller.need(Scope::Enqueue)?;
    let Json(req) = body.map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    let queues = app.queue_names().await?;
    let job = build(&app, req, &queues, now_ms())
        .map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let enqueued = app.client.enqueue(job.clone()).await?;
    let status = if enqueued.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(response(&job, enqueued))).into_response())
}

/// Enqueue many jobs; each gets its own result.
#[utoipa::path(post, path = "/api/v1/jobs/bulk", tag = "jobs", request_body = BulkRequest,
    responses(
        (status = 200, description = "Every job's outcome, in order; jobs refused do not stop the others", body = BulkResponse),
        (status = 401, description = "No token, or an unknown one", body = ApiError),
        (status = 403, description = "The token lacks the enqueue scope", body = ApiError),
        (status = 422, description = "The body is no list of jobs, or holds more than 10,000", body = ApiError),
    ),
    security(("bearer" = [])))]
pub async fn bulk(
    State(app): State<Shared>,
    caller: Caller,
    body: Result<Json<BulkRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BulkResponse>, Failure> {
    caller.need(Scope::Enqueue)?;
    let Json(req) = body.map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    if req.jobs.len() > MAX_BULK {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} jobs in one request; at most {MAX_BULK}", req.jobs.len()),
        ));
    }
    let queues = app.queue_names().await?;
    let now = now_ms();
    let mut results: Vec<BulkResult> = Vec::with_capacity(req.jobs.len());
    let mut jobs = Vec::new();
    let mut positions = Vec::new();
    for (index, r) in req.jobs.into_iter().enumerate() {
        match build(&app, r, &queues, now) {
            Ok(job) => {
                positions.push(index);
                jobs.push(job);
                results.push(BulkResult {
                    index,
                    status: 0,
                    id: None,
                    error: None,
                });
            }
            Err(e) => results.push(BulkResult {
                index,
                status: 422,
                id: None,
                error: Some(e),
            }),
        }
    }
    match app.client.enqueue_bulk(jobs).await {
        Ok(done) => {
            for (pos, e) in positions.iter().zip(done) {
                let r = &mut results[*pos];
                r.status = if e.created { 201 } else { 200 };
                r.id = Some(e.id);
            }
        }
        Err(QueueError::Partial(p)) => {
            let why = p.error.to_string();
            for (i, pos) in positions.iter().enumerate() {
                let r = &mut results[*pos];
                r.status = 503;
                match p.results.get(i).cloned().flatten() {
                    Some(e) => {
                        r.status = if e.created { 201 } else { 200 };
                        r.id = Some(e.id);
                    }
                    None if p.unknown.contains(&i) => {
                        r.error = Some(format!("unknown outcome (it may have been stored): {why}"));
                    }
                    None => r.error = Some(format!("not stored: {why}")),
                }
            }
        }
        Err(e) => {
            let why = e.to_string();
            for pos in &positions {
                let r = &mut results[*pos];
                r.status = 503;
                r.error = Some(format!("not stored: {why}"));
            }
        }
    }
    let count = |f: &dyn Fn(u16) -> bool| results.iter().filter(|r| f(r.status)).count() as u64;
    Ok(Json(BulkResponse {
        created: count(&|s| s == 201),
        existing: count(&|s| s == 200),
        failed: count(&|s| s >= 400),
        results,
    }))
}

/// Read one job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job as stored or, once it succeeded and while the queue's history of completed jobs keeps it, with state `completed`", body = JobView),
        (status = 401, description = "No token, or an unknown one", body = ApiError),
        (status = 403, description = "The token lacks the read scope", body = ApiError),
        (status = 404, description = "No such job: it finished, or was removed, or never was", body = ApiError),
    ),
    security(("bearer" = [])))]
pub async fn get(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, Failure> {
    caller.need(Scope::Read)?;
    match app.client.show(&id).await {
        Ok(job) => {
            let failures = app.client.attempts(&job.queue, &job.id).await?;
            Ok(Json(JobView::new(job, failures)))
        }
        Err(QueueError::NotFound(_)) => match app.client.completed_at(&id).await? {
            Some((queue, at)) => Ok(Json(JobView::completed(id, queue, at))),
            None => Err(QueueError::NotFound(id).into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Run a dead, retrying or scheduled job now.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job is pending now", body = ActionResponse),
        (status = 401, description = "No token, or an unknown one", body = ApiError),
        (status = 403, description = "The token lacks the operate scope", body = ApiError),
        (status = 404, description = "No such job", body = ApiError),
        (status = 422, description = "The job is pending or active: nothing to retry", body = ApiError),
    ),
    security(("bearer" = [])))]
pub async fn retry(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ActionResponse>, Failure> {
    act(&app, &caller, id, Action::Retry).await
}

/// Delete a job, whatever its state.
#[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Deleted", body = ActionResponse),
        (status = 401, description = "No token, or an unknown one", body = ApiError),
        (status = 403, description = "The token lacks the operate scope", body = ApiError),
        (status = 404, description = "No such job", body = ApiError),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ActionResponse>, Failure> {
    act(&app, &caller, id, Action::Delete).await
}

/// Cancel a job: a waiting one (pending, scheduled, retry) goes to dead with the reason
/// `cancelled by <token name>`; a running one's worker is asked to stop it.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancelled, or its worker asked to stop it", body = CancelResponse),
        (status = 401, description = "No token, or an unknown one", body = ApiError),
        (status = 403, description = "The token lacks the operate scope", body = ApiError),
        (status = 404, description = "No such job", body = ApiError),
        (status = 422, description = "The job is dead already", body = ApiError),
    ),
    security(("bearer" = [])))]
pub async fn cancel(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CancelResponse>, Failure> {
    caller.need(Scope::Operate)?;
    let actor = caller.actor();
    let (previous_state, outcome) = match app.client.cancel(&id, &actor).await? {
        Cancelled::Removed(was) => (was.as_str().to_owned(), "dead"),
        Cancelled::Signalled => ("active".to_owned(), "signalled"),
    };
    let entry = AuditEntry::new(
        &actor,
        "cancel",
        &format!("job {id}"),
        std::slice::from_ref(&id),
        format!("cancel done through the API (the job was {previous_state}: {outcome})"),
    );
    app.audit(entry).await;
    Ok(Json(CancelResponse {
        id,
        previous_state,
        outcome: outcome.to_owned(),
    }))
}

/// Carries out an operator's action on one job for a token with the operate scope, and
/// records it in the audit log.
async fn act(
    app: &WebState,
    caller: &Caller,
    id: String,
    action: Action,
) -> Result<Json<ActionResponse>, Failure> {
    caller.need(Scope::Operate)?;
    let was = match action {
        Action::Retry => app.client.retry_job(&id).await?,
        Action::Delete => app.client.delete(&id).await?,
        Action::Kill => app.client.kill(&id).await?,
    };
    let name = action.as_str();
    let entry = AuditEntry::new(
        &caller.actor(),
        name,
        &format!("job {id}"),
        std::slice::from_ref(&id),
        format!("{name} done through the API (the job was {was})"),
    );
    app.audit(entry).await;
    Ok(Json(ActionResponse {
        id,
        previous_state: was.as_str().to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_seconds_or_durations() {
        assert_eq!(delay_ms(&json!(30)), Ok(30_000));
        assert_eq!(delay_ms(&json!(0.5)), Ok(500));
        assert_eq!(delay_ms(&json!("5m")), Ok(300_000));
        assert!(delay_ms(&json!(-1)).is_err());
        assert!(delay_ms(&json!("soon")).is_err());
        assert!(delay_ms(&json!([1])).is_err());
    }
}
