//! Listings of the jobs of a queue and finding one job by id, for operators.
//!
//! Stored jobs are read as bytes and shown whatever they hold (`JobInfo::from_stored` never
//! fails). A job is found by id the way Sidekiq finds one: by scanning the structures of its
//! queue in bounded steps (SCAN-style cursors for the sets, ranges of the pending list), never
//! with KEYS and never in one blocking command.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use super::client::QueueClient;
use super::envelope::{Envelope, JobState};
use super::payload::{Header, MalformedHeader, escape_bytes, peek_id, undecodable_id};
use super::{QueueError, Result};

/// Everything stored about one job.
#[derive(Clone, Debug, Serialize)]
pub struct JobInfo {
    /// The job's id (for an undecodable entry, `undecodable-` and a hash of its bytes).
    pub id: String,
    /// The queue it is in.
    pub queue: String,
    /// Its kind, or `?` when the stored job cannot be decoded.
    pub kind: String,
    /// Where in the queue it was found.
    pub state: JobState,
    /// Runs that already ended in failure.
    pub attempts: u32,
    /// Runs allowed in all, from the header.
    pub max_attempts: u32,
    /// The envelope, or None when the stored JSON cannot be decoded.
    pub envelope: Option<Envelope>,
    /// Why the stored job cannot be decoded, for a job that cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecodable: Option<String>,
    /// The stored job when it could not be decoded, with every byte that is not UTF-8 escaped
    /// as `\xNN` (see `payload::escape_bytes`).
    pub raw: Option<String>,
    /// The worker holding an active job.
    pub worker: Option<String>,
    /// The error of its last failed run.
    pub error: Option<String>,
    /// When its last run failed, in ms since the epoch.
    pub failed_at: Option<i64>,
    /// Due time (scheduled, retry) or time of death (dead), in ms.
    pub score: Option<i64>,
    /// The job exactly as stored, which repairs act on.
    #[serde(skip)]
    pub stored: Vec<u8>,
}

impl JobInfo {
    /// Reads a stored job for display. Never fails: whatever cannot be decoded is shown as
    /// such, so one bad entry cannot break a listing.
    pub fn from_stored(queue: &str, state: JobState, stored: Vec<u8>, score: Option<i64>) -> Self {
        let decoded = Header::decode(&stored);
        let envelope = match &decoded {
            Ok((_, body)) => std::str::from_utf8(body)
                .map_err(|e| {
                    let at = stored.len() - body.len() + e.valid_up_to();
                    MalformedHeader::NotUtf8(at).to_string()
                })
                .and_then(|body| serde_json::from_str::<Envelope>(body).map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        let (header, id) = match decoded {
            Ok((h, _)) => {
                let id = h.id.clone();
                (h, id)
            }
            Err(_) => (Header::default(), undecodable_id(&stored)),
        };
        let (envelope, undecodable) = match envelope {
            Ok(env) => (Some(env), None),
            Err(why) => (None, Some(why)),
        };
        Self {
            id,
            queue: queue.to_owned(),
            kind: envelope
                .as_ref()
                .map_or_else(|| "?".to_owned(), |e| e.kind.clone()),
            state,
            attempts: header.attempts,
            max_attempts: header.max_attempts,
            raw: envelope.is_none().then(|| escape_bytes(&stored)),
            envelope,
            undecodable,
            worker: None,
            error: (!header.error.is_empty()).then_some(header.error),
            failed_at: (header.failed_at > 0).then_some(header.failed_at),
            score,
            stored,
        }
    }
}

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

/// One failed attempt of a job, from its history (`attempts:<id>`, the last 25).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AttemptRecord {
    /// When it failed, in ms since the epoch.
    pub failed_at: i64,
    /// Which attempt it was, from 1.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: String,
    /// Its error.
    pub error: String,
}

impl AttemptRecord {
    /// Reads one entry, "<failed at>|<attempt>|<worker>|<error>"; None for anything else.
    fn parse(entry: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(entry);
        let mut parts = text.splitn(4, '|');
        Some(Self {
            failed_at: parts.next()?.parse().ok()?,
            attempt: parts.next()?.parse().ok()?,
            worker: parts.next()?.to_owned(),
            error: parts.next()?.to_owned(),
        })
    }
}

/// A page of a listing and the cursor of the next one.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    /// The jobs of this page.
    pub jobs: Vec<JobInfo>,
    /// Where the next page starts; None on the last page.
    pub next_cursor: Option<u64>,
}

impl QueueClient {
    /// Every active job of a queue, by worker.
    async fn active_jobs(&self, queue: &str) -> Result<Vec<JobInfo>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        // Read as bytes: a member that is not UTF-8 must not make the listing fail.
        let workers: Vec<Vec<u8>> = con.zrange(k.leases(), 0, -1).await?;
        let mut out = Vec::new();
        for w in workers {
            let jobs: Vec<Vec<u8>> = con.lrange(k.inflight_bytes(&w), 0, -1).await?;
            let name = String::from_utf8_lossy(&w);
            for stored in jobs {
                let mut info = JobInfo::from_stored(queue, JobState::Active, stored, None);
                info.worker = Some(name.clone().into_owned());
                out.push(info);
            }
        }
        Ok(out)
    }

    /// One page of the jobs of a queue in a state, by rank from `cursor`.
    pub async fn list(
        &self,
        queue: &str,
        state: JobState,
        cursor: u64,
        limit: u64,
    ) -> Result<Page> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        let limit = limit.clamp(1, 10_000);
        let start = isize::try_from(cursor).unwrap_or(isize::MAX);
        let stop = start.saturating_add(isize::try_from(limit).unwrap_or(10_000) - 1);
        let jobs: Vec<JobInfo> = match state {
            JobState::Pending => {
                let stored: Vec<Vec<u8>> = con.lrange(k.pending(), start, stop).await?;
                stored
                    .into_iter()
                    .map(|s| JobInfo::from_stored(queue, state, s, None))
                    .collect()
            }
            JobState::Active => self
                .active_jobs(queue)
                .await?
                .into_iter()
                .skip(usize::try_from(cursor).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(10_000))
                .collect(),
            _ => {
                let set = match state {
                    JobState::Scheduled => k.scheduled(),
                    JobState::Retry => k.retry(),
                    _ => k.dead(),
                };
                let pairs: Vec<(Vec<u8>, f64)> = con.zrange_withscores(set, start, stop).await?;
                pairs
                    .into_iter()
                    .map(|(s, score)| JobInfo::from_stored(queue, state, s, Some(score as i64)))
                    .collect()
            }
        };
        let full = jobs.len() as u64 == limit;
        Ok(Page {
            jobs,
            next_cursor: full.then_some(cursor + limit),
        })
    }

    /// Finds a job by id in one queue: the sorted sets by SCAN cursor, the in-flight lists,
    /// then (with `pending`) the pending list.
    pub(super) async fn find_in(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        if let Some(job) = self.find_outside_pending(queue, id).await? {
            return Ok(Some(job));
        }
        self.find_in_pending(queue, id).await
    }

    /// Looks for a job in a queue's sorted sets (by `ZSCAN MATCH` on the header's id) and its
    /// in-flight lists: the structures that are cheap to search.
    async fn find_outside_pending(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        // An undecodable entry has no header to match, only the name derived from its bytes.
        let derived = id.starts_with("undecodable-");
        let pattern = if derived {
            "*".to_owned()
        } else {
            format!("jf|*|*|{}|*", glob_escape(id))
        };
        let is = |s: &[u8]| peek_id(s) == Some(id) || (derived && undecodable_id(s) == id);
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
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut con)
                    .await?;
                if let Some((stored, score)) = items.into_iter().find(|(s, _)| is(s)) {
                    return Ok(Some(JobInfo::from_stored(
                        queue,
                        state,
                        stored,
                        Some(score as i64),
                    )));
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(self
            .active_jobs(queue)
            .await?
            .into_iter()
            .find(|j| j.id == id))
    }

    /// Looks for a job in a queue's pending list. Pending is in enqueue order, and a ULID id
    /// (the ids the store makes) starts with its enqueue time, so for one the search starts
    /// with a binary search on the ids' time and reads [`NEAR`] entries around where the job
    /// should be. A job not there (a producer's own id, a job handed back to the head) is
    /// looked for in ranges of 1,000 from the head, which takes as long as pending is long.
    async fn find_in_pending(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        let derived = id.starts_with("undecodable-");
        let is = |s: &[u8]| peek_id(s) == Some(id) || (derived && undecodable_id(s) == id);
        let found =
            |stored: &Vec<u8>| JobInfo::from_stored(queue, JobState::Pending, stored.clone(), None);
        if id.parse::<ulid::Ulid>().is_ok() {
            let at = self.ulid_position(&k.pending(), id).await?;
            let from = at.saturating_sub(NEAR / 2);
            let near: Vec<Vec<u8>> = con
                .lrange(k.pending(), from as isize, (from + NEAR) as isize)
                .await?;
            if let Some(stored) = near.iter().find(|s| is(s)) {
                return Ok(Some(found(stored)));
            }
        }
        let mut start = 0isize;
        loop {
            let chunk: Vec<Vec<u8>> = con.lrange(k.pending(), start, start + 999).await?;
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

    /// The failed attempts of a job (newest first, at most 25), kept as long as a dead job
    /// is; empty for a job that never failed or whose history expired.
    pub async fn attempts(&self, queue: &str, id: &str) -> Result<Vec<AttemptRecord>> {
        let k = self.queue(queue)?;
        let raw: Vec<Vec<u8>> = self.connection().lrange(k.attempts(id), 0, -1).await?;
        Ok(raw.iter().filter_map(|e| AttemptRecord::parse(e)).collect())
    }

    /// Where the jobs `ids` of one queue are, in a few calls whatever their number: the
    /// completed history by `ZMSCORE`, each sorted set by one `ZSCAN` pass matching the ids'
    /// common prefix (a schedule's tick jobs share theirs), and the in-flight lists. Pending is
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
        let pattern = format!("jf|*|*|{}*", glob_escape(prefix));
        for (state, set) in [
            (JobState::Retry, k.retry()),
            (JobState::Scheduled, k.scheduled()),
            (JobState::Dead, k.dead()),
        ] {
            let mut cursor: u64 = 0;
            loop {
                let (next, items): (u64, Vec<Vec<u8>>) = redis::cmd("ZSCAN")
                    .arg(&set)
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut con)
                    .await?;
                // ZSCAN answers member, score, member, score: the members are the even ones.
                for stored in items.iter().step_by(2) {
                    if let Some(id) = peek_id(stored).filter(|id| ids.iter().any(|i| i == id)) {
                        found.insert(id.to_owned(), Located::Stored(state));
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
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
    pub async fn show(&self, id: &str) -> Result<JobInfo> {
        let names = self.queue_names().await?;
        for queue in &names {
            if let Some(job) = self.find_outside_pending(queue, id).await? {
                return Ok(job);
            }
        }
        for queue in &names {
            if let Some(job) = self.find_in_pending(queue, id).await? {
                return Ok(job);
            }
        }
        Err(QueueError::NotFound(id.to_owned()))
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

    #[test]
    fn attempts_read_back_with_errors_that_hold_the_separator() {
        let a = AttemptRecord::parse(b"1700|2|host:1:ab|boom | again").unwrap();
        assert_eq!(
            a,
            AttemptRecord {
                failed_at: 1700,
                attempt: 2,
                worker: "host:1:ab".into(),
                error: "boom | again".into()
            }
        );
        assert!(AttemptRecord::parse(b"x|2|w|e").is_none());
        assert!(AttemptRecord::parse(b"1|2|w").is_none());
    }
}
