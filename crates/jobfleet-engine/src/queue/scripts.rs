//! The Lua scripts, each compiled once as the shared prelude followed by its body.
//!
//! Each script's header (in `scripts/*.lua`) documents its KEYS, ARGV and return value. The
//! `redis` crate sends `EVALSHA` and falls back to `EVAL` when a server does not know the
//! script yet (after a restart or a failover), so nothing has to be loaded up front.

use redis::Script;

const PRELUDE: &str = include_str!("scripts/prelude.lua");

fn compile(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// All scripts of the queue engine.
#[derive(Debug)]
pub struct Scripts {
    /// `enqueue.lua`: stores new jobs, pending or scheduled, honouring ids and unique keys.
    pub enqueue: Script,
    /// `fetch.lua`: promotes due jobs and leases pending ones to a worker.
    pub fetch: Script,
    /// `ack.lua`: deletes jobs that succeeded, if the worker still holds them.
    pub ack: Script,
    /// `settle.lua`: retries, snoozes, hands back or kills jobs that did not succeed.
    pub settle: Script,
    /// `extend.lua`: renews a worker's lease.
    pub extend: Script,
    /// `reap.lua`: takes back the jobs of workers whose lease expired.
    pub reap: Script,
    /// `trim_dead.lua`: evicts dead jobs past the age and count caps.
    pub trim_dead: Script,
    /// `replace.lua`: moves exact stored jobs for the operators' repairs.
    pub replace: Script,
    /// `remove.lua`: deletes the keys of a queue that is being removed.
    pub remove: Script,
    /// `enqueue_tick.lua`: claims one schedule tick and enqueues its job in one step.
    pub enqueue_tick: Script,
}

impl Scripts {
    /// Compiles every script with the prelude; nothing is sent to Redis until a script first runs.
    pub fn new() -> Self {
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
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
