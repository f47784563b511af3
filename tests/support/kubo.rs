//! The Kubo RPC stand-in for one test, and what the snapshot tests need around it.
//!
//! The stand-in itself lives in the library (`jobfleet::dev::kubo`) so that the demo runs
//! the same server (`jobfleet demo kubo`); here it is started in-process on a free loopback
//! port, and steered through `RunningStandIn::node` (failures to inject, tampered content).
#![allow(dead_code)]

use std::net::TcpListener;
use std::time::Duration;

use jobfleet::config::SecretUrl;
use jobfleet::dev::kubo::{KuboStandIn, RunningStandIn};
use jobfleet::ipfs::KuboClient;

/// A stand-in on a free port of 127.0.0.1.
pub async fn start() -> RunningStandIn {
    KuboStandIn::start("127.0.0.1:0")
        .await
        .expect("the Kubo stand-in starts")
}

/// A client of these endpoints, in this order.
pub fn client(endpoints: &[String]) -> KuboClient {
    KuboClient::with_endpoints(
        endpoints.iter().map(SecretUrl::new).collect(),
        Duration::from_secs(10),
    )
    .expect("the Kubo client builds")
}

/// An endpoint URL where nothing listens: a port that was free a moment ago.
pub fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    format!("http://{addr}")
}

/// The CIDv1 (raw, sha2-256) of `bytes` computed without the `cid` or `multihash` crates:
/// the bytes 0x01 (version), 0x55 (raw), 0x12 (sha2-256), 0x20 (32 bytes) and the digest, in
/// RFC 4648 base32, lower case, without padding, behind the multibase prefix `b`.
pub fn independent_cid(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut raw = vec![0x01, 0x55, 0x12, 0x20];
    raw.extend_from_slice(&Sha256::digest(bytes));
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::from("b");
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in raw {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}
