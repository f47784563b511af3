//! Crash points for the crash tests: `JOBFLEET_FAILPOINTS=after-sign,after-broadcast` makes the
//! process abort (as a SIGKILL would end it, with no cleanup) when it reaches that point.
//!
//! The sender's promise is that a crash at any point loses no transaction and sends none
//! twice. A test can only show that by killing a real process at the exact points between
//! its steps, which a signal sent from outside cannot aim at. Unset (always, in production),
//! a check is one lookup in a set read once.

use std::collections::HashSet;
use std::sync::OnceLock;

static POINTS: OnceLock<HashSet<String>> = OnceLock::new();

/// Aborts the process if the point `name` is armed.
pub fn hit(name: &str) {
    let points = POINTS.get_or_init(|| {
        std::env::var("JOBFLEET_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if points.contains(name) {
        eprintln!("failpoint {name}: aborting the process");
        std::process::abort();
    }
}
