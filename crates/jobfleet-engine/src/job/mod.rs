//! The job layer of the engine, on top of the queue store: what a job kind is (`JobArgs`,
//! `Job`), what a handler is told (`JobContext`), what it answers (`JobError`), its policy
//! (`spec`), the registry that pairs kinds with specs, and the typed client that enqueues them
//! with their spec applied.
//!
//! A kind is two impls on one args struct: `JobArgs` names it (producers need only this), and
//! `Job<S>` runs it with the application's state `S`.

mod args;
pub mod cancel;
pub mod client;
mod context;
pub mod error;
pub mod flow;
pub mod limits;
pub mod registry;
mod registry_error;
pub mod spec;
mod specs;

pub use args::JobArgs;
pub use cancel::JobCancel;
pub use client::{Client, Enqueue, EnqueueError};
pub use context::{Attempt, Job, JobContext};
pub use error::{JobError, error_chain};
pub use flow::FlowBuilder;
pub use registry::{HandlerSet, Registry, RegistryError, Specs};
pub use spec::JobSpec;
