//! jobfleet: the background-job fleet of the marketplace and prediction-market backend.
//!
//! The job engine is the crate `jobfleet-engine`; its modules are re-exported here under the
//! names the application has always used. See ARCHITECTURE.md for the bird's-eye view, the
//! code map and the invariants.

pub mod board;
pub mod chain;
pub mod cli;
pub mod config;
pub mod db;
pub mod dev;
pub mod ipfs;
pub mod jobs;
pub mod notify;
pub mod payouts;

pub use jobfleet_engine::{install_tls_provider, job, queue, scheduler, telemetry, worker};
