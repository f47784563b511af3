//! Who is asking, and may they: the board's sign-in check (a session cookie, or the user
//! header of a trusted authenticating proxy), the CSRF check of every form that changes
//! something, and the security headers of every response.
//!
//! Every page, asset and action sits behind [`require_user`]; only `/login`, `/livez`,
//! `/readyz`, `/healthz` and `/metrics` do not. The API under `/api/v1` has its own bearer
//! tokens (`api::auth`) and no cookies, so CSRF does not concern it.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::state::Shared;
use crate::store::same_secret;
use crate::store::users::Role;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "jobfleet_session";
/// The name of the cookie that carries the sign-in form's CSRF token (before any session).
pub const LOGIN_COOKIE: &str = "jobfleet_login";

/// The signed-in user of a request, put in its extensions by [`require_user`].
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The user's name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The session's CSRF token, which every form carries.
    pub csrf: String,
}

impl Viewer {
    /// Whether the user may change things.
    pub fn can_operate(&self) -> bool {
        self.role == Role::Operator
    }
}

/// A refusal, as a small page.
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let page = maud::html! {
            (maud::DOCTYPE)
            html lang="en" { head { meta charset="utf-8"; title { "jobfleet: " (self.0) } link rel="icon" href="data:,"; link rel="stylesheet" href="/assets/board.css"; }
            body { main { h1 { (self.0) } p { (self.1) } p { a href="/" { "Back to the overview" } } } } }
        };
        (self.0, page).into_response()
    }
}

/// The value of one cookie of a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when configured; a
/// `max_age` of 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Lets a request through only for a signed-in user, whom it adds to the extensions; any
/// other request is sent to `/login` (a GET, with where it was going) or refused.
pub async fn require_user(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    match identify(&app, peer, req.headers()).await {
        Ok(Some((viewer, new_cookie))) => {
            req.extensions_mut().insert(viewer);
            let mut resp = next.run(req).await;
            if let Some(c) = new_cookie {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Ok(None) if req.method() == Method::GET || req.method() == Method::HEAD => {
            let target = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let next_param: String =
                url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next_param}")).into_response()
        }
        Ok(None) => Refusal(StatusCode::UNAUTHORIZED, "Sign in first.".into()).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot check the session");
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store cannot be reached.".into(),
            )
            .into_response()
        }
    }
}

/// The user of a request and, when a proxy's user just arrived, the session cookie made for
/// them (so that their forms carry a CSRF token like everyone's).
async fn identify(
    app: &Shared,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> crate::store::Result<Option<(Viewer, Option<HeaderValue>)>> {
    let proxied = proxy_user(app, peer, headers);
    if let Some(c) = cookie(headers, SESSION_COOKIE)
        && let Some(session) = app.store.session(&c).await?
        && proxied.as_ref().is_none_or(|p| *p == session.user)
    {
        let role = match app.store.user(&session.user).await? {
            Some(u) => u.role,
            // A proxy's user need not be one of ours: they see, and change nothing.
            None if proxied.is_some() => Role::Viewer,
            // A removed user's sessions end with them.
            None => return Ok(None),
        };
        return Ok(Some((
            Viewer {
                name: session.user,
                role,
                csrf: session.csrf,
            },
            None,
        )));
    }
    let Some(name) = proxied else { return Ok(None) };
    let role = app
        .store
        .user(&name)
        .await?
        .map_or(Role::Viewer, |u| u.role);
    let ttl = app.settings.session_ttl;
    let (cookie, session) = app.store.start_session(&name, ttl).await?;
    tracing::info!(user = %name, "signed in by the trusted proxy");
    Ok(Some((
        Viewer {
            name,
            role,
            csrf: session.csrf,
        },
        Some(set_cookie(
            SESSION_COOKIE,
            &cookie,
            ttl.as_secs(),
            app.settings.secure_cookies,
        )),
    )))
}

/// The user named by the trusted proxy's header, when the request comes from that proxy.
fn proxy_user(app: &Shared, peer: SocketAddr, headers: &HeaderMap) -> Option<String> {
    let proxy = app.settings.proxy()?;
    if peer.ip() != proxy {
        return None;
    }
    let name = headers
        .get(app.settings.proxy_user_header.as_str())?
        .to_str()
        .ok()?
        .trim();
    crate::store::validate_name("user", name).ok()?;
    Some(name.to_owned())
}

/// The headers every response carries: a Content-Security-Policy that allows no inline
/// script or style and nothing from elsewhere, no framing, no sniffing, no referrer to other
/// sites, and no caching of pages that show queue state.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The fields of a submitted form whose CSRF token matched the session's: the extractor of
/// every state-changing request of the board. Repeated fields (the ids of picked jobs) are
/// kept, which axum's `Form` does not do.
#[derive(Debug)]
pub struct SignedForm {
    /// Who submitted it.
    pub viewer: Viewer,
    /// Every field but the token, in order.
    pub fields: Vec<(String, String)>,
}

impl SignedForm {
    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Refuses a viewer: only operators change things.
    pub fn operator(&self) -> Result<&Viewer, Refusal> {
        if self.viewer.can_operate() {
            Ok(&self.viewer)
        } else {
            Err(Refusal(
                StatusCode::FORBIDDEN,
                format!("{} is a viewer: viewers change nothing.", self.viewer.name),
            ))
        }
    }
}

/// Parses an `application/x-www-form-urlencoded` body into its fields.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

impl<S: Send + Sync> FromRequest<S> for SignedForm {
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let viewer = req
            .extensions()
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| Refusal(StatusCode::UNAUTHORIZED, "Sign in first.".into()))?;
        let body = Bytes::from_request(req, state).await.map_err(|_| {
            Refusal(
                StatusCode::BAD_REQUEST,
                "The form could not be read.".into(),
            )
        })?;
        let mut fields = form_fields(&body);
        let token = fields
            .iter()
            .position(|(k, _)| k == "csrf")
            .map(|i| fields.remove(i).1);
        match token {
            Some(t) if same_secret(&t, &viewer.csrf) => Ok(Self { viewer, fields }),
            _ => Err(Refusal(
                StatusCode::FORBIDDEN,
                "This form is out of date or did not come from the board (its CSRF token does \
                 not match): reload the page and try again."
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; jobfleet_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn the_session_cookie_is_strict_and_http_only() {
        let c = set_cookie(SESSION_COOKIE, "v", 60, true);
        let c = c.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=60",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(
            !set_cookie(SESSION_COOKIE, "v", 60, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn repeated_fields_are_kept() {
        let f = form_fields(b"id=a&id=b&action=retry&q=%3Cscript%3E");
        assert_eq!(f.iter().filter(|(k, _)| k == "id").count(), 2);
        assert!(f.contains(&("q".into(), "<script>".into())));
    }
}
