//! Lease tokens: the field under which a leased job sits in its worker's in-flight hash.
//!
//! A token must never be handed out twice to one worker id, or an ack for one job could
//! remove another job's lease (fencing is by worker and token). The tokens are made here, in
//! the worker's process, and not by a counter in Redis: Redis replicates asynchronously, so
//! after a failover that loses the master's last writes such a counter goes back, and the
//! same worker would be handed a token it still holds for a job leased before the failover.
//!
//! A client that sends a fetch again after losing its reply sends the same tokens; fetch.lua
//! finds the first one taken and leases nothing rather than overwrite the first run's jobs.
//!
//! One sequence serves the whole process, so every client and every worker in it draws from
//! it. It starts from the wall clock in microseconds: a worker id that outlives its process
//! (an operator may set one) starts its next process past every token the last one used, as
//! long as a process takes fewer than one token per microsecond on average (a million jobs a
//! second) and the clock does not go back by more than the gap that leaves. Our worker ids
//! also carry the process id and a random suffix, so in practice the id itself is new.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lua's numbers are doubles: integers are exact below 2^53, and fetch.lua adds to the
/// first token of a batch.
const TOKEN_LIMIT: u64 = 1 << 53;

/// A sequence of lease tokens, each handed out once.
#[derive(Debug)]
pub struct LeaseTokens {
    next: AtomicU64,
}

impl LeaseTokens {
    /// A sequence whose first token is `start_micros` (the clock, passed in for tests),
    /// kept below 2^53 and above zero.
    pub fn starting_at(start_micros: u64) -> Self {
        Self {
            next: AtomicU64::new(start_micros.clamp(1, TOKEN_LIMIT / 2)),
        }
    }

    /// The process's sequence, started from the clock at first use.
    pub fn process() -> &'static LeaseTokens {
        static TOKENS: OnceLock<LeaseTokens> = OnceLock::new();
        TOKENS.get_or_init(|| {
            let micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or_else(|_| rand::random::<u32>().into());
            LeaseTokens::starting_at(micros)
        })
    }

    /// Reserves `n` consecutive tokens and returns the first. A batch that leases fewer jobs
    /// leaves the rest unused: they are never handed out again.
    pub fn reserve(&self, n: usize) -> u64 {
        let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        self.next.fetch_add(n, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_never_overlap() {
        let t = LeaseTokens::starting_at(1_000);
        assert_eq!(t.reserve(16), 1_000);
        assert_eq!(t.reserve(0), 1_016, "an empty reservation still takes one");
        assert_eq!(t.reserve(4), 1_017);
        assert_eq!(t.reserve(1), 1_021);
    }

    #[test]
    fn the_start_stays_where_lua_counts_exactly() {
        assert_eq!(LeaseTokens::starting_at(0).reserve(1), 1);
        assert!(LeaseTokens::starting_at(u64::MAX).reserve(1) < TOKEN_LIMIT);
        let now = LeaseTokens::process().reserve(1);
        assert!(now > 1_700_000_000_000_000 && now < TOKEN_LIMIT, "{now}");
    }
}
