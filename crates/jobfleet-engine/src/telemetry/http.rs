//! The telemetry server of a long-running process: `/metrics`, `/livez`, `/readyz` and
//! `/healthz`; the readiness it reports, kept fresh by a ping of Redis every second; and the
//! choice of its port when the configured one is taken.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::queue::{QueueClient, now_ms};

/// Readiness as the process sees it: the time of its last successful contact with Redis.
#[derive(Debug)]
pub struct Health {
    last_ok_ms: AtomicI64,
    /// Not ready once the last contact is older than this (`telemetry.ready_timeout`).
    pub stale_after: Duration,
}

impl Health {
    /// Health that counts as ready now and goes stale after `stale_after` without contact.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            last_ok_ms: AtomicI64::new(now_ms()),
            stale_after,
        }
    }

    /// Records a successful contact with Redis.
    pub fn ok(&self) {
        self.last_ok_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last successful contact.
    pub fn age_ms(&self) -> i64 {
        now_ms() - self.last_ok_ms.load(Ordering::Relaxed)
    }

    /// True while the last contact with Redis is recent enough for `/readyz` to answer ready.
    pub fn healthy(&self) -> bool {
        self.age_ms() <= i64::try_from(self.stale_after.as_millis()).unwrap_or(i64::MAX)
    }

    /// How often `watch_redis` pings: every second, or more often for a shorter timeout, so
    /// that readiness falls within the timeout of an outage and comes back within a second.
    pub fn ping_every(&self) -> Duration {
        (self.stale_after / 3).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// Pings Redis every `health.ping_every()` until `cancel`, so readiness follows Redis even when
/// the process has nothing else to ask it (an idle scheduler, a worker between polls). Each
/// ping waits at most the ready timeout; one that fails or is late leaves the last contact as
/// it was, and `/readyz` turns 503 once that is older than the timeout.
pub async fn watch_redis(
    client: QueueClient,
    health: Arc<Health>,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let mut con = client.connection();
    let mut down_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let ping = redis::cmd("PING");
        let answer = tokio::select! {
            () = cancel.cancelled() => return,
            r = tokio::time::timeout(health.stale_after, ping.query_async::<String>(&mut con)) => r,
        };
        match answer {
            Ok(Ok(_)) => {
                health.ok();
                if let Some(since) = down_since.take() {
                    let millis = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let after = humantime::format_duration(Duration::from_millis(millis));
                    tracing::info!(%after, "Redis answers again: /readyz reports 200");
                }
            }
            failed => {
                metrics.redis_errors.with_label_values(&["ping"]).inc();
                if down_since.is_none() {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {:?}", health.stale_after),
                    };
                    tracing::warn!(%error, ready_timeout = ?health.stale_after,
                        "Redis does not answer: /readyz reports 503 once the last answer is older than the ready timeout");
                    down_since = Some(started);
                }
            }
        }
        let rest = health.ping_every().saturating_sub(started.elapsed());
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(rest) => {}
        }
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

/// The process runs and serves requests; says nothing about Redis, so that an outage of
/// Redis never gets every process of the fleet restarted at once.
async fn livez() -> impl IntoResponse {
    (StatusCode::OK, "ok: running\n")
}

/// Ready while Redis answered within the ready timeout.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let age = s.health.age_ms();
    if s.health.healthy() {
        (StatusCode::OK, format!("ok: redis reached {age} ms ago\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unready: redis last reached {age} ms ago\n"),
        )
    }
}

/// How many ports after a taken one are tried before letting the system choose.
pub const NEXT_PORTS: u16 = 10;

/// The ports tried after `port` is found taken: the next `NEXT_PORTS`, less `reserved` (the
/// configured port of the other kind of process, so that a second worker does not take the
/// scheduler's port). Pure.
pub fn fallback_ports(port: u16, reserved: &[u16]) -> Vec<u16> {
    (1..=NEXT_PORTS)
        .filter_map(|i| port.checked_add(i))
        .filter(|p| !reserved.contains(p))
        .collect()
}

/// Binds `addr`; when its port is taken, the first free one of `fallback_ports`, else one the
/// system chooses, and says so in the log. Any other error (a permission, an address this host
/// does not have) is returned: only a busy port is expected on a host running several
/// processes of the fleet.
async fn bind(addr: SocketAddr, reserved: &[u16]) -> std::io::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {}
        bound => return bound,
    }
    for port in fallback_ports(addr.port(), reserved) {
        if let Ok(listener) = TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            tracing::warn!(configured = %addr, bound = %listener.local_addr()?,
                "the configured telemetry port is taken (another process on this host): serving on the next free port");
            return Ok(listener);
        }
    }
    let listener = TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?;
    tracing::warn!(configured = %addr, bound = %listener.local_addr()?,
        "the configured telemetry port and the {NEXT_PORTS} after it are taken: serving on a port the system chose");
    Ok(listener)
}

/// Where Prometheus reaches a server bound to `bound`: the host's name for a wildcard address
/// (`0.0.0.0:9464` is no address to scrape), else the address itself.
pub fn scrape_target(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        format!("{}:{}", crate::queue::workers::host_name(), bound.port())
    } else {
        bound.to_string()
    }
}

/// The routes of the telemetry server: `/metrics`, `/livez`, `/readyz` and `/healthz`, for a
/// process that serves them beside routes of its own (the web board does).
pub fn router<T: Clone + Send + Sync + 'static>(
    metrics: Metrics,
    health: Arc<Health>,
) -> Router<T> {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        // The old name of readiness, kept for the probes that use it.
        .route("/healthz", get(readyz))
        .with_state(AppState { metrics, health })
}

/// Binds the server (see `bind` for a taken port) and serves it until `cancel`; returns the
/// bound address.
pub async fn serve(
    addr: SocketAddr,
    reserved: &[u16],
    metrics: Metrics,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = bind(addr, reserved).await?;
    let bound = listener.local_addr()?;
    let app = router(metrics, health);
    tokio::spawn(async move {
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(%bound, "serving /metrics, /livez, /readyz and /healthz");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_falls_back_to_the_next_ones_less_the_reserved() {
        assert_eq!(
            fallback_ports(9464, &[9465]),
            [9466, 9467, 9468, 9469, 9470, 9471, 9472, 9473, 9474]
        );
        assert_eq!(fallback_ports(65534, &[]), [65535]);
    }

    #[tokio::test]
    async fn a_second_server_on_a_taken_port_takes_another_one() {
        let first = bind("127.0.0.1:0".parse().unwrap(), &[]).await.unwrap();
        let taken = first.local_addr().unwrap();
        let second = bind(taken, &[]).await.unwrap();
        let port = second.local_addr().unwrap().port();
        assert_ne!(port, taken.port());
        assert_eq!(second.local_addr().unwrap().ip(), taken.ip());
    }

    #[test]
    fn wildcard_addresses_are_scraped_by_host_name() {
        assert_eq!(
            scrape_target("127.0.0.1:9464".parse().unwrap()),
            "127.0.0.1:9464"
        );
        let wildcard = scrape_target("0.0.0.0:9464".parse().unwrap());
        assert!(
            wildcard.ends_with(":9464") && !wildcard.starts_with("0.0.0.0"),
            "{wildcard}"
        );
    }

    #[test]
    fn pings_come_at_least_every_second() {
        assert_eq!(
            Health::new(Duration::from_secs(30)).ping_every(),
            Duration::from_secs(1)
        );
        assert_eq!(
            Health::new(Duration::from_millis(300)).ping_every(),
            Duration::from_millis(100)
        );
    }
}
