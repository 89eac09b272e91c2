//! The `kiln` command line. Only argument parsing and dispatch live here and in
//! `commands/`; all real work is in kiln-compiler and kiln-runtime.
//!
//! Exit codes: 0 success; 1 a failed build or a user error (bad Dockerfile, missing image, ...);
//! 2 bad usage (unknown flag, missing argument), as clap reports it; `kiln run` ends with its
//! container's status, or 125 when kiln could not run it (as docker). `kiln diff`: 0 equal,
//! 1 different, 2 error; `kiln build --check`: 1 also when the two builds differ.

mod cli;
mod commands;
mod compose;
#[cfg(test)]
mod seed_commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A container's monitor is kiln re-executed: it must start before anything else runs.
    kiln_runtime::sandbox::init::run_if_requested();
    kiln_runtime::container::supervisor::run_if_requested();
    // Like other Unix tools, end quietly when a reader such as `head` closes our output,
    // instead of panicking on the write.
    // SAFETY: setting a signal disposition to its default before any thread exists.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    // Errors read on a terminal wrap at its width; errors written to a log or a pipe keep
    // each sentence on one line, so that grep finds a message however long its paths are.
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let _ = miette::set_hook(Box::new(|_| {
            Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
        }));
    }
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            std::process::ExitCode::from(1)
        }
    }
}
