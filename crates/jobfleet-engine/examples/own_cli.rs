//! A binary of one's own kinds with the whole operators' command line: `worker`,
//! `scheduler`, `run`, `enqueue`, `queues`, `jobs`, `dead`, `queue`, `workers`, `schedules`,
//! `enqueue-now` and `bench`, in a `main` of a few lines.
//!
//! ```sh
//! cargo run -p jobfleet-engine --example own_cli -- --help
//! JOBFLEET__JOBS__DIR=crates/jobfleet-engine/examples/jobs \
//!     cargo run -p jobfleet-engine --example own_cli -- run send_receipt --args '{"order_id": 7}'
//! ```
//!
//! The kind's spec is `examples/jobs/send_receipt.toml`; the configuration comes in layers as
//! for any engine binary (`config/default.toml`, `JOBFLEET__...` variables, `REDIS_URL`).

use std::process::ExitCode;

use jobfleet_engine::job::HandlerSet;
use jobfleet_engine::{Job, JobArgs, JobContext, JobError};
use serde::{Deserialize, Serialize};

/// The application's state: here, only where receipts come from.
#[derive(Debug)]
struct AppState {
    shop: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SendReceipt {
    order_id: u64,
}

impl JobArgs for SendReceipt {
    const KIND: &'static str = "send_receipt";
}

impl Job<AppState> for SendReceipt {
    async fn run(self, ctx: JobContext<AppState>) -> Result<(), JobError> {
        if self.order_id == 0 {
            return Err(JobError::fatal("order 0 does not exist"));
        }
        println!(
            "{}: receipt for order {} sent",
            ctx.state().shop,
            self.order_id
        );
        Ok(())
    }
}

fn main() -> ExitCode {
    let kinds = HandlerSet::new().register::<SendReceipt>();
    jobfleet_engine::cli::main(kinds, |_settings, _client| {
        Ok(AppState {
            shop: "the example shop".to_owned(),
        })
    })
}
