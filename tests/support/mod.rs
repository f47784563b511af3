//! Shared helpers for jobfleet's integration tests.
//!
//! Each file under `tests/` is its own crate, so each one pulls these helpers
//! in with `mod support;`. Keeping them under `tests/support/` (a directory
//! with a `mod.rs`) stops Cargo from treating them as a test target of their
//! own.
//!
//! Typical use:
//!
//! ```ignore
//! mod support;
//! use support::{TestRedis, unique_name};
//!
//! #[tokio::test]
//! async fn enqueued_job_is_processed() {
//!     let redis = TestRedis::start();
//!     let queue = unique_name("enqueue");
//!     // ... connect to redis.url() and use `queue` ...
//! }
//! ```

// A given test file uses only some of these helpers, and every file compiles
// this module on its own, so unused items would otherwise produce warnings
// that `cargo clippy --all-targets -- -D warnings` turns into errors.
#![allow(dead_code)]

pub mod anvil;
pub mod app;
pub mod chain;
pub mod cli;
pub mod cluster;
pub mod discussions;
pub mod fleet;
pub mod kubo;
pub mod notify;
pub mod probe;
pub mod process;
pub mod redis;
pub mod retention;
pub mod store;
pub mod web;

// `self::` is required: without it `redis` would be ambiguous between this
// child module and the `redis` crate the test may also depend on.
#[allow(unused_imports)]
pub use self::redis::TestRedis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-process counter so two calls in the same nanosecond still differ.
static UNIQUE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Returns a short name that is unique across tests and test processes, such
/// as `emails-1a2b-3-5f3e2c1`, usable as a queue name or key prefix.
///
/// Every test starts its own Redis, so uniqueness is not needed for
/// isolation between servers; it still helps when one test creates several
/// queues, and it makes keys from different tests easy to tell apart in
/// logs. The result only contains `[a-zA-Z0-9_-]`: characters outside that
/// set in `prefix` are replaced with `_` so callers can pass any label.
pub fn unique_name(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let pid = std::process::id();
    let count = UNIQUE_COUNTER.fetch_add(1, Ordering::Relaxed);
    // The sub-second nanoseconds add some run-to-run variation, so names from
    // a re-run are unlikely to collide with leftovers from an earlier run.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{pid:x}-{count}-{nanos:x}")
}
