//! The Lua scripts, each compiled once as the shared prelude followed by its body.
//!
//! Each script's header (in `scripts/*.lua`) documents its KEYS, ARGV and return value. A
//! call sends `EVALSHA` and, when a server does not know the script yet (after a restart or a
//! failover), loads it and sends it again, so nothing has to be loaded up front.
//!
//! A call whose write must reach replicas before it counts (`Durability::Replicated`) sends
//! `EVALSHA` and `WAIT` in one pipeline, on one connection to the node that holds the keys:
//! `WAIT` counts the replicas that have this connection's writes, so a `WAIT` sent apart, on a
//! connection opened after a failover, would count replicas that never saw the write.

use std::time::Duration;

use redis::{Cmd, FromRedisValue, RedisResult, Script, ToRedisArgs};

use super::connection::Connection;

const PRELUDE: &str = include_str!("scripts/prelude.lua");

fn compile(prelude: &str, body: &str) -> LuaScript {
    LuaScript(Script::new(&format!("{prelude}\n{body}")))
}

/// How many replicas must have a write before a call that made it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// As soon as the master has it (Redis's asynchronous replication): the fastest, and a
    /// master that dies can take the last writes with it.
    #[default]
    Fast,
    /// When `replicas` replicas have it, waiting at most `timeout`; else the call fails.
    Replicated {
        /// Replicas that must confirm.
        replicas: u32,
        /// The longest wait for them.
        timeout: Duration,
    },
}

/// One compiled script.
#[derive(Debug)]
pub struct LuaScript(Script);

impl LuaScript {
    /// A call of this script, to which keys and arguments are added.
    pub fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation {
            script: &self.0,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A call with its first key.
    pub fn key<T: ToRedisArgs>(&self, key: T) -> Invocation<'_> {
        let mut inv = self.prepare_invoke();
        inv.key(key);
        inv
    }

    /// The script's SHA-1, as `EVALSHA` names it.
    pub fn hash(&self) -> &str {
        self.0.get_hash()
    }
}

/// A call of a script: its keys (`KEYS`) and arguments (`ARGV`).
pub struct Invocation<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

// The keys and arguments are the caller's data (jobs' payloads among them): only their count.
impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("script", &self.script.get_hash())
            .field("keys", &self.keys.len())
            .field("args", &self.args.len())
            .finish()
    }
}

/// A replicated write that too few replicas confirmed in time.
#[derive(Debug)]
pub(crate) struct NotReplicated {
    /// Replicas that confirmed.
    pub confirmed: u32,
    /// Replicas that were asked for.
    pub wanted: u32,
    /// How long they were waited for.
    pub timeout: Duration,
}

impl Invocation<'_> {
    /// Adds a key (`KEYS[i]`).
    pub fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    /// Adds an argument (`ARGV[i]`).
    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn evalsha(&self) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }

    async fn load(&self, con: &mut Connection) -> RedisResult<()> {
        let _: String = self.script.prepare_invoke().load_async(con).await?;
        Ok(())
    }

    /// Runs the script and reads its reply.
    pub async fn invoke_async<T: FromRedisValue>(&self, con: &mut Connection) -> RedisResult<T> {
        let cmd = self.evalsha();
        match cmd.query_async(con).await {
            Err(e) if is_noscript(&e) => {
                self.load(con).await?;
                cmd.query_async(con).await
            }
            other => other,
        }
    }

    /// Runs the script and, under `Durability::Replicated`, waits for the replicas in the same
    /// pipeline; the reply, or how many replicas confirmed when too few did (the write stands
    /// on the master either way).
    pub(crate) async fn invoke_durably<T: FromRedisValue>(
        &self,
        con: &mut Connection,
        durability: Durability,
    ) -> RedisResult<Result<T, NotReplicated>> {
        let Durability::Replicated { replicas, timeout } = durability else {
            return self.invoke_async(con).await.map(Ok);
        };
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.add_command(self.evalsha())
            .add_command(redis::cmd("WAIT").arg(replicas).arg(timeout_ms).to_owned());
        let (reply, confirmed): (T, u32) = match pipe.query_async(con).await {
            Err(e) if is_noscript(&e) => {
                self.load(con).await?;
                pipe.query_async(con).await?
            }
            other => other?,
        };
        if confirmed >= replicas {
            Ok(Ok(reply))
        } else {
            Ok(Err(NotReplicated {
                confirmed,
                wanted: replicas,
                timeout,
            }))
        }
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// All scripts of the queue engine.
#[derive(Debug)]
pub struct Scripts {
    /// `enqueue.lua`: stores new jobs, pending or scheduled, honouring ids and unique keys.
    pub enqueue: LuaScript,
    /// `fetch.lua`: promotes due jobs and leases pending ones to a worker.
    pub fetch: LuaScript,
    /// `ack.lua`: deletes jobs that succeeded, if the worker still holds them.
    pub ack: LuaScript,
    /// `settle.lua`: retries, snoozes, hands back or kills jobs that did not succeed.
    pub settle: LuaScript,
    /// `extend.lua`: renews a worker's lease.
    pub extend: LuaScript,
    /// `reap.lua`: takes back the jobs of workers whose lease expired.
    pub reap: LuaScript,
    /// `trim_dead.lua`: evicts dead jobs past the age and count caps.
    pub trim_dead: LuaScript,
    /// `replace.lua`: moves exact stored jobs for the operators' repairs.
    pub replace: LuaScript,
    /// `remove.lua`: deletes the keys of a queue that is being removed.
    pub remove: LuaScript,
    /// `enqueue_tick.lua`: claims one schedule tick and enqueues its job in one step.
    pub enqueue_tick: LuaScript,
    /// `limit_take.lua`: lets a leased job start under its kind's limits, or makes it wait.
    pub limit_take: LuaScript,
    /// `limit_release.lua`: gives back a running slot and wakes the jobs waiting for one.
    pub limit_release: LuaScript,
    /// `flow_create.lua`: records a flow before its children are enqueued.
    pub flow_create: LuaScript,
    /// `flow_report.lua`: counts a child's end or seals a flow, and runs its callbacks.
    pub flow_report: LuaScript,
}

impl Scripts {
    /// Compiles every script with the prelude; nothing is sent to Redis until a script first
    /// runs. With `sharded`, for a cluster, wake-ups are published with `SPUBLISH` to the
    /// queue's own shard instead of `PUBLISH`, which a cluster would copy to every node.
    pub fn new(sharded: bool) -> Self {
        let prelude = if sharded {
            PRELUDE.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
        } else {
            PRELUDE.to_owned()
        };
        let compile = |body: &str| compile(&prelude, body);
        Self {
            enqueue: compile(include_str!("scripts/enqueue.lua")),
            fetch: compile(include_str!("scripts/fetch.lua")),
            ack: compile(include_str!("scripts/ack.lua")),
            settle: compile(include_str!("scripts/settle.lua")),
            extend: compile(include_str!("scripts/extend.lua")),
            reap: compile(include_str!("scripts/reap.lua")),
            trim_dead: compile(include_str!("scripts/trim_dead.lua")),
            replace: compile(include_str!("scripts/replace.lua")),
            remove: compile(include_str!("scripts/remove.lua")),
            enqueue_tick: compile(include_str!("scripts/enqueue_tick.lua")),
            limit_take: compile(include_str!("scripts/limit_take.lua")),
            limit_release: compile(include_str!("scripts/limit_release.lua")),
            flow_create: compile(include_str!("scripts/flow_create.lua")),
            flow_report: compile(include_str!("scripts/flow_report.lua")),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new(false)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cluster_publishes_wake_ups_to_the_queue_shard() {
        assert!(super::PRELUDE.contains("redis.call('PUBLISH', prefix .. 'wake'"));
        let sharded = super::Scripts::new(true);
        assert!(sharded.fetch.hash() != super::Scripts::new(false).fetch.hash());
    }
}
