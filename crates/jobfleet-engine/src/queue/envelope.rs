//! The job envelope: what is stored for every job, and the builder for new ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backoff::Backoff;
use super::payload::{Header, MalformedHeader, undecodable_id};
use super::priority::Priority;

/// Which flow a job belongs to, as its envelope says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRef {
    /// The queue the flow's state lives in (its callbacks').
    pub queue: String,
    /// The flow's id.
    pub id: String,
    /// The id the job counts as among the flow's members: its own, or for a sub-flow's
    /// callback, the sub-flow's.
    pub member: String,
}

/// What a flow's callback is told: the counts of the flow's children and the failed ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowOutcome {
    /// The flow's id.
    pub flow: String,
    /// Its children.
    pub total: u64,
    /// Those that succeeded.
    pub succeeded: u64,
    /// Those that died (or were killed or deleted by an operator).
    pub failed: u64,
    /// The ids of the failed ones, sorted, at most `flow::FAILED_IDS` of them.
    pub failed_ids: Vec<String>,
}

/// The immutable part of a job, stored as JSON after the header (see `payload`).
///
/// Mutable state (attempts, last failure, last error) lives in the header so that the scripts
/// can change it without decoding JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// A ULID unless the producer chose a deterministic id (the scheduler does).
    pub id: String,
    /// The stable kind name that selects the handler.
    pub kind: String,
    /// The queue the job was enqueued to.
    pub queue: String,
    /// The job's args as JSON, decoded by its kind's handler.
    pub args: Value,
    /// Runs allowed in all, the first included; copied into the header where the scripts read it.
    pub max_attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The key that made the job unique, released when the job finishes or dies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Milliseconds since the Unix epoch; absent for a job that was ready at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<i64>,
    /// Overrides the retry policy of the kind's spec for this one job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// The flow the job counts in (see `flow`): its end is reported there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowRef>,
    /// For a flow's callback, what its flow came to; written by the script that enqueued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_result: Option<FlowOutcome>,
}

/// A job to enqueue. Fill it from a spec with `jobs::Registry::new_job`, or by hand.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The job's id; None lets the store assign a new ULID.
    pub id: Option<String>,
    /// The stable kind name that selects the handler.
    pub kind: String,
    /// The queue it goes to.
    pub queue: String,
    /// The args as JSON, as the kind's handler decodes them.
    pub args: Value,
    /// Runs allowed in all, the first included.
    pub max_attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub run_at: Option<i64>,
    /// The unique key and how long it is held at most.
    pub unique: Option<(String, Duration)>,
    /// A retry policy for this one job instead of its kind's.
    pub backoff: Option<Backoff>,
    /// Its level within the queue: 0 runs first, 3 last.
    pub priority: Priority,
    /// The flow it counts in, set by `Flow` when it plans the flow's children and callbacks.
    pub(crate) flow: Option<FlowRef>,
}

impl NewJob {
    /// A job with the default of 25 attempts, ready at once.
    pub fn new(kind: impl Into<String>, queue: impl Into<String>, args: Value) -> Self {
        Self {
            id: None,
            kind: kind.into(),
            queue: queue.into(),
            args,
            max_attempts: 25,
            run_at: None,
            unique: None,
            backoff: None,
            priority: Priority::NORMAL,
            flow: None,
        }
    }

    /// Chooses the id, so that a second enqueue with the same id is a duplicate (within the store's
    /// `id_dedupe_ttl`, even once the first job ran) rather than a second job.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sends the job to another queue than its kind's default.
    pub fn on_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the runs allowed in all; 0 is taken as 1.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Runs the job no earlier than `at_ms` (milliseconds since the Unix epoch).
    pub fn run_at(mut self, at_ms: i64) -> Self {
        self.run_at = Some(at_ms);
        self
    }

    /// Makes the job unique by `key`: while a job holding the key exists (for at most `ttl`), an
    /// enqueue with the same key returns the existing job instead.
    pub fn unique(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.unique = Some((key.into(), ttl));
        self
    }

    /// Runs this job ahead of (or behind) the queue's jobs of other levels: strict between
    /// levels, first in first out within one.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Retries this job with `backoff` instead of its kind's policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Assigns the id (a new ULID unless one was chosen) and builds the envelope.
    pub(crate) fn into_envelope(self, now_ms: i64) -> Envelope {
        Envelope {
            id: self
                .id
                .unwrap_or_else(|| ulid::Ulid::generate().to_string()),
            kind: self.kind,
            queue: self.queue,
            args: self.args,
            max_attempts: self.max_attempts.max(1),
            created_at: now_ms,
            unique_key: self.unique.map(|(k, _)| k),
            run_at: self.run_at,
            backoff: self.backoff,
            flow: self.flow,
            flow_result: None,
        }
    }
}

/// The result of one enqueue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The new job's id, or the existing job's id for a duplicate.
    pub id: String,
    /// False when an equal id or a held unique key made this a duplicate.
    pub created: bool,
}

/// A job leased to this worker by `fetch`.
#[derive(Clone, Debug)]
pub struct Leased {
    /// The queue it was fetched from.
    pub queue: String,
    /// The worker whose in-flight hash holds the job.
    pub worker: String,
    /// The job's lease token, its field in that hash (reserved by `fetch` from the process's
    /// `LeaseTokens`, never twice): every later state change applies only while the token is
    /// still there, which fences out a worker whose lease expired.
    pub token: u64,
    /// The job exactly as stored: bytes, which anyone with access to Redis may have written.
    pub stored: Vec<u8>,
    /// The decoded header, or the reason it could not be decoded.
    pub header: Result<Header, MalformedHeader>,
    /// Where the envelope JSON starts in `stored`.
    body_start: usize,
    /// Whether the stored bytes hold a flow's marker (`may_be_flow_child`), looked for once:
    /// both the ack and the delivery to the flows after it ask.
    flow_child: bool,
}

impl Leased {
    pub(crate) fn new(queue: &str, worker: &str, token: u64, stored: Vec<u8>) -> Self {
        let (header, body_start) = match Header::decode(&stored) {
            Ok((h, body)) => (Ok(h), stored.len() - body.len()),
            Err(e) => (Err(e), stored.len()),
        };
        Self {
            queue: queue.to_owned(),
            worker: worker.to_owned(),
            token,
            flow_child: super::payload::may_be_flow_child(&stored),
            stored,
            header,
            body_start,
        }
    }

    /// Whether the job may belong to a flow, so that its end is delivered to the flow.
    pub fn may_be_flow_child(&self) -> bool {
        self.flow_child
    }

    /// The job's id; an undecodable job is named by the hash of its bytes.
    pub fn id(&self) -> String {
        match &self.header {
            Ok(h) => h.id.clone(),
            Err(_) => undecodable_id(&self.stored),
        }
    }

    /// The run this lease is for: 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.header.as_ref().map_or(1, Header::next_attempt)
    }

    /// The envelope JSON as bytes; `body` checks that it is UTF-8.
    pub fn body_bytes(&self) -> &[u8] {
        &self.stored[self.body_start..]
    }

    /// The envelope JSON, or where it stops being UTF-8 (an offset into the whole entry).
    pub fn body(&self) -> Result<&str, MalformedHeader> {
        std::str::from_utf8(self.body_bytes())
            .map_err(|e| MalformedHeader::NotUtf8(self.body_start + e.valid_up_to()))
    }

    /// The unique key the job holds, empty for none.
    pub fn unique(&self) -> &str {
        self.header.as_ref().map_or("", |h| h.unique.as_str())
    }
}

/// State names as stored in the job hash and accepted by the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run, in the queue's pending list.
    Pending,
    /// Enqueued with a delay, in the scheduled set until due.
    Scheduled,
    /// Leased to a worker, in that worker's in-flight hash.
    Active,
    /// Failed, in the retry set until its next attempt is due.
    Retry,
    /// Out of attempts or failed fatally, in the dead set until retried, deleted or evicted.
    Dead,
}

impl JobState {
    /// The state's name as the CLI takes it and JSON shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Active => "active",
            JobState::Retry => "retry",
            JobState::Dead => "dead",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => JobState::Pending,
            "scheduled" => JobState::Scheduled,
            "active" => JobState::Active,
            "retry" => JobState::Retry,
            "dead" => JobState::Dead,
            _ => {
                return Err(format!(
                    "unknown state {s:?}: use pending, scheduled, active, retry or dead"
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_omits_empty_options() {
        let env = NewJob::new("noop", "default", serde_json::json!({"a": 1}))
            .id("x")
            .into_envelope(42);
        let json = serde_json::to_string(&env).unwrap();
        assert!(!json.contains("unique_key") && !json.contains("run_at"));
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), env);
    }

    #[test]
    fn new_ids_are_ulids() {
        let env = NewJob::new("noop", "default", Value::Null).into_envelope(0);
        assert!(env.id.parse::<ulid::Ulid>().is_ok());
    }

    #[test]
    fn leased_jobs_expose_header_and_body() {
        let h = Header {
            attempts: 1,
            max_attempts: 3,
            id: "j1".into(),
            ..Header::default()
        };
        let l = Leased::new("q", "w", 1, h.encode("{\"x\":1}").into_bytes());
        assert_eq!(
            (l.id(), l.attempt(), l.body()),
            ("j1".to_owned(), 2, Ok("{\"x\":1}"))
        );
        let stored = h.encode_bytes(b"{\"x\":\"\xff\"}");
        let not_utf8 = Leased::new("q", "w", 2, stored.clone());
        let at = stored.iter().position(|&b| b == 0xff).unwrap();
        assert_eq!(not_utf8.body(), Err(MalformedHeader::NotUtf8(at)));
        let bad = Leased::new("q", "w", 3, b"garbage".to_vec());
        assert!(bad.header.is_err() && bad.id().starts_with("undecodable-"));
        assert_eq!(bad.attempt(), 1);
    }

    #[test]
    fn states_parse() {
        assert_eq!("dead".parse::<JobState>().unwrap(), JobState::Dead);
        assert!("done".parse::<JobState>().is_err());
    }
}
