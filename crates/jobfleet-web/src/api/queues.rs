//! `GET /api/v1/queues`.

use axum::Json;
use axum::extract::State;

use super::Failure;
use super::auth::Caller;
use super::types::QueueView;
use crate::state::Shared;
use crate::store::tokens::Scope;

/// Every queue's counters.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses(
        (status = 200, description = "Every known queue, by name", body = Vec<QueueView>),
        (status = 401, description = "No token, or an unknown one", body = super::ApiError),
        (status = 403, description = "The token lacks the read scope", body = super::ApiError),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<QueueView>>, Failure> {
    caller.need(Scope::Read)?;
    let mut out = Vec::new();
    for name in app.queue_names().await? {
        out.push(app.client.stats(&name).await?.into());
    }
    Ok(Json(out))
}
