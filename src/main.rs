//! The `k0slab` binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = k0slab::cli::Cli::parse();
    let env = k0slab::environment::Environment::from_process();
    match k0slab::run(cli, &env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !matches!(err, k0slab::Error::Exit(_)) {
                eprintln!("error: {err}");
            }
            ExitCode::from(k0slab::exit_code(&err))
        }
    }
}
