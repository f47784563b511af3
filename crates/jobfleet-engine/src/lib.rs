#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod builtin;
pub mod cli;
pub mod config;
pub mod cron;
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
