//! Retry delays: a pure function of the policy, the attempt and a random number.
//!
//! The randomness is passed in, so tests are exact and callers decide where it comes from.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long to wait before the next attempt of a failed job.
///
/// The delay of attempt `n` (1-based, the attempt that just failed) is
/// `min(cap, base * 2^(n-1))`, then reduced by up to `jitter` of itself so that jobs which failed
/// together do not all come back at the same instant. Jitter only ever shortens the delay, so the
/// cap is a true upper bound.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    #[serde(with = "crate::settings::duration")]
    pub base: Duration,
    /// Upper bound of any delay.
    #[serde(with = "crate::settings::duration")]
    pub cap: Duration,
    /// Fraction (0.0 to 1.0) of the delay that may be taken off at random.
    #[serde(default)]
    pub jitter: f64,
}

impl Backoff {
    /// No delay at all: failed jobs go straight back to pending.
    pub const ZERO: Backoff = Backoff {
        base: Duration::ZERO,
        cap: Duration::ZERO,
        jitter: 0.0,
    };

    /// The delay before retrying after `attempt` failed; `unit` is a random number in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(62);
        let factor = 1u64 << exponent;
        let raw = self
            .base
            .checked_mul(u32::try_from(factor).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX)
            .min(self.cap);
        let unit = unit.clamp(0.0, 1.0);
        let jitter = self.jitter.clamp(0.0, 1.0);
        raw.mul_f64(1.0 - jitter * unit)
    }

    /// Checks the policy; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "jitter must be between 0 and 1, got {}",
                self.jitter
            ));
        }
        if self.cap < self.base {
            return Err("cap must not be smaller than base".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: u64, cap: u64, jitter: f64) -> Backoff {
        Backoff {
            base: Duration::from_secs(base),
            cap: Duration::from_secs(cap),
            jitter,
        }
    }

    #[test]
    fn doubles_from_base_until_the_cap() {
        let p = policy(15, 3600, 0.0);
        let delays: Vec<u64> = (1..=10).map(|n| p.delay(n, 0.5).as_secs()).collect();
        assert_eq!(delays, [15, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn jitter_only_shortens() {
        let p = policy(10, 100, 0.5);
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(10));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(5));
        assert_eq!(p.delay(1, 0.5), Duration::from_millis(7500));
        assert_eq!(p.delay(30, 0.0), Duration::from_secs(100));
    }

    #[test]
    fn huge_attempts_do_not_overflow() {
        let p = policy(1, 86_400, 0.1);
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_secs(86_400));
        assert_eq!(p.delay(0, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn zero_policy_is_immediate() {
        assert_eq!(Backoff::ZERO.delay(5, 0.9), Duration::ZERO);
    }

    #[test]
    fn validation_names_the_field() {
        assert!(policy(1, 2, 1.5).validate().unwrap_err().contains("jitter"));
        assert!(policy(5, 2, 0.0).validate().unwrap_err().contains("cap"));
        assert!(policy(1, 2, 0.2).validate().is_ok());
    }
}
