//! Wake-ups: the channel each queue's scripts publish to when jobs become pending, and the
//! subscription idle workers wait on.
//!
//! On one node (and under Sentinel, on the current master) this is classic pub/sub,
//! `PUBLISH`/`SUBSCRIBE`, which every Redis has. In a cluster a classic `PUBLISH` is copied to
//! every node over the cluster bus, so the scripts use sharded pub/sub (`SPUBLISH`, Redis 7)
//! instead, which stays on the shard of the channel's slot, the queue's own; a worker
//! subscribes with `SSUBSCRIBE` through a cluster connection of its own, which holds one
//! subscription per shard and renews it after a failover or a slot migration.

use futures::StreamExt;
use futures::stream::BoxStream;
use redis::{AsyncCommands, ProtocolVersion, PushKind};

use super::Result;
use super::client::{Opened, QueueClient};
use super::connect::cluster_builder;

/// Messages on the served queues' wake channels, as a stream of `()`; it ends when the
/// subscription is lost, after which the caller subscribes again.
pub type WakeUps = BoxStream<'static, ()>;

impl QueueClient {
    /// Subscribes to the wake channels of `queues`.
    pub async fn wake_ups(&self, queues: &[String]) -> Result<WakeUps> {
        let channels: Vec<String> = queues
            .iter()
            .map(|q| self.queue(q).map(|k| k.wake()))
            .collect::<Result<_>>()?;
        let client = match &self.opened {
            Opened::Node(client) => client.clone(),
            Opened::Sentinel(con) => con.master_client(),
            Opened::Cluster { nodes, settings } => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let client = cluster_builder(nodes, settings)
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .build()?;
                let mut con = client.get_async_connection().await?;
                // One channel per call: each lives in its queue's slot, and one SSUBSCRIBE
                // may only name channels of one slot.
                for channel in &channels {
                    con.ssubscribe(channel).await?;
                }
                // The connection must live as long as the stream: it owns the subscription.
                let messages = tokio_stream_of(rx).filter_map(move |push| {
                    let _owner = &con;
                    std::future::ready(matches!(push.kind, PushKind::SMessage).then_some(()))
                });
                return Ok(messages.boxed());
            }
        };
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channels).await?;
        Ok(pubsub.into_on_message().map(|_| ()).boxed())
    }

    /// Wakes the idle workers of one queue, as the scripts do when jobs become pending.
    pub async fn publish_wake(&self, queue: &str) -> Result<()> {
        let channel = self.queue(queue)?.wake();
        let mut con = self.connection();
        if matches!(self.opened, Opened::Cluster { .. }) {
            let _: () = redis::cmd("SPUBLISH")
                .arg(channel)
                .arg(1)
                .query_async(&mut con)
                .await?;
        } else {
            let _: () = con.publish(channel, 1).await?;
        }
        Ok(())
    }
}

/// A stream of what an unbounded channel receives.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
