//! Listings of the jobs of a queue, and a job's failed attempts, for operators. Stored jobs
//! are read as bytes and shown whatever they hold (`JobInfo::from_stored` never fails);
//! finding a job by id is `find.rs`.

use redis::AsyncCommands;
use serde::Serialize;

use super::Result;
use super::client::QueueClient;
use super::connection::Connection;
use super::envelope::{Envelope, JobState};
use super::keys::QueueKeys;
use super::payload::{Header, MalformedHeader, escape_bytes, undecodable_id};
use super::priority::{Priority, spans};

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
    /// Its level within the queue (0 runs first), from the header.
    pub priority: Priority,
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
            priority: header.priority,
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

/// The jobs in a worker's in-flight key: a hash by lease token, or a list that a worker of an
/// earlier release left (as `held_jobs` in the Lua prelude).
pub(super) async fn held_jobs(con: &mut Connection, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(con).await?;
    Ok(match kind.as_str() {
        "hash" => con.hvals(key).await?,
        "list" => con.lrange(key, 0, -1).await?,
        _ => Vec::new(),
    })
}

/// How many jobs a worker's in-flight key holds, of either kind (see `held_jobs`).
pub(super) async fn held_count(con: &mut Connection, key: &[u8]) -> Result<u64> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(con).await?;
    Ok(match kind.as_str() {
        "hash" => con.hlen(key).await?,
        "list" => con.llen(key).await?,
        _ => 0,
    })
}

impl QueueClient {
    /// Every active job of a queue, by worker.
    pub(crate) async fn active_jobs(&self, queue: &str) -> Result<Vec<JobInfo>> {
        let k = self.queue(queue)?;
        let mut con = self.connection();
        // Read as bytes: a member that is not UTF-8 must not make the listing fail.
        let workers: Vec<Vec<u8>> = con.zrange(k.leases(), 0, -1).await?;
        let mut out = Vec::new();
        for w in workers {
            let jobs = held_jobs(&mut con, &k.inflight_bytes(&w)).await?;
            let name = String::from_utf8_lossy(&w);
            for stored in jobs {
                let mut info = JobInfo::from_stored(queue, JobState::Active, stored, None);
                info.worker = Some(name.clone().into_owned());
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Positions `from` to `from + count - 1` of a queue's pending jobs in the order workers
    /// take them: the most urgent level's list first, each list from its head.
    async fn pending_window(&self, k: &QueueKeys, from: u64, count: u64) -> Result<Vec<Vec<u8>>> {
        let lists = k.pending_lists();
        let mut con = self.connection();
        let mut pipe = redis::pipe();
        for l in &lists {
            pipe.llen(l);
        }
        let lens: Vec<u64> = pipe.query_async(&mut con).await?;
        let mut out = Vec::new();
        for span in spans(&lens, from, count) {
            let part: Vec<Vec<u8>> = con
                .lrange(
                    &lists[span.index],
                    isize::try_from(span.start).unwrap_or(isize::MAX),
                    isize::try_from(span.stop).unwrap_or(isize::MAX),
                )
                .await?;
            out.extend(part);
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
            JobState::Pending => self
                .pending_window(&k, cursor, limit)
                .await?
                .into_iter()
                .map(|s| JobInfo::from_stored(queue, state, s, None))
                .collect(),
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

    /// The failed attempts of a job (newest first, at most 25), kept as long as a dead job
    /// is; empty for a job that never failed or whose history expired.
    pub async fn attempts(&self, queue: &str, id: &str) -> Result<Vec<AttemptRecord>> {
        let k = self.queue(queue)?;
        let raw: Vec<Vec<u8>> = self.connection().lrange(k.attempts(id), 0, -1).await?;
        Ok(raw.iter().filter_map(|e| AttemptRecord::parse(e)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
