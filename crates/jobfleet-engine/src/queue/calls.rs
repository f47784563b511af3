//! What the calls on a worker's path take and return: the call ids that make a retried call
//! safe, the outcome of a job that did not succeed, and the counts each script reports.
//!
//! Kept apart from `client`, which makes the calls, so that the types can be read (and the
//! worker's acker built on them) without the Redis plumbing.

use super::envelope::Leased;
use super::payload::Header;

/// One ack or settle call, named so that Redis recognises its retries: a call whose reply was
/// lost (a dropped connection, a restarted Redis) is sent again with the same `Call`, and
/// answers what the first one did instead of reporting its jobs stale. Calls on one lane of one
/// worker must not overlap in time; the worker's acker has the lanes `ack` and `settle`, its
/// hand-back at shutdown `requeue` and its fetcher's hand-back of orphaned jobs `reconcile`.
#[derive(Clone, Debug)]
pub struct Call {
    pub(super) lane: &'static str,
    pub(super) id: String,
}

impl Call {
    /// A new call on `lane` with a fresh id; send it again as it is when its reply was lost.
    pub fn new(lane: &'static str) -> Self {
        Self {
            lane,
            id: ulid::Ulid::generate().to_string(),
        }
    }
}

/// What to do with a leased job that did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleAction {
    /// A failed attempt, to run again at the due time.
    Retry,
    /// Run later at the due time without consuming the attempt.
    Snooze,
    /// Handed back at shutdown, to the head of the queue, without consuming the attempt.
    Requeue,
    /// To the dead set.
    Kill,
}

impl SettleAction {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SettleAction::Retry => "retry",
            SettleAction::Snooze => "snooze",
            SettleAction::Requeue => "requeue",
            SettleAction::Kill => "kill",
        }
    }
}

/// One non-success outcome for `settle`.
#[derive(Clone, Debug)]
pub struct Settle<'a> {
    /// The leased job whose attempt ended.
    pub job: &'a Leased,
    /// What becomes of it.
    pub action: SettleAction,
    /// Milliseconds since the epoch; ignored for requeue and kill.
    pub due_ms: i64,
    /// Why the attempt failed (retry, kill).
    pub error: String,
}

impl Settle<'_> {
    /// The job to store instead of the leased one: a failed attempt is counted in the header
    /// with its error; snoozed and handed-back jobs are stored unchanged (empty).
    pub(super) fn replacement(&self, now: i64) -> Vec<u8> {
        if matches!(self.action, SettleAction::Snooze | SettleAction::Requeue) {
            return Vec::new();
        }
        match &self.job.header {
            Ok(h) => Header {
                attempts: h.next_attempt(),
                failed_at: now,
                error: self.error.clone(),
                ..h.clone()
            }
            .encode_bytes(self.job.body_bytes()),
            // An undecodable job is kept whole as the body of a valid dead entry, so an
            // operator still sees exactly what was received.
            Err(_) => Header {
                attempts: 1,
                max_attempts: 1,
                id: self.job.id(),
                failed_at: now,
                error: self.error.clone(),
                ..Header::default()
            }
            .encode_bytes(&self.job.stored),
        }
    }

    /// The entry `settle.lua` adds to the job's history of failed attempts for a retry or a
    /// kill: "<failed at ms>|<attempt>|<worker>|<error>", what the header stored instead says
    /// (see `replacement`), so that the script does not parse it. Empty for the other actions
    /// and for a job without an id.
    pub(super) fn attempt_entry(&self, now: i64, worker: &str) -> String {
        if !matches!(self.action, SettleAction::Retry | SettleAction::Kill) {
            return String::new();
        }
        // An undecodable job is stored with attempt 1 under an id of its own (`replacement`).
        let attempts = match &self.job.header {
            Ok(h) if h.id.is_empty() => return String::new(),
            Ok(h) => h.next_attempt(),
            Err(_) => 1,
        };
        format!("{now}|{attempts}|{worker}|{}", self.error)
    }
}

/// What else the end of a leased job touches in `ack.lua` besides its in-flight entry: empty
/// for nothing, the common case, which the script then handles without a look at the job;
/// else the letters of what it touches (`a`: a history of failed attempts, which only a job
/// that failed before has; `f`: a flow's outbox; `u`: a unique lock), `|` and its unique key.
/// The script would find the same in the stored job: this saves it the reading.
pub(super) fn ack_extra(job: &Leased) -> String {
    let Ok(h) = &job.header else {
        // The script's own readers find nothing in a job whose header does not decode.
        return String::new();
    };
    let mut flags = String::new();
    if h.attempts > 0 && !h.id.is_empty() {
        flags.push('a');
    }
    if job.may_be_flow_child() {
        flags.push('f');
    }
    if !h.unique.is_empty() {
        flags.push('u');
    }
    if flags.is_empty() {
        return flags;
    }
    format!("{flags}|{}", h.unique)
}

/// Counts returned by `settle`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettleReport {
    /// Jobs moved to the retry set for a later attempt.
    pub retried: u64,
    /// Jobs moved to the scheduled set without counting an attempt.
    pub snoozed: u64,
    /// Jobs handed back to the head of pending.
    pub requeued: u64,
    /// Jobs moved to the dead set.
    pub killed: u64,
    /// Jobs this worker no longer held (reaped or deleted meanwhile): nothing of them changed.
    pub stale: u64,
    /// Dead jobs evicted because they were older than the dead set's age cap.
    pub evicted_by_age: u64,
    /// Dead jobs evicted because the dead set was over its count cap.
    pub evicted_by_count: u64,
    /// Positions (in the call's slice) of the jobs whose result was stale.
    pub stale_at: Vec<usize>,
}

/// Counts returned by `ack`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckReport {
    /// Jobs deleted (or moved to the completed history) as done.
    pub acked: u64,
    /// Jobs this worker no longer held, so nothing was done to them.
    pub stale: u64,
    /// Positions (in the call's slice) of the jobs whose result was stale: the store no longer
    /// had them in this worker's in-flight hash, so nothing of them changed.
    pub stale_at: Vec<usize>,
}

/// Counts returned by `reap`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Jobs of expired leases put back at the head of pending.
    pub requeued: u64,
    /// Jobs of expired leases that had used their last attempt, moved to the dead set.
    pub killed: u64,
    /// Dead jobs evicted because they were older than the dead set's age cap.
    pub evicted_by_age: u64,
    /// Dead jobs evicted because the dead set was over its count cap.
    pub evicted_by_count: u64,
    /// The workers whose expired leases were taken back.
    pub workers: Vec<String>,
}

/// The result of one fetch call.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    /// True when the queue is paused: no job was leased and the worker should wait.
    pub paused: bool,
    /// When the next delayed or retrying job is due, in ms since the epoch.
    pub next_due_ms: Option<i64>,
    /// Delayed and retrying jobs that had come due and were moved to pending by this call.
    pub promoted: u64,
    /// The jobs now leased to the calling worker, in the order it should run them.
    pub jobs: Vec<Leased>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leased(attempts: u32, unique: &str, body: &str) -> Leased {
        let h = Header {
            attempts,
            max_attempts: 3,
            id: "j1".into(),
            unique: unique.into(),
            ..Header::default()
        };
        Leased::new("q", "w", 1, h.encode(body).into_bytes())
    }

    #[test]
    fn a_plain_jobs_ack_needs_no_extra() {
        assert_eq!(ack_extra(&leased(0, "", "{\"x\":1}")), "");
        assert_eq!(
            ack_extra(&Leased::new("q", "w", 1, b"garbage".to_vec())),
            ""
        );
    }

    #[test]
    fn an_ack_names_what_else_the_end_touches() {
        assert_eq!(ack_extra(&leased(1, "", "{}")), "a|");
        assert_eq!(ack_extra(&leased(0, "k|1", "{}")), "u|k|1");
        let child = "{\"flow\":{\"queue\":\"q\",\"id\":\"f\",\"member\":\"m\"}}";
        assert_eq!(ack_extra(&leased(2, "id:j1", child)), "afu|id:j1");
    }

    #[test]
    fn the_attempt_entry_is_what_the_replacement_header_says() {
        let job = leased(1, "", "{}");
        let s = Settle {
            job: &job,
            action: SettleAction::Retry,
            due_ms: 0,
            error: "boom|x".into(),
        };
        assert_eq!(s.attempt_entry(1234, "w1"), "1234|2|w1|boom|x");
        let (h, _) = Header::decode(&s.replacement(1234)).unwrap();
        assert_eq!(
            (h.attempts, h.failed_at, h.error.as_str()),
            (2, 1234, "boom|x")
        );
        let snooze = Settle {
            action: SettleAction::Snooze,
            ..s.clone()
        };
        assert_eq!(snooze.attempt_entry(1234, "w1"), "");
    }
}
