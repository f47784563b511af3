//! Every Redis key jobfleet uses is built here, and nowhere else.
//!
//! Per queue `q` in namespace `ns` (default `jobfleet`), every key starts with the prefix
//! `ns:{q}:`. The braces are a Redis Cluster hash tag: all keys of one queue hash to one slot, so
//! each Lua script, which only ever touches the keys of a single queue, runs on one node.
//!
//! | key                         | type       | content                                         |
//! |-----------------------------|------------|-------------------------------------------------|
//! | `ns:{q}:pending`            | list       | ready jobs of priority 2 (the default), FIFO    |
//! | `ns:{q}:pending:<level>`    | list       | ready jobs of priority 0, 1 or 3, FIFO          |
//! | `ns:{q}:scheduled`          | sorted set | stored job -> run time (ms), delayed, snoozed   |
//! | `ns:{q}:retry`              | sorted set | stored job -> next attempt time (ms)            |
//! | `ns:{q}:dead`               | sorted set | stored job -> time of death (ms)                |
//! | `ns:{q}:inflight:<worker>`  | hash       | lease token -> stored job, leased to one worker |
//! | `ns:{q}:leases`             | sorted set | worker id -> lease deadline (ms, Redis's clock) |
//! | `ns:{q}:reaped:<worker>`    | string     | marks a worker whose jobs the reaper took back  |
//! | `ns:{q}:reply:<worker>:<l>` | string     | "call id|reply" of a worker's last ack/settle   |
//! | `ns:{q}:completed`          | sorted set | opt-in capped history: job id -> finish (ms)    |
//! | `ns:{q}:attempts:<id>`      | list       | a job's last 25 failed attempts, newest first   |
//! | `ns:{q}:ticks`              | hash       | schedule -> "last tick ms|job id" (scheduler)   |
//! | `ns:{q}:tickhist:<sched>`   | list       | "tick ms|job id" of the last ticks, capped      |
//! | `ns:{q}:cancel:<id>`        | string     | who cancelled a running job, with a TTL         |
//! | `ns:{q}:progress:<id>`      | string     | a run's last progress report (JSON), with a TTL |
//! | `ns:{q}:unique:<key>`       | string     | id of the job holding a unique key, with a TTL  |
//! | `ns:{q}:limits`             | set        | names of the limits asked (`kind`, `kind=key`)  |
//! | `ns:{q}:limit:<n>:running`  | sorted set | `<worker>|<job id>` per running slot -> start   |
//! | `ns:{q}:limit:<n>:starts`   | sorted set | the starts of the rate's window -> time (ms)    |
//! | `ns:{q}:limit:<n>:reserved` | sorted set | job id -> when a rate-held job comes back (ms)  |
//! | `ns:{q}:limit:<n>:waiting`  | sorted set | jobs waiting for a slot (in scheduled) -> since |
//! | `ns:{q}:flows`              | sorted set | ids of the flows kept here -> creation (ms)     |
//! | `ns:{q}:flow:<id>`          | hash       | a flow's counts, state and callback jobs        |
//! | `ns:{q}:flow:<id>:members`  | set        | the ids that count as the flow's children       |
//! | `ns:{q}:flow:<id>:succeeded`| set        | the children that succeeded                     |
//! | `ns:{q}:flow:<id>:dead`     | set        | the children that died (or were deleted)        |
//! | `ns:{q}:flowbox`            | sorted set | ends of flow children to tell their flows -> ms |
//! | `ns:{q}:paused`             | string     | present while the queue is paused               |
//! | `ns:{q}:stats`              | hash       | counters (enqueued, processed, failed, active)  |
//! | `ns:{q}:stats:<minute>`     | hash       | processed/failed of one minute, with a TTL      |
//! | `ns:{q}:wake`               | channel    | pub/sub: published when jobs become pending     |
//! | `ns:queues`                 | set        | names of the queues enqueued to or served       |
//! | `ns:workers`                | sorted set | worker id -> last heartbeat (ms)                |
//! | `ns:worker:<id>`            | string     | JSON description of a live worker, with a TTL   |
//! | `ns:schedulers`             | sorted set | scheduler id -> last heartbeat (ms)             |
//! | `ns:scheduler:<id>`         | string     | JSON description of a live scheduler, with TTL  |
//! | `ns:web:users`              | hash       | board user -> JSON (role, argon2id hash)        |
//! | `ns:web:session:<digest>`   | string     | JSON of one signed-in session, with a TTL       |
//! | `ns:web:tokens`             | hash       | API token name -> JSON (scopes, digest)         |
//! | `ns:web:token:<digest>`     | string     | the name of the API token with this digest      |
//! | `ns:web:audit`              | list       | operators' actions as JSON, newest first, capped |
//! | `ns:web:failures:<user>`    | string     | failed sign-ins of one user name, with a TTL    |
//!
//! The `web` keys belong to the board and the HTTP API (`jobfleet-web`); no script touches
//! them. Sessions and tokens are stored under the SHA-256 digest of the secret, never the
//! secret itself.
//!
//! A stored job is one string (see `payload.rs`), so a job's state is the structure that holds
//! it. The Lua scripts receive the queue prefix as `ARGV[1]` and append the same suffixes as
//! the functions below (`inflight:`, `reaped:`, `reply:`, `unique:`, `stats:`, `wake`); `tests`
//! pins that both agree.

use std::fmt;

use super::priority::Priority;

/// Suffix of a worker's in-flight hash, shared with the Lua prelude (`inflight_key`).
pub const INFLIGHT_SUFFIX: &str = "inflight:";
/// Suffix of a unique-lock key, shared with the Lua prelude (`unique_key`).
pub const UNIQUE_SUFFIX: &str = "unique:";
/// Suffix of a job's history of failed attempts, shared with the Lua prelude (`attempts_key`).
pub const ATTEMPTS_SUFFIX: &str = "attempts:";
/// Suffix of a per-minute statistics hash, shared with the Lua prelude (`minute_key`).
pub const MINUTE_SUFFIX: &str = "stats:";

/// Error for a queue name that cannot be used as a hash tag.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid queue name {0:?}: use 1-64 characters from a-z, A-Z, 0-9, '_' and '-' (no braces or colons)"
)]
pub struct InvalidQueueName(pub String);

/// Checks that a queue name is safe inside a hash tag and a key.
pub fn validate_queue_name(name: &str) -> Result<(), InvalidQueueName> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidQueueName(name.to_owned()))
    }
}

/// The keys that do not belong to one queue.
#[derive(Clone, Debug)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// Creates the key builder for a namespace (`jobfleet` unless configured otherwise).
    pub fn new(namespace: &str) -> Self {
        Self {
            ns: namespace.to_owned(),
        }
    }

    /// The namespace every key starts with.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The keys of one queue. The name must have passed [`validate_queue_name`].
    pub fn queue(&self, queue: &str) -> QueueKeys {
        QueueKeys {
            queue: queue.to_owned(),
            prefix: format!("{}:{{{}}}:", self.ns, queue),
        }
    }

    /// The counter the benchmark's `incr` jobs increment (`jobfleet bench --work incr`).
    pub fn bench_counter(&self) -> String {
        format!("{}:bench:counter", self.ns)
    }

    /// Set of all queue names.
    pub fn queues(&self) -> String {
        format!("{}:queues", self.ns)
    }

    /// Sorted set of worker ids by last heartbeat.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.ns)
    }

    /// Description of one live worker.
    pub fn worker(&self, id: &str) -> String {
        format!("{}:worker:{}", self.ns, id)
    }

    /// Sorted set of scheduler ids by last heartbeat.
    pub fn schedulers(&self) -> String {
        format!("{}:schedulers", self.ns)
    }

    /// Description of one live scheduler.
    pub fn scheduler(&self, id: &str) -> String {
        format!("{}:scheduler:{}", self.ns, id)
    }

    /// The keys of the web board and the HTTP API.
    pub fn web(&self) -> WebKeys {
        WebKeys {
            prefix: format!("{}:web:", self.ns),
        }
    }
}

/// The keys of the web board and the HTTP API, all under `ns:web:`.
#[derive(Clone, Debug)]
pub struct WebKeys {
    prefix: String,
}

impl WebKeys {
    /// The hash of the board's users: name -> JSON record.
    pub fn users(&self) -> String {
        format!("{}users", self.prefix)
    }
    /// One session, by the hex SHA-256 digest of its cookie.
    pub fn session(&self, digest: &str) -> String {
        format!("{}session:{digest}", self.prefix)
    }
    /// The hash of the API tokens: name -> JSON record.
    pub fn tokens(&self) -> String {
        format!("{}tokens", self.prefix)
    }
    /// The name of the API token whose hex SHA-256 digest is `digest`.
    pub fn token(&self, digest: &str) -> String {
        format!("{}token:{digest}", self.prefix)
    }
    /// The capped list of operators' actions, newest first.
    pub fn audit(&self) -> String {
        format!("{}audit", self.prefix)
    }
    /// The count of recent failed sign-ins of one user name.
    pub fn failures(&self, user: &str) -> String {
        format!("{}failures:{user}", self.prefix)
    }
}

/// The keys of one fleet-wide limit of a queue (see `limits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitKeys {
    /// Sorted set: `<worker>|<job id>` of each running slot -> its start (ms).
    pub running: String,
    /// Sorted set: one member per start in the current window -> its time (ms).
    pub starts: String,
    /// Sorted set: job id -> the time a job held back by the rate was told to come back.
    pub reserved: String,
    /// Sorted set: stored jobs that wait in the scheduled set for a running slot -> since when.
    pub waiting: String,
}

/// The keys of one flow, in the queue of its callbacks (see `flow`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowKeys {
    /// Hash: total, succeeded, dead, sealed, times, parent and the callback jobs.
    pub state: String,
    /// Set: the member ids that count as the flow's children.
    pub members: String,
    /// Set: the members that succeeded.
    pub succeeded: String,
    /// Set: the members that died or were deleted.
    pub dead: String,
}

/// The keys of one queue, all sharing the hash tag `{queue}`.
#[derive(Clone, Debug)]
pub struct QueueKeys {
    queue: String,
    prefix: String,
}

impl QueueKeys {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.queue
    }

    /// The common prefix, `ns:{queue}:`, handed to scripts as `ARGV[1]`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{}", self.prefix, suffix)
    }

    /// The list of jobs of the default priority ready to run, taken from the head.
    pub fn pending(&self) -> String {
        self.key("pending")
    }
    /// The list of ready jobs of one priority: `pending` for the default level, `pending:<n>`
    /// for the others (as `pending_key` in the Lua prelude builds it).
    pub fn pending_at(&self, priority: Priority) -> String {
        if priority.is_default() {
            self.pending()
        } else {
            format!("{}pending:{}", self.prefix, priority.level())
        }
    }
    /// The pending lists of every level, most urgent first: the order `fetch` takes them in.
    pub fn pending_lists(&self) -> [String; 4] {
        Priority::ALL.map(|p| self.pending_at(p))
    }
    /// The sorted set of delayed jobs, scored by due time (ms).
    pub fn scheduled(&self) -> String {
        self.key("scheduled")
    }
    /// The sorted set of failed jobs waiting for their next attempt, scored by due time (ms).
    pub fn retry(&self) -> String {
        self.key("retry")
    }
    /// Workers holding jobs of this queue, by lease deadline.
    pub fn leases(&self) -> String {
        self.key("leases")
    }
    /// The jobs one worker holds, by lease token (a list, written by an earlier release, is
    /// still read: see `held_jobs` in the Lua prelude).
    pub fn inflight(&self, worker: &str) -> String {
        format!("{}{}{}", self.prefix, INFLIGHT_SUFFIX, worker)
    }
    /// `inflight` for a worker name read back from Redis as bytes, which need not be UTF-8.
    pub fn inflight_bytes(&self, worker: &[u8]) -> Vec<u8> {
        let mut key = format!("{}{}", self.prefix, INFLIGHT_SUFFIX).into_bytes();
        key.extend_from_slice(worker);
        key
    }
    /// Set by the reaper when it took a worker's jobs back; read once by that worker.
    pub fn reaped(&self, worker: &str) -> String {
        format!("{}reaped:{}", self.prefix, worker)
    }
    /// The last reply of a worker's ack or settle calls on one lane (`ack`, `settle`,
    /// `requeue`), so that a call retried after its reply was lost answers what it did.
    pub fn reply(&self, worker: &str, lane: &str) -> String {
        format!("{}reply:{}:{}", self.prefix, worker, lane)
    }
    /// The sorted set of dead jobs, scored by time of death (ms).
    pub fn dead(&self) -> String {
        self.key("dead")
    }
    /// The optional capped history of completed job ids, scored by finish time (ms).
    pub fn completed(&self) -> String {
        self.key("completed")
    }
    /// Present while the queue is paused.
    pub fn paused(&self) -> String {
        self.key("paused")
    }
    /// The last tick each schedule enqueued into this queue.
    pub fn ticks(&self) -> String {
        self.key("ticks")
    }
    /// The last ticks of one schedule, newest first, capped.
    pub fn tick_history(&self, schedule: &str) -> String {
        format!("{}tickhist:{}", self.prefix, schedule)
    }
    /// The hash of the queue's lifetime counters (`processed`, `failed`, `enqueued`, ...).
    pub fn stats(&self) -> String {
        self.key("stats")
    }
    /// The pub/sub channel that wakes idle workers of this queue.
    pub fn wake(&self) -> String {
        self.key("wake")
    }
    /// The lock of one unique key, holding the id of the job that holds it.
    pub fn unique(&self, key: &str) -> String {
        format!("{}{}{}", self.prefix, UNIQUE_SUFFIX, key)
    }
    /// Who asked a running job to stop (`jobfleet jobs cancel`); its worker looks for it.
    pub fn cancel(&self, id: &str) -> String {
        format!("{}cancel:{}", self.prefix, id)
    }
    /// The last progress report of a job's run.
    pub fn progress(&self, id: &str) -> String {
        format!("{}progress:{}", self.prefix, id)
    }
    /// The names of the limits the queue's jobs have asked (`<kind>` or `<kind>=<key>`).
    pub fn limits(&self) -> String {
        self.key("limits")
    }
    /// One limit's keys: its running slots, its starts, its reservations and its waiting list.
    pub fn limit(&self, name: &str) -> LimitKeys {
        let base = format!("{}limit:{}:", self.prefix, name);
        LimitKeys {
            running: format!("{base}running"),
            starts: format!("{base}starts"),
            reserved: format!("{base}reserved"),
            waiting: format!("{base}waiting"),
        }
    }
    /// The ids of the flows whose state is kept in this queue, scored by creation time.
    pub fn flows(&self) -> String {
        self.key("flows")
    }
    /// One flow's keys: its state, its members, and who of them succeeded or died.
    pub fn flow(&self, id: &str) -> FlowKeys {
        let state = format!("{}flow:{}", self.prefix, id);
        FlowKeys {
            members: format!("{state}:members"),
            succeeded: format!("{state}:succeeded"),
            dead: format!("{state}:dead"),
            state,
        }
    }
    /// The ends of this queue's flow children not yet told to their flows (the prelude's
    /// `flow_end` writes them as `prefix .. 'flowbox'`).
    pub fn flowbox(&self) -> String {
        self.key("flowbox")
    }
    /// The history of one job's failed attempts, newest first.
    pub fn attempts(&self, id: &str) -> String {
        format!("{}{}{}", self.prefix, ATTEMPTS_SUFFIX, id)
    }
    /// Statistics of the minute starting at `minute * 60` seconds since the epoch.
    pub fn minute(&self, minute: i64) -> String {
        format!("{}{}{}", self.prefix, MINUTE_SUFFIX, minute)
    }
    /// A SCAN `MATCH` pattern for every key of this queue, the ones named after a worker, a
    /// unique key or a minute included: the prefix, with the glob characters a namespace may
    /// hold (`*`, `?`, `[`, `]`, `\`) escaped, then `*`.
    pub fn scan_pattern(&self) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 2);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('*');
        out
    }
}

impl fmt::Display for QueueKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_queue_keys_share_one_hash_tag() {
        let q = Keys::new("jobfleet").queue("emails");
        for key in [
            q.pending(),
            q.pending_at(Priority::CRITICAL),
            q.scheduled(),
            q.retry(),
            q.leases(),
            q.inflight("w1"),
            q.dead(),
            q.completed(),
            q.paused(),
            q.stats(),
            q.unique("u"),
            q.minute(7),
            q.reply("w1", "ack"),
            q.tick_history("s"),
            q.attempts("j"),
            q.cancel("j"),
            q.progress("j"),
            q.limits(),
            q.limit("send_notification=discord.com").running,
            q.limit("k").waiting,
            q.flows(),
            q.flow("f").state,
            q.flow("f").dead,
            q.flowbox(),
        ] {
            assert!(key.starts_with("jobfleet:{emails}:"), "{key}");
        }
    }

    #[test]
    fn lua_and_rust_build_the_same_keys() {
        // The Lua prelude builds `prefix .. 'inflight:' .. worker`; this is the same formula.
        let q = Keys::new("ns").queue("default");
        assert_eq!(q.inflight("w"), format!("{}inflight:w", q.prefix()));
        assert_eq!(q.reaped("w"), format!("{}reaped:w", q.prefix()));
        assert_eq!(q.reply("w", "ack"), format!("{}reply:w:ack", q.prefix()));
        assert_eq!(q.unique("k"), format!("{}unique:k", q.prefix()));
        assert_eq!(q.minute(3), format!("{}stats:3", q.prefix()));
        assert_eq!(q.attempts("j"), format!("{}attempts:j", q.prefix()));
        assert_eq!(q.flowbox(), format!("{}flowbox", q.prefix()));
        assert_eq!(
            q.pending_at(Priority::NORMAL),
            format!("{}pending", q.prefix())
        );
        assert_eq!(
            q.pending_at(Priority::HIGH),
            format!("{}pending:1", q.prefix())
        );
    }

    #[test]
    fn the_scan_pattern_matches_the_prefix_literally() {
        assert_eq!(
            Keys::new("jobfleet").queue("q").scan_pattern(),
            "jobfleet:{q}:*"
        );
        assert_eq!(
            Keys::new("a*b?[c]\\").queue("q").scan_pattern(),
            "a\\*b\\?\\[c\\]\\\\:{q}:*"
        );
    }

    #[test]
    fn web_keys_live_under_the_namespace() {
        let w = Keys::new("ns").web();
        for key in [
            w.users(),
            w.session("d"),
            w.tokens(),
            w.token("d"),
            w.audit(),
            w.failures("u"),
        ] {
            assert!(key.starts_with("ns:web:"), "{key}");
        }
    }

    #[test]
    fn queue_names_are_validated() {
        assert!(validate_queue_name("default").is_ok());
        assert!(validate_queue_name("order-events_2").is_ok());
        for bad in ["", "a{b", "a:b", "a b", &"x".repeat(65)] {
            assert!(validate_queue_name(bad).is_err(), "{bad}");
        }
    }
}
