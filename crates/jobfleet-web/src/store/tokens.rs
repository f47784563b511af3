//! API tokens for producers and automation: a name, scopes, and the SHA-256 digest of the
//! token, which is shown once when it is made and never stored.

use jobfleet_engine::queue::now_ms;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{Result, StoreError, WebStore, digest, new_secret, same_secret, validate_name};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Enqueue jobs (`POST /api/v1/jobs`, `/api/v1/jobs/bulk`).
    Enqueue,
    /// Read queues and jobs.
    Read,
    /// Everything: read, enqueue, retry and delete.
    Operate,
}

impl Scope {
    /// The scope's name, as the command line takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Enqueue => "enqueue",
            Scope::Read => "read",
            Scope::Operate => "operate",
        }
    }

    /// Whether a token with this scope may do what `needed` allows: `operate` covers all.
    pub fn covers(self, needed: Scope) -> bool {
        self == needed || self == Scope::Operate
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enqueue" => Ok(Scope::Enqueue),
            "read" => Ok(Scope::Read),
            "operate" => Ok(Scope::Operate),
            _ => Err(format!("unknown scope {s:?} (enqueue, read or operate)")),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    scopes: Vec<Scope>,
    digest: String,
    created_at: i64,
}

/// An API token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Token {
    /// The token's name, which says whose it is.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it was made, in ms since the epoch.
    pub created_at: i64,
}

impl Token {
    /// Whether the token may do what `needed` allows.
    pub fn allows(&self, needed: Scope) -> bool {
        self.scopes.iter().any(|s| s.covers(needed))
    }
}

/// The prefix of every token, so that one pasted into a log or a repository is recognised.
pub const PREFIX: &str = "jft_";

impl WebStore {
    /// Makes a token and returns its secret, which is not kept: the only time it can be read.
    pub async fn create_token(&self, name: &str, scopes: &[Scope]) -> Result<String> {
        validate_name("token", name)?;
        if scopes.is_empty() {
            return Err(StoreError::Invalid(
                "a token needs at least one scope".into(),
            ));
        }
        let secret = format!("{PREFIX}{}", new_secret());
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let record = Record {
            scopes,
            digest: digest(&secret),
            created_at: now_ms(),
        };
        let json =
            serde_json::to_string(&record).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let added: bool = self.con().hset_nx(self.keys.tokens(), name, json).await?;
        if !added {
            return Err(StoreError::Invalid(format!(
                "a token named {name:?} exists; revoke it first"
            )));
        }
        let _: () = self
            .con()
            .set(self.keys.token(&record.digest), name)
            .await?;
        Ok(secret)
    }

    /// Revokes a token at once. Returns false for a name that is no token.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let raw: Option<Vec<u8>> = self.con().hget(self.keys.tokens(), name).await?;
        let Some(raw) = raw else { return Ok(false) };
        if let Ok(r) = serde_json::from_slice::<Record>(&raw) {
            let _: () = self.con().del(self.keys.token(&r.digest)).await?;
        }
        let _: () = self.con().hdel(self.keys.tokens(), name).await?;
        Ok(true)
    }

    /// Every token, by name, without secrets.
    pub async fn tokens(&self) -> Result<Vec<Token>> {
        let all: Vec<(String, Vec<u8>)> = self.con().hgetall(self.keys.tokens()).await?;
        let mut out: Vec<Token> = all
            .into_iter()
            .filter_map(|(name, raw)| {
                let r: Record = serde_json::from_slice(&raw).ok()?;
                Some(Token {
                    name,
                    scopes: r.scopes,
                    created_at: r.created_at,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The token whose secret this is, or None (unknown, revoked, or not a token at all).
    pub async fn verify_token(&self, secret: &str) -> Result<Option<Token>> {
        if !secret.starts_with(PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let d = digest(secret);
        let name: Option<String> = self.con().get(self.keys.token(&d)).await?;
        let Some(name) = name else { return Ok(None) };
        let raw: Option<Vec<u8>> = self.con().hget(self.keys.tokens(), &name).await?;
        let record = raw.and_then(|raw| serde_json::from_slice::<Record>(&raw).ok());
        Ok(record
            .filter(|r| same_secret(&r.digest, &d))
            .map(|r| Token {
                name,
                scopes: r.scopes,
                created_at: r.created_at,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operate_covers_every_scope() {
        let t = Token {
            name: "ci".into(),
            scopes: vec![Scope::Operate],
            created_at: 0,
        };
        assert!(t.allows(Scope::Enqueue) && t.allows(Scope::Read) && t.allows(Scope::Operate));
        let t = Token {
            scopes: vec![Scope::Enqueue],
            ..t
        };
        assert!(t.allows(Scope::Enqueue));
        assert!(!t.allows(Scope::Read));
    }
}
