//! Kinds that come with the engine, for any state: `noop` (does nothing: smoke tests and the
//! benchmark's drain), `sleep` (sleeps, then succeeds, fails or panics as asked: crash
//! tests and the benchmark's failing drain) and `incr` (one Redis `INCR`: the benchmark's
//! small real job). An application registers them like its own
//! kinds, with specs in its folder; the benchmark uses them with the specs written here.

mod incr;
mod noop;
mod sleep;

pub use incr::Incr;
pub use noop::Noop;
pub use sleep::Sleep;

use crate::job::{HandlerSet, JobSpec, Registry, RegistryError, Specs};

/// The benchmark's policy: a short timeout and three attempts for `noop`, two and no backoff
/// for `sleep` and `incr`, all on the `bench` queue.
const BENCH_SPECS: [(&str, &str); 3] = [
    (
        "noop",
        "queue = \"bench\"\ntimeout = \"30s\"\n[retry]\nmax_attempts = 3\nbase = \"1s\"\ncap = \"1m\"\n",
    ),
    (
        "sleep",
        "queue = \"bench\"\ntimeout = \"30s\"\n[retry]\nmax_attempts = 2\nbase = \"0s\"\ncap = \"0s\"\n",
    ),
    (
        "incr",
        "queue = \"bench\"\ntimeout = \"30s\"\n[retry]\nmax_attempts = 2\nbase = \"0s\"\ncap = \"0s\"\n",
    ),
];

/// `noop`, `sleep` and `incr` with the benchmark's specs, for any state.
pub fn bench_registry<S: Send + Sync + 'static>() -> Result<Registry<S>, RegistryError> {
    let specs = BENCH_SPECS
        .iter()
        .map(|(kind, text)| JobSpec::parse(kind, text))
        .collect::<Result<Vec<_>, _>>()?;
    let handlers = HandlerSet::new()
        .register::<Noop>()
        .register::<Sleep>()
        .register::<Incr>();
    Registry::pair(
        Specs::from_specs(specs)?,
        handlers,
        "(the benchmark's specs)",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bench_specs_pair_with_the_kinds() {
        let reg = super::bench_registry::<()>().unwrap();
        assert_eq!(reg.spec("sleep").unwrap().retry.max_attempts, 2);
        assert_eq!(reg.spec("noop").unwrap().queue, "bench");
    }
}
