//! Typed flows: children and callbacks given as job args, their specs applied (queue,
//! attempts, priority), then started in one call (see `queue::flow` for what a flow is).
//!
//! ```ignore
//! let started = ctx.client().flow()
//!     .id(format!("{}:batches", ctx.id))
//!     .children(batches)
//!     .on_complete(RecordRun { started_at })
//!     .await?;
//! ```

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use super::args::JobArgs;
use super::client::{Client, EnqueueError};
use crate::queue::{Flow, FlowStarted, NewJob};

/// A flow about to be started: add children and callbacks, then `.await` it.
#[derive(Debug)]
#[must_use = "a flow does nothing until it is awaited"]
pub struct FlowBuilder<'a> {
    client: &'a Client,
    flow: Result<Flow, EnqueueError>,
}

impl Client {
    /// Starts building a flow whose jobs get their kinds' specs.
    pub fn flow(&self) -> FlowBuilder<'_> {
        FlowBuilder {
            client: self,
            flow: Ok(Flow::new()),
        }
    }
}

impl FlowBuilder<'_> {
    fn map(mut self, f: impl FnOnce(Flow) -> Result<Flow, EnqueueError>) -> Self {
        self.flow = self.flow.and_then(f);
        self
    }

    /// The flow's id; with one, a second start of the same flow starts nothing twice.
    pub fn id(self, id: impl Into<String>) -> Self {
        self.map(|f| Ok(f.id(id)))
    }

    /// The queue that keeps the flow's state when it has no callback.
    pub fn on_queue(self, queue: impl Into<String>) -> Self {
        self.map(|f| Ok(f.on_queue(queue)))
    }

    /// A child job, its spec applied.
    pub fn child<J: JobArgs>(self, job: J) -> Self {
        let job = self.client.new_job(&job);
        self.map(|f| Ok(f.child(job?)))
    }

    /// Child jobs of one kind, their spec applied.
    pub fn children<J: JobArgs>(self, jobs: impl IntoIterator<Item = J>) -> Self {
        let jobs: Result<Vec<NewJob>, _> =
            jobs.into_iter().map(|j| self.client.new_job(&j)).collect();
        self.map(|f| Ok(f.children(jobs?)))
    }

    /// Prepared child jobs (from `enqueue(..).into_new_job()`, maybe with overrides).
    pub fn jobs(self, jobs: impl IntoIterator<Item = NewJob>) -> Self {
        self.map(|f| Ok(f.children(jobs)))
    }

    /// A sub-flow, which counts as one child (see `queue::flow`).
    pub fn sub_flow(self, sub: FlowBuilder<'_>) -> Self {
        let sub = sub.into_flow();
        self.map(|f| Ok(f.sub_flow(sub?)))
    }

    /// The job to run once every child succeeded; its context's `flow_result` says how the
    /// flow went.
    pub fn on_success<J: JobArgs>(self, job: J) -> Self {
        let job = self.client.new_job(&job);
        self.map(|f| Ok(f.on_success(job?)))
    }

    /// The job to run once every child finished, some maybe dead.
    pub fn on_complete<J: JobArgs>(self, job: J) -> Self {
        let job = self.client.new_job(&job);
        self.map(|f| Ok(f.on_complete(job?)))
    }

    /// The flow as it would be started.
    pub fn into_flow(self) -> Result<Flow, EnqueueError> {
        self.flow
    }
}

impl<'a> IntoFuture for FlowBuilder<'a> {
    type Output = Result<FlowStarted, EnqueueError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { Ok(self.client.queue_client().start_flow(self.flow?).await?) })
    }
}
