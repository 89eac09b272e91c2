use std::path::PathBuf;

use crate::cli::BuildArgs;

pub fn run(_root: Option<PathBuf>, _args: BuildArgs) -> miette::Result<()> {
    miette::bail!("kiln build is not implemented yet")
}
