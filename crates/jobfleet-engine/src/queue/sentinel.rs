//! A connection to the master that Redis Sentinel names, which follows a failover.
//!
//! The redis crate finds the master through the sentinels (and checks with `ROLE` that the
//! node it names is a master) but hands back a plain client to that address: after a failover
//! it would reconnect to the old master for ever. This connection keeps a connection manager
//! to the current master and, when a call fails in a way that says the master is gone or is no
//! master any more (the connection refused or dropped, a timeout, a `READONLY` reply from a
//! demoted master), asks the sentinels again and moves to the master they name now. The call
//! that failed still fails: whether it took effect is unknown, and its caller (a worker's
//! acker, a producer) decides whether to send it again.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::target::SentinelTarget;

/// Asking the sentinels again is skipped when they were asked this recently: a burst of failed
/// calls right after a master died asks once, not once per call.
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(250);

/// A connection to the current master; clones share it.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    sentinel: tokio::sync::Mutex<Asker>,
    current: RwLock<Current>,
    config: ConnectionManagerConfig,
    db: i64,
}

struct Asker {
    client: SentinelClient,
    asked_at: Instant,
}

#[derive(Clone)]
struct Current {
    con: ConnectionManager,
    client: redis::Client,
    addr: String,
}

impl SentinelConnection {
    /// Asks the sentinels for the master and opens a (lazy) connection manager to it.
    pub(crate) async fn open(
        target: &SentinelTarget,
        config: ConnectionManagerConfig,
    ) -> RedisResult<(Self, redis::Client)> {
        let node = target.node.as_str().into_connection_info()?;
        let mut info = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(node.redis_settings().clone());
        if target.tls {
            info = info.set_tls_mode(if target.insecure {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            });
        }
        let mut client = SentinelClient::build(
            target.sentinels.clone(),
            target.master.clone(),
            Some(info),
            SentinelServerType::Master,
        )?;
        let master = client.async_get_client().await?;
        let current = Current::open(master.clone(), config.clone())?;
        let shared = Shared {
            sentinel: tokio::sync::Mutex::new(Asker {
                client,
                asked_at: Instant::now(),
            }),
            current: RwLock::new(current),
            config,
            db: node.redis_settings().db(),
        };
        Ok((
            Self {
                shared: Arc::new(shared),
            },
            master,
        ))
    }

    /// A client for the current master, for a pub/sub connection of its own.
    pub(crate) fn master_client(&self) -> redis::Client {
        self.shared.current().client
    }

    /// The address of the current master, `host:port`.
    pub(crate) fn master_addr(&self) -> String {
        self.shared.current().addr
    }

    /// Asks the sentinels which node is master now and moves there if it changed.
    pub(crate) async fn follow(&self) {
        let mut asker = self.shared.sentinel.lock().await;
        if asker.asked_at.elapsed() < ASK_AGAIN_AFTER {
            return;
        }
        asker.asked_at = Instant::now();
        let master = match asker.client.async_get_client().await {
            Ok(master) => master,
            Err(e) => {
                tracing::warn!(error = %e, "the sentinels name no reachable master yet");
                return;
            }
        };
        let addr = master.get_connection_info().addr().to_string();
        if addr == self.master_addr() {
            return;
        }
        match Current::open(master, self.shared.config.clone()) {
            Ok(next) => {
                tracing::warn!(master = %addr, "following the master Sentinel names now");
                *self
                    .shared
                    .current
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = next;
            }
            Err(e) => {
                tracing::warn!(error = %e, master = %addr, "cannot connect to the new master")
            }
        }
    }

    async fn after(&self, result: &RedisResult<impl Sized>) {
        if let Err(e) = result
            && master_may_have_moved(e)
        {
            self.follow().await;
        }
    }
}

impl Shared {
    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Current {
    fn open(client: redis::Client, config: ConnectionManagerConfig) -> RedisResult<Self> {
        let addr = client.get_connection_info().addr().to_string();
        let con = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self { con, client, addr })
    }
}

/// Errors after which the master may be another node: it does not answer, or it answers as a
/// replica.
fn master_may_have_moved(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.code() == Some("READONLY")
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut con = self.shared.current().con;
            let result = con.req_packed_command(cmd).await;
            self.after(&result).await;
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut con = self.shared.current().con;
            let result = con.req_packed_commands(pipeline, offset, count).await;
            self.after(&result).await;
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}
