//! `noop`: does nothing. Operators use it to smoke-test a deployment, benchmarks to measure the
//! queue itself.

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

use crate::job::{Job, JobArgs, JobContext, JobError};

/// Any args are accepted and ignored, without building them in memory.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Noop {}

impl<'de> Deserialize<'de> for Noop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Noop {})
    }
}

impl JobArgs for Noop {
    const KIND: &'static str = "noop";
}

impl<S: Send + Sync + 'static> Job<S> for Noop {
    async fn run(self, _ctx: JobContext<S>) -> Result<(), JobError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_args() {
        for v in [
            serde_json::json!({"a": [1, 2]}),
            serde_json::json!(null),
            serde_json::json!(3),
        ] {
            assert!(serde_json::from_value::<Noop>(v).is_ok());
        }
    }
}
