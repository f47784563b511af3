//! The one place where content becomes a CID, shared by `snapshots verify`, the snapshot job
//! and the Kubo stand-in, so that all three agree on what "the CID of these bytes" means.
//!
//! Snapshots are stored as single raw blocks: Kubo's `add` with `cid-version=1` turns on raw
//! leaves, and a file that fits in one chunk (256 KiB) becomes one raw leaf whose CID is
//! CIDv1, codec `raw` (0x55), multihash sha2-256 of exactly the bytes, in base32. Anything
//! bigger would be a dag-pb tree of chunks, which is why snapshot documents are capped at
//! `MAX_BLOCK` (see `ipfs::document`).

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

/// Kubo's default chunk size (`size-262144`): the largest file that stays one raw block.
pub const MAX_BLOCK: usize = 262_144;
/// The multicodec of raw bytes.
pub const RAW: u64 = 0x55;
/// The multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

#[derive(Debug, thiserror::Error)]
pub enum CidError {
    #[error("{input:?} is not a CID: {reason}")]
    Parse { input: String, reason: String },
    #[error(
        "{0} is not a CIDv1 raw sha2-256 CID (the only kind snapshots are stored as), so its content cannot be checked"
    )]
    Unsupported(String),
}

/// The CID Kubo gives `bytes` added with `cid-version=1` when they fit in one block.
pub fn raw_cid(bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    // A 32-byte digest always fits the 64-byte multihash, so this cannot fail.
    let hash = Multihash::<64>::wrap(SHA2_256, &digest).expect("a sha2-256 digest fits");
    Cid::new_v1(RAW, hash)
}

/// Parses a CID given by a person or by Kubo.
pub fn parse(input: &str) -> Result<Cid, CidError> {
    Cid::try_from(input.trim()).map_err(|e| CidError::Parse {
        input: input.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses a CID and checks it is of the one kind whose content can be checked by hashing it.
pub fn parse_checkable(input: &str) -> Result<Cid, CidError> {
    let cid = parse(input)?;
    if cid.version() != cid::Version::V1 || cid.codec() != RAW || cid.hash().code() != SHA2_256 {
        return Err(CidError::Unsupported(cid.to_string()));
    }
    Ok(cid)
}

/// Whether `bytes` hash to `cid` (always false for a CID `parse_checkable` refuses).
pub fn matches(cid: &Cid, bytes: &[u8]) -> bool {
    raw_cid(bytes) == *cid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_file_has_kubos_cid() {
        // `ipfs add --cid-version=1` of an empty file prints this CID.
        assert_eq!(
            raw_cid(b"").to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn content_matches_only_its_own_cid() {
        let cid = raw_cid(b"hello");
        assert!(matches(&cid, b"hello"));
        assert!(!matches(&cid, b"hellp"));
        let parsed = parse_checkable(&cid.to_string()).unwrap();
        assert_eq!(parsed, cid);
    }

    #[test]
    fn bad_and_unsupported_cids_are_refused() {
        let e = parse("not-a-cid").unwrap_err().to_string();
        assert!(e.contains("not a CID"), "{e}");
        // A CIDv0 (dag-pb): a real CID, but not a raw block.
        let e = parse_checkable("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a CIDv1 raw"), "{e}");
    }
}
