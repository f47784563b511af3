//! The worker runtime: `pool` fetches and runs jobs, `acker` settles their results in batches,
//! `background` renews leases, reaps and listens for wake-ups, and `runner` runs one job and
//! turns its result into an outcome.

mod acker;
mod background;
mod builder;
pub mod pool;
pub mod queues;
pub mod runner;
mod state;

use std::time::Duration;

pub use builder::WorkerBuilder;
pub use queues::QueueSelection;
pub use runner::Runtime;
pub use state::{JobObserver, Worker, WorkerReport};

/// How one worker process runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub id: String,
    pub queues: QueueSelection,
    pub concurrency: usize,
    pub prefetch: usize,
    pub lease: Duration,
    pub shutdown_timeout: Duration,
    pub poll_interval: Duration,
}
