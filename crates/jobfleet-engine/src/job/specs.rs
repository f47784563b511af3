//! The specs of a program's kinds, read from one or more folders of `<kind>.toml` files or
//! given in code, without their handlers.
//!
//! This is what a producer needs to enqueue with each kind's policy applied; the registry
//! (`registry.rs`) pairs it with the handlers for the processes that run jobs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::registry_error::RegistryError;
use super::spec::JobSpec;

/// The specs of a program's kinds, by kind: what enqueueing needs (see
/// [`Specs::new_job`]).
#[derive(Clone, Debug, Default)]
pub struct Specs {
    specs: BTreeMap<String, JobSpec>,
    /// The file each spec was read from; none for a spec written in code.
    sources: HashMap<String, PathBuf>,
}

impl Specs {
    /// Reads every `<kind>.toml` of the folders, in order; a kind in two folders is an error
    /// naming both files.
    pub fn load(dirs: &[&Path]) -> Result<Self, RegistryError> {
        let mut specs = Self::default();
        for dir in dirs {
            for path in spec_files(dir)? {
                let spec = JobSpec::load(&path)?;
                if let Some(first) = specs.sources.insert(spec.kind.clone(), path.clone()) {
                    return Err(RegistryError::Twice {
                        kind: spec.kind,
                        first: first.display().to_string(),
                        second: path.display().to_string(),
                    });
                }
                specs.specs.insert(spec.kind.clone(), spec);
            }
        }
        Ok(specs)
    }

    /// Specs of the caller's, e.g. from [`JobSpec::parse`]; a kind given twice is an error.
    pub fn from_specs(list: impl IntoIterator<Item = JobSpec>) -> Result<Self, RegistryError> {
        let mut specs = Self::default();
        for spec in list {
            if specs.specs.contains_key(&spec.kind) {
                return Err(RegistryError::Twice {
                    first: spec.kind.clone(),
                    second: spec.kind.clone(),
                    kind: spec.kind,
                });
            }
            specs.specs.insert(spec.kind.clone(), spec);
        }
        Ok(specs)
    }

    /// The file a kind's spec was read from; `None` for a spec written in code.
    pub fn source(&self, kind: &str) -> Option<&Path> {
        self.sources.get(kind).map(PathBuf::as_path)
    }

    /// The spec of a kind, or an error listing the known kinds.
    pub fn spec(&self, kind: &str) -> Result<&JobSpec, RegistryError> {
        self.specs.get(kind).ok_or_else(|| {
            let known: Vec<&str> = self.specs.keys().map(String::as_str).collect();
            RegistryError::UnknownKind(kind.to_owned(), known.join(", "))
        })
    }

    /// Every spec, by kind.
    pub fn iter(&self) -> impl Iterator<Item = &JobSpec> {
        self.specs.values()
    }

    /// The unique-key TTL of a kind: its spec's, or one hour.
    pub fn unique_ttl(&self, kind: &str) -> Duration {
        self.specs
            .get(kind)
            .and_then(|s| s.unique.as_ref().map(|u| u.ttl))
            .unwrap_or(Duration::from_secs(3600))
    }
}

/// The `*.toml` files of a folder, sorted.
fn spec_files(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
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
    Ok(paths)
}
