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
    pub enqueue: Script,
    pub fetch: Script,
    pub ack: Script,
    pub settle: Script,
    pub extend: Script,
    pub reap: Script,
    pub trim_dead: Script,
    pub replace: Script,
    pub remove: Script,
    pub enqueue_tick: Script,
}

impl Scripts {
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
