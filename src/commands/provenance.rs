//! `kiln build --provenance` (the statement of a build) and `kiln verify-provenance` (the
//! build made again from a statement's recorded inputs, in a temporary store).
//!
//! Verification order: read the statement; copy the recorded base images, by digest, from
//! the user's store into a temporary one under its tmp directory, tagged as the Dockerfile
//! names them; plan there; compare the Dockerfile's and the context's digests with the
//! recorded ones (a difference stops it, naming which); build without the cache; compare the
//! manifest digest with the statement's subject. Exit 0 equal, 1 different, 2 error.
//! Must not: write into the user's store (the temporary store is removed on exit).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend::{FrontendInput, Parsed};
use kiln_compiler::plan::BuildOptions;
use kiln_compiler::plan::Plan;
use kiln_runtime::build::{self, BuildSettings};
use kiln_runtime::image::ImageName;
use kiln_runtime::oci::Digest;
use kiln_runtime::provenance::{
    self, ExternalParameters, Statement, BUILD_TYPE, PREDICATE_TYPE, ROLE_BASE_IMAGE, ROLE_CONTEXT,
    ROLE_DOCKERFILE, STATEMENT_TYPE,
};
use kiln_runtime::store::Store;
use miette::Result;

use super::progress::Printer;
use crate::cli::{BuildArgs, VerifyProvenanceArgs};

const DIFFERENT: u8 = 1;
const ERROR: u8 = 2;

/// sha256 of the build file: the Dockerfile's text as parsed, else the kiln program's bytes
/// (its imports are not covered).
pub fn build_file_digest(input: &FrontendInput, parsed: Option<&Parsed>) -> Result<Digest> {
    if let Some(p) = parsed {
        return Ok(Digest::of_bytes(p.source.text.as_bytes()));
    }
    let path = super::explain::build_file(input);
    let bytes =
        std::fs::read(&path).map_err(|e| miette::miette!("cannot read {}: {e}", path.display()))?;
    Ok(Digest::of_bytes(&bytes))
}

/// The statement of a finished build.
pub fn statement_of(
    input: &FrontendInput,
    args: &BuildArgs,
    opts: &BuildOptions,
    build_file: &Digest,
    plan: &Plan,
    manifest: &Digest,
    tags: &[String],
) -> Statement {
    let params = ExternalParameters {
        context: input.context.display().to_string(),
        dockerfile: input.dockerfile.as_ref().map(|p| p.display().to_string()),
        target: opts.target.clone(),
        build_args: opts.build_args.iter().cloned().collect(),
        labels: opts.labels.iter().cloned().collect(),
        network: args.network.clone(),
        squash: args.squash,
        source_date_epoch: opts.source_date_epoch,
    };
    provenance::statement(
        plan,
        manifest,
        tags,
        build_file,
        params,
        env!("CARGO_PKG_VERSION"),
    )
}

/// `kiln verify-provenance`.
pub fn verify(root: Option<PathBuf>, args: VerifyProvenanceArgs) -> ExitCode {
    match verify_inner(root, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(DIFFERENT),
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(ERROR)
        }
    }
}

fn read_statement(path: &std::path::Path) -> Result<Statement> {
    let bytes =
        std::fs::read(path).map_err(|e| miette::miette!("cannot read {}: {e}", path.display()))?;
    let st: Statement = serde_json::from_slice(&bytes).map_err(|e| {
        miette::miette!(
            help = "kiln verify-provenance reads the files kiln build --provenance writes",
            "{} is not a provenance statement kiln reads: {e}",
            path.display()
        )
    })?;
    if st.type_ != STATEMENT_TYPE
        || st.predicate_type != PREDICATE_TYPE
        || st.predicate.build_definition.build_type != BUILD_TYPE
    {
        miette::bail!(
            help = format!("kiln verifies {STATEMENT_TYPE} statements with a {PREDICATE_TYPE} predicate of build type {BUILD_TYPE}"),
            "{} is a {} / {} statement of build type {}",
            path.display(),
            st.type_,
            st.predicate_type,
            st.predicate.build_definition.build_type
        );
    }
    Ok(st)
}

fn verify_inner(root: Option<PathBuf>, args: VerifyProvenanceArgs) -> Result<bool> {
    let st = read_statement(&args.provenance)?;
    let Some(subject) = st.subject_digest() else {
        miette::bail!("{} names no subject digest", args.provenance.display());
    };
    let params = &st.predicate.build_definition.external_parameters;
    let input = FrontendInput {
        context: args
            .context
            .clone()
            .unwrap_or_else(|| PathBuf::from(&params.context)),
        dockerfile: args
            .dockerfile
            .clone()
            .or_else(|| params.dockerfile.as_ref().map(PathBuf::from)),
    };
    let store = Store::open(kiln_runtime::store::default_root(root)?)?;
    let scratch = store.scratch_dir()?;
    let temp = Store::open(scratch.path().join("store"))?;
    for (name, digest) in st.dependency(ROLE_BASE_IMAGE) {
        let (Some(reference), Some(digest)) = (name, digest) else {
            continue;
        };
        let pinned = format!("{reference}@{digest}");
        let image = store
            .image(&digest)
            .or_else(|_| store.image(&pinned))
            .map_err(|e| {
                miette::miette!(
                    help = format!("pull or load it first: kiln pull {pinned}"),
                    "the base image {pinned} is not in the store: {e}"
                )
            })?;
        temp.copy_image_from(&store, &image)?;
        temp.set_ref(&ImageName::parse(reference)?, &image.manifest_digest)?;
    }
    let opts = BuildOptions {
        build_args: params
            .build_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        target: params.target.clone(),
        source_date_epoch: params.source_date_epoch,
        network: super::build::run_network(&params.network)?,
        labels: params
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        skip_context: false,
    };
    let kiln_compiler::frontend::Planned {
        lowered, parsed, ..
    } = kiln_compiler::frontend::plan_input(&input, &opts, &StatCache::default(), &temp)?;
    let dockerfile = build_file_digest(&input, parsed.as_ref())?.to_string();
    let context = provenance::context_digest(&lowered.plan).to_string();
    let recorded = |role| st.dependency(role).first().and_then(|(_, d)| d.clone());
    let mut inputs_match = true;
    for (what, role, now, path) in [
        (
            "Dockerfile",
            ROLE_DOCKERFILE,
            &dockerfile,
            super::explain::build_file(&input),
        ),
        ("context", ROLE_CONTEXT, &context, input.context.clone()),
    ] {
        let want = recorded(role);
        if want.as_deref() != Some(now.as_str()) {
            eprintln!(
                "verify-provenance: the {what} differs: {} has {now}, the provenance records {}",
                path.display(),
                want.as_deref().unwrap_or("none")
            );
            inputs_match = false;
        }
    }
    let bases: BTreeMap<String, String> =
        provenance::base_images(&lowered.plan).into_iter().collect();
    for (name, digest) in st.dependency(ROLE_BASE_IMAGE) {
        if let (Some(n), Some(d)) = (name, digest) {
            if bases.get(n) != Some(&d) {
                eprintln!("verify-provenance: the base image {n} resolved to {:?}, the provenance records {d}", bases.get(n));
                inputs_match = false;
            }
        }
    }
    if !inputs_match {
        eprintln!("verify-provenance: not rebuilt: the inputs are not the recorded ones");
        return Ok(false);
    }
    let settings = BuildSettings {
        secrets: super::build::secrets(&args.secrets)?,
        no_cache: true,
        squash: params.squash,
        tags: Vec::new(),
        order: build::StartOrder::Plan,
        cache_from: Vec::new(),
    };
    let runner = build::SandboxRunner {
        launcher: kiln_runtime::sandbox::Launcher::current()?,
    };
    let printer = Printer::new(args.progress);
    let built = build::build(&temp, &lowered.plan, &settings, &runner, &printer)?;
    let got = built.image.manifest_digest.to_string();
    if got == subject {
        eprintln!("verify-provenance: verified: the rebuild made {got}, as recorded");
        Ok(true)
    } else {
        eprintln!(
            "verify-provenance: MISMATCH: the provenance records {subject}, the rebuild made {got}"
        );
        Ok(false)
    }
}
