//! `kiln build`: plan, run, name the image, optionally write it out.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_compiler::context::StatCache;
use kiln_runtime::build::{self, BuildSettings};
use kiln_runtime::image::ImageName;
use kiln_runtime::oci::Compression;
use kiln_runtime::shared_cache::{self, CacheLocation, ExportMode, ImportedCache};
use kiln_runtime::store::Store;
use miette::Result;

use super::frontend::{self, key_values};
use super::progress::Printer;
use crate::cli::BuildArgs;

pub fn run(root: Option<PathBuf>, args: BuildArgs) -> Result<()> {
    let tags = args
        .tags
        .iter()
        .map(|t| ImageName::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let output = args.output.as_deref().map(parse_output).transpose()?;
    let cache_to = args
        .cache_to
        .iter()
        .map(|s| parse_cache_spec(s, CacheDirection::To))
        .collect::<Result<Vec<_>>>()?;
    let cache_from = args
        .cache_from
        .iter()
        .map(|s| parse_cache_spec(s, CacheDirection::From).map(|(location, _)| location))
        .collect::<Result<Vec<_>>>()?;
    let network = run_network(&args.network)?;
    let store = Store::open(kiln_runtime::store::default_root(root)?)?;
    let (input, mut opts) = frontend::options(&args.frontend, &args.context, network)?;
    opts.labels = key_values(&args.labels, "--label")?;

    let state_name = stat_cache_name(&args.context);
    let stat_cache = store
        .read_state(&state_name)?
        .map(|b| StatCache::from_bytes(&b))
        .unwrap_or_default();
    // Base images missing from the store (every one with --pull) come from their registry.
    let registry_options = super::registry::registry_options(&args.registry);
    let pull_printer = super::progress::TransferPrinter::new("Downloading", false);
    let resolver = kiln_runtime::registry::PullingResolver::new(
        &store,
        &registry_options,
        args.pull,
        &pull_printer,
    );
    let planned = kiln_compiler::frontend::plan_input(&input, &opts, &stat_cache, &resolver);
    let mut failures = resolver.failures();
    if planned.is_err() {
        // The planner says which FROM it could not resolve; the registry says why.
        for (reference, e) in failures.drain(..) {
            eprintln!("pulling {reference} failed:\n{:?}", miette::Report::new(e));
        }
    }
    // --pull must reach the registry: a store copy is not an answer.
    if let Some((_, e)) = failures.pop().filter(|_| args.pull) {
        return Err(e.into());
    }
    let kiln_compiler::frontend::Planned {
        lowered,
        parsed,
        checks,
    } = planned?;
    // The build checks are the Dockerfile's, or those of the Dockerfiles a kiln program's
    // dockerfile() calls read (the program itself was checked whole already).
    let own = match &parsed {
        Some(parsed) => {
            let ignore = kiln_compiler::frontend::read_ignore(&input)?;
            let report = kiln_compiler::frontend::check(
                parsed,
                Some(&ignore),
                &opts.build_args,
                lowered.warnings.clone(),
            )?;
            Some((parsed, report))
        }
        None => None,
    };
    let all: Vec<_> = own
        .iter()
        .map(|(p, r)| (*p, r))
        .chain(checks.iter().map(|(p, r)| (p, r)))
        .collect();
    for (parsed, report) in &all {
        for w in &report.warnings {
            let diag = kiln_compiler::dockerfile::checks::CheckWarning::from(w.clone());
            eprintln!("{:?}", parsed.report(diag));
        }
    }
    // BuildKit fails a build whose Dockerfile sets `# check=error=true` before running it.
    for (parsed, report) in &all {
        if let Some(violation) = report.violation() {
            return Err(parsed.report(violation));
        }
    }
    if args.hermetic {
        refuse_impure(&lowered.plan)?;
    }
    // The depfile's target, checked before anything is built.
    let dep_target = match (&args.depfile, &args.iidfile, &output) {
        (None, ..) => None,
        (Some(_), Some(iid), _) => Some(iid.clone()),
        (Some(_), None, Some(out)) => Some(out.dest.clone()),
        (Some(_), None, None) => return Err(super::explain::DepfileError::NoTarget.into()),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // This build's record; with --explain, the reasons against the last one of the target.
    let target_id = super::explain::target_id(&input, opts.target.as_deref());
    let previous = store.last_records(&target_id, 1)?.pop();
    let (mut record, chunks) = kiln_compiler::plan::record::from_plan(
        &lowered.plan,
        target_id,
        now.max(0) as u64,
        previous.as_ref(),
    );
    let mut printer = Printer::new(args.progress);
    if args.quiet {
        printer = printer.quiet();
    }
    let imported = import_caches(&cache_from, &registry_options);
    if args.explain {
        let reasons = super::explain::reasons(&store, previous.as_ref(), &record, &chunks)?;
        printer = printer.with_reasons(reasons);
    }
    // The image is tagged only once every output is written: a build's outputs are all
    // there, or none is.
    let settings = BuildSettings {
        secrets: secrets(&args.secrets)?,
        no_cache: args.no_cache,
        squash: args.squash,
        tags: Vec::new(),
        order: build::StartOrder::Plan,
        cache_from: imported,
    };
    let runner = build::SandboxRunner {
        launcher: kiln_runtime::sandbox::Launcher::current()?,
    };
    let built = build::build(&store, &lowered.plan, &settings, &runner, &printer)?;
    store.write_state(
        &state_name,
        &lowered.plan.context.to_stat_cache(now).to_bytes(),
    )?;
    let cached = printer.cached_steps();
    for (i, n) in record.nodes.iter_mut().enumerate() {
        if n.is_step() {
            n.cached = Some(cached.contains(&i));
        }
    }
    record.image = Some(built.image.manifest_digest.to_string());
    store.put_record(&record, &chunks)?;

    for (location, mode) in &cache_to {
        let exported = shared_cache::export(
            &store,
            &lowered.plan,
            *mode,
            location,
            &settings.cache_from,
            &registry_options,
            &kiln_runtime::registry::NoProgress,
        )?;
        eprintln!(
            "#cache exported {} steps ({} layers) to {location} as {}",
            exported.steps, exported.layers, exported.digest
        );
    }

    let id = built.image.id().to_string();
    if let Some(out) = output {
        write_output(&store, &built.image, &tags, &out)?;
    }
    if let Some(path) = &args.iidfile {
        write_iidfile(path, &id)?;
    }
    let tag_names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    if let Some(path) = &args.provenance {
        let statement = super::provenance::statement_of(
            &input,
            &args,
            &opts,
            &super::provenance::build_file_digest(&input, parsed.as_ref())?,
            &lowered.plan,
            &built.image.manifest_digest,
            &tag_names,
        );
        write_file_atomically(path, &statement.to_bytes()).map_err(|error| {
            miette::miette!(
                "cannot write the provenance file {}: {error}",
                path.display()
            )
        })?;
    }
    if let (Some(path), Some(target)) = (&args.depfile, &dep_target) {
        let inputs = super::explain::build_inputs(&input, &lowered.plan);
        super::explain::write_depfile(path, target, &inputs)?;
    }
    for tag in &tags {
        store.set_ref(tag, &built.image.manifest_digest)?;
    }
    printer.finish(&id, &tag_names, built.steps, built.cached);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheDirection {
    To,
    From,
}

/// `--cache-to` / `--cache-from` as buildx writes them: `type=registry,ref=REF`,
/// `type=local,dest=DIR` (to) or `src=DIR` (from), `mode=min|max` (to); a bare value is a
/// registry reference.
fn parse_cache_spec(spec: &str, direction: CacheDirection) -> Result<(CacheLocation, ExportMode)> {
    let flag = match direction {
        CacheDirection::To => "--cache-to",
        CacheDirection::From => "--cache-from",
    };
    let help = match direction {
        CacheDirection::To => {
            "write --cache-to type=registry,ref=HOST/REPO:TAG or --cache-to type=local,dest=DIR"
        }
        CacheDirection::From => {
            "write --cache-from type=registry,ref=HOST/REPO:TAG or --cache-from type=local,src=DIR"
        }
    };
    if !spec.contains('=') {
        return Ok((
            CacheLocation::Registry(ImageName::parse(spec)?),
            ExportMode::default(),
        ));
    }
    let (mut kind, mut reference, mut dir, mut mode) = (None, None, None, ExportMode::default());
    for field in spec.split(',') {
        match (field.split_once('='), direction) {
            (Some(("type", v)), _) => kind = Some(v),
            (Some(("ref", v)), _) => reference = Some(v),
            (Some(("dest", v)), CacheDirection::To) | (Some(("src", v)), CacheDirection::From) => {
                dir = Some(PathBuf::from(v))
            }
            (Some(("mode", "min")), CacheDirection::To) => mode = ExportMode::Min,
            (Some(("mode", "max")), CacheDirection::To) => mode = ExportMode::Max,
            _ => miette::bail!(
                help = help,
                "unsupported {flag} field {field:?} in {spec:?}"
            ),
        }
    }
    let location = match (kind, reference, dir) {
        (Some("registry"), Some(r), None) => CacheLocation::Registry(ImageName::parse(r)?),
        (Some("local"), None, Some(d)) => CacheLocation::Local(d),
        (Some(t), _, _) if t != "registry" && t != "local" => miette::bail!(
            help = "kiln shares caches through registries (type=registry) and OCI layout directories (type=local)",
            "unsupported {flag} type {t:?}"
        ),
        _ => miette::bail!(help = help, "incomplete {flag} {spec:?}"),
    };
    Ok((location, mode))
}

/// Opens each `--cache-from` cache. One that cannot be read is reported and skipped, as
/// BuildKit does: the build runs the steps it would have taken from it.
fn import_caches(
    locations: &[CacheLocation],
    registry: &kiln_runtime::registry::RegistryOptions,
) -> Vec<std::sync::Arc<ImportedCache>> {
    let mut out = Vec::new();
    for location in locations {
        match ImportedCache::open(location, registry) {
            Ok(cache) => {
                eprintln!(
                    "#cache importing {} steps from {location}{}",
                    cache.len(),
                    match cache.refused {
                        0 => String::new(),
                        n => format!(" ({n} entries refused: not uncompressed layers)"),
                    }
                );
                out.push(std::sync::Arc::new(cache));
            }
            Err(e) => eprintln!(
                "warning: not using the cache at {location}:\n{:?}",
                miette::Report::new(e)
            ),
        }
    }
    out
}

/// `--network` of RUN steps.
/// `--hermetic`: the target's impurity as an error naming the chain from the target down
/// to the step that makes it impure.
fn refuse_impure(plan: &kiln_compiler::plan::Plan) -> Result<()> {
    let Some(chain) = plan.impure_chain() else {
        return Ok(());
    };
    let mut steps = Vec::new();
    for n in &chain {
        let what = if n.origin.text.is_empty() {
            format!("#{}", n.id.0)
        } else {
            format!("#{} {}", n.id.0, n.origin.text)
        };
        let at = if n.origin.line > 0 {
            format!(" (stage {}, line {})", n.origin.stage, n.origin.line)
        } else {
            format!(" (stage {})", n.origin.stage)
        };
        steps.push([what, at].concat());
    }
    let last = chain.last().map(|n| {
        n.reasons
            .iter()
            .filter(|r| !r.starts_with("input #"))
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    });
    miette::bail!(
        help = "pin base images by digest (name@sha256:…) and run steps without network, or build without --hermetic",
        "the target is not hermetic: {}\n  {}",
        last.unwrap_or_default(),
        steps.join("\n  ← ")
    )
}

pub(super) fn run_network(mode: &str) -> Result<kiln_compiler::plan::RunNetwork> {
    match kiln_compiler::plan::RunNetwork::parse(mode) {
        Some(n) => Ok(n),
        None => miette::bail!(
            help = "kiln supports --network none, host or default",
            "unsupported network mode {mode:?}"
        ),
    }
}

/// `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]`, as buildx reads it: without a
/// source, the environment variable named like the id.
pub(super) fn secrets(flags: &[String]) -> Result<build::Secrets> {
    let mut out = build::Secrets::default();
    for flag in flags {
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for field in flag.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(v.to_string()),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", v)) => kind = Some(v.to_string()),
                _ => miette::bail!(
                    help = "write --secret id=ID,src=FILE or --secret id=ID,env=VAR",
                    "invalid --secret field {field:?}"
                ),
            }
        }
        let Some(id) = id else {
            miette::bail!(
                help = "write --secret id=ID,src=FILE",
                "--secret {flag:?} has no id"
            );
        };
        let value: Vec<u8> = match (src, env, kind.as_deref()) {
            (Some(path), _, Some("env")) | (None, Some(path), _) => std::env::var(&path)
                .map_err(|_| {
                    miette::miette!("--secret {id}: environment variable {path} is not set")
                })?
                .into_bytes(),
            (Some(path), _, _) => std::fs::read(&path)
                .map_err(|e| miette::miette!("--secret {id}: cannot read {path}: {e}"))?,
            (None, None, _) => match std::env::var(&id) {
                Ok(v) => v.into_bytes(),
                Err(_) => miette::bail!(
                    help = "add src=FILE or env=VAR",
                    "--secret {id}: no source given and no environment variable {id}"
                ),
            },
        };
        out.0.insert(id, value.into());
    }
    Ok(out)
}

/// The stat cache is per context directory; its name hashes the absolute path (a path is
/// never part of a cache key, only of this bookkeeping).
pub(super) fn stat_cache_name(context: &std::path::Path) -> String {
    let abs = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let h = blake3::hash(abs.as_os_str().as_encoded_bytes());
    format!("statcache-{}", &h.to_hex()[..24])
}

/// `-o type=oci|docker,dest=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub kind: String,
    pub dest: PathBuf,
}

pub(super) fn parse_output(spec: &str) -> Result<Output> {
    let mut kind = None;
    let mut dest = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => miette::bail!(
                help = "write -o type=oci,dest=image.tar or -o type=docker,dest=image.tar",
                "invalid --output {spec:?}"
            ),
        }
    }
    let kind = kind.unwrap_or_else(|| "docker".to_string());
    if kind != "oci" && kind != "docker" {
        miette::bail!(
            help = "kiln writes type=oci or type=docker tarballs",
            "unsupported output type {kind:?}"
        );
    }
    let Some(dest) = dest else {
        miette::bail!(
            help = "add dest=FILE, e.g. -o type={kind},dest=image.tar",
            "--output needs a destination"
        );
    };
    Ok(Output { kind, dest })
}

/// Both types get the combined docker-archive + OCI layout, which docker, podman and skopeo
/// all read. The tarball names the image by the build's tags (not yet set in the store), or
/// by its ID when there are none.
pub(super) fn write_output(
    store: &Store,
    image: &kiln_runtime::store::Image,
    tags: &[ImageName],
    out: &Output,
) -> Result<()> {
    kiln_runtime::archive::save_image_to_path(store, image, tags, &out.dest, Compression::None)?;
    Ok(())
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot write the image ID to {}: {error}", path.display())]
#[diagnostic(
    code(kiln::build::iidfile),
    help("--iidfile needs a file path in an existing, writable directory; the image was built but not tagged")
)]
pub(super) struct IidFileError {
    path: PathBuf,
    error: std::io::Error,
}

/// `--iidfile`: written to a temporary file beside it and renamed into place.
pub(super) fn write_iidfile(path: &std::path::Path, id: &str) -> Result<(), IidFileError> {
    write_file_atomically(path, id.as_bytes()).map_err(|error| IidFileError {
        path: path.to_path_buf(),
        error,
    })
}

/// A build output file (`--iidfile`, `--depfile`, `--provenance`): written to a temporary
/// file beside it (mode 0666 less the umask) and renamed into place.
pub(super) fn write_file_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-out-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_specs_as_buildx_writes_them() {
        let (to, mode) =
            parse_cache_spec("type=local,dest=/c,mode=max", CacheDirection::To).unwrap();
        assert_eq!(to, CacheLocation::Local(PathBuf::from("/c")));
        assert_eq!(mode, ExportMode::Max);
        let (from, _) = parse_cache_spec("type=local,src=/c", CacheDirection::From).unwrap();
        assert_eq!(from, CacheLocation::Local(PathBuf::from("/c")));
        let (reg, mode) = parse_cache_spec(
            "type=registry,ref=127.0.0.1:5000/a/b:cache",
            CacheDirection::To,
        )
        .unwrap();
        assert_eq!(mode, ExportMode::Min);
        assert_eq!(reg.to_string(), "127.0.0.1:5000/a/b:cache");
        let (bare, _) = parse_cache_spec("127.0.0.1:5000/a/b:cache", CacheDirection::From).unwrap();
        assert_eq!(bare, reg);
        for (spec, direction, wanted) in [
            (
                "type=local,src=/c",
                CacheDirection::To,
                "unsupported --cache-to field",
            ),
            (
                "type=local,dest=/c",
                CacheDirection::From,
                "unsupported --cache-from field",
            ),
            (
                "type=local,src=/c,mode=max",
                CacheDirection::From,
                "field \"mode=max\"",
            ),
            (
                "type=gha",
                CacheDirection::From,
                "unsupported --cache-from type \"gha\"",
            ),
            ("type=registry", CacheDirection::To, "incomplete --cache-to"),
            (
                "type=local,dest=/c,mode=all",
                CacheDirection::To,
                "field \"mode=all\"",
            ),
        ] {
            let err = parse_cache_spec(spec, direction).unwrap_err().to_string();
            assert!(err.contains(wanted), "{spec}: {err}");
        }
    }
}
