//! The HTTP API under `/api/v1`, JSON, for producers in any language and for automation.
//!
//! Every request carries `Authorization: Bearer <token>`; a token is made with `jobfleet web
//! token create` and has scopes (`enqueue`, `read`, `operate`). No token or an unknown one is
//! 401, a token without the scope 403. The API uses no cookies, so a browser's session is no
//! way in and CSRF does not apply. The OpenAPI document (`openapi.rs`) is generated from the
//! handlers and types here and checked in as `docs/openapi.json`.

pub mod auth;
pub mod jobs;
pub mod openapi;
pub mod queues;
pub mod types;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use jobfleet_engine::queue::QueueError;

pub use types::ApiError;

/// An API error: a status and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<QueueError> for Failure {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound(id) => Failure(
                StatusCode::NOT_FOUND,
                format!("no job with id {id} (it may have finished or been removed)"),
            ),
            QueueError::Invalid(why) => Failure(StatusCode::UNPROCESSABLE_ENTITY, why),
            QueueError::InvalidQueue(e) => Failure(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            e => {
                tracing::error!(error = %e, "an API call could not reach the store");
                Failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store failed: {e}"),
                )
            }
        }
    }
}
