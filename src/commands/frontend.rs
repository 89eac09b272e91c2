//! Turning the shared front-end flags (-f, --build-arg, --target) into compiler inputs.

use kiln_compiler::frontend::FrontendInput;
use kiln_compiler::plan::BuildOptions;
use miette::Result;

use crate::cli::FrontendArgs;

/// `K=V` pairs; a bare `K` takes the value from kiln's own environment, as docker does.
pub fn key_values(items: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in items {
        match item.split_once('=') {
            Some(("", _)) => miette::bail!(
                help = format!("write {flag} NAME=VALUE"),
                "invalid {flag} {item:?}: empty name"
            ),
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None if item.is_empty() => miette::bail!(
                help = format!("write {flag} NAME=VALUE"),
                "invalid {flag} \"\": empty name"
            ),
            // Docker's rules for a bare name: a build argument takes its value from the
            // environment (and is left out when the variable is unset); a label gets an
            // empty value.
            None if flag == "--build-arg" => match std::env::var(item) {
                Ok(v) => {
                    eprintln!("note: {flag} {item}: value taken from the environment variable {item}");
                    out.push((item.clone(), v));
                }
                Err(_) => eprintln!(
                    "note: {flag} {item}: the environment variable {item} is not set, so the build argument is not passed (write {item}=VALUE to give a value)"
                ),
            },
            None => {
                eprintln!("note: {flag} {item}: no `=`, so {item} gets an empty value, as docker gives it");
                out.push((item.clone(), String::new()));
            }
        }
    }
    Ok(out)
}

pub fn options(
    args: &FrontendArgs,
    context: &std::path::Path,
    network: kiln_compiler::plan::RunNetwork,
) -> Result<(FrontendInput, BuildOptions)> {
    let build_args = key_values(&args.build_args, "--build-arg")?;
    let opts = BuildOptions {
        source_date_epoch: kiln_compiler::source_date_epoch::source_date_epoch(&build_args)?,
        build_args,
        target: args.target.clone(),
        network,
        labels: Vec::new(),
        skip_context: false,
    };
    let input = FrontendInput {
        context: context.to_path_buf(),
        dockerfile: args.file.clone(),
    };
    Ok((input, opts))
}
