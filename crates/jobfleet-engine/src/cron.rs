//! Cron expressions and their next run: pure functions with the clock passed in.
//!
//! Five fields (`minute hour day-of-month month day-of-week`) or six with seconds first. Each
//! field takes `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n` and `a/n` (from `a` to the end
//! of the field), and lists `a,b`; months and weekdays also take names (`JAN`, `MON`); day-of-week 0 and 7 are Sunday. The day fields
//! combine as in Vixie cron and cronie: when neither starts with `*`, a day matches if either
//! does (`0 0 13 * FRI`: every 13th and every Friday); when one starts with `*`, a day must match
//! both, so a plain `*` leaves the other field to decide, and a stepped `*/2` keeps its values
//! (`0 0 */2 * *`: the odd days; `0 0 */2 * MON`: the Mondays that fall on an odd day).
//!
//! # Time zones and daylight-saving changes
//! An expression is read in its schedule's IANA time zone: it matches local wall-clock times.
//! At a change of offset:
//! - a wall-clock time that does not exist (spring forward, e.g. 02:30 when clocks jump from
//!   02:00 to 03:00) fires once, at the instant of the jump (03:00 local);
//! - a wall-clock time that occurs twice (fall back, e.g. 02:30 when 03:00 goes back to 02:00)
//!   fires once, at its first occurrence.
//!
//! So a daily 02:30 job runs exactly once on both change days. Several skipped times that fall
//! on the same instant fire once.
//!
//! `cron_props.rs` cross-checks this module against the `croner` crate over thousands of random
//! expressions and zones; the two may differ only where the rule above says so.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    seconds: Vec<u32>,
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Vec<u32>,
    months: Vec<u32>,
    weekdays: Vec<u32>,
    /// Whether the day-of-month or day-of-week field starts with `*`: then the two combine
    /// with AND, otherwise with OR.
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, lo: u32, hi: u32, names: &[&str], name_base: u32) -> Result<u32, String> {
    let upper = s.to_ascii_uppercase();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        return Ok(name_base + u32::try_from(i).unwrap_or(0));
    }
    let v: u32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is outside {lo}-{hi}"));
    }
    Ok(v)
}

/// Parses one field into its sorted allowed values, and whether it starts with `*`.
fn field(
    s: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(Vec<u32>, bool), String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let step: u32 = st
                    .parse()
                    .map_err(|_| format!("step {st:?} is not a number"))?;
                if step == 0 {
                    return Err("a step of 0".into());
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, lo, hi, names, name_base)?,
                value(b, lo, hi, names, name_base)?,
            )
        } else {
            let v = value(range, lo, hi, names, name_base)?;
            // "5/15" means from 5 to the end in steps of 15, and "5/1" from 5 to the end: any
            // step given turns a start into a range, a step of 1 included.
            (v, if step.is_some() { hi } else { v })
        };
        if a > b {
            return Err(format!("range {a}-{b} runs backwards"));
        }
        out.extend((a..=b).step_by(step.unwrap_or(1) as usize));
    }
    out.sort_unstable();
    out.dedup();
    // Vixie cron flags a day field that starts with `*` (also `*/2`) to choose AND over OR
    // for the two day fields, and still checks the field's own values.
    Ok((out, s.starts_with('*')))
}

impl Cron {
    /// Parses 5 or 6 fields; the error says which field is wrong and why.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        let parts: Vec<&str> = match parts.len() {
            5 => std::iter::once("0").chain(parts).collect(),
            6 => parts,
            n => {
                return Err(format!(
                    "{expr:?} has {n} fields; use 5 (min hour dom month dow) or 6 (sec first)"
                ));
            }
        };
        let named = |i: usize, r: Result<(Vec<u32>, bool), String>| {
            let names = [
                "second",
                "minute",
                "hour",
                "day of month",
                "month",
                "day of week",
            ];
            r.map_err(|e| format!("{expr:?}: {} field: {e}", names[i]))
        };
        let (seconds, _) = named(0, field(parts[0], 0, 59, &[], 0))?;
        let (minutes, _) = named(1, field(parts[1], 0, 59, &[], 0))?;
        let (hours, _) = named(2, field(parts[2], 0, 23, &[], 0))?;
        let (days, days_star) = named(3, field(parts[3], 1, 31, &[], 0))?;
        let (months, _) = named(4, field(parts[4], 1, 12, &MONTHS, 1))?;
        let (mut weekdays, weekdays_star) = named(5, field(parts[5], 0, 7, &WEEKDAYS, 0))?;
        if weekdays.contains(&7) {
            weekdays.retain(|d| *d != 7);
            if !weekdays.contains(&0) {
                weekdays.insert(0, 0);
            }
        }
        Ok(Self {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star,
            weekdays_star,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if !self.months.contains(&d.month()) {
            return false;
        }
        let dom = self.days.contains(&d.day());
        let dow = self.weekdays.contains(&d.weekday().num_days_from_sunday());
        // A `*` field matches every day, so AND with it is the other field alone.
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first local wall-clock time at or after `from` that matches, or `None` if none
    /// ever does.
    pub fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        // The Gregorian calendar, weekdays included, repeats every 400 years (146,097 days),
        // so a day that matches comes within one cycle or never. A shorter horizon missed
        // rare days: 15 March on a Thursday or Sunday can be six years away, and 29 February
        // eight across 2100.
        let last = from.date() + Duration::days(146_097);
        let mut day = from.date();
        let mut start = from.time();
        while day <= last {
            if !self.months.contains(&day.month()) {
                // Skipping a whole month keeps a day that never comes (`0 0 30 2 *`) cheap.
                let (y, m) = (day.year(), day.month());
                day = if m == 12 {
                    NaiveDate::from_ymd_opt(y + 1, 1, 1)?
                } else {
                    NaiveDate::from_ymd_opt(y, m + 1, 1)?
                };
                start = chrono::NaiveTime::MIN;
                continue;
            }
            if self.day_matches(day) {
                for &h in self.hours.iter().filter(|h| **h >= start.hour()) {
                    let m_from = if h == start.hour() { start.minute() } else { 0 };
                    for &m in self.minutes.iter().filter(|m| **m >= m_from) {
                        let s_from = if h == start.hour() && m == start.minute() {
                            start.second()
                        } else {
                            0
                        };
                        if let Some(&s) = self.seconds.iter().find(|s| **s >= s_from) {
                            return day.and_hms_opt(h, m, s);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
            start = chrono::NaiveTime::MIN;
        }
        None
    }

    /// The first instant strictly after `after` at which the schedule fires in zone `tz`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Mapping local times to instants (with the rules above) never goes backwards, so the
        // first candidate that lands after `after` is the answer. No local time before
        // `after`'s own can land after it: a skipped one maps to a jump already past.
        let local_after = after.with_timezone(&tz).naive_local();
        let mut from = local_after.with_nanosecond(0)?;
        for _ in 0..100_000 {
            let candidate = self.next_local(from)?;
            let instant = to_instant(tz, candidate)?;
            if instant > after {
                return Some(instant);
            }
            from = candidate + Duration::seconds(1);
        }
        None
    }
}

/// A local wall-clock time as an instant: the first occurrence of a repeated time, and the
/// instant of the jump for a skipped one.
pub fn to_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Walk forward minute by minute to the end of the gap (offsets change on whole
            // minutes, and no gap is longer than a few hours).
            let base = local.with_second(0)?;
            (1..=24 * 60).find_map(|m| {
                match tz.from_local_datetime(&(base + Duration::minutes(m))) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                        // The instant of the jump is the first valid minute minus what is past it.
                        Some(t.with_timezone(&Utc))
                    }
                    LocalResult::None => None,
                }
            })
        }
    }
}

// The cross-check against the croner crate, in a file of its own for its length.
#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str) -> String {
        let tz: Tz = tz.parse().unwrap();
        Cron::parse(expr)
            .unwrap()
            .next_after(tz, utc(after))
            .unwrap()
            .to_rfc3339()
    }

    fn runs(expr: &str, tz: &str, from: &str, to: &str) -> Vec<String> {
        let tz: Tz = tz.parse().unwrap();
        let cron = Cron::parse(expr).unwrap();
        let (mut t, end) = (utc(from), utc(to));
        let mut out = Vec::new();
        while let Some(n) = cron.next_after(tz, t) {
            if n > end {
                break;
            }
            out.push(n.with_timezone(&tz).to_rfc3339());
            t = n;
        }
        out
    }

    #[test]
    fn the_platform_schedules() {
        assert_eq!(
            next("*/5 * * * *", "UTC", "2026-11-22T10:02:13Z"),
            "2026-11-22T10:05:00+00:00"
        );
        assert_eq!(
            next("*/10 * * * * *", "UTC", "2026-11-22T10:02:13Z"),
            "2026-11-22T10:02:20+00:00"
        );
        assert_eq!(
            next("0 * * * *", "UTC", "2026-11-22T10:00:00Z"),
            "2026-11-22T11:00:00+00:00"
        );
        // Weekly on Monday 00:00 UTC: 2026-11-22 is a Sunday.
        assert_eq!(
            next("0 0 * * MON", "UTC", "2026-11-22T10:00:00Z"),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * *", "UTC", "2026-11-23T00:00:00Z"),
            "2026-11-24T00:00:00+00:00"
        );
        assert_eq!(
            next("* * * * * *", "UTC", "2026-11-22T10:00:00.5Z"),
            "2026-11-22T10:00:01+00:00"
        );
    }

    #[test]
    fn fields_and_errors() {
        assert_eq!(
            next("0 9 1,15 * *", "UTC", "2026-11-02T00:00:00Z"),
            "2026-11-15T09:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 7", "UTC", "2026-11-23T00:00:00Z"),
            "2026-11-29T00:00:00+00:00"
        );
        // Day of month OR day of week when both are restricted.
        assert_eq!(
            next("0 0 13 * FRI", "UTC", "2026-11-01T00:00:00Z"),
            "2026-11-06T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        for (bad, why) in [
            ("* * * *", "4 fields"),
            ("61 * * * *", "minute field"),
            ("* * * 13 *", "month field"),
            ("*/0 * * * *", "step of 0"),
            ("5-1 * * * *", "backwards"),
            ("x * * * *", "not a number"),
        ] {
            let e = Cron::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_start_with_a_step_runs_to_the_end_of_the_field() {
        // `5/15` is 5, 20, 35, 50; `50/1` is 50 to 59 (it was read as 50 alone).
        assert_eq!(
            next("5/15 * * * *", "UTC", "2026-11-22T10:36:00Z"),
            "2026-11-22T10:50:00+00:00"
        );
        assert_eq!(
            next("50/1 * * * *", "UTC", "2026-11-22T10:50:00Z"),
            "2026-11-22T10:51:00+00:00"
        );
    }

    #[test]
    fn a_rare_day_is_found_however_far_ahead() {
        // 15 March on a Sunday or Thursday: none from 2049 to 2053, so it was never found.
        assert_eq!(
            next("0 0 15 3 */4", "UTC", "2048-10-25T00:00:00Z"),
            "2054-03-15T00:00:00+00:00"
        );
        // 29 February: 2100 is no leap year, so the one after 2096 is eight years on.
        assert_eq!(
            next("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z"),
            "2104-02-29T00:00:00+00:00"
        );
        // A day that never comes is none, and quickly: the search stops after one cycle.
        let never = Cron::parse("0 0 30 2 *").unwrap();
        assert_eq!(never.next_after(Tz::UTC, utc("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn a_stepped_day_field_keeps_its_values() {
        // The days of the month of each run, from 2026-10-30 to 2026-11-29 (the 22nd is a
        // Sunday).
        let days = |expr: &str, from: &str, to: &str| -> Vec<u32> {
            let r = runs(expr, "UTC", from, to);
            r.iter().map(|t| t[8..10].parse().unwrap()).collect()
        };
        // `*/2` in day-of-month is the odd days; it used to be every day.
        let (from, to) = ("2026-10-30T12:00:00Z", "2026-11-05T12:00:00Z");
        assert_eq!(days("0 0 */2 * *", from, to), [31, 1, 3, 5]);
        // `*/2` in day-of-week is Sunday, Tuesday, Thursday and Saturday.
        let (from, to) = ("2026-11-21T12:00:00Z", "2026-11-29T12:00:00Z");
        assert_eq!(days("0 0 * * */2", from, to), [22, 24, 26, 28, 29]);
        // A field that starts with `*` makes the two day fields combine with AND, as in Vixie
        // cron: the odd days that are Mondays (the 9th; the 2nd and 16th are even), and the
        // 13th on a Sunday (`*/7` is 0 and 7).
        assert_eq!(
            next("0 0 */2 * MON", "UTC", "2026-11-01T12:00:00Z"),
            "2026-11-09T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 13 * */7", "UTC", "2026-11-01T00:00:00Z"),
            "2026-12-13T00:00:00+00:00"
        );
    }

    #[test]
    fn spring_forward_runs_a_skipped_time_once_at_the_jump() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let r = runs(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-27T12:00:00Z",
            "2026-03-30T12:00:00Z",
        );
        assert_eq!(
            r,
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
        // Every 15 minutes: the skipped hour collapses into one run at the jump.
        let r = runs(
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-03-29T00:40:00Z",
            "2026-03-29T01:20:00Z",
        );
        assert_eq!(
            r,
            [
                "2026-03-29T01:45:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:15:00+02:00"
            ]
        );
    }

    #[test]
    fn fall_back_runs_a_repeated_time_once() {
        // America/New_York, 2026-11-01: 02:00 EDT goes back to 01:00 EST.
        let r = runs(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
        );
        assert_eq!(
            r,
            [
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00"
            ]
        );
        // Hourly: 01:00 fires at its first occurrence only; 02:00 follows two hours later.
        let r = runs(
            "0 * * * *",
            "America/New_York",
            "2026-11-01T04:30:00Z",
            "2026-11-01T08:30:00Z",
        );
        assert_eq!(
            r,
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T03:00:00-05:00"
            ]
        );
    }

    #[test]
    fn zones_shift_the_wall_clock() {
        assert_eq!(
            next("0 9 * * *", "Asia/Tokyo", "2026-11-22T00:00:00Z"),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * *", "Asia/Kolkata", "2026-11-22T00:00:00Z"),
            "2026-11-22T18:30:00+00:00"
        );
    }
}
