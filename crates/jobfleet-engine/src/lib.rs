//! jobfleet-engine: background jobs on Redis.
//!
//! A queue store of our own (Lua scripts, leases with fencing, exponential backoff, a capped
//! dead set), a worker runtime that leases and acks in batches, an exactly-once scheduler, the
//! engine's telemetry, and typed jobs whose policy lives in spec files. It knows nothing of
//! the application that runs on it: the application's state is the `S` of `Job<S>`.
//!
//! See the crate's README for "your first job" and ARCHITECTURE.md for the layout.

#![warn(missing_docs)]

pub mod builtin;
pub mod cli;
pub mod job;
pub mod queue;
pub mod scheduler;
pub mod settings;
pub mod telemetry;
pub mod worker;

pub use job::{Client, Job, JobArgs, JobContext, JobError, Registry};

/// Installs rustls's process-wide crypto provider (ring) once: `rediss://` connections need
/// one, and an application that builds other TLS clients calls this before them too. A
/// second call does nothing.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
