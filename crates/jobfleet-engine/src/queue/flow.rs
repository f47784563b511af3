//! Flows: a set of child jobs under a parent with callbacks, like Sidekiq's batches and
//! BullMQ's flows.
//!
//! A flow's state lives in the queue of its callbacks (`ns:{q}:flow:<id>`, see `keys`): its
//! members (the ids that count as its children), who of them succeeded and who died, and the
//! two callback jobs, stored whole. A child carries `"flow":{"queue","id","member"}` in its
//! envelope. The script that ends a child for good (ack, a kill in settle, the reaper, an
//! operator's kill or delete) writes the end into the child queue's flow outbox in the same
//! step, so it is fenced like that step: a stale worker's result writes nothing. A worker then
//! delivers the outbox to the flow (`flows::deliver_flow_reports`), whose queue may be in
//! another slot; a delivery repeated after a crash is recognised by the member's id. When the
//! last member is counted, the same script enqueues `on_complete` (every child finished) and,
//! when none died, `on_success`, each once. A child that died and is retried by an operator
//! and then succeeds moves from dead to succeeded, and `on_success` runs then.
//!
//! A child may be a flow itself: it counts as one member of its parent, and its `on_complete`
//! callback carries the parent's reference, so the parent counts the sub-flow finished when
//! that callback ends (the shape of BullMQ's trees: a parent job runs after its children).
//! A sub-flow without `on_complete` reports itself to its parent when its children are done.
//!
//! Starting a flow records every flow of the tree (parent first), enqueues every child job,
//! then seals the flows (deepest first): reports that arrive before the seal are counted, and
//! no callback runs before it. A start that fails part-way says what went in; with a chosen
//! flow id, children's ids are derived from it, so a second start finishes the first.

use serde::Serialize;

use super::client::QueueClient;
use super::envelope::NewJob;
pub use super::envelope::{FlowOutcome, FlowRef};
use super::keys::validate_queue_name;
use super::payload::valid_id;
use super::{QueueError, Result, now_ms};

pub use super::payload::may_be_flow_child;

/// Failed children's ids a callback is given at most; `jobfleet flows show` lists them all.
pub const FAILED_IDS: usize = 1000;

/// Levels of sub-flows under a flow at most.
pub const MAX_DEPTH: usize = 8;

/// One child of a flow: a job, or a flow of its own.
#[derive(Clone, Debug)]
pub enum FlowChild {
    /// A job, which counts as finished when it completes or dies.
    Job(Box<NewJob>),
    /// A sub-flow, which counts as finished when its `on_complete` callback ends.
    Flow(Box<Flow>),
}

/// A flow to start: children and callbacks. Build it, then
/// [`QueueClient::start_flow`] it.
#[derive(Clone, Debug, Default)]
pub struct Flow {
    pub(crate) id: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) children: Vec<FlowChild>,
    pub(crate) on_success: Option<NewJob>,
    pub(crate) on_complete: Option<NewJob>,
}

impl Flow {
    /// An empty flow: add children and callbacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The flow's id (the characters of a job id, at most 100 of them). With one, the
    /// children's and sub-flows' ids are derived from it (`<id>:<position>`), so starting the
    /// same flow twice starts it once.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The queue that keeps the flow's state when it has no callback (else its callbacks'
    /// queue does, and this must be the same).
    pub fn on_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Adds a child job. Its unique key is dropped: a child that was not enqueued because
    /// another job held its key would never report.
    pub fn child(mut self, job: NewJob) -> Self {
        self.children.push(FlowChild::Job(Box::new(job)));
        self
    }

    /// Adds child jobs.
    pub fn children(mut self, jobs: impl IntoIterator<Item = NewJob>) -> Self {
        self.children
            .extend(jobs.into_iter().map(|j| FlowChild::Job(Box::new(j))));
        self
    }

    /// Adds a sub-flow, which counts as one child.
    pub fn sub_flow(mut self, flow: Flow) -> Self {
        self.children.push(FlowChild::Flow(Box::new(flow)));
        self
    }

    /// The job to run once, when every child succeeded.
    pub fn on_success(mut self, job: NewJob) -> Self {
        self.on_success = Some(job);
        self
    }

    /// The job to run once, when every child finished (succeeded or died).
    pub fn on_complete(mut self, job: NewJob) -> Self {
        self.on_complete = Some(job);
        self
    }

    /// Its children so far.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether it has no child yet.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

/// What starting a flow did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowStarted {
    /// The flow's id.
    pub id: String,
    /// The queue its state (and its callbacks) live in.
    pub queue: String,
    /// Its direct children.
    pub children: usize,
    /// Jobs enqueued, over every level of sub-flows.
    pub jobs: usize,
    /// False when a flow with this id had been started before (this start finished it).
    pub created: bool,
}

/// One flow of a tree, ready to record: ids assigned, callbacks stored whole.
#[derive(Debug)]
pub(crate) struct Planned {
    pub id: String,
    pub queue: String,
    /// `<queue>|<flow id>|<member>` of its parent, empty for none.
    pub parent: String,
    pub members: Vec<String>,
    pub on_success: Option<NewJob>,
    pub on_complete: Option<NewJob>,
    /// Its direct child jobs, ids and flow references set.
    pub jobs: Vec<NewJob>,
    pub depth: usize,
}

fn invalid(msg: String) -> QueueError {
    QueueError::Invalid(msg)
}

/// Plans `flow` and its sub-flows, parent first, with ids assigned: a flow's own, else
/// derived from its parent's chosen one (`<parent>:<position>`), else a new ULID; the same
/// for child jobs without an id.
pub(crate) fn plan(flow: Flow, parent: Option<FlowRef>, depth: usize) -> Result<Vec<Planned>> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "flows nest {MAX_DEPTH} levels deep at most"
        )));
    }
    let derived = flow.id.is_some() || parent.is_some();
    let id = flow.id.clone().unwrap_or_else(|| new_id(None));
    if !valid_id(&id) || (depth == 0 && id.len() > 100) {
        return Err(invalid(format!(
            "flow id {id:?}: use 1-100 characters from a-z, A-Z, 0-9, '_', '-', '.', ':'"
        )));
    }
    let queue = flow_queue(&flow, &id)?;
    let me = |member: &str| FlowRef {
        queue: queue.clone(),
        id: id.clone(),
        member: member.to_owned(),
    };
    let mut out = Vec::new();
    let mut jobs = Vec::new();
    let mut members = Vec::with_capacity(flow.children.len());
    let mut subs = Vec::new();
    for (i, child) in flow.children.into_iter().enumerate() {
        let chosen = |given: Option<String>| {
            given.unwrap_or_else(|| new_id(derived.then(|| format!("{id}:{i}"))))
        };
        match child {
            FlowChild::Job(mut job) => {
                let child_id = chosen(job.id.take());
                job.id = Some(child_id.clone());
                job.unique = None;
                job.flow = Some(me(&child_id));
                members.push(child_id);
                jobs.push(*job);
            }
            FlowChild::Flow(mut sub) => {
                let sub_id = chosen(sub.id.take());
                sub.id = Some(sub_id.clone());
                members.push(sub_id.clone());
                subs.push((*sub, me(&sub_id)));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = members.iter().find(|m| !seen.insert(m.as_str())) {
        return Err(invalid(format!(
            "flow {id}: two children have the id {dup:?}"
        )));
    }
    let callback = |job: Option<NewJob>, which: &str| {
        job.map(|mut j| {
            j.id = Some(format!("{id}:{which}"));
            j.unique = None;
            j.run_at = None;
            j
        })
    };
    let mut on_complete = callback(flow.on_complete, "on_complete");
    if let Some(cb) = on_complete.as_mut() {
        cb.flow = parent.clone();
    }
    out.push(Planned {
        parent: parent.map_or_else(String::new, |p| {
            format!("{}|{}|{}", p.queue, p.id, p.member)
        }),
        on_success: callback(flow.on_success, "on_success"),
        on_complete,
        id,
        queue,
        members,
        jobs,
        depth,
    });
    for (sub, up) in subs {
        out.extend(plan(sub, Some(up), depth + 1)?);
    }
    Ok(out)
}

/// `derived` when there is one, else a new ULID.
fn new_id(derived: Option<String>) -> String {
    derived.unwrap_or_else(|| ulid::Ulid::generate().to_string())
}

/// The queue that keeps a flow's state: its callbacks', which must agree with each other and
/// with `on_queue`; without callbacks `on_queue`, else its first child job's, else `default`.
fn flow_queue(flow: &Flow, id: &str) -> Result<String> {
    let callbacks: Vec<&str> = [&flow.on_success, &flow.on_complete]
        .into_iter()
        .flatten()
        .map(|j| j.queue.as_str())
        .chain(flow.queue.as_deref())
        .collect();
    if let Some(other) = callbacks.iter().find(|q| **q != callbacks[0]) {
        return Err(invalid(format!(
            "flow {id}: its callbacks and state must share one queue, not {} and {other}",
            callbacks[0]
        )));
    }
    let first_child = flow.children.iter().find_map(|c| match c {
        FlowChild::Job(j) => Some(j.queue.as_str()),
        FlowChild::Flow(_) => None,
    });
    let queue = callbacks
        .first()
        .copied()
        .or(first_child)
        .unwrap_or("default");
    validate_queue_name(queue)?;
    Ok(queue.to_owned())
}

impl QueueClient {
    /// Starts a flow: records it (and its sub-flows), enqueues every child job, then seals
    /// it, after which its callbacks run when its children are done. A failure part-way is
    /// [`QueueError::FlowIncomplete`], which says what went in; a flow with a chosen id can be
    /// started again to finish it.
    pub async fn start_flow(&self, flow: Flow) -> Result<FlowStarted> {
        let direct = flow.children.len();
        let planned = plan(flow, None, 0)?;
        let (id, queue) = (planned[0].id.clone(), planned[0].queue.clone());
        let incomplete = |done: String, error: QueueError| QueueError::FlowIncomplete {
            flow: id.clone(),
            done,
            error: Box::new(error),
        };
        let mut created = true;
        for (i, p) in planned.iter().enumerate() {
            match self.record_flow(p, now_ms()).await {
                Ok(new) if i == 0 => created = new,
                Ok(_) => {}
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    return Err(incomplete(
                        format!(
                            "{i} of {} flows of its tree were recorded and no job was enqueued",
                            planned.len()
                        ),
                        e,
                    ));
                }
            }
        }
        let jobs: Vec<NewJob> = planned
            .iter()
            .flat_map(|p| p.jobs.iter().cloned())
            .collect();
        let count = jobs.len();
        match self.enqueue_bulk(jobs).await {
            Ok(results) => {
                // A child refused as a duplicate is a job stored earlier under its id: this
                // flow's own (a start tried again), or, for an id the producer chose, another
                // job, which does not count in this flow and will not report to it.
                let duplicates = results.iter().filter(|r| !r.created).count();
                if created && duplicates > 0 {
                    tracing::warn!(flow = %id, duplicates,
                        "children of a new flow were duplicates of jobs stored under their ids; the flow finishes only once those ids report to it");
                }
            }
            Err(e) => {
                let stored = match &e {
                    QueueError::Partial(p) => p.stored(),
                    _ => 0,
                };
                let done =
                    format!("{stored} of its {count} jobs were enqueued and it is not sealed");
                return Err(incomplete(done, e));
            }
        }
        // Deepest first: a sub-flow sealed before its parent may finish and report to it,
        // which the parent counts whether or not it is sealed yet.
        let mut order: Vec<&Planned> = planned.iter().collect();
        order.sort_by_key(|p| std::cmp::Reverse(p.depth));
        for (sealed, p) in order.iter().enumerate() {
            if let Err(e) = self.seal_flow(p).await {
                let done = format!(
                    "its {count} jobs were enqueued and {sealed} of {} flows sealed",
                    planned.len()
                );
                return Err(incomplete(done, e));
            }
        }
        Ok(FlowStarted {
            id,
            queue,
            children: direct,
            jobs: count,
            created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(queue: &str) -> NewJob {
        NewJob::new("noop", queue, json!({})).unique("u", std::time::Duration::from_secs(9))
    }

    #[test]
    fn a_chosen_id_derives_every_id_of_the_tree() {
        let sub = Flow::new()
            .child(job("b"))
            .on_complete(NewJob::new("done", "c", json!({})));
        let flow = Flow::new()
            .id("f")
            .child(job("a"))
            .child(job("a").id("mine"))
            .sub_flow(sub)
            .on_success(NewJob::new("ok", "cb", json!({})));
        let p = plan(flow, None, 0).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].id.as_str(), p[0].queue.as_str()), ("f", "cb"));
        assert_eq!(p[0].members, ["f:0", "mine", "f:2"]);
        assert!(p[0].jobs.iter().all(|j| j.unique.is_none()));
        assert_eq!(p[0].jobs[0].flow.as_ref().unwrap().member, "f:0");
        assert_eq!(
            p[0].on_success.as_ref().unwrap().id.as_deref(),
            Some("f:on_success")
        );
        assert_eq!(
            (p[1].id.as_str(), p[1].parent.as_str()),
            ("f:2", "cb|f|f:2")
        );
        assert_eq!(p[1].members, ["f:2:0"]);
        // The sub-flow's on_complete is what its parent counts.
        let up = p[1].on_complete.as_ref().unwrap().flow.clone().unwrap();
        assert_eq!((up.id.as_str(), up.member.as_str()), ("f", "f:2"));
    }

    #[test]
    fn without_an_id_children_get_ulids_and_the_first_childs_queue_keeps_the_flow() {
        let p = plan(Flow::new().child(job("a")).child(job("b")), None, 0).unwrap();
        assert_eq!(p[0].queue, "a");
        assert!(p[0].members.iter().all(|m| m.parse::<ulid::Ulid>().is_ok()));
        assert_eq!(plan(Flow::new(), None, 0).unwrap()[0].queue, "default");
    }

    #[test]
    fn only_bytes_that_name_a_flow_may_be_a_flow_child() {
        assert!(may_be_flow_child(
            br#"jf|0|1|a|0|0:0:\n{"flow":{"queue":"q"}}"#
        ));
        assert!(!may_be_flow_child(
            br#"jf|0|1|a|0|0:0:\n{"args":{"flows":1}}"#
        ));
    }

    #[test]
    fn bad_flows_are_refused() {
        let two_queues = Flow::new()
            .on_success(NewJob::new("a", "q1", json!({})))
            .on_complete(NewJob::new("b", "q2", json!({})));
        assert!(plan(two_queues, None, 0).is_err());
        let dup = Flow::new().child(job("a").id("x")).child(job("a").id("x"));
        assert!(
            plan(dup, None, 0)
                .unwrap_err()
                .to_string()
                .contains("\"x\"")
        );
        assert!(plan(Flow::new().id("a b"), None, 0).is_err());
        let mut deep = Flow::new().child(job("a"));
        for _ in 0..=MAX_DEPTH {
            deep = Flow::new().sub_flow(deep);
        }
        assert!(plan(deep, None, 0).is_err());
    }
}
