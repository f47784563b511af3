//! Numbers, times and durations as the board shows them. Pure: the clock is passed in.

use chrono::{TimeZone, Utc};

/// A count with thin separators between thousands: `1 234 567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// A time in ms since the epoch as `2026-12-01 15:04:05 UTC`; `-` for none.
pub fn time(ms: Option<i64>) -> String {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// A span of milliseconds in the largest two units that matter: `850ms`, `12s`, `3m 20s`,
/// `5h 02m`, `4d 07h`.
pub fn span(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// How long ago (or, negative, in how long) a time is from `now`: `3m 20s ago`, `in 12s`.
pub fn relative(ms: Option<i64>, now: i64) -> String {
    match ms {
        None => "-".to_owned(),
        Some(t) if t <= now => format!("{} ago", span(now - t)),
        Some(t) => format!("in {}", span(t - now)),
    }
}

/// At most `max` characters of a text, with `…` when it was cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1\u{2009}000");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
    }

    #[test]
    fn spans_use_two_units() {
        assert_eq!(span(850), "850ms");
        assert_eq!(span(12_000), "12s");
        assert_eq!(span(200_000), "3m 20s");
        assert_eq!(span(5 * 3_600_000 + 120_000), "5h 02m");
        assert_eq!(span(4 * 86_400_000 + 7 * 3_600_000), "4d 07h");
        assert_eq!(relative(Some(1_000), 61_000), "1m 00s ago");
        assert_eq!(relative(Some(13_000), 1_000), "in 12s");
    }

    #[test]
    fn times_and_clips() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(None), "-");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
