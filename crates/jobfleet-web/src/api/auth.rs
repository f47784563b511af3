//! Bearer tokens: who is calling, and whether their token's scopes allow the call.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Failure;
use crate::state::Shared;
use crate::store::tokens::{Scope, Token};

/// The token of an API call, checked against the store.
#[derive(Debug)]
pub struct Caller(pub Token);

impl Caller {
    /// Refuses the call (403) unless the token's scopes cover `scope`.
    pub fn need(&self, scope: Scope) -> Result<&Token, Failure> {
        if self.0.allows(scope) {
            Ok(&self.0)
        } else {
            Err(Failure(
                StatusCode::FORBIDDEN,
                format!(
                    "token {:?} lacks the {} scope this call needs",
                    self.0.name,
                    scope.as_str()
                ),
            ))
        }
    }

    /// The name the audit log gives the caller.
    pub fn actor(&self) -> String {
        format!("token:{}", self.0.name)
    }
}

/// A 401 with the header that says how to authenticate.
#[derive(Debug)]
pub struct Unauthorized(String);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut resp = Failure(StatusCode::UNAUTHORIZED, self.0).into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"jobfleet\""),
        );
        resp
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(Unauthorized(
                "an API token is required: Authorization: Bearer <token>".into(),
            )
            .into_response());
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return Err(
                Unauthorized("the Authorization header must be \"Bearer <token>\"".into())
                    .into_response(),
            );
        };
        match app.store.verify_token(token).await {
            Ok(Some(t)) => Ok(Caller(t)),
            Ok(None) => Err(Unauthorized("unknown or revoked API token".into()).into_response()),
            Err(e) => {
                tracing::error!(error = %e, "cannot check an API token");
                Err(Failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store cannot be reached".into(),
                )
                .into_response())
            }
        }
    }
}
