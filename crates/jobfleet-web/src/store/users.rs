//! The board's users: a name, a role and an argon2id hash, in one Redis hash so that every
//! replica sees a user the moment `jobfleet web user add` made it; and the counts of failed
//! sign-ins that slow down and then stop guessing.

use std::time::Duration;

use jobfleet_engine::queue::now_ms;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{Result, StoreError, WebStore, password, validate_name};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything, changes nothing.
    Viewer,
    /// Sees everything and acts on queues and jobs.
    Operator,
}

impl Role {
    /// The role's name, as the command line takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            _ => Err(format!("unknown role {s:?} (viewer or operator)")),
        }
    }
}

/// A user as stored: the hash never leaves this module.
#[derive(Serialize, Deserialize)]
struct Record {
    role: Role,
    hash: String,
    created_at: i64,
}

/// A user of the board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// The sign-in name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was made, in ms since the epoch.
    pub created_at: i64,
}

fn decode(name: &str, raw: &[u8]) -> Result<Record> {
    serde_json::from_slice(raw).map_err(|_| StoreError::Corrupt(format!("user {name:?}")))
}

impl WebStore {
    /// Makes a user, or gives an existing one a new role and password. Returns true when the
    /// user existed.
    pub async fn put_user(&self, name: &str, role: Role, password: &str) -> Result<bool> {
        validate_name("user", name)?;
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| StoreError::Invalid(format!("password hashing failed: {e}")))?
            .map_err(StoreError::Invalid)?;
        let record = Record {
            role,
            hash,
            created_at: now_ms(),
        };
        let json =
            serde_json::to_string(&record).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let added: bool = self.con().hset(self.keys.users(), name, json).await?;
        Ok(!added)
    }

    /// Removes a user; their sessions end at their next request. Returns false for a name
    /// that is no user.
    pub async fn remove_user(&self, name: &str) -> Result<bool> {
        Ok(self.con().hdel(self.keys.users(), name).await?)
    }

    /// Every user, by name. A record that does not decode is left out.
    pub async fn users(&self) -> Result<Vec<User>> {
        let all: Vec<(String, Vec<u8>)> = self.con().hgetall(self.keys.users()).await?;
        let mut users: Vec<User> = all
            .into_iter()
            .filter_map(|(name, raw)| {
                let r = decode(&name, &raw).ok()?;
                Some(User {
                    name,
                    role: r.role,
                    created_at: r.created_at,
                })
            })
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    /// One user, None when the name is unknown or its record does not decode.
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let raw: Option<Vec<u8>> = self.con().hget(self.keys.users(), name).await?;
        Ok(raw.and_then(|raw| {
            let r = decode(name, &raw).ok()?;
            Some(User {
                name: name.to_owned(),
                role: r.role,
                created_at: r.created_at,
            })
        }))
    }

    /// The user whose name and password these are, or None. An unknown name costs as much
    /// as a wrong password.
    pub async fn check_password(&self, name: &str, password: &str) -> Result<Option<User>> {
        let raw: Option<Vec<u8>> = if validate_name("user", name).is_ok() {
            self.con().hget(self.keys.users(), name).await?
        } else {
            None
        };
        let record = raw.and_then(|raw| decode(name, &raw).ok());
        let hash = record
            .as_ref()
            .map_or_else(|| password::decoy().to_owned(), |r| r.hash.clone());
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
            .await
            .unwrap_or(false);
        Ok(match record {
            Some(r) if ok => Some(User {
                name: name.to_owned(),
                role: r.role,
                created_at: r.created_at,
            }),
            _ => None,
        })
    }

    /// Failed sign-ins of a user name in the current window.
    pub async fn failures(&self, name: &str) -> Result<u32> {
        let n: Option<u32> = self
            .con()
            .get(self.keys.failures(&failure_name(name)))
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Counts one more failed sign-in; the count lasts `window` from the first failure.
    pub async fn record_failure(&self, name: &str, window: Duration) -> Result<u32> {
        let key = self.keys.failures(&failure_name(name));
        let (n, _): (u32, ()) = redis::pipe()
            .incr(&key, 1)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(window.as_secs().max(1))
            .arg("NX")
            .query_async(&mut self.con())
            .await?;
        Ok(n)
    }

    /// Forgets the failed sign-ins of a user name, after a successful one.
    pub async fn clear_failures(&self, name: &str) -> Result<()> {
        let _: () = self
            .con()
            .del(self.keys.failures(&failure_name(name)))
            .await?;
        Ok(())
    }
}

/// The name failures are counted under: names are compared as typed, but a name that could
/// not be a user's (too long, say) is counted under its digest so that it cannot build a key
/// of any length.
fn failure_name(name: &str) -> String {
    if validate_name("user", name).is_ok() {
        name.to_owned()
    } else {
        super::digest(name)
    }
}

/// How long to wait before answering the `n`th failed sign-in in a row: 250 ms doubled for
/// each earlier failure, at most 8 s. Pure, so the policy is tested without a clock.
pub fn failure_delay(n: u32) -> Duration {
    let factor = 1u64 << n.saturating_sub(1).min(5);
    Duration::from_millis(250 * factor).min(Duration::from_secs(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_down_then_stop_growing() {
        assert_eq!(failure_delay(1), Duration::from_millis(250));
        assert_eq!(failure_delay(2), Duration::from_millis(500));
        assert_eq!(failure_delay(4), Duration::from_secs(2));
        assert_eq!(failure_delay(6), Duration::from_secs(8));
        assert_eq!(failure_delay(60), Duration::from_secs(8));
    }

    #[test]
    fn roles_parse_by_name() {
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Operator);
    }
}
