//! The registry: every job kind's handler paired with its spec.
//!
//! `handlers()` is the one place where kinds are registered. At start the specs in `jobs/` are
//! matched against it: a spec without a handler, or a handler without a spec, stops the process
//! with an error naming the file.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::spec::{JobSpec, SpecError};
use super::{Job, JobContext, JobError};
use crate::queue::NewJob;

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
/// A type-erased handler: decodes the args into the kind's struct, then runs it.
pub type Handler = Arc<dyn Fn(Value, JobContext) -> BoxFuture + Send + Sync>;

/// Checks that args decode into a kind's struct, so producers can refuse bad args up front.
pub type Validator = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// Handlers by kind, before they are paired with specs.
#[derive(Default, Clone)]
pub struct HandlerSet {
    handlers: HashMap<&'static str, (Handler, Validator)>,
}

impl std::fmt::Debug for HandlerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl HandlerSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind. Args that do not decode into `J` are a fatal error: retrying cannot fix them.
    pub fn register<J: Job>(mut self) -> Self {
        let handler: Handler = Arc::new(|args: Value, ctx: JobContext| {
            Box::pin(async move {
                let job: J = serde_path_to_error::deserialize(args).map_err(|e| {
                    JobError::fatal(format!("args do not decode as {}: {e}", J::KIND))
                })?;
                job.run(ctx).await
            })
        });
        let validator: Validator = Arc::new(|args: &Value| {
            serde_path_to_error::deserialize::<_, J>(args)
                .map(|_| ())
                .map_err(|e| format!("args do not decode as {}: {e}", J::KIND))
        });
        assert!(
            self.handlers
                .insert(J::KIND, (handler, validator))
                .is_none(),
            "job kind {} registered twice",
            J::KIND
        );
        self
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }
}

/// Every job kind this program knows. Add new kinds here, and a spec in `jobs/`.
pub fn handlers() -> HandlerSet {
    HandlerSet::new()
        .register::<super::noop::Noop>()
        .register::<super::sleep::Sleep>()
        .register::<super::aggregate_votes::AggregateVotes>()
        .register::<super::rebuild_leaderboard::RebuildLeaderboard>()
        .register::<super::send_transactions::SendTransactions>()
        .register::<super::confirm_transactions::ConfirmTransactions>()
        .register::<super::sync_balances::SyncBalances>()
        .register::<super::resolve_markets::ResolveMarkets>()
        .register::<super::index_chain_events::IndexChainEvents>()
        .register::<super::snapshot_discussions::SnapshotDiscussions>()
        .register::<super::prune_snapshots::PruneSnapshots>()
        .register::<super::dispatch_notifications::DispatchNotifications>()
        .register::<super::send_notification::SendNotification>()
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The folder of specs cannot be read; the message says how to point at it. The I/O
    /// error is in the message rather than chained, so that the hint comes last.
    #[error("{}", folder_text(path, error))]
    Folder {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{path}: no handler is registered for job kind {kind:?} (known kinds: {known})")]
    NoHandler {
        path: String,
        kind: String,
        known: String,
    },
    #[error("job kind {kind:?} has a handler but no spec: add {dir}/{kind}.toml")]
    NoSpec { kind: String, dir: String },
    #[error("unknown job kind {0:?} (known kinds: {1})")]
    UnknownKind(String, String),
    #[error("{0}")]
    BadArgs(String),
}

/// "cannot read the job specs folder jobs (in /srv): No such file ...; set JOBFLEET__JOBS__DIR
/// ...": a relative folder names the working folder it was looked for in, as running a command
/// from elsewhere is the usual reason for not finding it.
fn folder_text(path: &Path, error: &std::io::Error) -> String {
    let within = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => format!(" (in {})", cwd.display()),
        _ => String::new(),
    };
    format!(
        "cannot read the job specs folder {}{within}: {error}; set JOBFLEET__JOBS__DIR to the \
         folder of job specs, or JOBFLEET_CONFIG_DIR to the project's config folder (a relative \
         jobs.dir is taken from the folder above it)",
        path.display()
    )
}

/// A registered kind: its handler and its policy.
#[derive(Clone)]
pub struct Entry {
    pub handler: Handler,
    pub validate: Validator,
    pub spec: JobSpec,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// All kinds, each with handler and spec.
#[derive(Clone)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

impl Registry {
    /// Pairs the handlers with the specs in `dir`; every spec needs a handler and vice versa.
    pub fn load(dir: &Path, handlers: HandlerSet) -> Result<Self, RegistryError> {
        let folder_err = |error| RegistryError::Folder {
            path: dir.to_owned(),
            error,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(folder_err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(folder_err)?;
        paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
        paths.sort();
        let mut known: Vec<&str> = handlers.kinds().collect();
        known.sort_unstable();
        let mut entries = BTreeMap::new();
        for path in paths {
            let spec = JobSpec::load(&path)?;
            let Some((handler, validate)) = handlers.handlers.get(spec.kind.as_str()) else {
                return Err(RegistryError::NoHandler {
                    path: path.display().to_string(),
                    kind: spec.kind,
                    known: known.join(", "),
                });
            };
            entries.insert(
                spec.kind.clone(),
                Entry {
                    handler: handler.clone(),
                    validate: validate.clone(),
                    spec,
                },
            );
        }
        if let Some(kind) = known.iter().find(|k| !entries.contains_key(**k)) {
            return Err(RegistryError::NoSpec {
                kind: (*kind).to_owned(),
                dir: dir.display().to_string(),
            });
        }
        Ok(Self { entries })
    }

    pub fn get(&self, kind: &str) -> Option<&Entry> {
        self.entries.get(kind)
    }

    pub fn spec(&self, kind: &str) -> Result<&JobSpec, RegistryError> {
        self.entries.get(kind).map(|e| &e.spec).ok_or_else(|| {
            let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            RegistryError::UnknownKind(kind.to_owned(), known.join(", "))
        })
    }

    pub fn specs(&self) -> impl Iterator<Item = &JobSpec> {
        self.entries.values().map(|e| &e.spec)
    }

    /// A new job of a kind with its spec's queue and attempts. Args that do not decode into
    /// the kind's struct are refused here rather than dead-lettered later.
    pub fn new_job(&self, kind: &str, args: Value) -> Result<NewJob, RegistryError> {
        let spec = self.spec(kind)?;
        if let Some(entry) = self.entries.get(kind) {
            (entry.validate)(&args).map_err(RegistryError::BadArgs)?;
        }
        Ok(NewJob::new(kind, &spec.queue, args).max_attempts(spec.retry.max_attempts))
    }

    /// The unique-key TTL of a kind: its spec's, or one hour.
    pub fn unique_ttl(&self, kind: &str) -> Duration {
        self.spec(kind)
            .ok()
            .and_then(|s| s.unique.as_ref().map(|u| u.ttl))
            .unwrap_or(Duration::from_secs(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_dir(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(
                dir.path().join(format!("{f}.toml")),
                "queue = \"default\"\ntimeout = \"1s\"\n[retry]\nmax_attempts = 2\nbase = \"1s\"\ncap = \"2s\"\n",
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn the_shipped_specs_match_the_handlers() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
        let reg = Registry::load(&dir, handlers()).unwrap();
        assert_eq!(reg.spec("sleep").unwrap().queue, "default");
        assert_eq!(
            reg.new_job("noop", serde_json::json!({}))
                .unwrap()
                .max_attempts,
            3
        );
        let e = reg
            .new_job("sleep", serde_json::json!({"ms": "x"}))
            .unwrap_err();
        assert!(e.to_string().contains("sleep"), "{e}");
    }

    #[test]
    fn a_spec_without_a_handler_is_refused() {
        let mut kinds: Vec<&str> = handlers().kinds().collect();
        kinds.push("ghost");
        let dir = spec_dir(&kinds);
        let e = Registry::load(dir.path(), handlers())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ghost.toml") && e.contains("no handler"), "{e}");
    }

    #[test]
    fn a_handler_without_a_spec_is_refused() {
        let kinds: Vec<&str> = handlers().kinds().filter(|k| *k != "sleep").collect();
        let dir = spec_dir(&kinds);
        let e = Registry::load(dir.path(), handlers())
            .unwrap_err()
            .to_string();
        assert!(e.contains("sleep") && e.contains("no spec"), "{e}");
    }
}
