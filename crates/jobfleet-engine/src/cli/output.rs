//! Printing for the operators' commands: aligned tables for people, JSON for scripts.
//!
//! Everything a command prints on stdout goes through [`line()`] (the `outln!` macro), never
//! `println!`: `println!` panics when the reader has gone away (`jobfleet jobs list --json |
//! head -c 100`), while [`line()`] turns a closed pipe into [`StdoutClosed`], which the command
//! returns like any error and `main` turns into a quiet exit 0, as `grep` or `ls` end when
//! `head` has what it wanted.

use std::fmt;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The reader of stdout closed it (EPIPE). Not a failure: the command stops and the process
/// exits 0 without a message.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Prints one line on stdout, like `println!`, but returns an error instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub use crate::outln;

/// Prints one line on stderr, like `eprintln!`, without panicking when stderr is closed.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::eline(format_args!($($arg)*))
    };
}
pub use crate::errln;

/// Writes one line to stdout. A closed pipe is [`StdoutClosed`]; any other failure (a full
/// disk behind a redirection) is an error that names stdout.
pub fn line(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    written.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
        _ => anyhow::Error::new(e).context("cannot write to stdout"),
    })
}

/// Whether an error is, or was caused by, a closed stdout.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.is::<StdoutClosed>())
}

/// Prints one line on stderr; a closed stderr is ignored, as there is nowhere left to say so.
pub fn eline(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Prints rows under a header with each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
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
        outln!("{}", padded.join("  ").trim_end())
    };
    line(header.to_vec())?;
    for row in rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

/// Prints a value as pretty JSON on stdout, for the commands' `--json` output.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)
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
        assert_eq!(time(Some(i64::MAX)), "-");
        assert_eq!(time(None), "-");
        assert_eq!(age(Some(250)), "250ms");
        assert_eq!(age(Some(192_000)), "3m 12s");
        assert_eq!(age(None), "-");
    }

    #[test]
    fn a_closed_stdout_is_told_apart_from_other_errors() {
        let closed = anyhow::Error::new(StdoutClosed).context("listing");
        assert!(is_stdout_closed(&closed));
        let other = anyhow::Error::new(io::Error::other("disk full")).context("listing");
        assert!(!is_stdout_closed(&other));
    }
}
