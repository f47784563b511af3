//! Cross-checks `Cron::next_after` against the `croner` crate over many random expressions,
//! start instants and time zones.
//!
//! Croner is configured to our syntax: seconds optional (5 or 6 fields), `5/15` accepted
//! (`sloppy_ranges`), and a `+` put before the day-of-week field whenever a day field is a
//! stepped `*` (`*/2`), because croner treats only a bare `*` as Vixie cron's "starts with `*`"
//! and would otherwise combine `*/2` with a restricted other day field by OR, where Vixie cron
//! and we use AND.
//!
//! The two differ on purpose only at daylight-saving changes. Croner skips the times that a
//! spring-forward gap removes from an interval schedule (`*/15`), where we fire once at the
//! jump; and croner fires an interval schedule again during the second pass of a fall-back,
//! where we fire only at the first occurrence. Every difference must be one of those two,
//! recognised exactly from the zone's transitions, and must then follow our documented rule;
//! any other difference fails the test.

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};

use super::Cron;

/// A small deterministic generator (SplitMix64), so a failure replays with the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + u32::try_from(self.next() % u64::from(hi - lo + 1)).unwrap()
    }

    fn percent(&mut self, p: u32) -> bool {
        self.range(0, 99) < p
    }
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "Mon", "TUE", "wed", "Thu", "FRI", "sat"];

/// One field's bounds, its names (the first name stands for `name_base`), and how often the
/// field is a bare `*`.
struct Spec {
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
    name_base: u32,
    star_percent: u32,
}

impl Spec {
    /// A value, written as a name now and then where the field has one for it.
    fn value(&self, rng: &mut Rng, v: u32) -> String {
        match v.checked_sub(self.name_base) {
            Some(i) if (i as usize) < self.names.len() && rng.percent(30) => {
                self.names[i as usize].to_string()
            }
            _ => v.to_string(),
        }
    }

    /// Mostly small steps, as people write them, and now and then any step up to the span.
    fn step(&self, rng: &mut Rng) -> u32 {
        let span = self.hi - self.lo + 1;
        if rng.percent(75) {
            rng.range(1, 6.min(span))
        } else {
            rng.range(1, span)
        }
    }

    fn element(&self, rng: &mut Rng) -> String {
        let a = rng.range(self.lo, self.hi);
        let b = rng.range(a, self.hi);
        match rng.range(0, 4) {
            0 => format!("*/{}", self.step(rng)),
            1 => self.value(rng, a),
            2 => format!("{}-{}", self.value(rng, a), self.value(rng, b)),
            3 => format!(
                "{}-{}/{}",
                self.value(rng, a),
                self.value(rng, b),
                self.step(rng)
            ),
            _ => format!("{a}/{}", self.step(rng)),
        }
    }

    fn field(&self, rng: &mut Rng) -> String {
        if rng.percent(self.star_percent) {
            return "*".into();
        }
        let n = rng.range(1, 3);
        (0..n)
            .map(|_| self.element(rng))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A random valid expression: ours and croner's spelling of it.
fn expression(rng: &mut Rng) -> (String, String) {
    let spec = |lo, hi, star_percent| Spec {
        lo,
        hi,
        names: &[],
        name_base: 0,
        star_percent,
    };
    let minute = spec(0, 59, 25).field(rng);
    let hour = spec(0, 23, 35).field(rng);
    let dom = spec(1, 31, 55).field(rng);
    let month = Spec {
        names: &MONTH_NAMES,
        name_base: 1,
        ..spec(1, 12, 70)
    }
    .field(rng);
    let dow = Spec {
        names: &WEEKDAY_NAMES,
        ..spec(0, 7, 55)
    }
    .field(rng);
    let mut five = vec![minute, hour, dom, month, dow];
    if rng.percent(30) {
        // Six fields: mostly a few fixed seconds, sometimes every second.
        five.insert(0, spec(0, 59, 15).field(rng));
    }
    let ours = five.join(" ");
    let n = five.len();
    let (dom, dow) = (&five[n - 3], &five[n - 1]);
    let stepped_star = |f: &str| f.starts_with('*') && f != "*";
    let and = stepped_star(dom) || stepped_star(dow);
    // Croner rewrites a range's end `-SUN` to `-7` before it parses, so `SUN-SUN` would be
    // the whole week there; ours is Sunday, so croner is given the number.
    let dow = dow.replace("-sun", "-0");
    five[n - 1] = if and { format!("+{dow}") } else { dow };
    (ours, five.join(" "))
}

/// A change of the zone's offset: at instant `at`, from `before` to `after` seconds east of UTC.
#[derive(Clone, Copy, Debug)]
struct Transition {
    at: DateTime<Utc>,
    before: i64,
    after: i64,
}

fn offset(tz: Tz, t: DateTime<Utc>) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// Every transition of `tz` from 2000 to 2060, found day by day and then to the second.
/// Every zone used here changes its offset at most twice a year, so a day holds at most one.
fn transitions(tz: Tz) -> Vec<Transition> {
    let mut out = Vec::new();
    let mut t = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2060, 1, 1, 0, 0, 0).unwrap();
    while t < end {
        let next = t + Duration::days(1);
        let (before, after) = (offset(tz, t), offset(tz, next));
        if before != after {
            // The first whole second at `after`'s offset, bisected in whole seconds (offsets
            // change on whole seconds): offset(lo) is `before`, offset(hi) is `after`.
            let (mut lo, mut hi) = (t.timestamp(), next.timestamp());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(tz, DateTime::from_timestamp(mid, 0).unwrap()) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(Transition {
                at: DateTime::from_timestamp(hi, 0).unwrap(),
                before,
                after,
            });
        }
        t = next;
    }
    out
}

/// How one comparison came out.
#[derive(Default, Debug)]
struct Tally {
    equal: usize,
    gap: usize,
    overlap: usize,
}

struct Case<'a> {
    ours: &'a Cron,
    theirs: &'a croner::Cron,
    tz: Tz,
    changes: &'a [Transition],
    what: String,
}

impl Case<'_> {
    fn croner_next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = after.with_timezone(&self.tz);
        let next = self.theirs.find_next_occurrence(&from, false).ok()?;
        Some(next.with_timezone(&Utc))
    }

    /// Compares the next run after `after`, and past a documented difference also the run
    /// that follows it, so that the rule is checked together with what comes after it.
    fn check(&self, after: DateTime<Utc>, tally: &mut Tally, depth: u32) -> Option<DateTime<Utc>> {
        let ours = self.ours.next_after(self.tz, after);
        let theirs = self.croner_next(after);
        if ours == theirs {
            tally.equal += 1;
            return ours;
        }
        let fail = |why: &str| -> ! {
            panic!(
                "{}, after {after}: ours {ours:?}, croner {theirs:?}: {why}",
                self.what
            )
        };
        assert!(depth < 4, "{}: too many differences in a row", self.what);
        // Spring forward: ours fires at the jump for a matching time inside the gap, croner
        // later (or never again, past its search limit).
        if let Some(r) = ours
            && theirs.is_none_or(|c| c > r)
            && let Some(jump) = self
                .changes
                .iter()
                .find(|t| t.at == r && t.after > t.before)
        {
            let gap_start = (r + Duration::seconds(jump.before)).naive_utc();
            let gap_end = (r + Duration::seconds(jump.after)).naive_utc();
            let in_gap = self.ours.next_local(gap_start).is_some_and(|l| l < gap_end);
            // Every time in the gap maps to the jump, so ours fires there exactly when one
            // of them matches (and the jump is after `after`, as every answer must be).
            if !in_gap || r <= after {
                fail("ours fired at a jump with no matching time in the gap");
            }
            tally.gap += 1;
            return self.check(r, tally, depth + 1);
        }
        // Fall back: croner fires during the second pass of the repeated times, which ours
        // has already fired at their first occurrence (or, when `after` is inside the second
        // pass, skips as taken).
        if let Some(c) = theirs
            && let Some(back) = self.changes.iter().find(|t| {
                t.after < t.before && t.at <= c && c < t.at + Duration::seconds(t.before - t.after)
            })
        {
            let second_pass_end = back.at + Duration::seconds(back.before - back.after);
            if ours.is_some_and(|r| r < second_pass_end) {
                fail("ours fired in or before the second pass, where croner did not");
            }
            tally.overlap += 1;
            // Ours must be croner's first run once the second pass is over.
            return self.check(second_pass_end - Duration::seconds(1), tally, depth + 1);
        }
        fail("a difference that no daylight-saving change explains")
    }
}

const ZONES: [&str; 7] = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/Sao_Paulo",
];

#[test]
fn next_after_agrees_with_croner_but_for_the_documented_dst_rule() {
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .sloppy_ranges(true)
        .build();
    let zones: Vec<(Tz, Vec<Transition>)> = ZONES
        .iter()
        .map(|z| {
            let tz: Tz = z.parse().unwrap();
            (tz, transitions(tz))
        })
        .collect();
    let mut rng = Rng(0x6a6f_6266_6c65_6574);
    let mut tally = Tally::default();
    let cases = 6000;
    for i in 0..cases {
        let (ours_text, croner_text) = expression(&mut rng);
        let ours = Cron::parse(&ours_text).unwrap_or_else(|e| panic!("ours: {e}"));
        let theirs = parser
            .parse(&croner_text)
            .unwrap_or_else(|e| panic!("croner refuses {croner_text:?}: {e}"));
        let (tz, changes) = &zones[i % zones.len()];
        // Half the starts fall within a few hours of a transition, where the rules differ;
        // the rest anywhere from 2001 to 2034, now and then with a fraction of a second.
        let start = if !changes.is_empty() && rng.percent(50) {
            let near = changes[rng.range(0, u32::try_from(changes.len()).unwrap() - 1) as usize];
            near.at + Duration::seconds(i64::from(rng.range(0, 6 * 3600)) - 3 * 3600)
        } else {
            let secs = i64::from(rng.range(978_307_200, 2_051_222_400));
            let nanos = if rng.percent(10) {
                rng.range(1, 999_999_999)
            } else {
                0
            };
            DateTime::from_timestamp(secs, nanos).unwrap()
        };
        let case = Case {
            ours: &ours,
            theirs: &theirs,
            tz: *tz,
            changes,
            what: format!("{ours_text:?} (croner {croner_text:?}) in {tz}"),
        };
        // A few runs in a row, each from the one before, as the scheduler walks them.
        let mut after = start;
        for _ in 0..3 {
            match case.check(after, &mut tally, 0) {
                Some(next) => after = next,
                None => break,
            }
        }
    }
    eprintln!("{cases} expressions: {tally:?}");
    // The generator must reach both daylight-saving differences, or it checks too little.
    assert!(tally.equal > cases, "{tally:?}");
    assert!(tally.gap > 20 && tally.overlap > 20, "{tally:?}");
}
