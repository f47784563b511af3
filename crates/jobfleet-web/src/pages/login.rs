//! `/login` and `/logout`: the sign-in form (with a CSRF token of its own, in a cookie, as
//! there is no session yet), the check of the password, slowed down after each failure and
//! refused for a while after too many, and signing out.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::access::{
    LOGIN_COOKIE, Refusal, SESSION_COOKIE, SignedForm, cookie, form_fields, set_cookie,
};
use crate::state::Shared;
use crate::store::audit::AuditEntry;
use crate::store::users::failure_delay;
use crate::store::{new_secret, same_secret};

/// The sign-in page's query: where to go after, and why the last try failed.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

/// Only a path of this board is a place to go after signing in, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn form(token: &str, next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "jobfleet: sign in" }
                link rel="stylesheet" href="/login.css";
                link rel="icon" href="data:,";
            }
            body.login {
                main {
                    h1 { "jobfleet" }
                    form #login method="post" action="/login" {
                        input type="hidden" name="csrf" value=(token);
                        input type="hidden" name="next" value=(next);
                        @if let Some(e) = error { p.error #login-error role="alert" { (e) } }
                        label { "User name" input #username name="username" autocomplete="username" required autofocus; }
                        label { "Password" input #password name="password" type="password" autocomplete="current-password" required; }
                        button #sign-in type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// GET `/login`: the form, with its token in a cookie and in the form. A browser that has a
/// token keeps it, so that a second sign-in page (another tab, a redirect) does not make the
/// first one's form out of date.
pub async fn page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let token = cookie(&headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(new_secret);
    let next = safe_next(q.next.as_deref());
    let mut resp = form(&token, &next, q.error.as_deref()).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, 3600, app.settings.secure_cookies),
    );
    resp
}

fn again(next: &str, error: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let error: String = url::form_urlencoded::byte_serialize(error.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}&error={error}")).into_response()
}

/// POST `/login`: checks the name and password and starts a session.
pub async fn submit(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let fields = form_fields(&body);
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let next = safe_next(field("next"));
    let token_ok = match (cookie(&headers, LOGIN_COOKIE), field("csrf")) {
        (Some(c), Some(f)) => same_secret(&c, f),
        _ => false,
    };
    if !token_ok {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "The sign-in form is out of date: load it again.".into(),
        ));
    }
    let name = field("username").unwrap_or("").trim().to_owned();
    let password = field("password").unwrap_or("");
    let store = &app.store;
    let failures = store.failures(&name).await.map_err(super::store_failed)?;
    if failures >= app.settings.max_failed_logins {
        tracing::warn!(user = %name, failures, "sign-in refused: too many failed sign-ins");
        app.web_metrics
            .sign_ins
            .with_label_values(&["refused"])
            .inc();
        return Ok(again(
            &next,
            "Too many failed sign-ins for this name: wait and try again later.",
        ));
    }
    match store
        .check_password(&name, password)
        .await
        .map_err(super::store_failed)?
    {
        Some(user) => {
            store
                .clear_failures(&name)
                .await
                .map_err(super::store_failed)?;
            app.web_metrics.sign_ins.with_label_values(&["ok"]).inc();
            let ttl = app.settings.session_ttl;
            let (value, _) = store
                .start_session(&user.name, ttl)
                .await
                .map_err(super::store_failed)?;
            app.audit(AuditEntry::new(
                &user.name,
                "sign-in",
                "board",
                &[],
                "signed in".into(),
            ))
            .await;
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &value,
                    ttl.as_secs(),
                    app.settings.secure_cookies,
                ),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(LOGIN_COOKIE, "", 0, app.settings.secure_cookies),
            );
            Ok(resp)
        }
        None => {
            let n = store
                .record_failure(&name, app.settings.failure_window)
                .await
                .map_err(super::store_failed)?;
            tracing::warn!(user = %name, failures = n, "failed sign-in");
            app.web_metrics
                .sign_ins
                .with_label_values(&["failed"])
                .inc();
            // Slowed down in the request itself, so that guessing costs the guesser time.
            tokio::time::sleep(failure_delay(n).min(Duration::from_secs(8))).await;
            Ok(again(&next, "Wrong user name or password."))
        }
    }
}

/// POST `/logout`: ends the session.
pub async fn logout(
    State(app): State<Shared>,
    headers: HeaderMap,
    form: SignedForm,
) -> Result<Response, Refusal> {
    if let Some(c) = cookie(&headers, SESSION_COOKIE) {
        app.store
            .end_session(&c)
            .await
            .map_err(super::store_failed)?;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, app.settings.secure_cookies),
    );
    tracing::info!(user = %form.viewer.name, "signed out");
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/queues/a?state=dead")),
            "/queues/a?state=dead"
        );
        for bad in ["https://evil.example", "//evil.example", "/\\evil", "evil"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
