//! The snapshot documents: a market's discussions of one UTC day as deterministic JSON.
//!
//! Deterministic means the same discussions always give the same bytes, so the same CID: the
//! fields are written in a fixed order (struct order, not a map), the JSON is compact, times
//! are RFC 3339 in UTC with microseconds (PostgreSQL's precision), and messages are ordered by
//! time, then id. A re-run, or a retry after a crash between the upload and the insert,
//! therefore uploads the very same block.
//!
//! Size: a document is at most `MAX_BLOCK` (256 KiB) so that it is one raw block and its CID
//! is sha2-256 of exactly its bytes (see `ipfs::cid`). A bigger day is split into parts, each
//! a document of its own with `part` and `parts`, and the snapshot's CID is then that of a
//! small index document listing the parts' CIDs in order. Kubo's own chunking (a dag-pb tree)
//! is not used: it would make the CID depend on UnixFS encoding details that the stand-in
//! would have to reproduce and `verify` to re-implement.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::cid::MAX_BLOCK;

/// The `kind` of a whole day in one document.
pub const KIND_SNAPSHOT: &str = "discussion_snapshot";
/// The `kind` of one part of a day that did not fit in one block.
pub const KIND_PART: &str = "discussion_snapshot_part";
/// The `kind` of the document listing the parts of a split day.
pub const KIND_INDEX: &str = "discussion_snapshot_index";

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "discussion {id} of market {market_id} is {bytes} bytes as JSON, more than one snapshot block ({max} bytes) can hold"
    )]
    MessageTooLarge {
        market_id: i64,
        id: i64,
        bytes: usize,
        max: usize,
    },
    #[error("the index of market {market_id}'s {parts} parts is larger than one block")]
    IndexTooLarge { market_id: i64, parts: usize },
}

/// The half-open UTC interval a snapshot covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// The UTC day `day`: `[day 00:00, next day 00:00)`.
    pub fn day(day: NaiveDate) -> Self {
        let start = day.and_time(NaiveTime::MIN).and_utc();
        Self {
            start,
            end: start + chrono::Duration::days(1),
        }
    }

    /// The day before the UTC midnight at or before `at`: `[midnight - 24h, midnight)`. The job
    /// passes its tick time, so a late run or a retry snapshots the same day.
    pub fn day_before(at: DateTime<Utc>) -> Self {
        Self::day(at.date_naive() - chrono::Duration::days(1))
    }
}

/// One message as it is written into a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub author_id: i64,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    pub content: String,
}

/// The header fields shared by every document of a snapshot.
#[derive(Serialize)]
struct Doc<'a> {
    kind: &'static str,
    market_id: i64,
    #[serde(with = "rfc3339")]
    window_start: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    window_end: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<usize>,
    count: usize,
    messages: &'a [Message],
}

#[derive(Serialize)]
struct Index<'a> {
    kind: &'static str,
    market_id: i64,
    #[serde(with = "rfc3339")]
    window_start: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    window_end: DateTime<Utc>,
    count: usize,
    parts: &'a [String],
}

/// What the reader of a fetched document needs: which kind it is and, for an index, its parts.
#[derive(Debug, Deserialize)]
pub struct Header {
    pub kind: String,
    pub market_id: i64,
    pub count: usize,
    #[serde(default, deserialize_with = "parts_list")]
    pub parts: Vec<String>,
}

/// Reads the header of a fetched document; `None` when it is not a snapshot document.
pub fn header(bytes: &[u8]) -> Option<Header> {
    serde_json::from_slice(bytes).ok()
}

/// The documents of one market's day: one when it fits in a block, else the parts in order.
pub fn build(
    market_id: i64,
    window: Window,
    messages: &[Message],
) -> Result<Vec<Vec<u8>>, DocumentError> {
    build_capped(market_id, window, messages, MAX_BLOCK)
}

/// `build` with the block size passed in, so the splitting is tested on small inputs too.
pub fn build_capped(
    market_id: i64,
    window: Window,
    messages: &[Message],
    cap: usize,
) -> Result<Vec<Vec<u8>>, DocumentError> {
    let doc = |kind, part, parts, messages: &[Message]| {
        to_bytes(&Doc {
            kind,
            market_id,
            window_start: window.start,
            window_end: window.end,
            part,
            parts,
            count: messages.len(),
            messages,
        })
    };
    let whole = doc(KIND_SNAPSHOT, None, None, messages);
    if whole.len() <= cap {
        return Ok(vec![whole]);
    }
    // The widest header a part can have (numbers at their widest), so that the parts chosen
    // below fit whatever their final numbers turn out to be.
    let wide = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
    let overhead = doc(KIND_PART, Some(wide), Some(wide), &[]).len()
        + (wide.to_string().len()).saturating_sub(1);
    let budget = cap.saturating_sub(overhead);
    let mut groups: Vec<&[Message]> = Vec::new();
    let (mut first, mut size) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let len = to_bytes(m).len() + 1; // the comma between messages
        if len > budget {
            return Err(DocumentError::MessageTooLarge {
                market_id,
                id: m.id,
                bytes: len - 1,
                max: budget,
            });
        }
        if size + len > budget {
            groups.push(&messages[first..i]);
            (first, size) = (i, 0);
        }
        size += len;
    }
    groups.push(&messages[first..]);
    let n = groups.len();
    Ok(groups
        .iter()
        .enumerate()
        .map(|(i, g)| doc(KIND_PART, Some(i + 1), Some(n), g))
        .collect())
}

/// The index of a split day: the total count and the parts' CIDs in order.
pub fn index(
    market_id: i64,
    window: Window,
    count: usize,
    part_cids: &[String],
) -> Result<Vec<u8>, DocumentError> {
    let bytes = to_bytes(&Index {
        kind: KIND_INDEX,
        market_id,
        window_start: window.start,
        window_end: window.end,
        count,
        parts: part_cids,
    });
    if bytes.len() > MAX_BLOCK {
        return Err(DocumentError::IndexTooLarge {
            market_id,
            parts: part_cids.len(),
        });
    }
    Ok(bytes)
}

fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain structs of strings, numbers and lists into memory cannot fail.
    serde_json::to_vec(value).expect("a snapshot document serialises")
}

/// An index's `parts` is a list of CIDs; in a part it is a number, which means no list.
fn parts_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}

/// Times as RFC 3339 in UTC with microseconds, the one spelling used in every document.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn msg(id: i64, content: &str) -> Message {
        Message {
            id,
            author_id: 7,
            created_at: at("2026-11-29T10:00:00.5Z"),
            content: content.to_owned(),
        }
    }

    #[test]
    fn the_window_is_the_utc_day_before_the_tick() {
        let w = Window::day_before(at("2026-11-30T00:00:00Z"));
        assert_eq!(w.start, at("2026-11-29T00:00:00Z"));
        assert_eq!(w.end, at("2026-11-30T00:00:00Z"));
        // A retry late in the day snapshots the same window.
        assert_eq!(Window::day_before(at("2026-11-30T23:59:59.999Z")), w);
        let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        assert_eq!(Window::day(day), w);
    }

    #[test]
    fn a_small_day_is_one_document_with_fixed_field_order() {
        let w = Window::day_before(at("2026-11-30T00:00:00Z"));
        let docs = build(5, w, &[msg(1, "hi \"there\"")]).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            String::from_utf8(docs[0].clone()).unwrap(),
            r#"{"kind":"discussion_snapshot","market_id":5,"window_start":"2026-11-29T00:00:00.000000Z","window_end":"2026-11-30T00:00:00.000000Z","count":1,"messages":[{"id":1,"author_id":7,"created_at":"2026-11-29T10:00:00.500000Z","content":"hi \"there\""}]}"#
        );
    }

    #[test]
    fn a_big_day_is_split_into_parts_under_the_cap() {
        let w = Window::day_before(at("2026-11-30T00:00:00Z"));
        let messages: Vec<Message> = (1..=40).map(|i| msg(i, &"x".repeat(100))).collect();
        let docs = build_capped(5, w, &messages, 1_000).unwrap();
        assert!(docs.len() > 1);
        let mut seen = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            assert!(d.len() <= 1_000, "part {} is {} bytes", i + 1, d.len());
            let v: serde_json::Value = serde_json::from_slice(d).unwrap();
            assert_eq!(v["kind"], KIND_PART);
            assert_eq!(v["part"], i + 1);
            assert_eq!(v["parts"], docs.len());
            for m in v["messages"].as_array().unwrap() {
                seen.push(m["id"].as_i64().unwrap());
            }
        }
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    }

    #[test]
    fn a_message_bigger_than_a_block_is_refused() {
        let w = Window::day_before(at("2026-11-30T00:00:00Z"));
        let e = build_capped(5, w, &[msg(9, &"x".repeat(2_000))], 1_000).unwrap_err();
        assert!(e.to_string().contains("discussion 9"), "{e}");
    }

    #[test]
    fn headers_read_back_index_parts() {
        let w = Window::day_before(at("2026-11-30T00:00:00Z"));
        let bytes = index(5, w, 3, &["a".into(), "b".into()]).unwrap();
        let h = header(&bytes).unwrap();
        assert_eq!((h.kind.as_str(), h.count), (KIND_INDEX, 3));
        assert_eq!(h.parts, vec!["a", "b"]);
        let single = build(5, w, &[msg(1, "x")]).unwrap();
        assert!(header(&single[0]).unwrap().parts.is_empty());
        assert!(header(b"not json").is_none());
    }
}
