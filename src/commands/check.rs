//! `kiln check`: validate a Dockerfile and report BuildKit's build checks as warnings.

use kiln_compiler::dockerfile::checks::{self, CheckWarning};
use kiln_compiler::dockerfile::{lower::lower_all_stages, BuildOptions};

use super::frontend::key_values;
use crate::cli::CheckArgs;

pub fn run(args: CheckArgs) -> miette::Result<()> {
    let parsed = kiln_compiler::frontend::parse_file(&args.file)?;
    let opts = BuildOptions {
        build_args: key_values(&args.build_args, "--build-arg")?,
        ..Default::default()
    };
    let mut warnings = checks::lint(&parsed.tree, &parsed.source.text);
    let lowered =
        lower_all_stages(&parsed.tree, &parsed.source.text, &opts).map_err(|e| parsed.report(e))?;
    warnings.extend(lowered);
    warnings.sort_by_key(|w| w.span.start);
    warnings.dedup();
    for w in &warnings {
        eprintln!("{:?}", parsed.report(CheckWarning::from(w.clone())));
    }
    let n = warnings.len();
    eprintln!(
        "{}: {} warning{}",
        parsed.source.name,
        n,
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}
