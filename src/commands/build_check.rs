//! `kiln build --check`: the build made twice from nothing, the second time in a temporary
//! store under varied host conditions, and the two images compared byte for byte.
//!
//! Order: plan and build in the user's store without the cache (the context fully hashed,
//! no stat cache); wait for the next wall-clock second; copy the base images into a fresh
//! store under the first store's tmp directory (a different path, removed on exit); plan and
//! build again there under `build::vary` (umask, CPUs, threads, host name) with independent
//! nodes started in reverse order; compare with `kiln_runtime::compare`. Equal: exit 0, the
//! image is the first build's (tags, `--iidfile`, `-o` as for a plain build). Different:
//! exit 1 with every difference, each file with the Dockerfile step that wrote it.
//! Must not: compare or vary anything itself (the runtime does), or tag or write `-o`/`--iidfile`
//! for builds that differ.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend::FrontendInput;
use kiln_compiler::plan::BuildOptions;
use kiln_compiler::plan::{Op, Plan};
use kiln_runtime::build::{self, vary, BuildSettings, Built, StartOrder};
use kiln_runtime::compare::{self, Side};
use kiln_runtime::image::ImageName;
use kiln_runtime::store::Store;
use miette::Result;

use super::diff::{render, Which};
use super::frontend::{self, key_values};
use super::progress::Printer;
use crate::cli::{BuildArgs, Progress};

/// Exit status when the two builds differ.
const NOT_REPRODUCIBLE: u8 = 1;

pub fn run(root: Option<PathBuf>, args: BuildArgs) -> Result<ExitCode> {
    if args.explain || args.depfile.is_some() || args.provenance.is_some() {
        miette::bail!(
            help = "run kiln build with them after the check passes",
            "--check does not take --explain, --depfile or --provenance"
        );
    }
    if args.frontend.file.as_deref() == Some(Path::new("-")) {
        miette::bail!(
            help = "write the Dockerfile to a file and pass -f FILE",
            "--check reads the Dockerfile twice, so it cannot come from standard input"
        );
    }
    let tags = args
        .tags
        .iter()
        .map(|t| ImageName::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let output = args
        .output
        .as_deref()
        .map(super::build::parse_output)
        .transpose()?;
    let network = super::build::run_network(&args.network)?;
    let store = Store::open(kiln_runtime::store::default_root(root)?)?;
    let (input, mut opts) = frontend::options(&args.frontend, &args.context, network)?;
    opts.labels = key_values(&args.labels, "--label")?;
    let dockerfile = match &args.frontend.file {
        Some(f) => f.clone(),
        None => args.context.join("Dockerfile"),
    };
    let printer = Printer::new(args.progress);
    // Neither build tags anything: the first build's image is tagged only when the builds
    // agree and every output is written, as a plain build tags only after its outputs.
    let settings = |order| -> Result<BuildSettings> {
        Ok(BuildSettings {
            secrets: super::build::secrets(&args.secrets)?,
            no_cache: true,
            squash: args.squash,
            tags: Vec::new(),
            order,
            cache_from: Vec::new(),
        })
    };
    let runner = build::SandboxRunner {
        launcher: kiln_runtime::sandbox::Launcher::current()?,
    };

    eprintln!(
        "#check: first build, no cache, store {}",
        store.root().display()
    );
    let first = one_build(
        &store,
        &input,
        &opts,
        &settings(StartOrder::Plan)?,
        &runner,
        &printer,
    )?;
    vary::wait_for_next_second();
    let scratch = store.scratch_dir()?;
    let second_store = Store::open(scratch.path().join("store"))?;
    copy_base_images(&store, &second_store, &first.0)?;
    eprintln!(
        "#check: second build, no cache, store {}, independent steps in reverse order",
        second_store.root().display()
    );
    let second_settings = settings(StartOrder::Reversed)?;
    let (second, variation) = vary::run_varied(|| {
        one_build(
            &second_store,
            &input,
            &opts,
            &second_settings,
            &runner,
            &printer,
        )
    })?;
    let second = second?;
    eprintln!(
        "#check: varied: rayon threads {} -> {}, CPUs {} -> {}, umask {} -> {}{}",
        variation.threads.0,
        variation.threads.1,
        variation.cpus.0,
        variation.cpus.1,
        variation.umask.0,
        variation.umask.1,
        variation
            .hostname
            .as_ref()
            .map(|h| format!(", host name -> {h}"))
            .unwrap_or_default()
    );
    for note in &variation.not_varied {
        eprintln!("#check: not varied: {note}");
    }

    let (plan_a, built_a) = &first;
    let (plan_b, built_b) = &second;
    let diff = compare::diff_images(
        Side {
            store: &store,
            image: &built_a.image,
        },
        Side {
            store: &second_store,
            image: &built_b.image,
        },
    )?;
    if args.progress == Progress::Json {
        let event = serde_json::json!({
            "event": "check",
            "reproducible": diff.is_equal(),
            "variation": variation,
            "diff": diff,
        });
        println!("{event}");
    }
    if !diff.is_equal() {
        let step_of = |which: Which, layer: usize| {
            let (plan, built) = match which {
                Which::A => (plan_a, built_a),
                Which::B => (plan_b, built_b),
            };
            step_name(plan, built, layer, &dockerfile)
        };
        eprintln!(
            "#check: NOT reproducible: the first build (A) made {}, the second (B) {}",
            built_a.image.id(),
            built_b.image.id()
        );
        eprint!("{}", render(&diff, &step_of));
        return Ok(ExitCode::from(NOT_REPRODUCIBLE));
    }

    let id = built_a.image.id().to_string();
    eprintln!("#check: reproducible: both builds made {id}");
    if let Some(out) = output {
        super::build::write_output(&store, &built_a.image, &tags, &out)?;
    }
    if let Some(path) = &args.iidfile {
        super::build::write_iidfile(path, &id)?;
    }
    for tag in &tags {
        store.set_ref(tag, &built_a.image.manifest_digest)?;
    }
    let tag_names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    printer.finish(&id, &tag_names, built_a.steps, built_a.cached);
    Ok(ExitCode::SUCCESS)
}

/// Plans (hashing the whole context: no stat cache) and builds in `store`.
fn one_build(
    store: &Store,
    input: &FrontendInput,
    opts: &BuildOptions,
    settings: &BuildSettings,
    runner: &build::SandboxRunner,
    printer: &Printer,
) -> Result<(Plan, Built)> {
    let lowered =
        kiln_compiler::frontend::plan_input(input, opts, &StatCache::default(), store)?.lowered;
    let built = build::build(store, &lowered.plan, settings, runner, printer)?;
    Ok((lowered.plan, built))
}

/// The base images of the plan, copied as they are into the second build's store.
fn copy_base_images(from: &Store, to: &Store, plan: &Plan) -> Result<()> {
    for node in &plan.nodes {
        if let Op::BaseImage {
            reference, digest, ..
        } = &node.op
        {
            let pinned = digest.as_deref().map(|d| format!("{reference}@{d}"));
            let image = match pinned.as_deref().map(|p| from.image(p)) {
                Some(Ok(image)) => image,
                _ => from.image(reference)?,
            };
            to.copy_image_from(from, &image)?;
        }
    }
    Ok(())
}

/// `Dockerfile:7 RUN date > /stamp (stage gen)` for the plan node that made `layer`.
fn step_name(plan: &Plan, built: &Built, layer: usize, dockerfile: &Path) -> Option<String> {
    match built.layer_nodes.get(layer).copied().flatten() {
        Some(id) => {
            let origin = &plan.node(id).origin;
            let stage = if origin.stage.is_empty() {
                String::new()
            } else {
                format!(" (stage {})", origin.stage)
            };
            Some(format!(
                "{}:{} {}{stage}",
                dockerfile.display(),
                origin.line,
                origin.text
            ))
        }
        None if layer < built.layer_nodes.len() => {
            Some("no single step: a base image layer, or the one --squash makes".into())
        }
        None => None,
    }
}
