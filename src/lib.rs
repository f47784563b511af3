//! jobfleet: the background-job fleet of the marketplace and prediction-market backend.
//!
//! See ARCHITECTURE.md for the bird's-eye view, the code map and the invariants.

pub mod cli;
pub mod config;
pub mod db;
pub mod jobs;
pub mod notify;
pub mod queue;
pub mod scheduler;
pub mod telemetry;
pub mod worker;
