//! The `jobfleet` binary: parse the command line, load the configuration, run the command.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

// Workers allocate and free small buffers for every job; mimalloc measurably beats the system
// allocator under that pattern (see the bench figures in CHANGELOG.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    jobfleet::install_tls_provider();
    let cli = match jobfleet::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line that says what is wrong; `--help` has the rest.
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            say(format_args!("{} (see --help)", first.join(" ")));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(jobfleet::cli::run(cli)) {
        Ok(code) => code,
        // The reader of our output went away (`| head`): it has what it wanted, so the
        // command ends like other Unix tools, quietly and successfully.
        Err(e) if jobfleet::cli::is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole chain: what failed and why, each cause once. Every URL in
            // it is redacted, as a last guard for errors from libraries that name the URL they
            // failed on (an RPC URL carries a hosted node's key).
            let cause: &(dyn std::error::Error + 'static) = e.as_ref();
            let line = jobfleet::config::redact_urls(&jobfleet::jobs::error_chain(cause));
            say(format_args!("error: {line}"));
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr; a closed stderr is ignored, as there is nowhere left to say so (and
/// `eprintln!` would panic).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}
