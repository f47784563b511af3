//! What a handler says when it did not succeed, and how an error prints with its causes.
//!
//! Kept apart from the registry so that the modules an application's handlers call
//! (their database, HTTP or chain clients) can name `JobError` without importing the registry
//! of kinds that imports them.

use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler says when it did not succeed; each variant says what happens next.
#[derive(Debug)]
pub enum JobError {
    /// Try again after the kind's backoff, until its attempts are used up, then dead.
    Retry(BoxError),
    /// Do not try again: straight to dead.
    Fatal(BoxError),
    /// Not a failure: run again after this delay, without consuming an attempt.
    Snooze(Duration),
    /// A failure that must not be retried before this delay (an HTTP 429's Retry-After): it
    /// consumes an attempt like `Retry`, and the retry waits the longer of the delay and the
    /// kind's backoff.
    RetryAfter(BoxError, Duration),
}

impl JobError {
    /// A failure worth retrying: the job runs again after the kind's backoff, or goes to dead once
    /// its attempts are used up.
    pub fn retry(e: impl Into<BoxError>) -> Self {
        JobError::Retry(e.into())
    }
    /// A failure that retrying cannot fix: the job goes to dead at once, whatever attempts are left.
    pub fn fatal(e: impl Into<BoxError>) -> Self {
        JobError::Fatal(e.into())
    }
    /// Not a failure: the job runs again after `after`, and the attempt is not counted.
    pub fn snooze(after: Duration) -> Self {
        JobError::Snooze(after)
    }
    /// A failure that must not be retried before `after` (a Retry-After): the attempt is counted and
    /// the retry waits the longer of `after` and the kind's backoff.
    pub fn retry_after(e: impl Into<BoxError>, after: Duration) -> Self {
        JobError::RetryAfter(e.into(), after)
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Retry(e) => write!(f, "retryable: {}", error_chain(e.as_ref())),
            JobError::Fatal(e) => write!(f, "fatal: {}", error_chain(e.as_ref())),
            JobError::Snooze(d) => write!(f, "snoozed for {}", humantime::format_duration(*d)),
            JobError::RetryAfter(e, d) => write!(
                f,
                "retryable after {}: {}",
                humantime::format_duration(*d),
                error_chain(e.as_ref())
            ),
        }
    }
}

impl std::error::Error for JobError {}

/// An error and all its sources, joined by ": ", so the stored last error keeps the chain.
///
/// A source whose text the line already holds is left out. Our own error types put a cause
/// in their message or in `source()`, never both, but some libraries' errors do both (a
/// driver's `error returned from database: {0}` with the same error as its source, transport
/// errors), and printing those whole would say every such cause twice.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_chain_says_each_cause_once() {
        let e = Repeats(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&e), "wrapper: disk full");
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }

    #[test]
    fn errors_keep_their_chain() {
        let e = JobError::retry(Outer(std::io::Error::other("inner")));
        assert_eq!(e.to_string(), "retryable: outer: inner");
        assert_eq!(
            JobError::snooze(Duration::from_secs(90)).to_string(),
            "snoozed for 1m 30s"
        );
        assert_eq!(
            JobError::retry_after("429", Duration::from_secs(30)).to_string(),
            "retryable after 30s: 429"
        );
    }
}
