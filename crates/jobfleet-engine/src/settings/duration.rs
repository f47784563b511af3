//! Serde for durations written like "30s", "5m", "180days".

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Reads a duration written like "30s" or "5m" (humantime's format).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
}

/// Writes a duration in the same format, so that a configuration reads back as it was.
pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*v).to_string())
}
