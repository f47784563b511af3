//! `jobfleet bench`: bulk enqueue, drain by real worker processes, drain where every job fails
//! once, and the start latency of a steady trickle. It prints figures; nothing here asserts speed.
//! The jobs do nothing (`--work noop`) or one Redis `INCR` each (`--work incr`); `--profile`
//! adds where the time goes (`bench_profile.rs`).
//!
//! It works in a namespace of its own on the configured Redis and deletes its keys afterwards,
//! so it never touches the real queues.

use std::collections::HashMap;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

use super::bench_profile::{self, Reading};
use super::bench_shards;
use super::engine::Engine;
use super::output::{errln, outln};
use crate::builtin;
use crate::queue::{Backoff, NewJob, QueueClient};
use crate::worker::{QueueSelection, Worker, WorkerConfig};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Jobs per drain.
    #[arg(long, default_value_t = 200_000)]
    pub jobs: usize,
    /// Concurrency of each worker process.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub processes: usize,
    /// Jobs in the latency trickle (one every millisecond).
    #[arg(long, default_value_t = 2000)]
    pub trickle: usize,
    /// Queues the jobs are spread over; on a cluster, spread evenly over its masters.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub queues: u64,
    /// What each job does: nothing (`noop`), or one Redis `INCR` (`incr`), like a small real
    /// job whose body is one round trip.
    #[arg(long, value_enum, default_value_t = Work::Noop)]
    pub work: Work,
    /// Also print where the time goes: each path's Redis CPU per job, by script and command,
    /// and the workers' CPU per job.
    #[arg(long)]
    pub profile: bool,
}

/// What the benchmark's jobs do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Work {
    /// Nothing: the queue's own cost.
    Noop,
    /// One `INCR` on the store's Redis.
    Incr,
}

/// A ~100-byte JSON payload, like a small real job's args.
fn payload(i: usize) -> serde_json::Value {
    serde_json::json!({"order_id": i, "customer": "c5fbdb2315678afecb367f032d93f642f641", "note": "bench"})
}

struct Fleet {
    children: Vec<Child>,
}

impl Fleet {
    fn start<S: Send + Sync + 'static>(
        app: &Engine<S>,
        namespace: &str,
        queues: &[String],
        n: usize,
        concurrency: usize,
        threads: &str,
    ) -> anyhow::Result<Self> {
        // Workers of this very binary, running the engine's own kinds with the benchmark's
        // specs, so that the figures do not depend on the application's kinds or specs.
        let exe = std::env::current_exe().context("cannot find this program's binary")?;
        let mut children = Vec::new();
        for _ in 0..n {
            let child = Command::new(&exe)
                .args(["bench-worker", "--concurrency"])
                .arg(concurrency.to_string())
                .args(["--queues", &queues.join(",")])
                .env("REDIS_URL", app.settings.redis.url.expose())
                .env("JOBFLEET__REDIS__NAMESPACE", namespace)
                .env("JOBFLEET__TELEMETRY__HTTP_ADDR", "")
                .env("JOBFLEET__TELEMETRY__LOG_FILTER", "error")
                .env("TOKIO_WORKER_THREADS", threads)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .context("cannot start a worker process")?;
            children.push(child);
        }
        Ok(Self { children })
    }

    /// The workers' CPU time so far (seconds, summed).
    fn cpu(&self) -> f64 {
        self.children
            .iter()
            .filter_map(|c| bench_profile::process_cpu(c.id()))
            .sum()
    }

    /// SIGTERM, then wait: the workers drain and deregister.
    fn stop(&mut self) {
        for c in &self.children {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_for_workers(client: &QueueClient, n: usize) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    while client.workers(Duration::from_secs(60)).await?.len() < n {
        if Instant::now() > until {
            bail!("worker processes did not register within 30s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Resumes the queues and times until their `processed` counters add up to `target`.
async fn timed_drain(
    client: &QueueClient,
    queues: &[String],
    target: u64,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for q in queues {
        client.resume(q).await?;
    }
    loop {
        let processed = counter(client, queues, |s| s.processed).await?;
        if processed >= target {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("drain stalled at {processed} of {target} jobs");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One counter summed over the queues.
async fn counter(
    client: &QueueClient,
    queues: &[String],
    field: impl Fn(&crate::queue::admin::QueueStats) -> u64,
) -> anyhow::Result<u64> {
    let mut sum = 0;
    for q in queues {
        sum += field(&client.stats(q).await?);
    }
    Ok(sum)
}

async fn pause_all(client: &QueueClient, queues: &[String]) -> anyhow::Result<()> {
    for q in queues {
        client.pause(q).await?;
    }
    Ok(())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// `bench-worker`: what `bench` starts in each worker process.
#[derive(Debug, Args)]
pub struct BenchWorkerArgs {
    /// Jobs run at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The queues served, comma-separated.
    #[arg(long, default_value = "bench")]
    pub queues: String,
}

/// The worker settings of the benchmark's workers: the configured ones, on its queue.
fn bench_config<S: Send + Sync + 'static>(
    app: &Engine<S>,
    queues: &str,
    concurrency: usize,
) -> anyhow::Result<WorkerConfig> {
    Ok(WorkerConfig {
        id: crate::queue::workers::new_worker_id(),
        queues: QueueSelection::parse(queues, false).map_err(anyhow::Error::msg)?,
        concurrency: concurrency.max(1),
        prefetch: app.settings.worker.prefetch,
        lease: app.settings.worker.lease,
        shutdown_timeout: app.settings.worker.shutdown_timeout,
        poll_interval: app.settings.worker.poll_interval,
    })
}

/// Runs one of the benchmark's worker processes until SIGTERM.
pub async fn worker<S: Send + Sync + 'static>(
    app: &Engine<S>,
    args: BenchWorkerArgs,
) -> anyhow::Result<ExitCode> {
    let cfg = bench_config(app, &args.queues, args.concurrency)?;
    let registry = Arc::new(builtin::bench_registry::<()>()?);
    let client = app.client().await?;
    super::worker::serve(app, client, cfg, registry, |_| Ok(Arc::new(()))).await
}

pub async fn run<S: Send + Sync + 'static>(
    app: &Engine<S>,
    args: BenchArgs,
) -> anyhow::Result<ExitCode> {
    if args.jobs == 0 || args.processes == 0 || args.concurrency == 0 {
        bail!("--jobs, --processes and --concurrency must be at least 1");
    }
    let namespace = format!("jobfleet-bench-{:08x}", rand::random::<u32>());
    let client = app.client_in(&namespace, app.settings.store()).await?;
    let queues = bench_shards::queue_names(&client, args.queues as usize).await?;
    outln!(
        "jobfleet bench: {} jobs, {} processes x concurrency {} ({} runtime thread(s) each), \
         {} queue(s) on {} ({}), namespace {namespace}",
        args.jobs,
        args.processes,
        args.concurrency,
        bench_shards::runtime_threads(args.processes),
        queues.len(),
        client.mode(),
        durability_name(&client),
    )?;
    let result = phases(app, &client, &namespace, &queues, &args).await;
    let mut used = queues.clone();
    if args.profile {
        used.push(PROFILE_QUEUE.to_owned());
    }
    cleanup(&client, &used, vec![client.keys().bench_counter()]).await;
    result?;
    Ok(ExitCode::SUCCESS)
}

fn durability_name(client: &QueueClient) -> String {
    match client.settings().durability {
        crate::queue::Durability::Fast => "durability fast".to_owned(),
        crate::queue::Durability::Replicated { replicas, .. } => {
            format!("durability replicated, {replicas} replica(s)")
        }
    }
}

async fn phases<S: Send + Sync + 'static>(
    app: &Engine<S>,
    client: &QueueClient,
    ns: &str,
    queues: &[String],
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let n = args.jobs;
    if args.profile {
        outln!("profile of each path alone (sequential calls of one client, {n} jobs each):")?;
        let mut lines = Vec::new();
        let result = bench_profile::paths(
            client,
            PROFILE_QUEUE,
            n,
            args.concurrency + app.settings.worker.prefetch,
            payload,
            &mut lines,
        )
        .await;
        for line in lines {
            outln!("{line}")?;
        }
        result?;
    }
    pause_all(client, queues).await?;
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| job(client, args.work, queues, i, 0))
        .collect();
    let started = Instant::now();
    client.enqueue_bulk(jobs).await?;
    let took = started.elapsed();
    outln!(
        "enqueue (bulk):        {:>10.0} jobs/s   ({n} jobs in {:.3}s)",
        rate(n, took),
        took.as_secs_f64()
    )?;

    let threads = bench_shards::runtime_threads(args.processes);
    let mut fleet = Fleet::start(app, ns, queues, args.processes, args.concurrency, &threads)?;
    wait_for_workers(client, args.processes).await?;
    let cpu_before = bench_shards::cpu(client).await?;
    let before = Profiled::read(client, &fleet, args.profile).await?;
    let took = timed_drain(client, queues, n as u64).await?;
    let after = Profiled::read(client, &fleet, args.profile).await?;
    let cpu_after = bench_shards::cpu(client).await?;
    outln!(
        "drain ({}):{:>w$}{:>10.0} jobs/s   ({n} jobs in {:.3}s)",
        work_name(args.work),
        "",
        rate(n, took),
        took.as_secs_f64(),
        w = 14 - work_name(args.work).len(),
    )?;
    let mut per_shard = std::collections::BTreeMap::new();
    for q in queues {
        let shard = bench_shards::shard(client, q).await?;
        *per_shard.entry(shard).or_insert(0) += client.stats(q).await?.processed;
    }
    for line in bench_shards::per_shard_lines(&cpu_before, &cpu_after, &per_shard) {
        outln!("{line}")?;
    }
    Profiled::print(&before, &after, n, args.processes)?;

    pause_all(client, queues).await?;
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| job(client, args.work, queues, i, 1))
        .collect();
    client.enqueue_bulk(jobs).await?;
    let before = Profiled::read(client, &fleet, args.profile).await?;
    let took = timed_drain(client, queues, 2 * n as u64).await?;
    let after = Profiled::read(client, &fleet, args.profile).await?;
    let failed = counter(client, queues, |s| s.failed).await?;
    outln!(
        "drain (fail once):     {:>10.0} jobs/s   ({n} jobs, {failed} failed attempts, in {:.3}s)",
        rate(n, took),
        took.as_secs_f64()
    )?;
    Profiled::print(&before, &after, n, args.processes)?;
    fleet.stop();

    trickle(app, client, queues, args).await
}

/// The queue of the path profile, apart from the drains' queues.
const PROFILE_QUEUE: &str = "bench-profile";

fn work_name(work: Work) -> &'static str {
    match work {
        Work::Noop => "no-op",
        Work::Incr => "incr",
    }
}

/// The `i`th job of a drain: of `work`'s kind, failing its first `fail` attempts (no backoff).
fn job(client: &QueueClient, work: Work, queues: &[String], i: usize, fail: u32) -> NewJob {
    let queue = &queues[i % queues.len()];
    match (work, fail) {
        (Work::Noop, 0) => NewJob::new("noop", queue, payload(i)).max_attempts(3),
        (Work::Noop, _) => NewJob::new("sleep", queue, serde_json::json!({"fail_attempts": fail}))
            .max_attempts(2)
            .backoff(Backoff::ZERO),
        (Work::Incr, _) => {
            let mut args = payload(i);
            args["key"] = client.keys().bench_counter().into();
            args["fail_attempts"] = fail.into();
            NewJob::new("incr", queue, args)
                .max_attempts(2)
                .backoff(Backoff::ZERO)
        }
    }
}

/// The readings `--profile` takes around a drain: Redis's, and the workers' CPU time.
struct Profiled(Option<(Reading, f64)>);

impl Profiled {
    async fn read(client: &QueueClient, fleet: &Fleet, on: bool) -> anyhow::Result<Self> {
        if !on {
            return Ok(Self(None));
        }
        Ok(Self(Some((
            bench_profile::reading(client).await?,
            fleet.cpu(),
        ))))
    }

    fn print(before: &Self, after: &Self, n: usize, processes: usize) -> anyhow::Result<()> {
        if let (Some((r0, w0)), Some((r1, w1))) = (&before.0, &after.0) {
            outln!("{}", bench_profile::line("redis, by command", r0, r1, n))?;
            outln!("{}", bench_profile::worker_line(*w0, *w1, n, processes))?;
        }
        Ok(())
    }
}

/// Enqueues one job per millisecond to an idle in-process worker and measures how long each
/// waits between the enqueue call and the start of its handler.
async fn trickle<S: Send + Sync + 'static>(
    app: &Engine<S>,
    client: &QueueClient,
    queues: &[String],
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let delays: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let observer = {
        let (sent, delays) = (sent.clone(), delays.clone());
        Arc::new(move |job: &crate::queue::Leased| {
            let at = sent.lock().ok().and_then(|mut m| m.remove(&job.id()));
            if let (Some(at), Ok(mut d)) = (at, delays.lock()) {
                d.push(at.elapsed());
            }
        })
    };
    let cfg = WorkerConfig {
        shutdown_timeout: Duration::from_secs(5),
        ..bench_config(app, &queues.join(","), args.concurrency)?
    };
    let registry = Arc::new(builtin::bench_registry::<()>()?);
    let worker = Worker::builder(client.clone(), registry, Arc::new(()))
        .config(cfg)
        .observer(observer)
        .build();
    for q in queues {
        client.resume(q).await?;
    }
    let stop = CancellationToken::new();
    let handle = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(async move { stop.cancelled().await }).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for i in 0..args.trickle {
        tick.tick().await;
        let id = ulid::Ulid::generate().to_string();
        if let Ok(mut m) = sent.lock() {
            m.insert(id.clone(), Instant::now());
        }
        client
            .enqueue(NewJob::new("noop", &queues[i % queues.len()], payload(i)).id(id))
            .await?;
    }
    let until = Instant::now() + Duration::from_secs(10);
    while delays.lock().map(|d| d.len()).unwrap_or(0) < args.trickle && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    handle.await.context("trickle worker")??;
    let mut d = delays.lock().map(|d| d.clone()).unwrap_or_default();
    d.sort();
    if d.is_empty() {
        bail!("no trickle job started");
    }
    let pct = |p: f64| d[((d.len() as f64 * p) as usize).min(d.len() - 1)];
    outln!(
        "trickle start delay:   p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} jobs, 1 per ms)",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        d[d.len() - 1].as_secs_f64() * 1e3,
        d.len()
    )?;
    Ok(())
}

/// Deletes the bench namespace's keys: each queue with every key under its prefix (the
/// workers' remembered replies and the trickle's unique keys included, which would otherwise
/// wait for their TTLs), then the registry keys and `extra` (the counter).
async fn cleanup(client: &QueueClient, queues: &[String], extra: Vec<String>) {
    for q in queues {
        if let Err(e) = client.remove_queue(q, true).await {
            errln!("warning: could not delete the bench queue {q}: {e}");
        }
    }
    let mut keys = vec![client.keys().queues(), client.keys().workers()];
    keys.extend(extra);
    let mut con = client.connection();
    // DEL of keys in many slots is split by the cluster client, one DEL per slot.
    let res: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query_async(&mut con).await;
    if let Err(e) = res {
        errln!("warning: could not delete the bench keys: {e}");
    }
}
