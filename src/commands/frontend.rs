//! Turning the shared front-end flags (-f, --build-arg, --target) into compiler inputs.

use kiln_compiler::dockerfile::BuildOptions;
use kiln_compiler::frontend::FrontendInput;
use miette::Result;

use crate::cli::FrontendArgs;

/// `K=V` pairs; a bare `K` takes the value from kiln's own environment, as docker does.
pub fn key_values(items: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .filter_map(|item| match item.split_once('=') {
            Some(("", _)) => Some(Err(miette::miette!(
                help = format!("write {flag} NAME=VALUE"),
                "invalid {flag} {item:?}: empty name"
            ))),
            Some((k, v)) => Some(Ok((k.to_string(), v.to_string()))),
            None => std::env::var(item).ok().map(|v| Ok((item.clone(), v))),
        })
        .collect()
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
