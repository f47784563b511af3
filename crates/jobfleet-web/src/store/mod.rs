//! What the board keeps in Redis, so that every replica of `jobfleet web` sees the same: its
//! users (argon2id hashes), the signed-in sessions, the API tokens, the counts of failed
//! sign-ins, and the audit log of operators' actions. Every key comes from the engine's
//! `queue::keys::WebKeys`.
//!
//! Secrets are never stored as they are: a session cookie and an API token are kept under the
//! SHA-256 digest of their value (they are 256-bit random strings, so a fast digest is enough),
//! a password as an argon2id hash.

pub mod audit;
pub mod password;
pub mod sessions;
pub mod tokens;
pub mod users;

use jobfleet_engine::queue::{Connection, QueueClient, WebKeys};
use sha2::{Digest, Sha256};

/// What can go wrong reading or writing the board's records.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Redis error is in the message, not chained, as its display includes its causes.
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    /// A request that cannot be carried out; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// A record in Redis that does not decode (written by someone else, or corrupted).
    #[error("the stored record of {0} cannot be read")]
    Corrupt(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Redis(e)
    }
}

/// The result of a call on the board's records.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The board's records in one namespace, over the store's connection.
#[derive(Clone)]
pub struct WebStore {
    con: Connection,
    keys: WebKeys,
}

impl std::fmt::Debug for WebStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl WebStore {
    /// The records of the namespace `client` works in, over its connection.
    pub fn new(client: &QueueClient) -> Self {
        Self {
            con: client.connection(),
            keys: client.keys().web(),
        }
    }

    fn con(&self) -> Connection {
        self.con.clone()
    }
}

/// A new secret: 32 random bytes from the thread's CSPRNG, as 64 hex characters.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The hex SHA-256 digest a secret is stored under.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in time that depends only on their lengths, so that a comparison
/// does not tell an attacker how many leading characters were right.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks a user or token name: 1 to 64 characters from letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {what} name {name:?}: use 1-64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_digested() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), a);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("user", "ops.alice@example").is_ok());
        for bad in ["", "a b", "<script>", &"x".repeat(65)] {
            assert!(validate_name("user", bad).is_err(), "{bad}");
        }
    }
}
