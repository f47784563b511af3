//! Job specs: the policy of a job kind, read from `jobs/<kind>.toml`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use super::limits::LimitsSpec;
use crate::cron::Cron;
use crate::queue::priority::Priority;
use crate::queue::{Backoff, validate_queue_name};

/// The policy of one job kind. The kind is the file's name.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job kind, taken from the file's name (or given to `JobSpec::parse`), not from the TOML.
    #[serde(skip)]
    pub kind: String,
    /// The queue jobs of this kind go to unless the producer names another.
    pub queue: String,
    /// A run that takes longer is cancelled and counts as a failed attempt.
    #[serde(with = "crate::settings::duration")]
    pub timeout: Duration,
    /// How often and how soon a failed job is tried again.
    pub retry: RetrySpec,
    /// When set, jobs of this kind are unique by their unique key while it is held.
    #[serde(default)]
    pub unique: Option<UniqueSpec>,
    /// The level of the kind's jobs within their queue, 0 (runs first) to 3; 2 by default.
    #[serde(default)]
    pub priority: Priority,
    /// Fleet-wide budgets of the kind's runs: starts per window, runs at once, per key.
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    /// When the scheduler enqueues this kind; a kind may have several schedules.
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleSpec>,
}

/// What to do about ticks that passed while no scheduler was running.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Forget them; the next tick runs as usual.
    #[default]
    Skip,
    /// On start, enqueue one catch-up run for the latest missed tick within `catch_up`.
    RunOnce,
}

/// One periodic schedule of a job kind.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique across all specs; defaults to the kind (or `kind-2`, `kind-3`... for more).
    #[serde(default)]
    pub name: String,
    /// Five fields, or six with seconds first (see `crate::cron`), parsed when the spec
    /// is read.
    pub cron: CronExpr,
    /// The IANA time zone the expression is read in; UTC when the spec names none.
    #[serde(default = "utc", deserialize_with = "time_zone")]
    pub timezone: Tz,
    /// The args of every job enqueued, as a TOML table.
    #[serde(default = "empty_args")]
    pub args: toml::Table,
    /// What happens to ticks that passed while no scheduler ran.
    #[serde(default)]
    pub missed: Missed,
    /// How far back a `run_once` catch-up may reach.
    #[serde(default = "default_catch_up", with = "crate::settings::duration")]
    pub catch_up: Duration,
}

/// A cron expression parsed once, when its spec is read, with the text it was written as
/// (which the `schedules` command and the scheduler's log show).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    cron: Cron,
}

impl CronExpr {
    /// Parses an expression; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(Self {
            text: text.to_owned(),
            cron: Cron::parse(text)?,
        })
    }

    /// The expression as written in the spec.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed expression, which computes the ticks.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom(format!("{name:?} is not an IANA time zone")))
}

/// A TOML syntax error on one line: where it is, the line itself, and what is wrong.
fn toml_syntax(text: &str, e: &toml::de::Error) -> String {
    located(text, e, "")
}

/// A spec that is valid TOML but not a valid spec: as `toml_syntax`, naming the field
/// (`schedule[0].cron`) unless the fault is in the document as a whole.
fn toml_error(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let path = e.path().to_string();
    let field = if path == "." {
        String::new()
    } else {
        format!("{path}: ")
    };
    located(text, e.inner(), &field)
}

fn located(text: &str, e: &toml::de::Error, field: &str) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let source = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line} ({source}): {field}{}", e.message().trim())
        }
        None => format!("{field}{}", e.message().trim()),
    }
}

fn utc() -> Tz {
    Tz::UTC
}

fn empty_args() -> toml::Table {
    toml::Table::new()
}

fn default_catch_up() -> Duration {
    Duration::from_secs(3600)
}

/// The fields of `Backoff` are repeated here rather than flattened in, because serde cannot
/// combine `flatten` with `deny_unknown_fields`, and a misspelt key in a spec must be an error.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Runs in all, the first included; 1 means never retried.
    pub max_attempts: u32,
    /// Delay after the first failure; it doubles with every further failure.
    #[serde(with = "crate::settings::duration")]
    pub base: Duration,
    /// Upper bound of the delay.
    #[serde(with = "crate::settings::duration")]
    pub cap: Duration,
    /// Fraction of each delay taken off at random (0 to 1).
    #[serde(default)]
    pub jitter: f64,
}

impl RetrySpec {
    /// The backoff this retry policy stands for, as the queue store applies it.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.base,
            cap: self.cap,
            jitter: self.jitter,
        }
    }
}

/// Uniqueness of a kind: a second job with a unique key that is still held is not enqueued.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UniqueSpec {
    /// How long a unique key is held at most (it is released earlier when the job finishes).
    #[serde(with = "crate::settings::duration")]
    pub ttl: Duration,
}

/// A spec file that cannot be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// The file (or, for a spec given as text, the kind) the error is about.
    pub path: String,
    /// What is wrong, starting with the field (`retry.max_attempts: ...`).
    pub message: String,
}

impl JobSpec {
    /// Reads and validates one spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let err = |message: String| SpecError {
            path: path.display().to_string(),
            message,
        };
        let kind = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| err("file name is not valid UTF-8".into()))?
            .to_owned();
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&kind, &text).map_err(|e| err(e.message))
    }

    /// Reads and validates the spec of `kind` from TOML text (a spec written in code, as
    /// the engine's example and the benchmark do). An error's `path` is the kind.
    pub fn parse(kind: &str, text: &str) -> Result<Self, SpecError> {
        let err = |message: String| SpecError {
            path: kind.to_owned(),
            message,
        };
        let document = toml::Deserializer::parse(text).map_err(|e| err(toml_syntax(text, &e)))?;
        let mut spec: JobSpec =
            serde_path_to_error::deserialize(document).map_err(|e| err(toml_error(text, &e)))?;
        spec.kind = kind.to_owned();
        let many = spec.schedules.len() > 1;
        for (i, s) in spec.schedules.iter_mut().enumerate() {
            if s.name.is_empty() {
                s.name = if many && i > 0 {
                    format!("{}-{}", spec.kind, i + 1)
                } else {
                    spec.kind.clone()
                };
            }
        }
        spec.validate().map_err(err)?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        validate_queue_name(&self.queue).map_err(|e| format!("queue: {e}"))?;
        if self.retry.max_attempts == 0 {
            return Err("retry.max_attempts: must be at least 1".into());
        }
        self.retry
            .backoff()
            .validate()
            .map_err(|e| format!("retry.{e}"))?;
        if self.timeout.is_zero() {
            return Err("timeout: must be more than 0s".into());
        }
        if let Some(u) = &self.unique
            && u.ttl.is_zero()
        {
            return Err("unique.ttl: must be more than 0s".into());
        }
        if let Some(l) = &self.limits {
            l.validate()?;
        }
        for (i, s) in self.schedules.iter().enumerate() {
            let at = format!("schedule[{i}]");
            let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
            if s.name.len() > 64 || !s.name.bytes().all(allowed) {
                return Err(format!(
                    "{at}.name: use at most 64 of a-z, A-Z, 0-9, '_', '-' and '.'"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = r#"
queue = "default"
timeout = "30s"
[retry]
max_attempts = 5
base = "1s"
cap = "1m"
jitter = 0.2
"#;

    #[test]
    fn loads_and_takes_the_kind_from_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let spec = JobSpec::load(&write(dir.path(), "noop.toml", GOOD)).unwrap();
        assert_eq!(spec.kind, "noop");
        assert_eq!(spec.retry.max_attempts, 5);
        assert_eq!(spec.retry.cap, Duration::from_secs(60));
    }

    #[test]
    fn schedules_get_names_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{GOOD}\n[[schedule]]\ncron = \"0 * * * *\"\n[[schedule]]\ncron = \"0 0 * * MON\"\nargs = {{ period = \"week\" }}\nmissed = \"run_once\"\n"
        );
        let spec = JobSpec::load(&write(dir.path(), "board.toml", &text)).unwrap();
        let names: Vec<&str> = spec.schedules.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["board", "board-2"]);
        assert_eq!(spec.schedules[0].timezone, Tz::UTC);
        assert_eq!(spec.schedules[1].cron.as_str(), "0 0 * * MON");
        assert_eq!(spec.schedules[1].missed, Missed::RunOnce);
        assert_eq!(spec.schedules[1].args["period"].as_str(), Some("week"));
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let bad = GOOD.replace("max_attempts = 5", "max_attempts = 0");
        let e = JobSpec::load(&write(dir.path(), "a.toml", &bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.toml") && e.contains("retry.max_attempts"),
            "{e}"
        );
        let bad = GOOD.replace("queue = \"default\"", "queue = \"a{b\"");
        let e = JobSpec::load(&write(dir.path(), "b.toml", &bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.toml") && e.contains("queue"), "{e}");
        let bad = format!("{GOOD}\n[[schedule]]\ncron = \"61 * * * *\"\n");
        let e = JobSpec::load(&write(dir.path(), "d.toml", &bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.toml") && e.contains("schedule[0].cron"),
            "{e}"
        );
        let bad =
            format!("{GOOD}\n[[schedule]]\ncron = \"* * * * *\"\ntimezone = \"Mars/Olympus\"\n");
        let e = JobSpec::load(&write(dir.path(), "e.toml", &bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("e.toml") && e.contains("schedule[0].timezone"),
            "{e}"
        );
        let bad = format!("{GOOD}\ncolour = \"red\"\n");
        let e = JobSpec::load(&write(dir.path(), "c.toml", &bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("colour"), "{e}");
    }
}
