//! The OpenAPI 3 document of the API, generated from the handlers' annotations and the body
//! types, served at `/api/v1/openapi.json` and checked in as the crate's `openapi.json` (a
//! test fails when the two differ, so a change of the API shows in review).

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::auth::Caller;
use super::types::{
    ActionResponse, ApiError, BulkRequest, BulkResponse, BulkResult, CancelResponse,
    EnqueueRequest, EnqueueResponse, FailureView, JobView, QueueView,
};

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobfleet API",
        version = "1",
        description = "Enqueue and inspect jobfleet jobs over HTTP. Every call needs \
            `Authorization: Bearer <token>`; tokens are made with `jobfleet web token create NAME \
            --scope enqueue|read|operate`."
    ),
    paths(
        super::jobs::enqueue,
        super::jobs::bulk,
        super::jobs::get,
        super::jobs::retry,
        super::jobs::delete,
        super::jobs::cancel,
        super::queues::list,
    ),
    components(schemas(
        ApiError, EnqueueRequest, EnqueueResponse, BulkRequest, BulkResponse, BulkResult,
        QueueView, JobView, FailureView, ActionResponse, CancelResponse
    )),
    modifiers(&Bearer),
    tags((name = "jobs", description = "Enqueue, read, retry, cancel and delete jobs"),
         (name = "queues", description = "The queues' counters"))
)]
pub struct ApiDoc;

impl std::fmt::Debug for ApiDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiDoc")
    }
}

/// Adds the bearer scheme the paths' `security` refers to.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as pretty JSON, as it is checked in.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// GET `/api/v1/openapi.json`, for any valid token.
pub async fn serve(_caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::to_value(ApiDoc::openapi()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in document is the one the code generates. To update it after a change of
    /// the API: `UPDATE_OPENAPI=1 cargo test -p jobfleet-web openapi`.
    #[test]
    fn the_checked_in_openapi_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let generated = document();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "crates/jobfleet-web/openapi.json is not what the code generates: run \
             UPDATE_OPENAPI=1 cargo test -p jobfleet-web openapi, and review the change"
        );
    }

    #[test]
    fn every_call_is_documented() {
        let doc = document();
        for path in [
            "/api/v1/jobs",
            "/api/v1/jobs/bulk",
            "/api/v1/jobs/{id}",
            "/api/v1/jobs/{id}/retry",
            "/api/v1/queues",
        ] {
            assert!(doc.contains(&format!("\"{path}\"")), "{path}");
        }
        assert!(doc.contains("\"openapi\": \"3."));
    }
}
