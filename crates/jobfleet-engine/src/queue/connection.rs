//! The one connection type every call of the store goes through, whatever the topology: a
//! single node, a Redis Cluster, or the master Sentinel names.
//!
//! It implements the redis crate's `ConnectionLike`, so commands, pipelines and scripts are
//! sent to it as to any connection. What differs per topology stays here:
//!
//! - **A node** is one multiplexed connection that reconnects by itself (the redis crate's
//!   connection manager).
//! - **A cluster** is the redis crate's cluster connection: it routes each command by the slot
//!   of its key and follows `MOVED` and `ASK` redirects while a slot migrates. It refuses a
//!   pipeline whose commands live in several slots, so this connection splits such a pipeline
//!   by the slot of each command's first key, sends the parts to their nodes at once and puts
//!   the replies back in order. A transaction (`MULTI`) is never split: it must be one slot.
//! - **Sentinel** (`sentinel.rs`) is a node connection to the current master that asks the
//!   sentinels again when the master stops answering or turns read-only.
//!
//! `WAIT`, the durability check, must reach the node that took the write: in a cluster it is
//! routed to the master of the written key's slot.

use std::collections::HashMap;

use futures::future::{BoxFuture, join_all};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr,
};
use redis::{Arg, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::sentinel::SentinelConnection;

/// A connection to the store; cheap to clone, every clone shares the same sockets.
#[derive(Clone)]
pub struct Connection {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            Inner::Node(_) => "Connection::Node",
            Inner::Cluster(_) => "Connection::Cluster",
            Inner::Sentinel(_) => "Connection::Sentinel",
        })
    }
}

impl Connection {
    pub(crate) fn node(con: ConnectionManager) -> Self {
        Self {
            inner: Inner::Node(con),
        }
    }

    pub(crate) fn cluster(con: ClusterConnection) -> Self {
        Self {
            inner: Inner::Cluster(con),
        }
    }

    pub(crate) fn sentinel(con: SentinelConnection) -> Self {
        Self {
            inner: Inner::Sentinel(con),
        }
    }

    /// True for a Redis Cluster, where keys of different slots live on different nodes.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Inner::Cluster(_))
    }

    /// Waits until `replicas` replicas have every write this connection sent to the node that
    /// holds `key`, for at most `timeout_ms`; returns how many did (Redis's `WAIT`).
    pub async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> RedisResult<u32> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        match &mut self.inner {
            Inner::Node(con) => wait.query_async(con).await,
            Inner::Sentinel(con) => wait.query_async(con).await,
            Inner::Cluster(con) => {
                let route =
                    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
                let reply = con
                    .route_command(wait, RoutingInfo::SingleNode(route))
                    .await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }

    /// One `SCAN` step over the node that holds `slot_key`'s slot: every key of one queue, which
    /// share a hash tag, is found on that node.
    pub async fn scan_step(
        &mut self,
        slot_key: &str,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<Vec<u8>>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match &mut self.inner {
            Inner::Node(con) => scan.query_async(con).await,
            Inner::Sentinel(con) => scan.query_async(con).await,
            Inner::Cluster(con) => {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                    slot_key,
                    SlotAddr::Master,
                ));
                let reply = con
                    .route_command(scan, RoutingInfo::SingleNode(route))
                    .await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}

impl Connection {
    /// `INFO <section>` of every master: (its address, its answer). On one node, or under
    /// Sentinel, the one master, named `master`.
    pub async fn info_per_master(&mut self, section: &str) -> RedisResult<Vec<(String, String)>> {
        let mut info = redis::cmd("INFO");
        info.arg(section);
        match &mut self.inner {
            Inner::Node(con) => Ok(vec![("master".into(), info.query_async(con).await?)]),
            Inner::Sentinel(con) => Ok(vec![("master".into(), info.query_async(con).await?)]),
            Inner::Cluster(con) => {
                let route = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let reply = con.route_command(info, route).await?;
                let mut out: Vec<(String, String)> = redis::from_redis_value(reply)?;
                out.sort();
                Ok(out)
            }
        }
    }

    /// The address (`host:port`) of the master that holds `key`'s slot in a cluster; `None` on
    /// one node or under Sentinel, where one master holds every key.
    pub async fn master_of(&mut self, key: &str) -> RedisResult<Option<String>> {
        let Inner::Cluster(con) = &mut self.inner else {
            return Ok(None);
        };
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(con)
            .await?;
        let ranges: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(con).await?;
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let (Some(lo), Some(hi), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let (lo, hi): (u16, u16) = (
                redis::from_redis_value_ref(lo)?,
                redis::from_redis_value_ref(hi)?,
            );
            if (lo..=hi).contains(&slot) && master.len() >= 2 {
                let host: String = redis::from_redis_value_ref(&master[0])?;
                let port: u16 = redis::from_redis_value_ref(&master[1])?;
                return Ok(Some(format!("{host}:{port}")));
            }
        }
        Ok(None)
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Node(con) => con.req_packed_command(cmd),
            Inner::Cluster(con) => con.req_packed_command(cmd),
            Inner::Sentinel(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Node(con) => con.req_packed_commands(pipeline, offset, count),
            Inner::Sentinel(con) => con.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(con) => {
                if pipeline.is_transaction() {
                    con.req_packed_commands(pipeline, offset, count)
                } else {
                    Box::pin(split_pipeline(con.clone(), pipeline))
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Node(con) => con.get_db(),
            Inner::Cluster(con) => con.get_db(),
            Inner::Sentinel(con) => con.get_db(),
        }
    }
}

/// Sends a pipeline's commands as one pipeline per slot, all at once, and answers their
/// replies in the pipeline's order.
async fn split_pipeline(con: ClusterConnection, pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let groups = group_by_slot(cmds.iter().copied());
    if groups.len() <= 1 {
        let mut con = con;
        return con.req_packed_commands(pipeline, 0, pipeline.len()).await;
    }
    let sent: Vec<BoxFuture<'_, RedisResult<Vec<Value>>>> = groups
        .iter()
        .map(|positions| {
            let mut part = Pipeline::with_capacity(positions.len());
            for &i in positions {
                part.add_command(cmds[i].clone());
            }
            let mut con = con.clone();
            let fut: BoxFuture<'_, _> =
                Box::pin(async move { con.req_packed_commands(&part, 0, part.len()).await });
            fut
        })
        .collect();
    let mut replies = vec![Value::Nil; pipeline.len()];
    for (positions, part) in groups.iter().zip(join_all(sent).await) {
        for (&i, value) in positions.iter().zip(part?) {
            replies[i] = value;
        }
    }
    Ok(replies)
}

/// The positions of a pipeline's commands, grouped by the slot of each command's key; commands
/// without a key join the first group.
fn group_by_slot<'a>(cmds: impl Iterator<Item = &'a Cmd>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_slot: HashMap<Slot, usize> = HashMap::new();
    let mut keyless = Vec::new();
    for (i, cmd) in cmds.enumerate() {
        match first_key(cmd) {
            Some(key) => {
                let slot = Slot::for_key(key);
                let group = *by_slot.entry(slot).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[group].push(i);
            }
            None => keyless.push(i),
        }
    }
    if !keyless.is_empty() {
        match groups.first_mut() {
            Some(first) => {
                first.extend(keyless);
                first.sort_unstable();
            }
            None => groups.push(keyless),
        }
    }
    groups
}

/// The key a command is routed by: its first argument, or for `EVAL`/`EVALSHA` the first of
/// its keys. Commands without a key (`PING`, `TIME`, a script with no keys) have none.
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PING" | b"TIME" | b"WAIT" | b"INFO" | b"ECHO" | b"SCRIPT" | b"CLUSTER" => None,
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" => {
            let _body = args.next()?;
            let keys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
            if keys == 0 { None } else { args.next() }
        }
        _ => args.next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_is_grouped_by_the_slot_of_each_key() {
        let mut p = redis::pipe();
        p.llen("ns:{a}:pending")
            .llen("ns:{b}:pending")
            .cmd("PING")
            .zcard("ns:{a}:dead")
            .hgetall("ns:{b}:stats");
        let groups = group_by_slot(p.cmd_iter());
        assert_eq!(groups, vec![vec![0, 2, 3], vec![1, 4]]);
    }

    #[test]
    fn a_script_is_routed_by_its_first_key() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc")
            .arg(2)
            .arg("ns:{q}:pending")
            .arg("ns:{q}:dead")
            .arg("x");
        assert_eq!(first_key(&eval), Some(&b"ns:{q}:pending"[..]));
        let mut keyless = redis::cmd("EVAL");
        keyless.arg("return 1").arg(0).arg("x");
        assert_eq!(first_key(&keyless), None);
        assert_eq!(first_key(&redis::cmd("PING")), None);
    }
}
