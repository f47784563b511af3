//! The chart of processed and failed jobs per time bucket, drawn as SVG on the server: it
//! needs no script, and the numbers are in each bar's title for a pointer or a screen reader.

use maud::{Markup, html};

use jobfleet_engine::queue::admin::MinuteStats;

/// One bar of the chart: its start and its counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Start, in seconds since the epoch.
    pub start: i64,
    /// Jobs that succeeded.
    pub processed: u64,
    /// Failed attempts.
    pub failed: u64,
}

/// Sums the minutes of several queues (each oldest first, over the same minutes) into buckets
/// of `per` minutes, oldest first. Pure.
pub fn buckets(queues: &[Vec<MinuteStats>], per: usize) -> Vec<Bucket> {
    let per = per.max(1);
    let minutes = queues.iter().map(Vec::len).max().unwrap_or(0);
    let mut out: Vec<Bucket> = Vec::with_capacity(minutes.div_ceil(per));
    for i in 0..minutes {
        if i.is_multiple_of(per) {
            out.push(Bucket::default());
        }
        let Some(b) = out.last_mut() else { continue };
        for q in queues {
            if let Some(m) = q.get(i) {
                if i.is_multiple_of(per) {
                    b.start = m.minute_start;
                }
                b.processed += m.processed;
                b.failed += m.failed;
            }
        }
    }
    out
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 140.0;

/// The chart: a processed bar and a failed bar stacked per bucket, scaled to the largest.
pub fn chart(buckets: &[Bucket], label: &str) -> Markup {
    let top = buckets
        .iter()
        .map(|b| b.processed + b.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let w = WIDTH / n;
    let total_p: u64 = buckets.iter().map(|b| b.processed).sum();
    let total_f: u64 = buckets.iter().map(|b| b.failed).sum();
    html! {
        figure.chart {
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(label) preserveAspectRatio="none" {
                @for (i, b) in buckets.iter().enumerate() {
                    @let x = i as f64 * w;
                    @let hp = b.processed as f64 / top * HEIGHT;
                    @let hf = b.failed as f64 / top * HEIGHT;
                    g {
                        title { (super::format::time(Some(b.start * 1000))) ": " (b.processed) " processed, " (b.failed) " failed" }
                        rect.processed x=(format!("{x:.1}")) y=(format!("{:.1}", HEIGHT - hp - hf)) width=(format!("{:.1}", (w - 1.0).max(0.5))) height=(format!("{hp:.1}")) {}
                        rect.failed x=(format!("{x:.1}")) y=(format!("{:.1}", HEIGHT - hf)) width=(format!("{:.1}", (w - 1.0).max(0.5))) height=(format!("{hf:.1}")) {}
                    }
                }
            }
            figcaption {
                (label) ": "
                span.processed-key { (super::format::count(total_p)) " processed" }
                ", "
                span.failed-key { (super::format::count(total_f)) " failed" }
                " (highest bar: " (top as u64) ")"
            }
        }
    }
}

/// The height of a one-series chart.
const BARS_HEIGHT: f64 = 90.0;

/// A chart of one series: a bar per period (start in ms, value), oldest first, scaled to the
/// largest, with the figures in each bar's title. Pure.
pub fn bars(points: &[(i64, u64)], label: &str) -> Markup {
    let top = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let w = WIDTH / points.len().max(1) as f64;
    let total: u64 = points.iter().map(|(_, v)| v).sum();
    html! {
        figure.chart {
            svg viewBox={"0 0 " (WIDTH) " " (BARS_HEIGHT)} role="img" aria-label=(label) preserveAspectRatio="none" {
                @for (i, (at, v)) in points.iter().enumerate() {
                    @let h = *v as f64 / top * BARS_HEIGHT;
                    g {
                        title { (super::format::time(Some(*at))) ": " (v) }
                        rect.processed x=(format!("{:.1}", i as f64 * w)) y=(format!("{:.1}", BARS_HEIGHT - h))
                            width=(format!("{:.1}", (w - 1.0).max(0.5))) height=(format!("{h:.1}")) {}
                    }
                }
            }
            figcaption { (label) ": " (super::format::count(total)) " in the last " (points.len()) " periods" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(start: i64, processed: u64, failed: u64) -> MinuteStats {
        MinuteStats {
            minute_start: start,
            processed,
            failed,
        }
    }

    #[test]
    fn queues_are_summed_into_buckets() {
        let a = vec![m(0, 1, 0), m(60, 2, 1), m(120, 3, 0)];
        let b = vec![m(0, 10, 1), m(60, 0, 0), m(120, 1, 1)];
        let out = buckets(&[a, b], 2);
        assert_eq!(
            out,
            vec![
                Bucket {
                    start: 0,
                    processed: 13,
                    failed: 2
                },
                Bucket {
                    start: 120,
                    processed: 4,
                    failed: 1
                },
            ]
        );
    }

    #[test]
    fn a_one_series_chart_has_a_bar_per_period_with_its_figure() {
        let svg = bars(&[(0, 3), (900_000, 0), (1_800_000, 7)], "Points").into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("10 in the last 3 periods"), "{svg}");
    }

    #[test]
    fn the_chart_has_a_bar_per_bucket() {
        let svg = chart(&buckets(&[vec![m(0, 1, 1), m(60, 4, 0)]], 1), "Last hour").into_string();
        assert_eq!(svg.matches("class=\"processed\"").count(), 2);
        assert!(svg.contains("5 processed"));
    }
}
