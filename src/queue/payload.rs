//! The stored form of a job: a small header that the Lua scripts can read and rewrite, then
//! the envelope JSON, which only Rust decodes.
//!
//! ```text
//! jf|<attempts>|<max attempts>|<id>|<failed at ms>|<len>:<unique key><len>:<last error>\n<JSON>
//! ```
//!
//! The whole string is the job: it is what the pending list, the scheduled, retry and dead sets
//! and a worker's in-flight list hold, so moving a job is moving one string, and no per-job hash
//! is read or written on the hot path. `attempts` counts the runs that already ended in failure
//! (or lost their worker); the run a worker starts is `attempts + 1`. The unique key and the
//! error are length-prefixed so they may contain any byte. The Lua side of this format is
//! `parse_job`/`build_job` in `scripts/prelude.lua`; the tests below pin both to one example.

use std::fmt::Write;

/// The header fields of a stored job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Runs that already ended in failure.
    pub attempts: u32,
    pub max_attempts: u32,
    pub id: String,
    /// Milliseconds since the epoch of the last failure; 0 for none.
    pub failed_at: i64,
    /// The unique key, empty for none.
    pub unique: String,
    /// The last error, empty for none.
    pub error: String,
}

/// A payload that does not start with a valid header.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed job header: {0}")]
pub struct MalformedHeader(pub &'static str);

/// Checks that an id can stand in the header and in a SCAN pattern.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

impl Header {
    /// The stored string: this header followed by `body` (the envelope JSON).
    pub fn encode(&self, body: &str) -> String {
        let mut out = String::with_capacity(48 + self.id.len() + self.error.len() + body.len());
        let _ = write!(
            out,
            "jf|{}|{}|{}|{}|{}:{}{}:{}\n{}",
            self.attempts,
            self.max_attempts,
            self.id,
            self.failed_at,
            self.unique.len(),
            self.unique,
            self.error.len(),
            self.error,
            body
        );
        out
    }

    /// Splits a stored job into its header and its body.
    pub fn decode(payload: &str) -> Result<(Header, &str), MalformedHeader> {
        let rest = payload
            .strip_prefix("jf|")
            .ok_or(MalformedHeader("no jf| prefix"))?;
        let (attempts, rest) = field(rest, "attempts")?;
        let (max, rest) = field(rest, "max attempts")?;
        let (id, rest) = rest.split_once('|').ok_or(MalformedHeader("id"))?;
        let (failed_at, rest) = field(rest, "failed at")?;
        let (unique, rest) = counted(rest, "unique key")?;
        let (error, rest) = counted(rest, "error")?;
        let body = rest
            .strip_prefix('\n')
            .ok_or(MalformedHeader("no newline before body"))?;
        Ok((
            Header {
                attempts: attempts.parse().map_err(|_| MalformedHeader("attempts"))?,
                max_attempts: max.parse().map_err(|_| MalformedHeader("max attempts"))?,
                id: id.to_owned(),
                failed_at: failed_at
                    .parse()
                    .map_err(|_| MalformedHeader("failed at"))?,
                unique: unique.to_owned(),
                error: error.to_owned(),
            },
            body,
        ))
    }
}

fn field<'a>(s: &'a str, what: &'static str) -> Result<(&'a str, &'a str), MalformedHeader> {
    s.split_once('|').ok_or(MalformedHeader(what))
}

/// Reads `<len>:<bytes>`.
fn counted<'a>(s: &'a str, what: &'static str) -> Result<(&'a str, &'a str), MalformedHeader> {
    let (len, rest) = s.split_once(':').ok_or(MalformedHeader(what))?;
    let len: usize = len.parse().map_err(|_| MalformedHeader(what))?;
    if rest.len() < len || !rest.is_char_boundary(len) {
        return Err(MalformedHeader(what));
    }
    Ok(rest.split_at(len))
}

/// The id of a stored job without decoding the rest, for listings and scans.
pub fn peek_id(payload: &str) -> Option<&str> {
    let rest = payload.strip_prefix("jf|")?;
    let mut parts = rest.splitn(4, '|');
    parts.next()?;
    parts.next()?;
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            attempts: 2,
            max_attempts: 25,
            id: "01JX".into(),
            failed_at: 1_700_000_000_000,
            unique: "sync|0xab:c".into(),
            error: "timed out\nafter 5s: é".into(),
        }
    }

    #[test]
    fn encodes_the_documented_layout() {
        // The Lua prelude's build_job produces exactly this string for the same fields.
        let p = header().encode("{\"a\":1}");
        assert_eq!(
            p,
            "jf|2|25|01JX|1700000000000|11:sync|0xab:c22:timed out\nafter 5s: é\n{\"a\":1}"
        );
    }

    #[test]
    fn round_trips_any_unique_key_and_error() {
        let h = header();
        let p = h.encode("{}");
        let (back, body) = Header::decode(&p).unwrap();
        assert_eq!((back, body), (h, "{}"));
        assert_eq!(peek_id(&p), Some("01JX"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "{\"id\":1}",
            "jf|x|1|a|0|0:0:\n{}",
            "jf|1|1|a|0|9:ab0:\n{}",
            "jf|1|1|a|0|0:0:{}",
        ] {
            assert!(Header::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_restricted_to_pattern_safe_characters() {
        assert!(valid_id("01JX-tick:vote.5m_1"));
        for bad in ["", "a|b", "a*", "a b", "a?", "[a]"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
