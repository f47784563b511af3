//! Telemetry: logs (text or JSON, with one span per job), Prometheus metrics, and the
//! `/metrics`, `/livez`, `/readyz` and `/healthz` server every long-running process serves.

pub mod http;
pub mod metrics;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use std::time::Duration;

use serde::Deserialize;

use crate::settings::duration;

pub use metrics::Metrics;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// The `[telemetry]` section: logs, metrics and health.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The format of log lines.
    pub log_format: LogFormat,
    /// Which events are logged, as an `EnvFilter` directive (`info`, `jobfleet_engine=debug`).
    pub log_filter: String,
    /// Where a worker serves `/metrics`, `/livez` and `/readyz`; empty for none.
    pub http_addr: String,
    /// `/readyz` fails once the last answer from Redis is older than this.
    #[serde(with = "duration")]
    pub ready_timeout: Duration,
}

/// Installs the global subscriber. `RUST_LOG` overrides the configured filter. Logs go to
/// stderr so that command output on stdout stays machine-readable.
pub fn init_logging(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_filter));
    // Colours only for a person at a terminal, never in files, pipes or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    // A second call (tests run several commands in one process) keeps the first subscriber.
    let _ = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
