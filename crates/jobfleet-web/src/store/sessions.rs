//! Signed-in sessions: a random cookie whose digest keys a record holding the user and the
//! session's CSRF token, expiring with the session.

use std::time::Duration;

use jobfleet_engine::queue::now_ms;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{Result, WebStore, digest, new_secret};

/// One signed-in session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The user signed in.
    pub user: String,
    /// The token every form of this session carries, checked on every state-changing request.
    pub csrf: String,
    /// When the user signed in, in ms since the epoch.
    pub created_at: i64,
}

impl WebStore {
    /// Starts a session for `user` that lasts `ttl`; returns the cookie's value and the session.
    pub async fn start_session(&self, user: &str, ttl: Duration) -> Result<(String, Session)> {
        let cookie = new_secret();
        let session = Session {
            user: user.to_owned(),
            csrf: new_secret(),
            created_at: now_ms(),
        };
        let json = serde_json::to_string(&session)
            .map_err(|e| super::StoreError::Invalid(e.to_string()))?;
        let _: () = self
            .con()
            .set_ex(
                self.keys.session(&digest(&cookie)),
                json,
                ttl.as_secs().max(1),
            )
            .await?;
        Ok((cookie, session))
    }

    /// The live session of a cookie, or None (expired, ended, or never made).
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>> {
        if cookie.len() != 64 {
            return Ok(None);
        }
        let raw: Option<Vec<u8>> = self.con().get(self.keys.session(&digest(cookie))).await?;
        Ok(raw.and_then(|raw| serde_json::from_slice(&raw).ok()))
    }

    /// Ends a session (sign-out).
    pub async fn end_session(&self, cookie: &str) -> Result<()> {
        let _: () = self.con().del(self.keys.session(&digest(cookie))).await?;
        Ok(())
    }
}
