//! The board's router: the public routes (sign-in, health, metrics), the API with its bearer
//! tokens, and every page and asset behind the sign-in check, with the security headers on all
//! of them; and the server that runs it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path};
use axum::http::{StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::access::{require_user, security_headers};
use crate::api;
use crate::pages::{audit, job, login, overview, queue, schedules, workers};
use crate::state::{NavLink, Shared, WebState};

/// The largest request body the API takes: a bulk of 10,000 jobs with args of a few KiB.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// The board's assets, embedded in the binary: nothing is fetched from elsewhere.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
    (
        "board.css",
        "text/css; charset=utf-8",
        include_str!("../assets/board.css"),
    ),
    (
        "board.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/board.js"),
    ),
];

/// The sign-in page's stylesheet, the one asset served before signing in.
const LOGIN_CSS: &str = include_str!("../assets/login.css");

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn login_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        LOGIN_CSS,
    )
        .into_response()
}

/// Pages an application adds to the board: their links and their routes. The routes sit
/// behind the sign-in check like the board's own; a handler finds the user as an
/// `Extension<Viewer>` and the links as an `Extension<Nav>`, and renders with
/// `render::layout::Page` so that its page looks like the others.
#[derive(Debug, Default)]
pub struct AppPages {
    /// The links, in the navigation's order.
    pub nav: Vec<NavLink>,
    /// The routes, with their own state already given.
    pub router: Router,
}

/// The navigation's links to the application's pages, in every request's extensions.
#[derive(Clone, Debug)]
pub struct Nav(pub Arc<Vec<NavLink>>);

/// The whole router of `jobfleet web`.
pub fn router(state: WebState, pages: AppPages) -> Router {
    let state: Shared = Arc::new(WebState {
        nav: pages.nav.clone(),
        ..state
    });
    let nav = Nav(Arc::new(pages.nav));
    let signed_in = Router::new()
        .route("/", get(overview::show))
        .route("/queues/{queue}", get(queue::show))
        .route("/queues/{queue}/act", post(queue::act))
        .route(
            "/queues/{queue}/all",
            get(queue::confirm_all).post(queue::act_all),
        )
        .route("/queues/{queue}/{what}", post(queue::pause))
        .route("/jobs/{id}", get(job::show))
        .route("/jobs/{id}/{action}", post(job::act))
        .route("/schedules", get(schedules::show))
        .route("/schedules/{name}/enqueue", post(schedules::enqueue_now))
        .route("/workers", get(workers::show))
        .route("/audit", get(audit::show))
        .route("/logout", post(login::logout))
        .route("/assets/{file}", get(asset))
        .with_state(state.clone())
        .merge(pages.router)
        .layer(axum::Extension(nav))
        .layer(from_fn_with_state(state.clone(), require_user));
    let api = Router::new()
        .route("/api/v1/jobs", post(api::jobs::enqueue))
        .route("/api/v1/jobs/bulk", post(api::jobs::bulk))
        .route(
            "/api/v1/jobs/{id}",
            get(api::jobs::get).delete(api::jobs::delete),
        )
        .route("/api/v1/jobs/{id}/retry", post(api::jobs::retry))
        .route("/api/v1/jobs/{id}/cancel", post(api::jobs::cancel))
        .route("/api/v1/queues", get(api::queues::list))
        .route("/api/v1/openapi.json", get(api::openapi::serve))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    let public = Router::new()
        .route("/login", get(login::page).post(login::submit))
        .route("/login.css", get(login_css))
        .with_state(state.clone())
        .merge(jobfleet_engine::telemetry::http::router(
            state.metrics.clone(),
            state.health.clone(),
        ));
    let metrics = state.web_metrics.clone();
    public
        .merge(api)
        .merge(signed_in)
        .layer(from_fn_with_state(metrics, crate::metrics::count))
        .layer(from_fn(security_headers))
}

/// Serves `router` on `addr` until `cancel`; returns the bound address once listening, and
/// the server's task.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
    });
    Ok((bound, task))
}
