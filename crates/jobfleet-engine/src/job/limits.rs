//! `[limits]` of a job spec: fleet-wide budgets of a kind's jobs, enforced by the workers
//! before each run (see `queue::limits` for how they are kept in Redis).
//!
//! ```toml
//! [limits]
//! rate = "30/1m"      # at most 30 starts in any minute, across every worker
//! concurrency = 4     # at most 4 running at once, across every worker
//! key = "host"        # optional: an args field; each of its values has budgets of its own
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha1::{Digest, Sha1};

/// The longest key value used as it is in a limit's name; longer ones are hashed.
const KEY_SHOWN: usize = 100;

/// Starts allowed per window, as `"<count>/<window>"`: `"30/1m"`, `"5/1s"`, `"1000/h"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Starts allowed in any window.
    pub count: u32,
    /// The window's length.
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a rate like \"30/1m\" (starts per window)");
        let (count, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        // "30/m" reads as "30/1m".
        let per = if per.starts_with(|c: char| c.is_ascii_digit()) {
            per.to_owned()
        } else {
            format!("1{per}")
        };
        let per = humantime::parse_duration(&per).map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("{s:?}: the count must be at least 1"));
        }
        if per < Duration::from_millis(10) || per > Duration::from_secs(86_400) {
            return Err(format!("{s:?}: the window must be 10ms to 1 day"));
        }
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The `[limits]` table of a spec.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Starts per window across the fleet.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// Runs at once across the fleet.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// An args field (`host`, or a path like `target.host`) whose value picks the budget.
    #[serde(default)]
    pub key: Option<String>,
}

impl LimitsSpec {
    /// What is wrong, starting with the field (`limits.concurrency: ...`).
    pub fn validate(&self) -> Result<(), String> {
        if self.rate.is_none() && self.concurrency.is_none() {
            return Err("limits: give a rate, a concurrency, or both".into());
        }
        if self.concurrency == Some(0) {
            return Err("limits.concurrency: must be at least 1".into());
        }
        if let Some(key) = &self.key {
            let ok = |p: &str| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if key.len() > 64 || !key.split('.').all(ok) {
                return Err(format!(
                    "limits.key: {key:?} is not an args field name (a-z, A-Z, 0-9, '_', '-', \
                     with '.' between nested fields)"
                ));
            }
        }
        Ok(())
    }

    /// The concurrency as the store takes it: 0 for none.
    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(0)
    }

    /// The name of the budget a job of `kind` with `args` takes from: the kind, or
    /// `<kind>=<value of the key field>`. A job whose args lack the field (or hold null)
    /// shares the budget `<kind>=` with the others that lack it.
    pub fn name(&self, kind: &str, args: &Value) -> String {
        let Some(key) = &self.key else {
            return kind.to_owned();
        };
        let value = key
            .split('.')
            .try_fold(args, |v, part| v.get(part))
            .map_or_else(String::new, |v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            });
        // Any value is a safe key (the queue's hash tag comes first), but a long one or one
        // with control characters would make an unreadable listing: those are hashed.
        if value.len() > KEY_SHOWN || value.chars().any(char::is_control) {
            let digest = Sha1::digest(value.as_bytes());
            format!("{kind}=sha1:{}", &hex::encode(digest)[..16])
        } else {
            format!("{kind}={value}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_read_as_count_per_window() {
        let r: Rate = "30/1m".parse().unwrap();
        assert_eq!((r.count, r.per), (30, Duration::from_secs(60)));
        assert_eq!("20/s".parse::<Rate>().unwrap().per, Duration::from_secs(1));
        assert_eq!(r.to_string(), "30/1m");
        for bad in ["30", "x/1m", "0/1s", "5/1ms", "5/2days", "5/soon", "-1/1s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_limit_needs_a_budget_and_a_key_that_names_a_field() {
        let spec = |rate: Option<&str>, concurrency, key: Option<&str>| LimitsSpec {
            rate: rate.map(|r| r.parse().unwrap()),
            concurrency,
            key: key.map(str::to_owned),
        };
        assert!(spec(Some("1/1s"), None, None).validate().is_ok());
        assert!(spec(None, Some(2), Some("target.host")).validate().is_ok());
        let none = spec(None, None, None).validate().unwrap_err();
        assert!(none.starts_with("limits:"), "{none}");
        let zero = spec(None, Some(0), None).validate().unwrap_err();
        assert!(zero.starts_with("limits.concurrency"), "{zero}");
        for bad in ["", "a b", "a..b", "a{b}"] {
            let e = spec(None, Some(1), Some(bad)).validate().unwrap_err();
            assert!(e.starts_with("limits.key"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_key_field_picks_the_budget() {
        let keyed = LimitsSpec {
            rate: None,
            concurrency: Some(1),
            key: Some("target.host".into()),
        };
        let args = json!({"target": {"host": "discord.com", "port": 443}});
        assert_eq!(keyed.name("send", &args), "send=discord.com");
        assert_eq!(keyed.name("send", &json!({})), "send=");
        assert_eq!(
            keyed.name("send", &json!({"target": {"host": 7}})),
            "send=7"
        );
        let long = json!({"target": {"host": "x".repeat(300)}});
        assert!(keyed.name("send", &long).starts_with("send=sha1:"));
        let plain = LimitsSpec { key: None, ..keyed };
        assert_eq!(plain.name("send", &args), "send");
    }
}
