//! The Dockerfile front end as one call: read the Dockerfile, parse it, pick and read the
//! ignore file, scan the context, lower to a plan. Errors come back as miette reports with
//! the Dockerfile's text attached, so they render with file, line, column and label.
//! Must not: print anything (the CLI decides what to show).

use std::path::{Path, PathBuf};

use miette::Report;

use crate::context::{ContextIndex, StatCache};
use crate::dockerfile;
use crate::dockerfile::checks::{self, CheckReport, LintInput};
use crate::dockerignore::IgnoreFile;
use crate::plan::{BuildOptions, ImageResolver, Lowered, Warning};
use crate::source::{self, SourceText};
use crate::syntax::{self, Dockerfile};

/// Where the Dockerfile and the context are.
#[derive(Debug, Clone)]
pub struct FrontendInput {
    pub context: PathBuf,
    /// None: CONTEXT/Dockerfile.
    pub dockerfile: Option<PathBuf>,
}

/// A parsed Dockerfile with its text (kept for diagnostics).
pub struct Parsed {
    pub source: SourceText,
    pub tree: Dockerfile,
}

impl Parsed {
    /// Attach the Dockerfile's text to a diagnostic about it.
    pub fn report(&self, err: impl miette::Diagnostic + Send + Sync + 'static) -> Report {
        Report::new(err).with_source_code(self.source.named_source())
    }
}

/// Read and parse a Dockerfile (`-` reads standard input).
pub fn parse_file(path: &Path) -> Result<Parsed, Report> {
    let source = source::read_dockerfile(path).map_err(Report::new)?;
    match syntax::parse(&source.text) {
        Ok(tree) => Ok(Parsed { source, tree }),
        Err(e) => Err(Report::new(e).with_source_code(source.named_source())),
    }
}

pub fn dockerfile_path(input: &FrontendInput) -> PathBuf {
    input
        .dockerfile
        .clone()
        .unwrap_or_else(|| input.context.join("Dockerfile"))
}

/// The ignore rules: `<Dockerfile>.dockerignore` next to the Dockerfile wins over the
/// context's `.dockerignore`.
pub fn read_ignore(input: &FrontendInput) -> Result<IgnoreFile, Report> {
    let df = dockerfile_path(input);
    let [beside, in_context] = crate::dockerignore::ignore_file_candidates(&df, &input.context);
    // A Dockerfile read from stdin has no neighbour file.
    let candidates = if df.as_os_str() == "-" {
        vec![in_context]
    } else {
        vec![beside, in_context]
    };
    for path in candidates {
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let name = path.display().to_string();
                return IgnoreFile::parse(&text).map_err(|e| {
                    Report::new(e).with_source_code(crate::source::diagnostic_source(&name, &text))
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Report::msg(format!("cannot read {}: {e}", path.display()))),
        }
    }
    IgnoreFile::parse("").map_err(Report::new)
}

/// Parse, scan the context and lower: the whole front end.
pub fn plan(
    input: &FrontendInput,
    opts: &BuildOptions,
    stat_cache: &StatCache,
    images: &dyn ImageResolver,
) -> Result<(Parsed, Lowered), Report> {
    let meta = std::fs::metadata(&input.context).map_err(|e| {
        miette::miette!(
            help = "the last argument is the build context directory",
            "cannot use build context {}: {e}",
            input.context.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(miette::miette!(
            help = "the last argument is the build context directory",
            "build context {} is not a directory",
            input.context.display()
        ));
    }
    let parsed = parse_file(&dockerfile_path(input))?;
    let ignore = read_ignore(input)?;
    let context = ContextIndex::scan(&input.context, &ignore).map_err(Report::new)?;
    let lowered = dockerfile::lower(
        &parsed.tree,
        &parsed.source.text,
        context,
        stat_cache,
        opts,
        images,
    )
    .map_err(|e| parsed.report(e))?;
    Ok((parsed, lowered))
}

/// The build checks of a parsed Dockerfile: the syntax-level rules plus lowering's findings
/// (`lowered`), under the Dockerfile's `check` directive. `ignore` is the context's ignore
/// file, for CopyIgnoredFile (None: no context).
pub fn check(
    parsed: &Parsed,
    ignore: Option<&IgnoreFile>,
    build_args: &[(String, String)],
    lowered: Vec<Warning>,
) -> Result<CheckReport, Report> {
    let input = LintInput { build_args, ignore };
    let mut warnings = checks::lint(&parsed.tree, &parsed.source.text, &input);
    warnings.extend(lowered);
    checks::report(&parsed.tree, warnings).map_err(|e| parsed.report(e))
}

/// The kiln program a build names, if it names one: `-f FILE.kiln`, or no `-f` and a
/// context directory with `build.kiln` and no `Dockerfile`.
pub fn kiln_program(input: &FrontendInput) -> Option<PathBuf> {
    match &input.dockerfile {
        Some(f) if crate::kiln::is_program(f) => Some(crate::kiln::program_file(f)),
        Some(_) => None,
        None => {
            let df = input.context.join("Dockerfile");
            let prog = input.context.join("build.kiln");
            (!df.exists() && prog.is_file()).then_some(prog)
        }
    }
}

/// The kiln front end as one call: load the program and its imports, check all of it
/// (every error at once, before anything is planned), scan the context (its
/// `.dockerignore` applies), and lower the target (`opts.target`, or the only export).
/// With the plan come the build checks of each Dockerfile its `dockerfile()` calls read,
/// as [`check`] makes them for a Dockerfile built on its own: the syntax rules and what
/// lowering its stages found, under its `check` directive, each with its text.
pub fn plan_kiln(
    program: &Path,
    context: &Path,
    opts: &BuildOptions,
    stat_cache: &StatCache,
    images: &dyn ImageResolver,
) -> Result<(Lowered, Vec<(Parsed, CheckReport)>), Report> {
    let prog = crate::kiln::check_file(program).map_err(Report::new)?;
    let ignore = read_ignore(&FrontendInput {
        context: context.to_path_buf(),
        dockerfile: Some(context.join("build.kiln")),
    })?;
    let index = ContextIndex::scan(context, &ignore).map_err(Report::new)?;
    let (lowered, read) =
        crate::kiln::lower::plan(&prog, index, stat_cache, opts, images).map_err(Report::new)?;
    let mut checks = Vec::with_capacity(read.len());
    for df in read {
        let found = lowered
            .warnings
            .iter()
            .filter(|w| w.file == df.file)
            .cloned()
            .collect();
        let report = check(&df.parsed, Some(&ignore), &df.build_args, found)?;
        checks.push((df.parsed, report));
    }
    Ok((lowered, checks))
}

/// What planning a build's input gives: the plan, and what its build checks need.
pub struct Planned {
    pub lowered: Lowered,
    /// The Dockerfile planned (None for a kiln program), for [`check`].
    pub parsed: Option<Parsed>,
    /// A kiln program's build checks: those of each Dockerfile its `dockerfile()` calls read
    /// (see [`plan_kiln`]).
    pub checks: Vec<(Parsed, CheckReport)>,
}

/// Plan with the front end the input names: its kiln program (see [`kiln_program`]), else
/// its Dockerfile, whose parse comes back too for the build checks.
pub fn plan_input(
    input: &FrontendInput,
    opts: &BuildOptions,
    stat_cache: &StatCache,
    images: &dyn ImageResolver,
) -> Result<Planned, Report> {
    match kiln_program(input) {
        Some(program) => plan_kiln(&program, &input.context, opts, stat_cache, images).map(
            |(lowered, checks)| Planned {
                lowered,
                parsed: None,
                checks,
            },
        ),
        None => plan(input, opts, stat_cache, images).map(|(parsed, lowered)| Planned {
            lowered,
            parsed: Some(parsed),
            checks: Vec::new(),
        }),
    }
}
