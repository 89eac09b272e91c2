//! One module per command; each turns parsed arguments into library calls and prints.

mod build;
mod check;
mod frontend;
mod images;
mod parse;
mod plan;
mod progress;
mod registry;
mod run;
mod transfer;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> miette::Result<()> {
    let root = cli.root;
    match cli.command {
        Command::Parse(a) => parse::run(a),
        Command::Check(a) => check::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Build(a) => build::run(root, a),
        Command::Save(a) => transfer::save(root, a),
        Command::Load(a) => transfer::load(root, a),
        Command::Import(a) => transfer::import(root, a),
        Command::Images(a) => images::images(root, a),
        Command::Inspect(a) => images::inspect(root, a),
        Command::History(a) => images::history(root, a),
        Command::Tag(a) => images::tag(root, a),
        Command::Rmi(a) => images::rmi(root, a),
        Command::Prune(a) => images::prune(root, a),
        Command::Run(a) => run::run(root, a),
        Command::Volume(c) => run::volume(root, c),
        Command::Rm(a) => run::rm(root, a),
        Command::Push(a) => registry::push(root, a),
        Command::Pull(a) => registry::pull(root, a),
        Command::Login(a) => registry::login(a),
        Command::Logout(a) => registry::logout(a),
    }
}
