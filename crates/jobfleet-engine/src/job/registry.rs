//! The registry: every job kind's handler paired with its spec, for one application state `S`.
//!
//! Kinds are registered in code (`HandlerSet::register`), specs come from one or more folders
//! of `<kind>.toml` files or from text. At start the two are matched: a spec without a
//! handler, or a handler without a spec, stops the process with an error naming the file.
//! The specs alone (`Specs`) are what a producer needs to enqueue with the spec applied.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::context::{Job, JobContext};
use super::error::JobError;
pub use super::registry_error::RegistryError;
use super::spec::JobSpec;
pub use super::specs::Specs;

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
/// A type-erased handler: decodes the args into the kind's struct, then runs it.
type Handler<S> = Arc<dyn Fn(Value, JobContext<S>) -> BoxFuture + Send + Sync>;

/// Checks that args decode into a kind's struct, so producers can refuse bad args up front.
type Validator = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// A kind's handler and the check of its args.
struct Kind<S> {
    handler: Handler<S>,
    validate: Validator,
}

// Written out: a derive would require `S: Clone`.
impl<S> Clone for Kind<S> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            validate: self.validate.clone(),
        }
    }
}

/// Handlers by kind, before they are paired with specs.
pub struct HandlerSet<S> {
    handlers: HashMap<&'static str, Kind<S>>,
}

impl<S> Default for HandlerSet<S> {
    fn default() -> Self {
        Self {
            handlers: HashMap::new(),
        }
    }
}

impl<S> Clone for HandlerSet<S> {
    fn clone(&self) -> Self {
        Self {
            handlers: self.handlers.clone(),
        }
    }
}

impl<S> std::fmt::Debug for HandlerSet<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl<S: Send + Sync + 'static> HandlerSet<S> {
    /// No kinds yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind. Args that do not decode into `J` are a fatal error: retrying cannot fix
    /// them.
    ///
    /// # Panics
    ///
    /// When a kind of the same name was registered already: two handlers for one kind is a
    /// mistake in the program, found at its start.
    pub fn register<J: Job<S>>(mut self) -> Self {
        let handler: Handler<S> = Arc::new(|args: Value, ctx: JobContext<S>| {
            Box::pin(async move {
                let job: J = serde_path_to_error::deserialize(args).map_err(|e| {
                    JobError::fatal(format!("args do not decode as {}: {e}", J::KIND))
                })?;
                job.run(ctx).await
            })
        });
        let validate: Validator = Arc::new(|args: &Value| {
            serde_path_to_error::deserialize::<_, J>(args)
                .map(|_| ())
                .map_err(|e| format!("args do not decode as {}: {e}", J::KIND))
        });
        let kind = Kind { handler, validate };
        assert!(
            self.handlers.insert(J::KIND, kind).is_none(),
            "job kind {} registered twice",
            J::KIND
        );
        self
    }

    /// The names of the kinds registered.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }
}

/// A registered kind: its handler and its policy.
pub struct Entry<S> {
    kind: Kind<S>,
    /// The kind's policy.
    pub spec: JobSpec,
}

impl<S> std::fmt::Debug for Entry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl<S> Entry<S> {
    /// Checks that args decode into the kind's struct.
    pub fn validate(&self, args: &Value) -> Result<(), String> {
        (self.kind.validate)(args)
    }

    /// Runs the handler on undecoded args (which it decodes first). The caller adds the
    /// timeout and catches panics (see `worker::runner`).
    pub fn run(
        &self,
        args: Value,
        ctx: JobContext<S>,
    ) -> impl Future<Output = Result<(), JobError>> + Send + use<S> {
        (self.kind.handler)(args, ctx)
    }
}

/// All kinds of a program, each with its handler and its spec.
pub struct Registry<S> {
    entries: BTreeMap<String, Entry<S>>,
    specs: Arc<Specs>,
}

impl<S> std::fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

impl<S: Send + Sync + 'static> Registry<S> {
    /// Pairs the handlers with the specs in `dir`; every spec needs a handler and vice versa.
    pub fn load(dir: &Path, handlers: HandlerSet<S>) -> Result<Self, RegistryError> {
        Self::load_dirs(&[dir], handlers)
    }

    /// Pairs the handlers with specs from several folders (see [`Specs::load`]); a spec
    /// without a handler is named by its file.
    pub fn load_dirs(dirs: &[&Path], handlers: HandlerSet<S>) -> Result<Self, RegistryError> {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Self::pair(Specs::load(dirs)?, handlers, &shown.join(" or "))
    }

    /// Pairs the handlers with specs the caller has; `dir` names where a missing spec
    /// belongs in the error.
    pub fn pair(specs: Specs, handlers: HandlerSet<S>, dir: &str) -> Result<Self, RegistryError> {
        let mut known: Vec<&str> = handlers.kinds().collect();
        known.sort_unstable();
        let mut entries = BTreeMap::new();
        for spec in specs.iter() {
            let Some(kind) = handlers.handlers.get(spec.kind.as_str()) else {
                return Err(RegistryError::NoHandler {
                    path: specs
                        .source(&spec.kind)
                        .map_or_else(|| spec_path(dir, &spec.kind), |p| p.display().to_string()),
                    kind: spec.kind.clone(),
                    known: known.join(", "),
                });
            };
            let entry = Entry {
                kind: kind.clone(),
                spec: spec.clone(),
            };
            entries.insert(spec.kind.clone(), entry);
        }
        if let Some(kind) = known.iter().find(|k| !entries.contains_key(**k)) {
            return Err(RegistryError::NoSpec {
                kind: (*kind).to_owned(),
                dir: dir.to_owned(),
            });
        }
        Ok(Self {
            entries,
            specs: Arc::new(specs),
        })
    }
}

/// Where the spec of `kind` is (or would be) within `dir`.
fn spec_path(dir: &str, kind: &str) -> String {
    Path::new(dir)
        .join(format!("{kind}.toml"))
        .display()
        .to_string()
}

impl<S> Registry<S> {
    /// The handler and spec of a kind.
    pub fn get(&self, kind: &str) -> Option<&Entry<S>> {
        self.entries.get(kind)
    }

    /// The spec of a kind, or an error listing the known kinds.
    pub fn spec(&self, kind: &str) -> Result<&JobSpec, RegistryError> {
        self.specs.spec(kind)
    }

    /// Every spec, by kind.
    pub fn specs(&self) -> impl Iterator<Item = &JobSpec> {
        self.specs.iter()
    }

    /// The specs, shared (what a [`super::Client`] applies).
    pub fn shared_specs(&self) -> &Arc<Specs> {
        &self.specs
    }

    /// Checks that args decode into a kind's struct.
    pub fn validate(&self, kind: &str, args: &Value) -> Result<(), RegistryError> {
        let entry = self.get(kind).ok_or_else(|| self.unknown(kind))?;
        entry.validate(args).map_err(RegistryError::BadArgs)
    }

    /// A new job of a kind with its spec applied (see [`Specs::new_job`]). Args that do not
    /// decode into the kind's struct are refused here rather than dead-lettered later.
    pub fn new_job(&self, kind: &str, args: Value) -> Result<crate::queue::NewJob, RegistryError> {
        self.validate(kind, &args)?;
        self.specs.new_job(kind, args)
    }

    /// The unique-key TTL of a kind: its spec's, or one hour.
    pub fn unique_ttl(&self, kind: &str) -> Duration {
        self.specs.unique_ttl(kind)
    }

    fn unknown(&self, kind: &str) -> RegistryError {
        match self.specs.spec(kind) {
            Err(e) => e,
            Ok(_) => RegistryError::UnknownKind(kind.to_owned(), "no handler".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobArgs;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Ping {
        n: u32,
    }
    impl JobArgs for Ping {
        const KIND: &'static str = "ping";
    }
    impl<S: Send + Sync + 'static> Job<S> for Ping {
        async fn run(self, _ctx: JobContext<S>) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Pong {}
    impl JobArgs for Pong {
        const KIND: &'static str = "pong";
    }
    impl<S: Send + Sync + 'static> Job<S> for Pong {
        async fn run(self, _ctx: JobContext<S>) -> Result<(), JobError> {
            Ok(())
        }
    }

    fn handlers() -> HandlerSet<()> {
        HandlerSet::new().register::<Ping>().register::<Pong>()
    }

    const SPEC: &str = "queue = \"default\"\ntimeout = \"1s\"\n[retry]\nmax_attempts = 2\nbase = \"1s\"\ncap = \"2s\"\n";

    fn spec_dir(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(format!("{f}.toml")), SPEC).unwrap();
        }
        dir
    }

    #[test]
    fn specs_apply_and_bad_args_are_refused() {
        let dir = spec_dir(&["ping", "pong"]);
        let reg = Registry::load(dir.path(), handlers()).unwrap();
        assert_eq!(reg.spec("ping").unwrap().queue, "default");
        let job = reg.new_job("ping", serde_json::json!({"n": 1})).unwrap();
        assert_eq!((job.max_attempts, job.queue.as_str()), (2, "default"));
        let e = reg
            .new_job("ping", serde_json::json!({"n": "x"}))
            .unwrap_err();
        assert!(e.to_string().contains("ping"), "{e}");
        let e = reg.new_job("ghost", serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("ping, pong"), "{e}");
    }

    #[test]
    fn a_spec_without_a_handler_is_refused() {
        let dir = spec_dir(&["ping", "pong", "ghost"]);
        let e = Registry::load(dir.path(), handlers())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ghost.toml") && e.contains("no handler"), "{e}");
    }

    #[test]
    fn a_handler_without_a_spec_is_refused() {
        let dir = spec_dir(&["ping"]);
        let e = Registry::load(dir.path(), handlers())
            .unwrap_err()
            .to_string();
        assert!(e.contains("pong") && e.contains("no spec"), "{e}");
    }

    #[test]
    fn specs_come_from_several_folders_but_a_kind_from_one() {
        let (a, b) = (spec_dir(&["ping"]), spec_dir(&["pong"]));
        let reg = Registry::load_dirs(&[a.path(), b.path()], handlers()).unwrap();
        assert_eq!(reg.specs().count(), 2);
        let c = spec_dir(&["ping"]);
        let e = Registry::load_dirs(&[a.path(), b.path(), c.path()], handlers())
            .unwrap_err()
            .to_string();
        assert!(e.contains("two specs") && e.contains("ping"), "{e}");
        // A spec without a handler is named by the file it is in, whichever folder that is.
        let d = spec_dir(&["ghost"]);
        let e = Registry::load_dirs(&[a.path(), b.path(), d.path()], handlers())
            .unwrap_err()
            .to_string();
        let ghost = d.path().join("ghost.toml").display().to_string();
        assert!(e.starts_with(&format!("{ghost}: no handler")), "{e}");
    }

    #[test]
    fn specs_in_code_pair_like_files() {
        let specs = Specs::from_specs([
            JobSpec::parse("ping", SPEC).unwrap(),
            JobSpec::parse("pong", SPEC).unwrap(),
        ])
        .unwrap();
        let reg = Registry::pair(specs, handlers(), "(code)").unwrap();
        assert!(reg.get("pong").is_some());
        let e = JobSpec::parse("bad", "queue = 1").unwrap_err().to_string();
        assert!(e.starts_with("bad: "), "{e}");
    }
}
