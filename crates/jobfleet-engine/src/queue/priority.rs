//! Priorities inside a queue: four levels, 0 the most urgent, each a pending list of its own.
//!
//! A queue's pending jobs are held in one list per level (`pending:0`, `pending:1`,
//! `pending` for the default level 2, and `pending:3`). `fetch` takes from the most urgent
//! level that has jobs, so levels are strict, and each list is first in, first out, so jobs of
//! one level run in the order they became pending. The default level keeps the name the
//! pending list always had: a queue whose jobs all have the default priority reads and writes
//! exactly the keys it did before priorities existed, and a store written before them needs no
//! migration.
//!
//! A job's level is part of its stored header (`jf<level>|...`, see `payload`), written only
//! for levels other than the default, so the scripts that move a job back to pending (a retry
//! that came due, a reaped lease, an operator's retry) put it in its own level's list without
//! decoding anything else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How urgent a job is within its queue: 0 runs first, 3 last; 2 unless said otherwise.
///
/// Serialized as its number; read from a number or a name (`priority = 1` or `"high"` in a spec,
/// `"priority": 0` in the HTTP API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "u8")]
pub struct Priority(u8);

/// Why a priority was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid priority {0:?}: use 0 (most urgent) to 3, or critical, high, normal or low")]
pub struct InvalidPriority(pub String);

impl Priority {
    /// The most urgent level.
    pub const CRITICAL: Priority = Priority(0);
    /// Ahead of the default.
    pub const HIGH: Priority = Priority(1);
    /// The level of a job that names none.
    pub const NORMAL: Priority = Priority(2);
    /// Behind the default: bulk work that may wait.
    pub const LOW: Priority = Priority(3);
    /// Every level, the order `fetch` takes them in.
    pub const ALL: [Priority; 4] = [Self::CRITICAL, Self::HIGH, Self::NORMAL, Self::LOW];

    /// A level from its number, 0 to 3.
    pub fn new(level: u8) -> Result<Self, InvalidPriority> {
        if level <= 3 {
            Ok(Priority(level))
        } else {
            Err(InvalidPriority(level.to_string()))
        }
    }

    /// The level's number, 0 to 3.
    pub fn level(self) -> u8 {
        self.0
    }

    /// True for the default level, which the header and the key names leave unsaid.
    pub fn is_default(self) -> bool {
        self == Self::NORMAL
    }

    /// The level's position in [`Priority::ALL`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The level's name, as the CLI and the board show it.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "critical",
            1 => "high",
            2 => "normal",
            _ => "low",
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl TryFrom<u8> for Priority {
    type Error = InvalidPriority;
    fn try_from(level: u8) -> Result<Self, Self::Error> {
        Priority::new(level)
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Level(u64),
            Name(String),
        }
        match Given::deserialize(d)? {
            Given::Level(n) => u8::try_from(n)
                .ok()
                .and_then(|n| Priority::new(n).ok())
                .ok_or_else(|| serde::de::Error::custom(InvalidPriority(n.to_string()))),
            Given::Name(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl FromStr for Priority {
    type Err = InvalidPriority;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "0" | "critical" => Ok(Self::CRITICAL),
            "1" | "high" => Ok(Self::HIGH),
            "2" | "normal" => Ok(Self::NORMAL),
            "3" | "low" => Ok(Self::LOW),
            other => Err(InvalidPriority(other.to_owned())),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// One list's part of a window over all pending lists: list `index` (a position in
/// [`Priority::ALL`]) from `start` to `stop`, both included, as `LRANGE` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The list's position in [`Priority::ALL`].
    pub index: usize,
    /// First position in that list.
    pub start: u64,
    /// Last position in that list.
    pub stop: u64,
}

/// The parts of the lists (of lengths `lens`, most urgent first) that hold positions `from`
/// to `from + count - 1` of the lists read one after the other: the order `fetch` takes them.
pub fn spans(lens: &[u64], from: u64, count: u64) -> Vec<Span> {
    let mut out = Vec::new();
    let (mut skip, mut left) = (from, count);
    for (index, &len) in lens.iter().enumerate() {
        if left == 0 {
            break;
        }
        if skip >= len {
            skip -= len;
            continue;
        }
        let take = (len - skip).min(left);
        out.push(Span {
            index,
            start: skip,
            stop: skip + take - 1,
        });
        left -= take;
        skip = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_by_number_and_name_and_refuse_the_rest() {
        assert_eq!("0".parse(), Ok(Priority::CRITICAL));
        assert_eq!("low".parse(), Ok(Priority::LOW));
        assert_eq!(Priority::default(), Priority::NORMAL);
        assert!(Priority::NORMAL.is_default());
        assert_eq!("4".parse::<Priority>(), Err(InvalidPriority("4".into())));
        assert!(Priority::new(9).is_err());
        assert!(serde_json::from_str::<Priority>("7").is_err());
        assert!(serde_json::from_str::<Priority>("-1").is_err());
        assert_eq!(
            serde_json::from_str::<Priority>("\"high\"").unwrap(),
            Priority::HIGH
        );
        assert_eq!(
            serde_json::from_str::<Priority>("3").unwrap(),
            Priority::LOW
        );
        assert_eq!(serde_json::to_string(&Priority::HIGH).unwrap(), "1");
        assert_eq!(Priority::LOW.to_string(), "3 (low)");
    }

    #[test]
    fn a_window_over_the_levels_takes_each_list_in_turn() {
        let lens = [2, 0, 5, 3];
        assert_eq!(
            spans(&lens, 0, 4),
            vec![
                Span {
                    index: 0,
                    start: 0,
                    stop: 1
                },
                Span {
                    index: 2,
                    start: 0,
                    stop: 1
                }
            ]
        );
        assert_eq!(
            spans(&lens, 6, 10),
            vec![
                Span {
                    index: 2,
                    start: 4,
                    stop: 4
                },
                Span {
                    index: 3,
                    start: 0,
                    stop: 2
                }
            ]
        );
        assert!(spans(&lens, 10, 5).is_empty());
        assert!(spans(&lens, 0, 0).is_empty());
    }
}
