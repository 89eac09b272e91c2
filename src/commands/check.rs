use crate::cli::CheckArgs;

pub fn run(_args: CheckArgs) -> miette::Result<()> {
    miette::bail!("kiln check is not implemented yet")
}
