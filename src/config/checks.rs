//! The configuration's error (the engine's) and the checks that the settings of every module
//! use. It sits below `config/mod.rs`, which gathers those settings, so that a module's own
//! settings file can use it without importing the whole configuration.

pub use jobfleet_engine::settings::{ConfigError, invalid};

/// An absolute http(s) URL with a host.
pub fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}
