//! Printing for the operators' commands: aligned tables for people, JSON for scripts.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Prints rows under a header with each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A time in ms since the epoch as RFC 3339, or "-".
pub fn time(ms: Option<i64>) -> String {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
}

/// A duration in ms, rounded for reading ("3m 12s"), or "-".
pub fn age(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms >= 0 => {
            let secs = u64::try_from(ms / 1000).unwrap_or(0);
            if secs == 0 {
                format!("{ms}ms")
            } else {
                humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
            }
        }
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_ages() {
        assert_eq!(time(Some(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(None), "-");
        assert_eq!(age(Some(250)), "250ms");
        assert_eq!(age(Some(192_000)), "3m 12s");
        assert_eq!(age(None), "-");
    }
}
