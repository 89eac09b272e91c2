use crate::cli::ParseArgs;

pub fn run(_args: ParseArgs) -> miette::Result<()> {
    miette::bail!("kiln parse is not implemented yet")
}
