//! The accounting of a schedule's ticks in the scheduler loop: which tick to attempt, and which
//! ticks are lost, as pure functions of the schedule and the clock passed in.
//!
//! The rule: a tick is attempted from its instant until the following tick is due, again
//! after every failed attempt. An attempt Redis answers settles the tick as enqueued (by this
//! replica) or duplicate (another replica had enqueued it), even when the answer comes after
//! the following tick. A tick whose following tick comes before any answer is lost: Redis
//! refused every attempt, or there was no attempt at all because the scheduler was held up (a
//! tick call waiting for a Redis that does not answer, a suspended host, a clock stepped
//! forward). So every tick that passes is settled exactly once, as enqueued, duplicate or
//! lost, and the three counts add up to the ticks that passed.

use chrono::{DateTime, Utc};

use super::Schedule;

/// Lost ticks listed one by one per step; beyond that a step reports a count and the last.
pub const LISTED: usize = 100;

/// Ticks walked per step at most. A stall longer than this many ticks (a host suspended for
/// a week under a per-second schedule) stops counting there and resumes at the next tick.
const MAX_WALK: u64 = 1_000_000;

/// One lost tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The tick (its scheduled instant) that was not enqueued.
    pub tick: DateTime<Utc>,
    /// Failed attempts; 0 when the scheduler never got to try it.
    pub attempts: u32,
}

/// What one step of the loop found for a schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// The first `LISTED` ticks lost since the last step, oldest first.
    pub lost: Vec<Lost>,
    /// How many were lost in all; more than `lost.len()` after a long stall.
    pub lost_count: u64,
    /// The last lost tick when more were lost than listed.
    pub last_unlisted: Option<DateTime<Utc>>,
    /// The tick to attempt now.
    pub attempt: Option<DateTime<Utc>>,
}

/// The unsettled tick of one schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticks {
    /// The oldest tick not settled yet; None when the schedule has no tick left.
    pending: Option<DateTime<Utc>>,
    /// Failed attempts of `pending`.
    failures: u32,
}

impl Ticks {
    /// Starts with the first tick after `now`.
    pub fn new(s: &Schedule, now: DateTime<Utc>) -> Self {
        Self {
            pending: s.next_after(now),
            failures: 0,
        }
    }

    /// The tick the schedule waits for (due when at or before now).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.pending
    }

    /// At `now`: the ticks whose following tick has come are lost, and the latest due tick,
    /// if any, is to be attempted.
    pub fn due(&mut self, s: &Schedule, now: DateTime<Utc>) -> Due {
        let mut due = Due::default();
        let Some(mut tick) = self.pending.filter(|t| *t <= now) else {
            return due;
        };
        let mut attempts = self.failures;
        while due.lost_count < MAX_WALK {
            match s.next_after(tick) {
                Some(following) if following <= now => {
                    due.lost_count += 1;
                    if due.lost.len() < LISTED {
                        due.lost.push(Lost { tick, attempts });
                    } else {
                        due.last_unlisted = Some(tick);
                    }
                    attempts = 0;
                    tick = following;
                }
                _ => {
                    self.pending = Some(tick);
                    self.failures = attempts;
                    due.attempt = Some(tick);
                    return due;
                }
            }
        }
        self.pending = s.next_after(now);
        self.failures = 0;
        due
    }

    /// Redis answered the attempt of `tick` (enqueued or duplicate).
    pub fn settled(&mut self, s: &Schedule, tick: DateTime<Utc>) {
        self.pending = s.next_after(tick);
        self.failures = 0;
    }

    /// The attempt of the pending tick failed; returns how many have so far.
    pub fn failed(&mut self) -> u32 {
        self.failures += 1;
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::cron::Cron;
    use crate::job::spec::Missed;

    fn every_second() -> Schedule {
        Schedule {
            name: "s".into(),
            kind: "noop".into(),
            queue: "default".into(),
            expr: "* * * * * *".into(),
            cron: Cron::parse("* * * * * *").unwrap(),
            tz: chrono_tz::Tz::UTC,
            args: serde_json::json!({}),
            missed: Missed::Skip,
            catch_up: Duration::from_secs(3600),
            max_attempts: 3,
            priority: crate::queue::priority::Priority::NORMAL,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-22T10:00:{s}Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ms(n: i64) -> chrono::Duration {
        chrono::Duration::milliseconds(n)
    }

    /// What a run of the loop settled: enqueued ticks and lost ticks (with their attempts).
    #[derive(Default)]
    struct Run {
        enqueued: Vec<DateTime<Utc>>,
        lost: Vec<Lost>,
    }

    /// Drives the loop's accounting from 10:00:00 to `end` the way `Scheduler::ticks` does:
    /// an attempt started at `t` is answered at `answer(t)` (None: refused at once), and a
    /// failed one is tried again 200 ms later.
    fn simulate(end: &str, answer: impl Fn(DateTime<Utc>) -> Option<DateTime<Utc>>) -> Run {
        let s = every_second();
        let mut now = at("00");
        let mut ticks = Ticks::new(&s, now);
        let mut run = Run::default();
        while now < at(end) {
            let due = ticks.due(&s, now);
            assert_eq!(due.lost_count, due.lost.len() as u64);
            run.lost.extend(due.lost);
            match due.attempt {
                Some(tick) => match answer(now) {
                    Some(answered) => {
                        run.enqueued.push(tick);
                        ticks.settled(&s, tick);
                        now = answered.max(now);
                    }
                    None => {
                        ticks.failed();
                        now += ms(200);
                    }
                },
                None => now = ticks.next_due().unwrap(),
            }
        }
        run
    }

    fn all(run: &Run) -> BTreeSet<DateTime<Utc>> {
        let lost: BTreeSet<_> = run.lost.iter().map(|l| l.tick).collect();
        let enqueued: BTreeSet<_> = run.enqueued.iter().copied().collect();
        assert!(lost.is_disjoint(&enqueued), "a tick is settled once");
        assert_eq!(
            lost.len() + enqueued.len(),
            run.lost.len() + run.enqueued.len()
        );
        lost.union(&enqueued).copied().collect()
    }

    #[test]
    fn a_refusing_redis_loses_every_tick_of_the_outage_once() {
        // Redis refuses from 10:00:03.5 to 10:00:09.2.
        let down = |t: DateTime<Utc>| t >= at("03.5") && t < at("09.2");
        let run = simulate("12", |t| (!down(t)).then_some(t));
        let lost: Vec<_> = run.lost.iter().map(|l| l.tick).collect();
        assert_eq!(lost, [at("04"), at("05"), at("06"), at("07"), at("08")]);
        // Each was tried five times, 200 ms apart, until the next tick came.
        assert!(run.lost.iter().all(|l| l.attempts == 5), "{:?}", run.lost);
        // 10:00:09 was tried until Redis answered at 09.2, within its second: enqueued.
        assert!(run.enqueued.contains(&at("09")));
        let passed: BTreeSet<_> = (1..12).map(|s| at(&format!("{s:02}"))).collect();
        assert_eq!(
            all(&run),
            passed,
            "enqueued + lost = every tick that passed"
        );
    }

    #[test]
    fn ticks_passing_during_a_stuck_call_are_lost_without_an_attempt() {
        // The call of 10:00:04 waits for a Redis that answers again at 10:00:09.5.
        let run = simulate("12", |t| Some(if t == at("04") { at("09.5") } else { t }));
        assert!(run.enqueued.contains(&at("04")), "answered late: enqueued");
        let lost: Vec<_> = run.lost.iter().map(|l| (l.tick, l.attempts)).collect();
        assert_eq!(
            lost,
            [(at("05"), 0), (at("06"), 0), (at("07"), 0), (at("08"), 0)]
        );
        assert!(run.enqueued.contains(&at("09")), "still current at 09.5");
        let passed: BTreeSet<_> = (1..12).map(|s| at(&format!("{s:02}"))).collect();
        assert_eq!(all(&run), passed);
    }

    #[test]
    fn a_long_stall_is_counted_and_listed_in_part() {
        let s = every_second();
        let mut ticks = Ticks::new(&s, at("00"));
        let now = at("00") + chrono::Duration::days(2) + ms(500);
        let due = ticks.due(&s, now);
        assert_eq!(due.lost_count, 2 * 86_400 - 1);
        assert_eq!(due.lost.len(), LISTED);
        assert_eq!(due.lost[0].tick, at("01"));
        let latest = at("00") + chrono::Duration::days(2);
        assert_eq!(due.last_unlisted, Some(latest - ms(1000)));
        assert_eq!(due.attempt, Some(latest));
        assert_eq!(ticks.next_due(), Some(latest));
    }

    #[test]
    fn nothing_is_due_before_the_tick_and_a_failure_keeps_it() {
        let s = every_second();
        let mut ticks = Ticks::new(&s, at("00"));
        assert_eq!(ticks.due(&s, at("00.9")), Due::default());
        let due = ticks.due(&s, at("01"));
        assert_eq!(due.attempt, Some(at("01")));
        assert_eq!(ticks.failed(), 1);
        assert_eq!(ticks.due(&s, at("01.2")).attempt, Some(at("01")));
        assert_eq!(ticks.failed(), 2);
        let due = ticks.due(&s, at("02.1"));
        assert_eq!(
            due.lost,
            [Lost {
                tick: at("01"),
                attempts: 2
            }]
        );
        assert_eq!(due.attempt, Some(at("02")));
        ticks.settled(&s, at("02"));
        assert_eq!(ticks.next_due(), Some(at("03")));
    }
}
