//! `noop`: does nothing. Operators use it to smoke-test a deployment, benchmarks to measure the
//! queue itself.

use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError};

/// Any JSON object is accepted and ignored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Noop {
    #[serde(flatten)]
    pub ignored: serde_json::Map<String, serde_json::Value>,
}

impl Job for Noop {
    const KIND: &'static str = "noop";

    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}
