//! jobfleet: the background-job fleet of the marketplace and prediction-market backend.
//!
//! See ARCHITECTURE.md for the bird's-eye view, the code map and the invariants.

pub mod chain;
pub mod cli;
pub mod config;
pub mod db;
pub mod ipfs;
pub mod job;
pub mod jobs;
pub mod notify;
pub mod queue;
pub mod scheduler;
pub mod telemetry;
pub mod worker;

/// Installs rustls's process-wide crypto provider (ring) once. reqwest is built without a
/// provider of its own (its default would pull in aws-lc), so every code path that builds an
/// HTTP client calls this first; a second call does nothing.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
