//! The worker runtime: `pool` fetches and runs jobs, `acker` settles their results in batches,
//! `background` renews leases, reaps and listens for wake-ups, and `runner` runs one job and
//! turns its result into an outcome.

mod acker;
mod background;
mod builder;
mod config;
mod limiter;
pub mod pool;
pub mod queues;
pub mod runner;
mod state;

pub use builder::WorkerBuilder;
pub use config::WorkerConfig;
pub use queues::QueueSelection;
pub use runner::Runtime;
pub use state::{JobObserver, Worker, WorkerReport};
