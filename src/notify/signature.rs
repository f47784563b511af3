//! The signature of generic webhooks, so that a receiver can tell our posts from forgeries and
//! replays.
//!
//! Each request carries `X-Jobfleet-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! `HMAC-SHA256(secret, "<t>.<raw body>")` in lower-case hex. A receiver recomputes the MAC
//! over the exact bytes it received, compares in constant time, and refuses a timestamp
//! farther than its tolerance (five minutes is usual) from its own clock, which bounds replays.
//! The timestamp is inside the MAC, so it cannot be changed without the secret. `v1` names the
//! scheme, so a future scheme can be sent next to it during a migration. (This is the scheme
//! Stripe's webhooks use.)

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "X-Jobfleet-Signature";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("malformed signature header")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the timestamp is {0}s away from now, beyond the tolerance")]
    Stale(u64),
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for a body sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Checks a received header against the raw body and the receiver's clock (`now`, unix
/// seconds). Any `v1` entry that matches is enough.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex)) => {
                tags.push(hex::decode(hex).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(SignatureError::Malformed);
    };
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now.abs_diff(timestamp);
    if skew > tolerance.as_secs() {
        return Err(SignatureError::Stale(skew));
    }
    let expected = mac(secret, timestamp, body);
    // `verify_slice` compares in constant time.
    if tags
        .iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"event":"dispute.raised"}"#;
        let header = sign(b"whsec_0123456789abcdef", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        let ok = verify(
            b"whsec_0123456789abcdef",
            &header,
            body,
            1_700_000_100,
            FIVE_MINUTES,
        );
        assert_eq!(ok, Ok(()));
        let other_body = verify(
            b"whsec_0123456789abcdef",
            &header,
            b"{}",
            1_700_000_000,
            FIVE_MINUTES,
        );
        assert_eq!(other_body, Err(SignatureError::Mismatch));
        let other_secret = verify(
            b"another-secret-0000",
            &header,
            body,
            1_700_000_000,
            FIVE_MINUTES,
        );
        assert_eq!(other_secret, Err(SignatureError::Mismatch));
        // Moving the timestamp forward to dodge the tolerance changes the MAC.
        let replayed = header.replace("t=1700000000", "t=1800000000");
        let e = verify(
            b"whsec_0123456789abcdef",
            &replayed,
            body,
            1_800_000_000,
            FIVE_MINUTES,
        );
        assert_eq!(e, Err(SignatureError::Mismatch));
    }

    #[test]
    fn old_and_malformed_headers_are_refused() {
        let header = sign(b"k", 1_000, b"x");
        assert_eq!(
            verify(b"k", &header, b"x", 1_000 + 301, FIVE_MINUTES),
            Err(SignatureError::Stale(301))
        );
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=zz"] {
            assert_eq!(
                verify(b"k", bad, b"x", 1_000, FIVE_MINUTES),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
