//! What each event says: a title, a sentence and labelled fields, with the Discord colour of
//! its kind, and the email bodies made from `templates/notification.{txt,html}`.
//!
//! The email templates are files so that their wording and layout can change without touching
//! the code; they are compiled in, so a running process never reads them from disk. Every
//! value put into the HTML template is escaped, and values are substituted in one pass, so a
//! market title that contains `{{summary}}` stays text.

use super::{Event, Wei};

const TEXT_TEMPLATE: &str = include_str!("../../templates/notification.txt");
const HTML_TEMPLATE: &str = include_str!("../../templates/notification.html");

/// Discord's palette, as in the platform's webhook notes: blurple for information (a market
/// published or approved, a balance change), green for money paid out, red for a dispute
/// raised (high priority), yellow for a dispute resolved.
pub const BLURPLE: u32 = 0x5865F2;
pub const GREEN: u32 = 0x57F287;
pub const RED: u32 = 0xED4245;
pub const YELLOW: u32 = 0xFEE75C;

/// An event, ready for any channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub title: String,
    pub summary: String,
    pub fields: Vec<(&'static str, String)>,
    pub colour: u32,
}

impl Rendered {
    pub fn of(event: &Event) -> Self {
        match event {
            Event::MarketApproved {
                market_id,
                title,
                tx_hash,
                block,
            } => Self {
                title: format!("Market approved: {title}"),
                summary: format!(
                    "The community approved market #{market_id}; the approval is on chain."
                ),
                fields: vec![
                    ("Market", format!("#{market_id}")),
                    ("Transaction", tx_hash.clone()),
                    ("Block", block.to_string()),
                ],
                colour: BLURPLE,
            },
            Event::MarketResolved {
                market_id,
                title,
                outcome,
                stake,
                payout,
                winnings,
            } => {
                let won = payout.as_str() != "0";
                Self {
                    title: format!("Market resolved: {title}"),
                    summary: if won {
                        format!(
                            "Market #{market_id} resolved {}. You won {} ETH.",
                            yes_no(*outcome),
                            format_units(winnings, 18)
                        )
                    } else {
                        format!(
                            "Market #{market_id} resolved {}. Your position did not win.",
                            yes_no(*outcome)
                        )
                    },
                    fields: vec![
                        ("Outcome", yes_no(*outcome).to_owned()),
                        ("Stake", format!("{} ETH", format_units(stake, 18))),
                        ("Payout", format!("{} ETH", format_units(payout, 18))),
                        ("Winnings", format!("{} ETH", format_units(winnings, 18))),
                    ],
                    colour: if won { GREEN } else { BLURPLE },
                }
            }
            Event::DisputeRaised {
                dispute_id,
                market_id,
                title,
                reason,
            } => Self {
                title: format!("Dispute raised: {title}"),
                summary: format!(
                    "The outcome of market #{market_id} is disputed; jurors vote on dispute #{dispute_id}."
                ),
                fields: vec![
                    ("Dispute", format!("#{dispute_id}")),
                    ("Market", format!("#{market_id}")),
                    ("Reason", reason.clone()),
                ],
                colour: RED,
            },
            Event::DisputeResolved {
                dispute_id,
                market_id,
                title,
                upheld,
                votes_for,
                votes_against,
            } => Self {
                title: format!("Dispute resolved: {title}"),
                summary: format!(
                    "Dispute #{dispute_id} on market #{market_id} was {}.",
                    if *upheld { "upheld" } else { "rejected" }
                ),
                fields: vec![
                    (
                        "Decision",
                        if *upheld { "upheld" } else { "rejected" }.to_owned(),
                    ),
                    ("Votes for", votes_for.to_string()),
                    ("Votes against", votes_against.to_string()),
                ],
                colour: YELLOW,
            },
            Event::BalanceChanged {
                wallet,
                token,
                symbol,
                old,
                new,
                block,
            } => {
                // The native coin has 18 decimals; an ERC-20's decimals are not in the
                // payload, so its amounts are shown in base units rather than guessed.
                let amount = |w: &Wei| {
                    if token == "native" {
                        format!("{} {symbol}", format_units(w, 18))
                    } else {
                        format!("{} {symbol} (base units)", w.as_str())
                    }
                };
                Self {
                    title: format!("Balance changed: {symbol}"),
                    summary: format!(
                        "The {symbol} balance of {wallet} went from {} to {}.",
                        amount(old),
                        amount(new)
                    ),
                    fields: vec![
                        ("Wallet", wallet.clone()),
                        ("Token", token.clone()),
                        ("Before", amount(old)),
                        ("After", amount(new)),
                        ("Block", block.to_string()),
                    ],
                    colour: BLURPLE,
                }
            }
        }
    }

    /// The plain-text part of the email.
    pub fn text(&self) -> String {
        let rows: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        fill(
            TEXT_TEMPLATE,
            &[
                ("title", &self.title),
                ("summary", &self.summary),
                ("rows", &rows.join("\n")),
            ],
        )
    }

    /// The HTML part of the email; every value is escaped.
    pub fn html(&self) -> String {
        let rows: String = self
            .fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                    escape_html(k),
                    escape_html(v)
                )
            })
            .collect();
        fill(
            HTML_TEMPLATE,
            &[
                ("title", &escape_html(&self.title)),
                ("summary", &escape_html(&self.summary)),
                ("colour", &format!("#{:06X}", self.colour)),
                ("rows", rows.trim_end()),
            ],
        )
    }
}

fn yes_no(outcome: bool) -> &'static str {
    if outcome { "YES" } else { "NO" }
}

/// Replaces each `{{name}}` of the template in one pass; unknown names stay as they are.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (end, *v))
        }) {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A base-unit amount as a decimal with `decimals` places, trailing zeros dropped:
/// 1500000000000000000 with 18 decimals is "1.5". Exact for any length (string arithmetic).
pub fn format_units(amount: &Wei, decimals: usize) -> String {
    let digits = amount.as_str();
    let padded = format!("{digits:0>width$}", width = decimals + 1);
    let (whole, frac) = padded.split_at(padded.len() - decimals);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wei(s: &str) -> Wei {
        Wei::new(s).unwrap()
    }

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(format_units(&wei("1500000000000000000"), 18), "1.5");
        assert_eq!(format_units(&wei("0"), 18), "0");
        assert_eq!(format_units(&wei("1"), 18), "0.000000000000000001");
        let big = "1".repeat(78);
        assert_eq!(
            format_units(&wei(&big), 18),
            format!("{}.{}", &big[..60], &big[60..])
        );
    }

    #[test]
    fn html_is_escaped_and_filled_in_one_pass() {
        let r = Rendered::of(&Event::DisputeRaised {
            dispute_id: 3,
            market_id: 9,
            title: "<script>x</script> {{summary}}".into(),
            reason: "A & B".into(),
        });
        assert_eq!(r.colour, RED);
        let html = r.html();
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt; {{summary}}"),
            "{html}"
        );
        assert!(html.contains("<td>A &amp; B</td>"), "{html}");
        assert!(html.contains("#ED4245"), "{html}");
        let text = r.text();
        assert!(text.starts_with("Dispute raised: <script>x</script> {{summary}}\n"));
        assert!(text.contains("Reason: A & B"), "{text}");
    }

    #[test]
    fn winners_and_losers_read_differently() {
        let resolved = |payout: &str, winnings: &str| {
            Rendered::of(&Event::MarketResolved {
                market_id: 1,
                title: "T".into(),
                outcome: false,
                stake: wei("1000000000000000000"),
                payout: wei(payout),
                winnings: wei(winnings),
            })
        };
        let won = resolved("2500000000000000000", "1500000000000000000");
        assert_eq!(won.colour, GREEN);
        assert!(won.summary.contains("You won 1.5 ETH"), "{}", won.summary);
        let lost = resolved("0", "0");
        assert!(lost.summary.contains("did not win"), "{}", lost.summary);
    }
}
