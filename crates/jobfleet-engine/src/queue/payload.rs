//! The stored form of a job: a small header that the Lua scripts can read and rewrite, then
//! the envelope JSON, which only Rust decodes.
//!
//! ```text
//! jf|<attempts>|<max attempts>|<id>|<failed at ms>|<len>:<unique key><len>:<last error>\n<JSON>
//! ```
//!
//! A job of a priority other than the default (see `priority`) has its level right after
//! `jf`: `jf0|`, `jf1|` or `jf3|`. The default level is left unsaid, so a job of the default
//! priority is stored byte for byte as before priorities existed.
//!
//! The whole string is the job: it is what the pending list, the scheduled, retry and dead sets
//! and a worker's in-flight hash hold, so moving a job is moving one string, and no per-job hash
//! is read or written on the hot path. `attempts` counts the runs that already ended in failure
//! (or lost their worker); the run a worker starts is `attempts + 1`. The unique key and the
//! error are length-prefixed so they may contain any byte. The Lua side of this format is
//! `parse_job`/`build_job` in `scripts/prelude.lua`; the tests below pin both to one example.
//!
//! A job with the unique key `order:7` whose second run failed (so `attempts` is 2 of 5):
//!
//! ```text
//! jf|2|5|01J9ZK7R3M4X|1718000000000|7:order:79:timed out\n{"id":"01J9ZK7R3M4X",...}
//! ```
//!
//! A new job has `attempts` 0, `failed at` 0 and an empty error (`0:`). Only the reaper decodes
//! the header in Lua; a worker's settle call and the operators' repairs send the rewritten
//! job whole. An entry that is not a readable header (written by someone else) is never
//! dropped: it is named `undecodable-<hash>` and ends in the dead set inside a valid header.

use std::fmt::Write;

use super::priority::Priority;

/// The header fields of a stored job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Runs that already ended in failure.
    pub attempts: u32,
    /// Runs allowed in all, the first included.
    pub max_attempts: u32,
    /// The job's id, which finds it without decoding the JSON (see `peek_id`).
    pub id: String,
    /// Milliseconds since the epoch of the last failure; 0 for none.
    pub failed_at: i64,
    /// The unique key, empty for none.
    pub unique: String,
    /// The last error, empty for none.
    pub error: String,
    /// The job's level within its queue, which picks its pending list.
    pub priority: Priority,
}

/// Why a stored job's header cannot be read. Stored jobs are bytes written by anyone who can
/// reach Redis, so every way they can be wrong is a value here, never a panic.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MalformedHeader {
    /// A field is missing or does not parse.
    #[error("malformed job header: {0}")]
    Field(&'static str),
    /// The bytes are not UTF-8 from this offset of the stored entry on.
    #[error("not UTF-8 at byte {0}")]
    NotUtf8(usize),
}

/// Whether a stored job may belong to a flow: its bytes hold `"flow":`, the test the scripts'
/// `flow_end` makes before decoding anything. A job for which this is false never wrote to a
/// flow outbox, so its end needs no delivery. It lives here, with the stored job's format, so
/// that the settling calls can ask it without depending on the flows above them.
pub fn may_be_flow_child(stored: &[u8]) -> bool {
    memchr::memmem::find(stored, b"\"flow\":").is_some()
}

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
        self.write_prefix(&mut out);
        out.push_str(body);
        out
    }

    /// The stored bytes: this header followed by `body`, which may be any bytes (the whole of
    /// an undecodable entry, kept as received inside a valid dead entry).
    pub fn encode_bytes(&self, body: &[u8]) -> Vec<u8> {
        let mut prefix = String::with_capacity(48 + self.id.len() + self.error.len());
        self.write_prefix(&mut prefix);
        let mut out = prefix.into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn write_prefix(&self, out: &mut String) {
        out.push_str("jf");
        if !self.priority.is_default() {
            out.push(char::from(b'0' + self.priority.level()));
        }
        let _ = writeln!(
            out,
            "|{}|{}|{}|{}|{}:{}{}:{}",
            self.attempts,
            self.max_attempts,
            self.id,
            self.failed_at,
            self.unique.len(),
            self.unique,
            self.error.len(),
            self.error,
        );
    }

    /// Splits a stored job into its header and its body. The header must be UTF-8; the body is
    /// returned as bytes, for the caller to check and decode.
    pub fn decode(payload: &[u8]) -> Result<(Header, &[u8]), MalformedHeader> {
        let (priority, rest) = split_priority(payload)?;
        let at = |rest: &[u8]| payload.len() - rest.len();
        let (attempts, rest) = field(rest, "attempts")?;
        let (max, rest) = field(rest, "max attempts")?;
        let (id, rest) = field(rest, "id")?;
        let id = text(id, at(rest) - id.len() - 1)?;
        let (failed_at, rest) = field(rest, "failed at")?;
        let (unique, rest) = counted(rest, "unique key")?;
        let unique = text(unique, at(rest) - unique.len())?;
        let (error, rest) = counted(rest, "error")?;
        let error = text(error, at(rest) - error.len())?;
        let body = rest
            .strip_prefix(b"\n")
            .ok_or(MalformedHeader::Field("no newline before body"))?;
        Ok((
            Header {
                attempts: number(attempts, "attempts")?,
                max_attempts: number(max, "max attempts")?,
                id: id.to_owned(),
                failed_at: number(failed_at, "failed at")?,
                unique: unique.to_owned(),
                error: error.to_owned(),
                priority,
            },
            body,
        ))
    }

    /// The run a worker starts next: one more than the failed ones, saturating, so that a
    /// header claiming `u32::MAX` attempts cannot wrap around to a first run.
    pub fn next_attempt(&self) -> u32 {
        self.attempts.saturating_add(1)
    }

    /// True when no run is left: such a job goes to dead instead of running.
    pub fn exhausted(&self) -> bool {
        self.attempts >= self.max_attempts
    }
}

/// Reads the `jf` and the optional level that start every header, up to its first `|`.
fn split_priority(payload: &[u8]) -> Result<(Priority, &[u8]), MalformedHeader> {
    let rest = payload
        .strip_prefix(b"jf")
        .ok_or(MalformedHeader::Field("no jf| prefix"))?;
    match rest {
        [b'|', rest @ ..] => Ok((Priority::NORMAL, rest)),
        [d @ b'0'..=b'3', b'|', rest @ ..] => Ok((Priority::ALL[usize::from(d - b'0')], rest)),
        _ => Err(MalformedHeader::Field("priority")),
    }
}

/// Splits at the next `|`.
fn field<'a>(s: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), MalformedHeader> {
    let i = s
        .iter()
        .position(|&b| b == b'|')
        .ok_or(MalformedHeader::Field(what))?;
    Ok((&s[..i], &s[i + 1..]))
}

/// A decimal number field: ASCII digits only (no sign, no spaces), at most 19 of them (as
/// `header_number` in the Lua prelude reads them), and in range.
fn number<T: std::str::FromStr>(s: &[u8], what: &'static str) -> Result<T, MalformedHeader> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return Err(MalformedHeader::Field(what));
    }
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(MalformedHeader::Field(what))
}

/// A text field of the header, which starts at byte `offset` of the stored entry.
fn text(s: &[u8], offset: usize) -> Result<&str, MalformedHeader> {
    std::str::from_utf8(s).map_err(|e| MalformedHeader::NotUtf8(offset + e.valid_up_to()))
}

/// Reads `<len>:<bytes>`.
fn counted<'a>(s: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), MalformedHeader> {
    let i = s
        .iter()
        .position(|&b| b == b':')
        .ok_or(MalformedHeader::Field(what))?;
    let len: usize = number(&s[..i], what)?;
    let rest = &s[i + 1..];
    if rest.len() < len {
        return Err(MalformedHeader::Field(what));
    }
    Ok(rest.split_at(len))
}

/// The id of a stored job without decoding the rest, for listings and scans.
pub fn peek_id(payload: &[u8]) -> Option<&str> {
    let (_, rest) = split_priority(payload).ok()?;
    let mut parts = rest.splitn(4, |&b| b == b'|');
    parts.next()?;
    parts.next()?;
    std::str::from_utf8(parts.next()?).ok()
}

/// The name of an entry that has no readable id: `undecodable-` and the first 16 hex digits of
/// the SHA-1 of its bytes. `reap.lua` names the entries it cannot parse the same way
/// (`redis.sha1hex`), so one bad entry has one name wherever it was found.
pub fn undecodable_id(stored: &[u8]) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(stored);
    format!("undecodable-{}", &hex::encode(digest)[..16])
}

/// Bytes for display: valid UTF-8 as it is, every other byte as `\xNN` (and a backslash as
/// `\\`, so the display can be read back unambiguously).
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
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
            priority: Priority::NORMAL,
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
        let (back, body) = Header::decode(p.as_bytes()).unwrap();
        assert_eq!((back, body), (h.clone(), &b"{}"[..]));
        assert_eq!(peek_id(p.as_bytes()), Some("01JX"));
        let raw = h.encode_bytes(b"\xff{");
        assert_eq!(Header::decode(&raw).unwrap().1, b"\xff{");
    }

    #[test]
    fn a_level_other_than_the_default_follows_jf() {
        // The Lua prelude's build_job writes the level the same way (and none for level 2).
        let h = Header {
            priority: Priority::HIGH,
            ..header()
        };
        let p = h.encode("{}");
        assert!(p.starts_with("jf1|2|25|01JX|"), "{p}");
        assert_eq!(Header::decode(p.as_bytes()).unwrap().0, h);
        assert_eq!(peek_id(p.as_bytes()), Some("01JX"));
        let (default, _) = Header::decode(b"jf|0|1|a|0|0:0:\n{}").unwrap();
        assert_eq!(default.priority, Priority::NORMAL);
        let (two, _) = Header::decode(b"jf2|0|1|a|0|0:0:\n{}").unwrap();
        assert_eq!(two.priority, Priority::NORMAL);
        for bad in [
            "jf4|0|1|a|0|0:0:\n{}",
            "jf01|0|1|a|0|0:0:\n{}",
            "jfx|0|1|a|0|0:0:\n{}",
        ] {
            assert!(Header::decode(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "{\"id\":1}",
            "jf|x|1|a|0|0:0:\n{}",
            "jf|1|1|a|0|9:ab0:\n{}",
            "jf|1|1|a|0|0:0:{}",
            "jf|-1|1|a|0|0:0:\n{}",
            "jf|+1|1|a|0|0:0:\n{}",
            "jf|1| 1|a|0|0:0:\n{}",
            "jf|4294967296|1|a|0|0:0:\n{}",
            "jf|00000000000000000001|1|a|0|0:0:\n{}",
            "jf|1|1|a|99999999999999999999|0:0:\n{}",
            "jf|1|1|a|0|99999999999999999999999:0:\n{}",
        ] {
            assert!(Header::decode(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_the_first_byte_that_is_not_utf8() {
        // The id starts at byte 7 of the entry; its second byte is the bad one.
        let bad = b"jf|0|3|a\xffb|0|0:0:\n{}";
        assert_eq!(Header::decode(bad), Err(MalformedHeader::NotUtf8(8)));
        let in_error = b"jf|0|3|ab|0|0:3:x\xfey\n{}";
        assert_eq!(Header::decode(in_error), Err(MalformedHeader::NotUtf8(17)));
        assert_eq!(peek_id(bad), None);
    }

    #[test]
    fn used_up_headers_are_exhausted_and_never_wrap() {
        let h = |attempts, max_attempts| Header {
            attempts,
            max_attempts,
            ..Header::default()
        };
        assert!(h(u32::MAX, 3).exhausted());
        assert_eq!(h(u32::MAX, 3).next_attempt(), u32::MAX);
        assert!(h(1_000_000, 3).exhausted());
        assert!(h(0, 0).exhausted());
        assert!(h(3, 3).exhausted());
        assert!(!h(2, 3).exhausted());
    }

    #[test]
    fn escapes_what_is_not_utf8_and_nothing_else() {
        assert_eq!(escape_bytes("é\\a".as_bytes()), "é\\\\a");
        assert_eq!(escape_bytes(b"a\xff\x00b"), "a\\xff\u{0}b");
        assert_eq!(
            undecodable_id(b"garbage{"),
            undecodable_id(b"garbage{"),
            "stable"
        );
        assert_eq!(undecodable_id(b"x").len(), "undecodable-".len() + 16);
    }

    #[test]
    fn ids_are_restricted_to_pattern_safe_characters() {
        assert!(valid_id("01JX-tick:vote.5m_1"));
        for bad in ["", "a|b", "a*", "a b", "a?", "[a]"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
