//! What names a job kind: all a producer needs to enqueue one.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The args of a job kind, with the kind's stable name. A producer needs only this to enqueue
/// a job: the handler may live in another binary.
pub trait JobArgs: Serialize + DeserializeOwned + Send + 'static {
    /// The stable name stored with every job; renaming it orphans queued jobs.
    const KIND: &'static str;
}
