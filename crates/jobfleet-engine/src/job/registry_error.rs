//! Why kinds and specs cannot be paired or used. It stands below both the specs (`specs.rs`)
//! and the registry (`registry.rs`), which return it.

use std::path::{Path, PathBuf};

use super::spec::SpecError;

/// Why specs and handlers cannot be paired into a registry, or a job cannot be built from it;
/// each message names the file or the kind so that the process stops with something to fix.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The folder of specs cannot be read; the message says how to point at it. The I/O
    /// error is in the message rather than chained, so that the hint comes last.
    #[error("{}", folder_text(path, error))]
    Folder {
        /// The folder that was looked in.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// A spec file is not valid; the error names the file and the field.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A spec names a kind that no handler was registered for (a typo in the file name, or a
    /// handler left out of the binary).
    #[error("{path}: no handler is registered for job kind {kind:?} (known kinds: {known})")]
    NoHandler {
        /// The spec file.
        path: String,
        /// The kind the spec is for.
        kind: String,
        /// The kinds that have handlers, comma-separated.
        known: String,
    },
    #[error("job kind {kind:?} has a handler but no spec: add {dir}/{kind}.toml")]
    /// A handler was registered for a kind that has no spec, so its queue and retries are
    /// unknown.
    NoSpec {
        /// The kind without a spec.
        kind: String,
        /// The folder the spec belongs in.
        dir: String,
    },
    /// Two folders hold a spec of the same kind; which one applies would be a guess.
    #[error("job kind {kind:?} has two specs: {first} and {second}")]
    Twice {
        /// The kind with two specs.
        kind: String,
        /// The first spec file found.
        first: String,
        /// The second spec file found.
        second: String,
    },
    /// A job was asked for of a kind the registry does not know: the kind, then the known kinds.
    #[error("unknown job kind {0:?} (known kinds: {1})")]
    UnknownKind(String, String),
    /// The args of a job do not decode as its kind's args; the message says which field and why.
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
