//! The `jobfleet` binary: parse the command line, load the configuration, run the command.

use std::process::ExitCode;

// Workers allocate and free small buffers for every job; mimalloc measurably beats the system
// allocator under that pattern (see the bench figures in CHANGELOG.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    jobfleet::install_tls_provider();
    match jobfleet_engine::cli::parse::<jobfleet::cli::Cli>() {
        Ok(cli) => jobfleet_engine::cli::block_on(jobfleet::cli::run(cli)),
        Err(code) => code,
    }
}
