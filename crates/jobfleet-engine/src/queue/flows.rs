//! The store's side of flows (see `flow`): recording and sealing one, delivering the ends of
//! children from a queue's flow outbox, and reading a flow's state for `jobfleet flows`, the
//! board and the API.

use redis::AsyncCommands;
use serde::Serialize;

use super::client::QueueClient;
use super::enqueue::stored;
use super::envelope::Envelope;
use super::flow::{FlowRef, Planned};
use super::keys::{QueueKeys, validate_queue_name};
use super::payload::{Header, valid_id};
use super::{QueueError, Result, now_ms};

/// Outbox entries read per round trip.
const PAGE: usize = 100;
/// Outboxes one delivery drains at most (its own and those of the sub-flows it finished),
/// and pages per outbox, so that one call is bounded whatever is in Redis.
const MAX_OUTBOXES: usize = 32;
const MAX_PAGES: usize = 100;

/// Where a flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowStatus {
    /// Recorded, but not every child is enqueued yet (or its start stopped part-way).
    Building,
    /// Children still pending or running.
    Running,
    /// Every child finished and none died.
    Succeeded,
    /// Every child finished and some died.
    Failed,
}

impl FlowStatus {
    /// The status as `jobfleet flows` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Building => "building",
            FlowStatus::Running => "running",
            FlowStatus::Succeeded => "succeeded",
            FlowStatus::Failed => "failed",
        }
    }
}

/// One callback of a flow: its kind, its job id, and when it was enqueued (if it was).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowCallback {
    /// The callback's kind.
    pub kind: String,
    /// Its job id, `<flow id>:on_success` or `<flow id>:on_complete`.
    pub id: String,
    /// When the flow enqueued it (ms), if it did.
    pub enqueued_at: Option<i64>,
}

/// A flow's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowState {
    /// Its id.
    pub id: String,
    /// The queue that keeps it (and runs its callbacks).
    pub queue: String,
    /// Where it stands.
    pub status: FlowStatus,
    /// Its children.
    pub total: u64,
    /// Children that succeeded.
    pub succeeded: u64,
    /// Children that died, or that an operator killed or deleted.
    pub failed: u64,
    /// Children not finished yet.
    pub pending: u64,
    /// When it was recorded (ms).
    pub created_at: i64,
    /// When its last child finished (ms).
    pub completed_at: Option<i64>,
    /// The flow it is a child of.
    pub parent: Option<FlowRef>,
    /// Run when every child succeeded.
    pub on_success: Option<FlowCallback>,
    /// Run when every child finished.
    pub on_complete: Option<FlowCallback>,
    /// The failed children's ids, sorted (filled by [`QueueClient::flow`] only).
    pub failed_ids: Vec<String>,
}

/// One parsed outbox entry: "<outcome>|<flow queue>|<flow id>|<member>".
#[derive(Debug, PartialEq, Eq)]
struct Report<'a> {
    outcome: &'a str,
    queue: &'a str,
    flow: &'a str,
    member: &'a str,
}

fn parse_report(entry: &[u8]) -> Option<Report<'_>> {
    let text = std::str::from_utf8(entry).ok()?;
    let mut parts = text.splitn(4, '|');
    let r = Report {
        outcome: parts.next()?,
        queue: parts.next()?,
        flow: parts.next()?,
        member: parts.next()?,
    };
    let ok = matches!(r.outcome, "succeeded" | "dead")
        && validate_queue_name(r.queue).is_ok()
        && valid_id(r.flow)
        && valid_id(r.member);
    ok.then_some(r)
}

/// `<queue>|<flow id>|<member>` as a flow's hash keeps its parent.
fn parse_parent(text: &str) -> Option<FlowRef> {
    let mut parts = text.splitn(3, '|');
    Some(FlowRef {
        queue: parts.next()?.to_owned(),
        id: parts.next()?.to_owned(),
        member: parts.next()?.to_owned(),
    })
}

/// The kind of a stored callback job, or `?` when it does not decode.
fn callback(stored: &[u8], id: String, at: Option<i64>) -> Option<FlowCallback> {
    if stored.is_empty() {
        return None;
    }
    let kind = Header::decode(stored)
        .ok()
        .and_then(|(_, body)| serde_json::from_slice::<Envelope>(body).ok())
        .map_or_else(|| "?".to_owned(), |e| e.kind);
    Some(FlowCallback {
        kind,
        id,
        enqueued_at: at,
    })
}

type Fields = (
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

impl QueueClient {
    /// Records one planned flow (`flow_create.lua`); answers whether it is new.
    pub(crate) async fn record_flow(&self, p: &Planned, now: i64) -> Result<bool> {
        let k = self.queue(&p.queue)?;
        let fk = k.flow(&p.id);
        let store = |job: &Option<super::NewJob>| -> Result<String> {
            let Some(job) = job.clone() else {
                return Ok(String::new());
            };
            let priority = job.priority;
            stored(&job.into_envelope(now), String::new(), priority)
        };
        let mut inv = self.scripts.flow_create.key(&fk.state);
        inv.key(&fk.members)
            .key(k.flows())
            .arg(k.prefix())
            .arg(now)
            .arg(&p.id)
            .arg(&p.parent)
            .arg(store(&p.on_success)?)
            .arg(store(&p.on_complete)?);
        for m in &p.members {
            inv.arg(m);
        }
        self.register_queues(&[k.name()]).await?;
        let created: i64 = self.invoke_write(&inv, "flow_create").await?;
        Ok(created == 1)
    }

    /// Seals one planned flow: from now on its callbacks run when its children are done.
    pub(crate) async fn seal_flow(&self, p: &Planned) -> Result<()> {
        self.flow_report(&p.queue, &p.id, "seal", "").await?;
        Ok(())
    }

    /// Runs `flow_report.lua` on the flow `id` of `queue`; answers (state, fired) as the script
    /// documents.
    async fn flow_report(
        &self,
        queue: &str,
        id: &str,
        what: &str,
        member: &str,
    ) -> Result<(i64, i64)> {
        let k = self.queue(queue)?;
        let fk = k.flow(id);
        let keep = self.settings.dead_max_age.as_secs().max(1);
        let mut inv = self.scripts.flow_report.key(&fk.state);
        inv.key(&fk.members)
            .key(&fk.succeeded)
            .key(&fk.dead)
            .key(k.stats())
            .arg(k.prefix())
            .arg(now_ms())
            .arg(id)
            .arg(what)
            .arg(member)
            .arg(keep);
        let reply: Vec<i64> = self.invoke_write(&inv, "flow_report").await?;
        match reply[..] {
            [state, fired] => Ok((state, fired)),
            _ => Err(QueueError::Reply {
                script: "flow_report",
                detail: format!("{reply:?}"),
            }),
        }
    }

    /// Tells their flows of the children of `queue` that ended (the queue's flow outbox),
    /// and of the sub-flows that this finished; answers how many ends were delivered. A page
    /// of entries leaves the outbox only once their flows counted them, so a crash in between
    /// delivers them again, which the flows recognise. An entry that is no report of ours, or that names
    /// a flow that no longer exists, is logged and dropped.
    pub async fn deliver_flow_reports(&self, queue: &str) -> Result<usize> {
        let mut outboxes = vec![self.queue(queue)?];
        let mut delivered = 0;
        let mut drained = 0;
        while let Some(k) = outboxes.pop() {
            drained += 1;
            for _ in 0..MAX_PAGES {
                let page: Vec<Vec<u8>> = self
                    .connection()
                    .zrange(k.flowbox(), 0, PAGE as isize - 1)
                    .await?;
                for entry in &page {
                    if let Some(up) = self.deliver_one(&k, entry).await?
                        && drained + outboxes.len() < MAX_OUTBOXES
                    {
                        outboxes.push(up);
                    }
                    delivered += 1;
                }
                // The page leaves the outbox once each of its entries was counted (a crash
                // before this delivers them again, which their flows recognise).
                if !page.is_empty() {
                    let _: () = self.connection().zrem(k.flowbox(), &page).await?;
                }
                if page.len() < PAGE {
                    break;
                }
            }
        }
        Ok(delivered)
    }

    /// Delivers one outbox entry of `k`; answers the flow's queue when the flow, finished,
    /// reported itself to its own parent through that queue's outbox.
    async fn deliver_one(&self, k: &QueueKeys, entry: &[u8]) -> Result<Option<QueueKeys>> {
        let Some(r) = parse_report(entry) else {
            tracing::warn!(queue = %k.name(), entry = %String::from_utf8_lossy(entry),
                "dropped a flow outbox entry that is no report of a flow child's end");
            return Ok(None);
        };
        let (state, fired) = self
            .flow_report(r.queue, r.flow, r.outcome, r.member)
            .await?;
        if state == 0 {
            tracing::warn!(
                flow = r.flow,
                flow_queue = r.queue,
                member = r.member,
                "a flow child ended, but its flow no longer exists or does not list it"
            );
        }
        if fired & 3 != 0 {
            tracing::info!(
                flow = r.flow,
                queue = r.queue,
                on_success = fired & 1 != 0,
                on_complete = fired & 2 != 0,
                "flow finished: callbacks enqueued"
            );
        }
        Ok((fired & 4 != 0).then(|| self.keys.queue(r.queue)))
    }

    /// A flow by id: in `queue`, or looked for in every queue. With its failed children's ids.
    pub async fn flow(&self, queue: Option<&str>, id: &str) -> Result<Option<FlowState>> {
        let names = match queue {
            Some(q) => vec![q.to_owned()],
            None => self.queue_names().await?,
        };
        for q in names {
            if let Some(mut state) = self.flow_in(&q, id).await? {
                let mut ids: Vec<String> = self
                    .connection()
                    .smembers(self.queue(&q)?.flow(id).dead)
                    .await?;
                ids.sort();
                state.failed_ids = ids;
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// The flow `id` of `queue`, without its failed ids.
    async fn flow_in(&self, queue: &str, id: &str) -> Result<Option<FlowState>> {
        let fk = self.queue(queue)?.flow(id);
        let f: Fields = redis::cmd("HMGET")
            .arg(&fk.state)
            .arg(&[
                "total",
                "succeeded",
                "dead",
                "sealed",
                "created_at",
                "completed_at",
                "succeeded_at",
                "parent",
                "on_success",
                "on_complete",
            ])
            .query_async(&mut self.connection())
            .await?;
        let (Some(total), Some(succeeded), Some(failed)) = (f.0, f.1, f.2) else {
            return Ok(None);
        };
        let sealed = f.3.as_deref() == Some("1");
        let status = match (sealed, f.5.is_some()) {
            (false, _) => FlowStatus::Building,
            (true, false) => FlowStatus::Running,
            (true, true) if failed == 0 => FlowStatus::Succeeded,
            (true, true) => FlowStatus::Failed,
        };
        Ok(Some(FlowState {
            id: id.to_owned(),
            queue: queue.to_owned(),
            status,
            total,
            succeeded,
            failed,
            pending: total.saturating_sub(succeeded + failed),
            created_at: f.4.unwrap_or(0),
            completed_at: f.5,
            parent: f
                .7
                .as_deref()
                .filter(|p| !p.is_empty())
                .and_then(parse_parent),
            on_success: callback(&f.8.unwrap_or_default(), format!("{id}:on_success"), f.6),
            on_complete: callback(&f.9.unwrap_or_default(), format!("{id}:on_complete"), f.5),
            failed_ids: Vec::new(),
        }))
    }

    /// The newest flows of every queue (or of `queue`), newest first, at most `limit`. Flows
    /// that finished and expired are dropped from the registry as they are met.
    pub async fn flows(&self, queue: Option<&str>, limit: usize) -> Result<Vec<FlowState>> {
        let names = match queue {
            Some(q) => vec![q.to_owned()],
            None => self.queue_names().await?,
        };
        let mut all = Vec::new();
        for q in names {
            let k = self.queue(&q)?;
            let ids: Vec<String> = self
                .connection()
                .zrevrange(k.flows(), 0, limit as isize - 1)
                .await?;
            for id in ids {
                match self.flow_in(&q, &id).await? {
                    Some(state) => all.push(state),
                    None => {
                        let _: () = self.connection().zrem(k.flows(), &id).await?;
                    }
                }
            }
        }
        all.sort_by_key(|f| std::cmp::Reverse(f.created_at));
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_entries_parse_or_are_refused() {
        assert_eq!(
            parse_report(b"dead|q|f1|c:2"),
            Some(Report {
                outcome: "dead",
                queue: "q",
                flow: "f1",
                member: "c:2"
            })
        );
        for bad in [
            &b"lost|q|f|m"[..],
            b"dead|q{x}|f|m",
            b"dead|q|f",
            b"dead|q|f|a|b",
            b"succeeded|q|f|\xff",
        ] {
            assert_eq!(parse_report(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parents_parse() {
        let p = parse_parent("q|f|m:1").unwrap();
        assert_eq!(
            (p.queue.as_str(), p.id.as_str(), p.member.as_str()),
            ("q", "f", "m:1")
        );
        assert!(parse_parent("q|f").is_none());
    }
}
