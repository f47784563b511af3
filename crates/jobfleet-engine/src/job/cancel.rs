//! A job's cancellation: what an operator's `jobfleet jobs cancel` of a running job turns
//! into inside the worker that runs it.
//!
//! Cancellation is cooperative, like a shutdown: the handler is told (`JobContext::cancelled`,
//! `is_cancelled`) and decides where to stop. A run that then ends in an error ends as
//! cancelled, in the dead set with the reason `cancelled by <who>`, and is not retried; a run
//! that finishes its work anyway has succeeded.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// The cancellation of one run; clones share it.
#[derive(Clone, Debug, Default)]
pub struct JobCancel {
    token: CancellationToken,
    by: Arc<OnceLock<String>>,
}

impl JobCancel {
    /// A cancellation nobody asked for yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop, on behalf of `who`; the first request is the one remembered.
    pub fn cancel(&self, who: &str) {
        let _ = self.by.set(who.to_owned());
        self.token.cancel();
    }

    /// Whether the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Who asked, once somebody did.
    pub fn by(&self) -> Option<&str> {
        self.by.get().map(String::as_str)
    }

    /// Completes when the run is asked to stop.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_request_is_remembered_and_wakes_every_clone() {
        let cancel = JobCancel::new();
        let seen = cancel.clone();
        assert!(!seen.is_cancelled() && seen.by().is_none());
        let waiting = tokio::spawn(async move {
            seen.cancelled().await;
            seen.by().map(str::to_owned)
        });
        cancel.cancel("alice");
        cancel.cancel("bob");
        assert_eq!(waiting.await.unwrap().as_deref(), Some("alice"));
    }
}
