//! `kiln check`: validate a Dockerfile and report BuildKit's build checks as warnings; a
//! `# check=error=true` directive makes findings an error (exit 1).
//! The ignore file for CopyIgnoredFile is looked up as for a build whose context is the
//! Dockerfile's directory (none for a Dockerfile read from standard input).

use kiln_compiler::dockerfile::checks::CheckWarning;
use kiln_compiler::dockerfile::lower::lower_all_stages;
use kiln_compiler::frontend::{self, FrontendInput};
use kiln_compiler::plan::BuildOptions;

use super::frontend::key_values;
use crate::cli::CheckArgs;

pub fn run(args: CheckArgs) -> miette::Result<()> {
    let parsed = frontend::parse_file(&args.file)?;
    let opts = BuildOptions {
        build_args: key_values(&args.build_args, "--build-arg")?,
        ..Default::default()
    };
    let ignore = if args.file.as_os_str() == "-" {
        None
    } else {
        let context = match args.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        Some(frontend::read_ignore(&FrontendInput {
            context,
            dockerfile: Some(args.file.clone()),
        })?)
    };
    let lowered =
        lower_all_stages(&parsed.tree, &parsed.source.text, &opts).map_err(|e| parsed.report(e))?;
    let report = frontend::check(&parsed, ignore.as_ref(), &opts.build_args, lowered)?;
    for w in &report.warnings {
        eprintln!("{:?}", parsed.report(CheckWarning::from(w.clone())));
    }
    let n = report.warnings.len();
    eprintln!(
        "{}: {} warning{}",
        parsed.source.name,
        n,
        if n == 1 { "" } else { "s" }
    );
    if let Some(violation) = report.violation() {
        return Err(parsed.report(violation));
    }
    Ok(())
}
