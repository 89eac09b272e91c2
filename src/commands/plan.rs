//! `kiln plan`: print the layer plan of a build.

use kiln_compiler::context::StatCache;
use kiln_compiler::plan::render_tree;
use kiln_compiler::plan::NoImages;

use super::frontend;
use crate::cli::PlanArgs;

pub fn run(args: PlanArgs) -> miette::Result<()> {
    let (input, opts) = frontend::options(
        &args.frontend,
        &args.context,
        kiln_compiler::plan::RunNetwork::Default,
    )?;
    let lowered =
        kiln_compiler::frontend::plan_input(&input, &opts, &StatCache::default(), &NoImages)?
            .lowered;
    if args.json {
        let json = serde_json::to_string_pretty(&lowered.plan.to_json())
            .map_err(|e| miette::miette!("{e}"))?;
        println!("{json}");
    } else {
        print!("{}", render_tree(&lowered.plan));
    }
    Ok(())
}
