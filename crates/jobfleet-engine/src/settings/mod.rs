//! The helpers every settings section uses, at the engine's ground floor: durations written
//! like "30s" (`duration`), secrets that never print (`secret`), URL checks, the error that
//! names a bad key (`ConfigError`), and the loader that reads a configuration in layers
//! (`load`). The engine's own sections are in `crate::config`.

pub mod duration;
mod error;
mod load;
pub mod secret;
mod url;

pub use error::{ConfigError, invalid};
pub use load::{Layers, Sources, load};
pub use url::is_http_url;
