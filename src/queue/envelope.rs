//! The job envelope: what is stored for every job, and the builder for new ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backoff::Backoff;

/// The immutable part of a job, stored as JSON in the job hash's `env` field.
///
/// Mutable state (attempt, state, lease, last error) lives in separate hash fields so that the
/// scripts can change it without decoding JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// A ULID unless the producer chose a deterministic id (the scheduler does).
    pub id: String,
    /// The stable kind name that selects the handler.
    pub kind: String,
    pub queue: String,
    pub args: Value,
    pub max_attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Milliseconds since the Unix epoch; absent for a job that was ready at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<i64>,
    /// Overrides the retry policy of the kind's spec for this one job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// A job to enqueue. Fill it from a spec with `jobs::Registry::new_job`, or by hand.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Option<String>,
    pub kind: String,
    pub queue: String,
    pub args: Value,
    pub max_attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub run_at: Option<i64>,
    /// The unique key and how long it is held at most.
    pub unique: Option<(String, Duration)>,
    pub backoff: Option<Backoff>,
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
        }
    }

    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sends the job to another queue than its kind's default.
    pub fn on_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Runs the job no earlier than `at_ms` (milliseconds since the Unix epoch).
    pub fn run_at(mut self, at_ms: i64) -> Self {
        self.run_at = Some(at_ms);
        self
    }

    pub fn unique(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.unique = Some((key.into(), ttl));
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Assigns the id (a new ULID unless one was chosen) and builds the stored envelope.
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
    pub id: String,
    pub queue: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// Fences every later state change: it only applies while the job still holds this token.
    pub token: String,
    /// The envelope JSON as stored, decoded by the runner (undecodable ones go to dead).
    pub raw: String,
}

/// State names as stored in the job hash and accepted by the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Scheduled,
    Active,
    Retry,
    Dead,
}

impl JobState {
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
    fn states_parse() {
        assert_eq!("dead".parse::<JobState>().unwrap(), JobState::Dead);
        assert!("done".parse::<JobState>().is_err());
    }
}
