//! One module per command; each turns parsed arguments into library calls and prints.

mod build;
mod build_check;
mod check;
mod compose;
mod containers;
mod diff;
mod docs;
mod explain;
mod fmt;
mod frontend;
mod images;
mod network;
mod parse;
mod plan;
mod progress;
mod provenance;
mod registry;
mod resources;
pub(crate) mod run;
mod sigproxy;
mod template;
mod transfer;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs a command. Most end with success or an error; `diff` and `build --check` also end
/// with status 1 for "different" (and `diff` with 2 for an error).
pub fn run(cli: Cli) -> miette::Result<ExitCode> {
    let root = cli.root;
    let done = |r: miette::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Build(a) if a.check => build_check::run(root, a),
        Command::Diff(a) if a.b.is_none() => done(containers::diff(root, a)),
        Command::Diff(a) => Ok(diff::run(root, a)),
        Command::VerifyProvenance(a) => Ok(provenance::verify(root, a)),
        Command::Explain(a) => done(explain::run(root, a)),
        Command::Parse(a) => done(parse::run(a)),
        Command::Check(a) => done(check::run(a)),
        Command::Fmt(a) => done(fmt::run(a)),
        Command::Completion(a) => done(docs::completion(a)),
        Command::Man(a) => done(docs::man(a)),
        Command::Plan(a) => done(plan::run(a)),
        Command::Build(a) => done(build::run(root, a)),
        Command::Save(a) => done(transfer::save(root, a)),
        Command::Load(a) => done(transfer::load(root, a)),
        Command::Import(a) => done(transfer::import(root, a)),
        Command::Images(a) => done(images::images(root, a)),
        Command::Inspect(a) => done(images::inspect(root, a)),
        Command::History(a) => done(images::history(root, a)),
        Command::Tag(a) => done(images::tag(root, a)),
        Command::Rmi(a) => done(images::rmi(root, a)),
        Command::Prune(a) => done(images::prune(root, a)),
        Command::Image(c) => done(images::image(root, c)),
        Command::Version => done(images::version()),
        // As `docker run`: kiln's own failure to run the container is status 125 (the
        // payload's status is the run's otherwise; 126 and 127 when it cannot be executed).
        Command::Run(a) => Ok(match run::run(root, a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(report) => {
                eprintln!("{report:?}");
                ExitCode::from(125)
            }
        }),
        Command::Volume(c) => done(run::volume(root, c)),
        Command::Network(c) => done(network::network(root, c)),
        Command::Compose(a) => compose::compose(root, a),
        Command::Rm(a) => done(run::rm(root, a)),
        Command::Create(a) => done(run::create(root, a)),
        Command::Start(a) => containers::start(root, a),
        Command::Stop(a) => done(containers::stop(root, a)),
        Command::Restart(a) => done(containers::restart(root, a)),
        Command::Kill(a) => done(containers::kill(root, a)),
        Command::Attach(a) => containers::attach(root, a),
        Command::Wait(a) => containers::wait(root, a),
        Command::Ps(a) => done(containers::ps(root, a)),
        Command::Logs(a) => done(containers::logs(root, a)),
        Command::Exec(a) => containers::exec(root, a),
        Command::Cp(a) => done(containers::cp(root, a)),
        Command::Commit(a) => done(containers::commit(root, a)),
        Command::Rename(a) => done(containers::rename(root, a)),
        Command::Port(a) => done(containers::port(root, a)),
        Command::Top(a) => done(containers::top(root, a)),
        Command::Pause(a) => done(resources::pause(root, a, true)),
        Command::Unpause(a) => done(resources::pause(root, a, false)),
        Command::Stats(a) => done(resources::stats(root, a)),
        Command::Container(c) => done(containers::container(root, c)),
        Command::Push(a) => done(registry::push(root, a)),
        Command::Pull(a) => done(registry::pull(root, a)),
        Command::Login(a) => done(registry::login(a)),
        Command::Logout(a) => done(registry::logout(a)),
        Command::Search(a) => done(registry::search(a)),
    }
}
