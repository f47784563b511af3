//! Helpers of the store's own tests: lease jobs, build settlements, read (acked, stale).
#![allow(dead_code)]

use std::time::Duration;

use jobfleet::queue::{Leased, NewJob, QueueClient, Settle, SettleAction};
use serde_json::json;

pub const LEASE: Duration = Duration::from_secs(30);

pub fn noop(i: usize) -> NewJob {
    NewJob::new("noop", "default", json!({ "i": i }))
}

pub async fn fetch(c: &QueueClient, n: usize, worker: &str) -> Vec<Leased> {
    c.fetch("default", n, LEASE, worker).await.unwrap().jobs
}

pub fn settle(job: &Leased, action: SettleAction, due_ms: i64) -> Settle<'_> {
    Settle {
        job,
        action,
        due_ms,
        error: "boom".into(),
    }
}

pub fn refs(jobs: &[Leased]) -> Vec<&Leased> {
    jobs.iter().collect()
}

pub fn ids(jobs: &[Leased]) -> Vec<String> {
    jobs.iter().map(Leased::id).collect()
}

pub async fn dbsize(c: &QueueClient) -> u64 {
    redis::cmd("DBSIZE")
        .query_async(&mut c.connection())
        .await
        .unwrap()
}

/// (acked, stale) of an ack, checking that the stale positions agree with the count.
pub fn acked(r: jobfleet::queue::Result<jobfleet::queue::AckReport>) -> (u64, u64) {
    let r = r.unwrap();
    assert_eq!(r.stale_at.len() as u64, r.stale);
    (r.acked, r.stale)
}
