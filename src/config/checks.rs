//! The configuration's error and the checks that the settings of every module use. It sits
//! below `config/mod.rs`, which gathers those settings, so that a module's own settings file can
//! use it without importing the whole configuration.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config crate's error names the key and says what is wrong with it; it is shown in
    /// the message, not chained as a source, so that it is said once.
    #[error("config: {0}")]
    Load(config::ConfigError),
    #[error("config: {key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(
        "config: environment {env:?} has no file {path}; set JOBFLEET_CONFIG_DIR to the config folder"
    )]
    MissingEnv { env: String, path: PathBuf },
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        ConfigError::Load(e)
    }
}

pub(crate) fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// An absolute http(s) URL with a host.
pub fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}
