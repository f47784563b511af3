//! Webhook deliveries: Discord embeds, Slack blocks and generic signed JSON, and the pure
//! policy that turns an HTTP answer into "delivered", "retry", "retry after" or "refused".

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{NotifyError, Rendered, signature};

/// Longest Retry-After honoured: a server asking for more is retried after this, so a typo on
/// its side cannot park a notification for a year. Attempts still run out as usual.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How much of a receiver's answer is kept in errors and the deliveries log.
pub const EXCERPT_CHARS: usize = 500;
/// Bytes of an answer read to make the excerpt (a UTF-8 character is at most 4 bytes).
const EXCERPT_BYTES: usize = EXCERPT_CHARS * 4;

/// What an HTTP answer means for the delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again with the kind's backoff.
    Retry,
    /// Try again, not before this delay.
    RetryAfter(Duration),
    /// Do not try again.
    Refused,
}

/// The status policy. 2xx: delivered. 429: retry after Retry-After (seconds or an HTTP-date,
/// read against `now`), or with backoff when it is missing or unreadable. 408 and 5xx: the
/// receiver is slow or failing, retry. Any other status (other 4xx, and 3xx, as webhooks are
/// not followed through redirects): this request will never be accepted, refuse.
pub fn judge(status: u16, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 => retry_after
            .and_then(|v| parse_retry_after(v, now))
            .map_or(Verdict::Retry, |d| {
                Verdict::RetryAfter(d.min(MAX_RETRY_AFTER))
            }),
        408 | 500..=599 => Verdict::Retry,
        _ => Verdict::Refused,
    }
}

/// A Retry-After value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the past
/// means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Discord's execute-webhook body: one embed in the event's colour. Mentions are disabled so
/// that a market title cannot ping `@everyone`; texts are cut to Discord's limits.
pub fn discord_body(r: &Rendered, timestamp: &str) -> Value {
    let fields: Vec<Value> = r
        .fields
        .iter()
        .take(25)
        .map(
            |(k, v)| json!({ "name": cut(k, 256), "value": cut(v, 1024), "inline": v.len() <= 40 }),
        )
        .collect();
    json!({
        "username": "Jobfleet",
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": cut(&r.title, 256),
            "description": cut(&r.summary, 4096),
            "color": r.colour,
            "fields": fields,
            "timestamp": timestamp,
        }]
    })
}

/// Slack's incoming-webhook body: a fallback `text` (notifications, old clients) and blocks.
pub fn slack_body(r: &Rendered) -> Value {
    let fields: Vec<Value> = r
        .fields
        .iter()
        .take(10)
        .map(|(k, v)| json!({ "type": "mrkdwn", "text": cut(&format!("*{}*\n{}", slack_escape(k), slack_escape(v)), 2000) }))
        .collect();
    json!({
        // The fallback text is mrkdwn as much as the blocks are: a title holding `<!channel>`
        // or `<https://evil|bank>` would ping or mislead from here too.
        "text": cut(&slack_escape(&format!("{}: {}", r.title, r.summary)), 3000),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": cut(&r.title, 150) } },
            { "type": "section", "text": { "type": "mrkdwn", "text": cut(&slack_escape(&r.summary), 3000) } },
            { "type": "section", "fields": fields },
        ]
    })
}

/// The generic webhook's body: the outbox row as it is, so that receivers get the same fields
/// as the producers wrote.
pub fn generic_body(id: i64, event: &str, payload: &Value, created_at: &str) -> Value {
    json!({ "id": id, "event": event, "created_at": created_at, "payload": payload })
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A request to send: where, the body, and the extra headers.
pub struct Post<'a> {
    pub url: &'a str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Post<'_> {
    // The URL may carry a token and the headers a signature: neither is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Post")
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Post<'a> {
    pub fn json(url: &'a str, body: &Value) -> Self {
        Self {
            url,
            body: serde_json::to_vec(body).expect("a JSON value always serialises"),
            headers: Vec::new(),
        }
    }

    /// Adds the signature header of the generic webhook, made at `now` (unix seconds).
    pub fn signed(mut self, secret: &[u8], now: i64) -> Self {
        let value = signature::sign(secret, now, &self.body);
        self.headers.push((signature::HEADER, value));
        self
    }
}

/// Sends one POST and judges the answer. Ok carries the 2xx status and the start of the body.
pub async fn send(client: &reqwest::Client, post: Post<'_>) -> Result<(u16, String), NotifyError> {
    let mut req = client
        .post(post.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(post.body);
    for (name, value) in post.headers {
        req = req.header(name, value);
    }
    // reqwest's errors name the URL, and Discord's and Slack's URLs carry their tokens: the
    // URL is dropped before the error reaches a log, the dead set or the deliveries table.
    let mut resp = req
        .send()
        .await
        .map_err(|e| NotifyError::Transport(e.without_url()))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Only the start of the answer is read: a receiver cannot make us buffer a large body. A
    // body that cannot be read (the connection dropped) is not worth failing a delivered
    // request over; it only loses the excerpt.
    let mut head = Vec::new();
    while head.len() < EXCERPT_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    head.truncate(EXCERPT_BYTES);
    let excerpt = cut(String::from_utf8_lossy(&head).trim(), EXCERPT_CHARS);
    match judge(status, retry_after.as_deref(), SystemTime::now()) {
        Verdict::Delivered => Ok((status, excerpt)),
        Verdict::Retry if status == 429 => Err(NotifyError::RateLimited {
            after: None,
            excerpt,
        }),
        Verdict::Retry => Err(NotifyError::Unavailable { status, excerpt }),
        Verdict::RetryAfter(after) => Err(NotifyError::RateLimited {
            after: Some(after),
            excerpt,
        }),
        Verdict::Refused => Err(NotifyError::Rejected { status, excerpt }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn statuses_follow_the_policy() {
        let now = at(1_700_000_000);
        assert_eq!(judge(200, None, now), Verdict::Delivered);
        assert_eq!(judge(204, None, now), Verdict::Delivered);
        assert_eq!(judge(500, None, now), Verdict::Retry);
        assert_eq!(judge(503, Some("30"), now), Verdict::Retry);
        assert_eq!(judge(408, None, now), Verdict::Retry);
        assert_eq!(judge(400, None, now), Verdict::Refused);
        assert_eq!(judge(404, None, now), Verdict::Refused);
        assert_eq!(judge(301, None, now), Verdict::Refused);
        assert_eq!(
            judge(429, Some("30"), now),
            Verdict::RetryAfter(Duration::from_secs(30))
        );
        assert_eq!(judge(429, None, now), Verdict::Retry);
        assert_eq!(judge(429, Some("soon"), now), Verdict::Retry);
        assert_eq!(
            judge(429, Some("99999999"), now),
            Verdict::RetryAfter(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        let now = at(1_700_000_000);
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:14:05 GMT", now),
            Some(Duration::from_secs(45))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn bodies_carry_the_colour_and_escape_what_they_must() {
        let r = Rendered::of(&super::super::Event::DisputeResolved {
            dispute_id: 4,
            market_id: 2,
            title: "<@everyone> & co".into(),
            upheld: true,
            votes_for: 12,
            votes_against: 3,
        });
        let d = discord_body(&r, "2026-11-30T12:00:00Z");
        assert_eq!(d["embeds"][0]["color"], 0xFEE75C);
        assert_eq!(d["allowed_mentions"]["parse"], json!([]));
        assert_eq!(d["embeds"][0]["fields"][1]["value"], "12");
        let s = slack_body(&r);
        assert_eq!(
            s["blocks"][0]["text"]["text"],
            "Dispute resolved: <@everyone> & co"
        );
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("upheld"), "{text}");
        assert!(
            text.starts_with("Dispute resolved: &lt;@everyone&gt; &amp; co: "),
            "{text}"
        );
        assert!(!text.contains('<'), "{text}");
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
