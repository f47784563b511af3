//! Reading a configuration in layers: built-in defaults, then `<config dir>/default.toml`,
//! then `<config dir>/<env>.toml` (`JOBFLEET_ENV`, default "development", whose file is
//! optional), then environment variables `JOBFLEET__SECTION__KEY` and the usual URL variables
//! (`REDIS_URL`, and whatever the application adds).

use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;

use super::error::ConfigError;

/// Where the layers come from; `from_env` reads the process environment.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The folder of `default.toml` and `<env>.toml`.
    pub config_dir: PathBuf,
    /// None means the default environment, "development", whose file is optional.
    pub env: Option<String>,
    /// Environment variables to apply (normally the process's).
    pub vars: Vec<(String, String)>,
}

impl Sources {
    /// `JOBFLEET_CONFIG_DIR` (default `config`), `JOBFLEET_ENV` and the process's variables.
    pub fn from_env() -> Self {
        Self {
            config_dir: std::env::var_os("JOBFLEET_CONFIG_DIR")
                .map_or_else(|| PathBuf::from("config"), PathBuf::from),
            env: std::env::var("JOBFLEET_ENV").ok().filter(|e| !e.is_empty()),
            vars: std::env::vars().collect(),
        }
    }

    /// The environment's name: `JOBFLEET_ENV`, or "development".
    pub fn env_name(&self) -> &str {
        self.env.as_deref().unwrap_or("development")
    }

    /// The folder a relative `jobs.dir` is taken from: the one above the config folder (the
    /// project's root when the config folder is its `config/`), so that a command run from
    /// another folder with `JOBFLEET_CONFIG_DIR=/srv/app/config` finds `/srv/app/jobs`. None
    /// when the config folder does not exist, in which case `jobs.dir` stays relative to the
    /// working folder.
    pub fn project_root(&self) -> Option<PathBuf> {
        let config_dir = &self.config_dir;
        if !config_dir.is_dir() {
            return None;
        }
        match config_dir.components().next_back() {
            // `config` or `/srv/app/config`: the parent is the path without its last part (""
            // for a bare `config`, which keeps `jobs` relative to the working folder).
            Some(Component::Normal(_)) => config_dir.parent().map(Path::to_path_buf),
            // `.`, `..` or `/`: only the real path says what is above it.
            _ => std::fs::canonicalize(config_dir)
                .ok()?
                .parent()
                .map(Path::to_path_buf),
        }
    }
}

/// What an application adds to the layers: its built-in defaults (TOML text), the keys an
/// environment variable gives as a comma-separated list, and variables that set one key
/// (`("DATABASE_URL", "database.url")`).
#[derive(Clone, Copy, Debug)]
pub struct Layers<'a> {
    /// The built-in defaults, so the binary runs even where no config folder exists.
    pub defaults: &'a str,
    /// `section.key` names whose variables are comma-separated lists.
    pub list_keys: &'a [&'a str],
    /// Variables that set one key each, besides `REDIS_URL` (which sets `redis.url`).
    pub url_vars: &'a [(&'a str, &'a str)],
}

/// Reads the layers into `T` (not yet validated: the caller checks what parses but makes no
/// sense, and names the key).
pub fn load<T: DeserializeOwned>(sources: &Sources, layers: Layers<'_>) -> Result<T, ConfigError> {
    let env_name = sources.env_name();
    let env_file = sources.config_dir.join(format!("{env_name}.toml"));
    if sources.env.is_some() && !env_file.exists() {
        return Err(ConfigError::MissingEnv {
            env: env_name.to_owned(),
            path: env_file,
        });
    }
    let mut builder = config::Config::builder().add_source(config::File::from_str(
        layers.defaults,
        config::FileFormat::Toml,
    ));
    let default_file = sources.config_dir.join("default.toml");
    for file in [default_file.as_path(), env_file.as_path()] {
        builder = builder.add_source(config_file(file));
    }
    // Values stay text as written: the config crate's `try_parsing` would turn a namespace
    // or a password "00123" into 123 and "1e2" into 100. Numbers and booleans are read from
    // the text when the settings are deserialized, and the list settings are split here.
    let (lists, vars): (Vec<_>, Vec<_>) = sources
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with("JOBFLEET__"))
        .cloned()
        .partition(|(k, _)| layers.list_keys.contains(&env_key(k).as_str()));
    builder = builder.add_source(
        config::Environment::with_prefix("JOBFLEET")
            .prefix_separator("__")
            .separator("__")
            .source(Some(vars.into_iter().collect())),
    );
    for (name, value) in lists {
        let items: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect();
        builder = builder.set_override(env_key(&name), items)?;
    }
    let url_vars = [("REDIS_URL", "redis.url")];
    for (var, key) in url_vars.iter().chain(layers.url_vars) {
        if let Some((_, url)) = sources.vars.iter().find(|(k, _)| k == var) {
            builder = builder.set_override(*key, url.as_str())?;
        }
    }
    Ok(builder.build()?.try_deserialize()?)
}

/// The key a `JOBFLEET__SECTION__KEY` variable sets ("section.key"), as the config crate
/// derives it.
fn env_key(var: &str) -> String {
    var.trim_start_matches("JOBFLEET__")
        .to_lowercase()
        .replace("__", ".")
}

fn config_file(path: &Path) -> config::File<config::FileSourceFile, config::FileFormat> {
    config::File::from(path)
        .format(config::FileFormat::Toml)
        .required(false)
}
