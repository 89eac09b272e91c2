use crate::cli::PlanArgs;

pub fn run(_args: PlanArgs) -> miette::Result<()> {
    miette::bail!("kiln plan is not implemented yet")
}
