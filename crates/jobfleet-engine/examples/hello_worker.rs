//! One job through a real worker: a kind with its spec, one typed enqueue on `REDIS_URL`
//! (default `redis://127.0.0.1:6379`), a worker that runs until the job is done, what
//! happened, and exit code 0 (1 when anything went wrong).
//!
//! ```sh
//! cargo run -p jobfleet-engine --example hello_worker
//! ```
//!
//! It works in a namespace of its own and removes its queue afterwards, so it touches nothing
//! else on that Redis.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use jobfleet_engine::job::{HandlerSet, JobSpec, Registry, Specs};
use jobfleet_engine::queue::{QueueClient, StoreSettings};
use jobfleet_engine::worker::Worker;
use jobfleet_engine::{Client, Job, JobArgs, JobContext, JobError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The kind's args: its stable name is `hello`.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    name: String,
}

impl JobArgs for Hello {
    const KIND: &'static str = "hello";
}

/// What this program shares with its handlers: where they report what they did.
#[derive(Debug)]
struct AppState {
    done: mpsc::UnboundedSender<String>,
}

impl Job<AppState> for Hello {
    async fn run(self, ctx: JobContext<AppState>) -> Result<(), JobError> {
        let greeting = format!(
            "hello, {} (job {}, attempt {})",
            self.name, ctx.id, ctx.attempt
        );
        ctx.state().done.send(greeting).map_err(JobError::fatal)
    }
}

/// The kind's policy, as it would be in `jobs/hello.toml`.
const SPEC: &str = r#"
queue = "hello"
timeout = "10s"
[retry]
max_attempts = 3
base = "1s"
cap = "10s"
"#;

#[tokio::main]
async fn main() -> ExitCode {
    match hello().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello_worker failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn hello() -> Result<(), Box<dyn std::error::Error>> {
    jobfleet_engine::install_tls_provider();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let namespace = format!("hello-{}", std::process::id());
    let store = QueueClient::connect(&url, &namespace, StoreSettings::default()).await?;

    // The kinds and their specs: a spec without a handler (or the reverse) is an error here.
    let specs = Specs::from_specs([JobSpec::parse(Hello::KIND, SPEC)?])?;
    let handlers = HandlerSet::new().register::<Hello>();
    let registry = Arc::new(Registry::pair(specs, handlers, "hello_worker.rs")?);

    // A producer: the spec's queue and attempts apply.
    let client = Client::new(store.clone(), registry.shared_specs().clone());
    let job = client
        .enqueue(Hello {
            name: "world".into(),
        })
        .await?;
    println!("enqueued job {} on queue hello", job.id);

    let (done, mut reports) = mpsc::unbounded_channel();
    let worker = Worker::builder(store.clone(), registry, Arc::new(AppState { done }))
        .concurrency(2)
        .build();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop.cancelled_owned()).await }
    });
    let said = tokio::time::timeout(Duration::from_secs(30), reports.recv()).await;
    stop.cancel();
    let report = running.await??;
    let removed = store.remove_queue("hello", true).await?;
    match said {
        Ok(Some(greeting)) if report.completed == 1 => {
            println!("{greeting}");
            println!(
                "worker stopped: {} completed, {} retried, {} dead; queue removed ({})",
                report.completed,
                report.retried,
                report.dead,
                removed.describe()
            );
            Ok(())
        }
        Ok(_) => Err(format!("the job did not complete: {report:?}").into()),
        Err(_) => Err("the job did not run within 30 s".into()),
    }
}
