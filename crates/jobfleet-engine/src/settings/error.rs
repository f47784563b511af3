//! The configuration's error: what is wrong and with which key.

use std::path::PathBuf;

/// A configuration that cannot be used; the message names the key or the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config crate's error names the key and says what is wrong with it; it is shown in
    /// the message, not chained as a source, so that it is said once.
    #[error("config: {0}")]
    Load(config::ConfigError),
    /// A value that parses but makes no sense.
    #[error("config: {key}: {message}")]
    Invalid {
        /// `section.key`
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// `JOBFLEET_ENV` names an environment without a file.
    #[error(
        "config: environment {env:?} has no file {path}; set JOBFLEET_CONFIG_DIR to the config folder"
    )]
    MissingEnv {
        /// The environment's name.
        env: String,
        /// The file looked for.
        path: PathBuf,
    },
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        ConfigError::Load(e)
    }
}

/// The error of a bad value of `key`.
pub fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}
