//! How one worker process runs: the settings its parts share.

use std::time::Duration;

use super::queues::QueueSelection;

/// How one worker process runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The worker's id, unique across restarts (host, pid and a random suffix).
    pub id: String,
    /// The queues it serves and in which order it fetches them.
    pub queues: QueueSelection,
    /// How many jobs run at once.
    pub concurrency: usize,
    /// How many jobs are leased ahead of a free slot.
    pub prefetch: usize,
    /// How long a lease lasts unless renewed.
    pub lease: Duration,
    /// How long running jobs get to finish at shutdown before they are handed back.
    pub shutdown_timeout: Duration,
    /// How often an idle worker fetches when no wake-up arrives.
    pub poll_interval: Duration,
}
