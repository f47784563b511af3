//! Finding jobs by id, the way Sidekiq finds one: by scanning the structures of a queue in
//! bounded steps (SCAN-style cursors for the sorted sets, ranges of the pending list), never
//! with KEYS and never in one blocking command.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::client::QueueClient;
use super::envelope::JobState;
use super::keys::QueueKeys;
use super::listing::JobInfo;
use super::payload::{peek_id, undecodable_id};
use super::{QueueError, Result};

/// Where `locate` found a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Located {
    /// Stored, in this state.
    Stored(JobState),
    /// Completed at this time (ms), as the completed history says.
    Completed(i64),
}

/// The longest prefix every id shares.
fn common_prefix(ids: &[String]) -> &str {
    let first = ids.first().map_or("", String::as_str);
    let mut len = first.len();
    for id in &ids[1..] {
        len = first
            .bytes()
            .zip(id.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    // Cut back to a character boundary: ids may hold any UTF-8 a producer wrote.
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    &first[..len]
}

/// Entries of pending read around the position a ULID id's time points at.
pub const NEAR: usize = 2000;

/// A text matched literally by a `MATCH` glob: `*`, `?`, `[`, `]` and `\` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl QueueClient {
    /// Walks the retry, scheduled and dead sets of a queue with `ZSCAN MATCH pattern`, 1,000
    /// at a time, handing each entry to `visit` until it answers true; answers whether it did.
    async fn scan_sets(
        &self,
        k: &QueueKeys,
        pattern: &str,
        mut visit: impl FnMut(JobState, Vec<u8>, f64) -> bool,
    ) -> Result<bool> {
        let mut con = self.connection();
        for (state, set) in [
            (JobState::Retry, k.retry()),
            (JobState::Scheduled, k.scheduled()),
            (JobState::Dead, k.dead()),
        ] {
            let mut cursor: u64 = 0;
            loop {
                let (next, items): (u64, Vec<(Vec<u8>, f64)>) = redis::cmd("ZSCAN")
                    .arg(&set)
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut con)
                    .await?;
                for (stored, score) in items {
                    if visit(state, stored, score) {
                        return Ok(true);
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(false)
    }

    /// Looks for a job in a queue's sorted sets (by `ZSCAN MATCH` on the header's id) and its
    /// in-flight hashes: the structures that are cheap to search.
    async fn find_outside_pending(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        let k = self.queue(queue)?;
        // An undecodable entry has no header to match, only the name derived from its bytes.
        let derived = id.starts_with("undecodable-");
        let pattern = if derived {
            "*".to_owned()
        } else {
            // `jf*|` also matches the headers that name a priority (`jf1|`).
            format!("jf*|*|*|{}|*", glob_escape(id))
        };
        let is = |s: &[u8]| peek_id(s) == Some(id) || (derived && undecodable_id(s) == id);
        let mut hit = None;
        self.scan_sets(&k, &pattern, |state, stored, score| {
            let found = is(&stored);
            if found {
                hit = Some(JobInfo::from_stored(
                    queue,
                    state,
                    stored,
                    Some(score as i64),
                ));
            }
            found
        })
        .await?;
        if hit.is_some() {
            return Ok(hit);
        }
        Ok(self
            .active_jobs(queue)
            .await?
            .into_iter()
            .find(|j| j.id == id))
    }

    /// Looks for a job in a queue's pending lists, one level after the other (see
    /// `find_in_list`); the levels that hold no job (usually all but the default) cost one
    /// `LLEN` in a pipeline together.
    async fn find_in_pending(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        let k = self.queue(queue)?;
        let lists = k.pending_lists();
        let mut pipe = redis::pipe();
        for list in &lists {
            pipe.llen(list);
        }
        let lens: Vec<u64> = pipe.query_async(&mut self.connection()).await?;
        for (list, _) in lists.iter().zip(lens).filter(|(_, n)| *n > 0) {
            if let Some(job) = self.find_in_list(queue, list, id).await? {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// Looks for a job in one pending list. Pending is in enqueue order, and a ULID id (the
    /// ids the store makes) starts with its enqueue time, so for one the search starts with a
    /// binary search on the ids' time and reads [`NEAR`] entries around where the job should
    /// be. A job not there (a producer's own id, a job handed back to the head) is looked for
    /// in ranges of 1,000 from the head, which takes as long as the list is long.
    async fn find_in_list(&self, queue: &str, list: &str, id: &str) -> Result<Option<JobInfo>> {
        let mut con = self.connection();
        let derived = id.starts_with("undecodable-");
        let is = |s: &[u8]| peek_id(s) == Some(id) || (derived && undecodable_id(s) == id);
        let found =
            |stored: &Vec<u8>| JobInfo::from_stored(queue, JobState::Pending, stored.clone(), None);
        if id.parse::<ulid::Ulid>().is_ok() {
            let at = self.ulid_position(list, id).await?;
            let from = at.saturating_sub(NEAR / 2);
            let near: Vec<Vec<u8>> = con
                .lrange(list, from as isize, (from + NEAR) as isize)
                .await?;
            if let Some(stored) = near.iter().find(|s| is(s)) {
                return Ok(Some(found(stored)));
            }
        }
        let mut start = 0isize;
        loop {
            let chunk: Vec<Vec<u8>> = con.lrange(list, start, start + 999).await?;
            if let Some(stored) = chunk.iter().find(|s| is(s)) {
                return Ok(Some(found(stored)));
            }
            if chunk.len() < 1000 {
                return Ok(None);
            }
            start += 1000;
        }
    }

    /// The first position of a list whose job's id sorts at or after the time part of the
    /// ULID `id` (its first 10 characters), by binary search with `LINDEX`: about 20 round
    /// trips for a million jobs. Entries whose id is no ULID sort by whatever their id is, so
    /// the answer is a good guess, not a promise.
    async fn ulid_position(&self, list: &str, id: &str) -> Result<usize> {
        let mut con = self.connection();
        let target = &id[..10.min(id.len())];
        let len: usize = con.llen(list).await?;
        let (mut lo, mut hi) = (0usize, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let stored: Option<Vec<u8>> = con.lindex(list, mid as isize).await?;
            let time = stored
                .as_deref()
                .and_then(peek_id)
                .map(|i| i[..10.min(i.len())].to_owned())
                .unwrap_or_default();
            if time.as_str() < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Finds a job by id in one queue: the sorted sets by SCAN cursor, the in-flight hashes,
    /// then the pending lists. A miss is looked for once more, as in [`QueueClient::show`].
    pub(super) async fn find_in(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        self.find_in_queues(&[queue.to_owned()], id).await
    }

    /// Where the jobs `ids` of one queue are, in a few calls whatever their number: the
    /// completed history by `ZMSCORE`, each sorted set by one `ZSCAN` pass matching the ids'
    /// common prefix (a schedule's tick jobs share theirs), and the in-flight hashes. Pending is
    /// not searched (that is `show`'s linear part): an id missing from the answer is pending,
    /// ended, or removed.
    pub async fn locate(&self, queue: &str, ids: &[String]) -> Result<HashMap<String, Located>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(k.completed())
            .arg(ids)
            .query_async(&mut con)
            .await?;
        for (id, score) in ids.iter().zip(scores) {
            if let Some(at) = score {
                found.insert(id.clone(), Located::Completed(at as i64));
            }
        }
        let prefix = common_prefix(ids);
        let pattern = format!("jf*|*|*|{}*", glob_escape(prefix));
        self.scan_sets(&k, &pattern, |state, stored, _| {
            if let Some(id) = peek_id(&stored).filter(|id| ids.iter().any(|i| i == id)) {
                found.insert(id.to_owned(), Located::Stored(state));
            }
            false
        })
        .await?;
        for job in self.active_jobs(queue).await? {
            if ids.contains(&job.id) {
                found.insert(job.id, Located::Stored(JobState::Active));
            }
        }
        Ok(found)
    }

    /// When a job that is no longer stored completed, from the opt-in history of completed
    /// jobs (`worker.completed_history`): its queue and finish time (ms). One ZSCORE per queue.
    pub async fn completed_at(&self, id: &str) -> Result<Option<(String, i64)>> {
        let names = self.queue_names().await?;
        let mut pipe = redis::pipe();
        for q in &names {
            pipe.zscore(self.keys.queue(q).completed(), id);
        }
        let scores: Vec<Option<f64>> = pipe.query_async(&mut self.connection()).await?;
        Ok(names
            .into_iter()
            .zip(scores)
            .find_map(|(q, s)| s.map(|s| (q, s as i64))))
    }

    /// Finds a job by id in any queue: first in every queue's sorted sets and in-flight
    /// lists, which are quick to search, then in their pending lists (see
    /// `find_in_pending`), so that a job in a small queue is not found only after a scan of
    /// a long one.
    ///
    /// A pass is no snapshot: a job fetched from pending just after the in-flight hashes were
    /// read is in neither place the pass looks next. So a miss is looked for once more; a
    /// job still stored is missed twice only if it moved at the wrong moment both times.
    pub async fn show(&self, id: &str) -> Result<JobInfo> {
        let names = self.queue_names().await?;
        self.find_in_queues(&names, id)
            .await?
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))
    }

    /// Two passes of `show_pass` over the queues `names`, the second only after a miss.
    async fn find_in_queues(&self, names: &[String], id: &str) -> Result<Option<JobInfo>> {
        for _ in 0..2 {
            if let Some(job) = self.show_pass(names, id).await? {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// One search of `show` over the queues `names`.
    async fn show_pass(&self, names: &[String], id: &str) -> Result<Option<JobInfo>> {
        for queue in names {
            if let Some(job) = self.find_outside_pending(queue, id).await? {
                return Ok(Some(job));
            }
        }
        for queue in names {
            if let Some(job) = self.find_in_pending(queue, id).await? {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_share_their_common_prefix() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            common_prefix(&ids(&["tick:100", "tick:120", "tick:1"])),
            "tick:1"
        );
        assert_eq!(common_prefix(&ids(&["a", "b"])), "");
        assert_eq!(common_prefix(&ids(&["only"])), "only");
        assert_eq!(common_prefix(&ids(&["é1", "é2"])), "é");
    }
}
