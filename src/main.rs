//! The `kiln` command line. Only argument parsing and dispatch live here and in
//! `commands/`; all real work is in kiln-compiler and kiln-runtime.
//!
//! Exit codes: 0 success; 1 a failed build or a user error (bad Dockerfile, missing image, ...);
//! 2 bad usage (unknown flag, missing argument), as clap reports it.

mod cli;
mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            std::process::ExitCode::from(1)
        }
    }
}
