//! Opening the store: the URL read as one node, a cluster or Sentinel (`target`), one bounded
//! first connection that proves Redis answers, then the shared connection every call of the
//! process goes through (`connection`).
//!
//! On one node the first connection is made by hand rather than by the connection manager
//! because the manager retries a failed attempt three times with backoff: against a listener
//! that accepts and never answers (a wrong port, a firewall that drops, `rediss://` to a
//! server without TLS) that took four connection timeouts, 21 s with the old fixed 5 s, to say
//! nothing useful. Here each phase has its own limit, and the error names the limit that
//! expired and the address. A cluster is found from its seed nodes and Sentinel's master from
//! the sentinels under the same connect limit.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;

use super::client::{Opened, QueueClient};
use super::connection::Connection;
use super::keys::Keys;
use super::scripts::Scripts;
use super::sentinel::SentinelConnection;
use super::target::{SentinelTarget, Target};
use super::{QueueError, Result, StoreSettings};
use crate::settings::secret::SecretUrl;

/// Reconnection attempts of the manager after a connection it had was lost. A restarted Redis
/// is found again without the process noticing more than the calls that failed meanwhile.
const RECONNECT_RETRIES: usize = 3;

/// Attempts of a cluster call that meets a redirect, a node that is down or a slot that has no
/// master yet, before it fails; with the waits between them this covers a failover of a few
/// seconds (`cluster-node-timeout` plus the election).
const CLUSTER_RETRIES: u32 = 12;

impl QueueClient {
    /// Connects to the store and checks that it answers, within `settings.connect_timeout` for
    /// the connection (TCP, TLS and the Redis handshake) and `settings.response_timeout` for
    /// the answer to a `PING`. `url` is one node (`redis://`, `rediss://`, passwords in the
    /// URL), a cluster (`redis+cluster://h1:p1,h2:p2`) or Sentinel
    /// (`redis+sentinel://s1:p1,s2:p2/<master>`); see [`Target`].
    pub async fn connect(url: &str, namespace: &str, settings: StoreSettings) -> Result<Self> {
        let target = Target::parse(url)
            .map_err(|e| QueueError::Invalid(format!("redis URL {}: {e}", SecretUrl::new(url))))?;
        let address = SecretUrl::new(url).to_string();
        let (con, opened) = match &target {
            Target::Node(url) => match open_node(url, &address, &settings).await? {
                // A redis:// URL of one node of a cluster: that node is the seed of the
                // cluster, as redis-cli -c takes it, rather than a node refusing every other
                // slot with MOVED.
                Opened::Cluster { .. } => {
                    open_cluster(std::slice::from_ref(url), &address, &settings).await?
                }
                opened => opened_node(opened, &settings)?,
            },
            Target::Cluster(nodes) => open_cluster(nodes, &address, &settings).await?,
            Target::Sentinel(s) => open_sentinel(s, &address, &settings).await?,
        };
        let sharded = matches!(opened, Opened::Cluster { .. });
        Ok(Self {
            con,
            opened,
            keys: Keys::new(namespace),
            scripts: Arc::new(Scripts::new(sharded)),
            settings,
        })
    }
}

fn manager_config(settings: &StoreSettings) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(settings.response_timeout)
        .set_number_of_retries(RECONNECT_RETRIES)
}

/// Probes one node; answers `Opened::Cluster` when the node is part of a cluster, else the
/// node's client.
async fn open_node(url: &str, address: &str, settings: &StoreSettings) -> Result<Opened> {
    let client = redis::Client::open(url)?;
    if probe(&client, address, settings).await? {
        tracing::info!(
            redis = %address,
            "the node is part of a Redis Cluster; it is used as the cluster's seed"
        );
        return Ok(Opened::Cluster {
            nodes: vec![url.to_owned()],
            settings: settings.clone(),
        });
    }
    Ok(Opened::Node(client))
}

/// The connection to one node probed by `open_node`.
fn opened_node(opened: Opened, settings: &StoreSettings) -> Result<(Connection, Opened)> {
    let Opened::Node(client) = &opened else {
        return Err(QueueError::Invalid("not a single node".into()));
    };
    // Lazy: the probe has just shown that Redis answers, and waiting here again would put
    // the manager's retries back on the start-up path.
    let con = ConnectionManager::new_lazy_with_config(client.clone(), manager_config(settings))?;
    Ok((Connection::node(con), opened))
}

async fn open_cluster(
    nodes: &[String],
    address: &str,
    settings: &StoreSettings,
) -> Result<(Connection, Opened)> {
    let client = cluster_builder(nodes, settings).build()?;
    let connecting = client.get_async_connection();
    let mut con = tokio::time::timeout(settings.connect_timeout, connecting)
        .await
        .map_err(|_| QueueError::Timeout {
            setting: "redis.connect_timeout",
            limit: settings.connect_timeout,
            during: format!("connecting to the cluster at {address} (no seed node answered)"),
        })??;
    let (setting, limit) = answer_limit(settings);
    let ping = redis::cmd("PING");
    tokio::time::timeout(limit, ping.query_async::<()>(&mut con))
        .await
        .map_err(|_| QueueError::Timeout {
            setting,
            limit,
            during: format!("waiting for the cluster at {address} to answer PING"),
        })??;
    Ok((
        Connection::cluster(con),
        Opened::Cluster {
            nodes: nodes.to_vec(),
            settings: settings.clone(),
        },
    ))
}

/// The cluster client every cluster connection of the process is built with.
pub(crate) fn cluster_builder(nodes: &[String], settings: &StoreSettings) -> ClusterClientBuilder {
    let mut builder = ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(settings.connect_timeout)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(50)
        .max_retry_wait(1000);
    if let Some(limit) = settings.response_timeout {
        builder = builder.response_timeout(limit);
    }
    builder
}

async fn open_sentinel(
    target: &SentinelTarget,
    address: &str,
    settings: &StoreSettings,
) -> Result<(Connection, Opened)> {
    let opening = SentinelConnection::open(target, manager_config(settings));
    let (con, master) = tokio::time::timeout(settings.connect_timeout, opening)
        .await
        .map_err(|_| QueueError::Timeout {
            setting: "redis.connect_timeout",
            limit: settings.connect_timeout,
            during: format!(
                "asking the sentinels at {address} for master {:?}",
                target.master
            ),
        })??;
    probe(
        &master,
        &format!("master {:?} at {}", target.master, con.master_addr()),
        settings,
    )
    .await?;
    Ok((Connection::sentinel(con.clone()), Opened::Sentinel(con)))
}

/// The limit of the first answer: the response timeout, or without one (the scheduler waits
/// for every reply) the connect timeout, since that answer is still part of connecting.
fn answer_limit(settings: &StoreSettings) -> (&'static str, Duration) {
    match settings.response_timeout {
        Some(limit) => ("redis.response_timeout", limit),
        None => ("redis.connect_timeout", settings.connect_timeout),
    }
}

/// One connection attempt and one `PING`, each under its own limit; answers whether the node
/// is part of a cluster (`cluster_enabled:1`).
async fn probe(client: &redis::Client, address: &str, settings: &StoreSettings) -> Result<bool> {
    // The limits are enforced around the calls, so that an expired one is known by name.
    let unbounded = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(None);
    let connecting = client.get_multiplexed_async_connection_with_config(&unbounded);
    let mut con = tokio::time::timeout(settings.connect_timeout, connecting)
        .await
        .map_err(|_| QueueError::Timeout {
            setting: "redis.connect_timeout",
            limit: settings.connect_timeout,
            during: format!(
                "connecting to {address} (no TCP connection, TLS handshake or Redis handshake \
                 completed in time; a rediss:// URL for a server without TLS waits like this)"
            ),
        })??;
    let (setting, limit) = answer_limit(settings);
    let ping = redis::cmd("PING");
    tokio::time::timeout(limit, ping.query_async::<String>(&mut con))
        .await
        .map_err(|_| QueueError::Timeout {
            setting,
            limit,
            during: format!("waiting for {address} to answer PING after connecting"),
        })??;
    // A server that refuses INFO (an ACL, a proxy) is taken as one node, as before.
    let mut info = redis::cmd("INFO");
    info.arg("cluster");
    let cluster = tokio::time::timeout(limit, info.query_async::<String>(&mut con))
        .await
        .ok()
        .and_then(|r| r.ok())
        .is_some_and(|text| text.lines().any(|l| l.trim() == "cluster_enabled:1"));
    Ok(cluster)
}

/// How a limit is shown in errors: `2s`, `500ms`.
pub(crate) fn shown(limit: Duration) -> String {
    humantime::format_duration(limit).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener on loopback that accepts connections and, unless `handshake`, never writes a
    /// byte; with it, it answers the client's set-up pipeline (two `CLIENT SETINFO`) with two
    /// `+OK` and then stays silent, a server that hangs after the handshake.
    async fn listener(handshake: bool) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut seen, mut buf, mut answered) = (Vec::new(), [0u8; 1024], !handshake);
                    while let Ok(n @ 1..) = socket.read(&mut buf).await {
                        seen.extend_from_slice(&buf[..n]);
                        if !answered && seen.windows(7).filter(|w| w == b"SETINFO").count() >= 2 {
                            let _ = socket.write_all(b"+OK\r\n+OK\r\n").await;
                            answered = true;
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    fn quick() -> StoreSettings {
        StoreSettings {
            connect_timeout: Duration::from_millis(300),
            response_timeout: Some(Duration::from_millis(300)),
            ..StoreSettings::default()
        }
    }

    #[tokio::test]
    async fn a_silent_listener_fails_by_the_connect_timeout_with_the_password_masked() {
        let (addr, task) = listener(false).await;
        let url = format!("redis://:hunter2@{addr}/");
        let started = std::time::Instant::now();
        let err = QueueClient::connect(&url, "t", quick()).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, QueueError::Timeout { .. }), "{text}");
        assert!(text.contains("redis.connect_timeout (300ms)"), "{text}");
        assert!(text.contains(&format!("redis://:***@{addr}/")), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        // One attempt, not the manager's four.
        assert!(started.elapsed() < Duration::from_secs(3), "{text}");
        task.abort();
    }

    #[tokio::test]
    async fn a_server_silent_after_the_handshake_fails_by_the_response_timeout() {
        let (addr, task) = listener(true).await;
        let url = format!("redis://{addr}/");
        let err = QueueClient::connect(&url, "t", quick()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("redis.response_timeout (300ms)"), "{text}");
        assert!(text.contains("to answer PING"), "{text}");
        // Without a response timeout (the scheduler's connection) the PING is still bounded,
        // by the connect timeout, and says so.
        let unbounded = StoreSettings {
            response_timeout: None,
            ..quick()
        };
        let err = QueueClient::connect(&url, "t", unbounded)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("redis.connect_timeout (300ms)") && text.contains("PING"),
            "{text}"
        );
        task.abort();
    }

    #[test]
    fn limits_are_shown_the_way_they_are_configured() {
        assert_eq!(shown(Duration::from_secs(2)), "2s");
        assert_eq!(shown(Duration::from_millis(500)), "500ms");
    }
}
