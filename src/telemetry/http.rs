//! The `/metrics` and `/healthz` server of a process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::queue::now_ms;

/// Liveness as the process sees it: the time of its last successful contact with Redis.
#[derive(Debug)]
pub struct Health {
    last_ok_ms: AtomicI64,
    /// Unhealthy once the last contact is older than this.
    pub stale_after: Duration,
}

impl Health {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            last_ok_ms: AtomicI64::new(now_ms()),
            stale_after,
        }
    }

    pub fn ok(&self) {
        self.last_ok_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last successful contact.
    pub fn age_ms(&self) -> i64 {
        now_ms() - self.last_ok_ms.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.age_ms() <= i64::try_from(self.stale_after.as_millis()).unwrap_or(i64::MAX)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Arc<Health>,
}

async fn metrics_page(State(s): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let age = s.health.age_ms();
    if s.health.healthy() {
        (StatusCode::OK, format!("ok: redis reached {age} ms ago\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: redis last reached {age} ms ago\n"),
        )
    }
}

/// Binds the server and serves it until `cancel`; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .with_state(AppState { metrics, health });
    tokio::spawn(async move {
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(%bound, "serving /metrics and /healthz");
    Ok(bound)
}
