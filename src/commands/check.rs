//! `kiln check`: validate a Dockerfile and report BuildKit's build checks as warnings; a
//! `# check=error=true` directive makes findings an error (exit 1).
//! The ignore file for CopyIgnoredFile is looked up as for a build whose context is the
//! Dockerfile's directory (none for a Dockerfile read from standard input).
//! For a kiln program: load it with its imports and check all of it (names, types,
//! arguments), every error at once; nothing is planned or built.

use kiln_compiler::dockerfile::checks::CheckWarning;
use kiln_compiler::dockerfile::lower::lower_all_stages;
use kiln_compiler::frontend::{self, FrontendInput};
use kiln_compiler::plan::BuildOptions;

use super::frontend::key_values;
use crate::cli::CheckArgs;

pub fn run(args: CheckArgs) -> miette::Result<()> {
    let file = args.file.clone().unwrap_or_else(|| {
        let program = std::path::PathBuf::from("build.kiln");
        if program.is_file() {
            program
        } else {
            std::path::PathBuf::from("Dockerfile")
        }
    });
    let opts = BuildOptions {
        build_args: key_values(&args.build_args, "--build-arg")?,
        ..Default::default()
    };
    if kiln_compiler::kiln::is_program(&file) {
        return check_program(&file, &opts);
    }
    let parsed = frontend::parse_file(&file)?;
    let ignore = if file.as_os_str() == "-" {
        None
    } else {
        let context = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        Some(frontend::read_ignore(&FrontendInput {
            context,
            dockerfile: Some(file.clone()),
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

/// `kiln check` of a kiln program: every check error of every file at once; then each
/// export is lowered without the context or the store, which finds the errors only
/// evaluation can (bad modes, ports, mount targets) and whether the target is hermetic.
fn check_program(path: &std::path::Path, opts: &BuildOptions) -> miette::Result<()> {
    let program = kiln_compiler::kiln::check_file(path).map_err(miette::Report::new)?;
    let targets =
        kiln_compiler::kiln::lower::check_exports(&program, opts).map_err(miette::Report::new)?;
    let names: Vec<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!(
        "{}: ok ({} file{}, exported target{}: {})",
        program.files[0].name,
        program.files.len(),
        if program.files.len() == 1 { "" } else { "s" },
        if names.len() == 1 { "" } else { "s" },
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    );
    for (name, reasons) in &targets {
        if reasons.is_empty() {
            eprintln!("  {name}: hermetic");
        } else {
            eprintln!("  {name}: not hermetic: {}", reasons.join("; "));
        }
    }
    Ok(())
}
