//! The board's own metrics, served with the engine's at `/metrics`: requests by route (the
//! route's template, so that ids in paths do not make new series), method and status, their
//! durations, and sign-ins by outcome. Each counts what happened, once.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The board's collectors; cheap to clone.
#[derive(Clone, Debug)]
pub struct WebMetrics {
    /// Requests answered, by route, method and status.
    pub requests: IntCounterVec,
    /// Time to answer, by route.
    pub duration: HistogramVec,
    /// Sign-ins, by outcome: `ok`, `failed` (a wrong name or password), `refused` (too many
    /// failures).
    pub sign_ins: IntCounterVec,
}

impl WebMetrics {
    /// The collectors, registered in `registry` (the process's, which `/metrics` serves).
    pub fn new(registry: &Registry) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "jobfleet_web_requests_total",
                "Requests the board and the API answered",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "jobfleet_web_request_duration_seconds",
                "Time to answer a request",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let sign_ins = IntCounterVec::new(
            Opts::new("jobfleet_web_sign_ins_total", "Sign-ins by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        for c in [&requests, &sign_ins] {
            // A second registration (a second board in one process, in tests) keeps the first.
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(duration.clone()));
        Self {
            requests,
            duration,
            sign_ins,
        }
    }
}

/// Counts and times every request by its route's template (`/jobs/{id}`), or `unmatched`.
pub async fn count(State(m): State<WebMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    m.duration
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[route.as_str(), method.as_str(), resp.status().as_str()])
        .inc();
    resp
}
