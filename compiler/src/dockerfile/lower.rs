//! Lowering: a parsed Dockerfile, its context and build options in, a [`Plan`] out.
//!
//! Owns the Dockerfile's meaning: stages by name and index, `--target` pruning (stages the
//! target does not need are never lowered), global and stage ARG scopes, ENV, one expansion
//! snapshot per instruction, ONBUILD triggers of base images, the CMD/ENTRYPOINT/SHELL table,
//! WORKDIR chaining, and COPY/ADD source selection over the context. It computes every node's
//! cache key and hermeticity last, once all context selections are known and hashed.
//! Must not: read image blobs or write anything (base images come from an [`ImageResolver`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::context::{ContextError, ContextIndex, StatCache};
use crate::copy::{self, CopyError};
use crate::dockerfile::error::DockerfileError;
use crate::dockerfile::instructions::{
    self, CommandLine, CopyInstr, FlagValue, Instruction, Located, RunInstr,
};
use crate::dockerfile::mounts::{self, path_base, path_clean, MountType};
use crate::dockerfile::platforms::Platform;
use crate::dockerfile::{checks, expose};
use crate::plan::{
    self, Chmod, Chown, ContextSelection, CopyOp, CopySource, Excludes, HealthConfig, HistoryEntry,
    ImageOp, Key, MountKind, MountSource, Node, NodeId, Op, Origin, Plan, RunConfig, RunMount,
    RunNetwork, RunOp, SourcePath,
};
use crate::shell::Lexer;
use crate::syntax::{self, Dockerfile, Span};

/// What the user chose on the command line.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--build-arg K=V`, in order (a later one wins).
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    /// SOURCE_DATE_EPOCH: layer mtimes and `created` timestamps; 0 when unset.
    pub source_date_epoch: Option<u64>,
    /// `--network`: the network of RUN steps that do not choose one (`RUN --network=default`
    /// or no flag). Lowering writes it into each RUN op, so their keys follow it.
    pub network: RunNetwork,
    /// `--label K=V`, added to the target's config.
    pub labels: Vec<(String, String)>,
    /// Lint only: do not resolve COPY/ADD sources against the context.
    pub skip_context: bool,
}

/// A base image as the store knows it.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Manifest digest, `sha256:...`.
    pub digest: String,
    pub config: RunConfig,
    pub history: Vec<HistoryEntry>,
    /// The platform its config names (None when it names none).
    pub platform: Option<Platform>,
}

/// Looks up base images by reference (`name`, `name:tag`, `name@sha256:...`): `Ok(None)`
/// when there is no such image, `Err` when the resolver could not answer (an unreadable or
/// corrupt store), which stops planning with the resolver's own error.
pub trait ImageResolver {
    fn resolve(&self, reference: &str) -> Result<Option<ResolvedImage>, ImageLookupError>;
}

/// Resolves nothing: for planning without a store.
pub struct NoImages;

impl ImageResolver for NoImages {
    fn resolve(&self, _reference: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
        Ok(None)
    }
}

/// A resolver's failure, kept as the resolver reported it (its message, code and help).
#[derive(Debug)]
pub struct ImageLookupError(pub Box<dyn miette::Diagnostic + Send + Sync + 'static>);

impl std::fmt::Display for ImageLookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ImageLookupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl miette::Diagnostic for ImageLookupError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.code()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.help()
    }
    fn diagnostic_source(&self) -> Option<&dyn miette::Diagnostic> {
        self.0.diagnostic_source()
    }
}

/// A finding that does not stop the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: &'static str,
    pub message: String,
    pub span: Span,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LowerError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Dockerfile(#[from] DockerfileError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    ImageLookup(#[from] ImageLookupError),
}

pub struct Lowered {
    pub plan: Plan,
    pub warnings: Vec<Warning>,
}

/// The ARGs defined before any ARG instruction: the target's and the build's platform, the
/// host's (`crate::platform`), in containerd's normalised form (`linux/arm64`, `linux/arm/v7`).
pub(crate) fn predefined_args() -> Vec<(String, String)> {
    let host = crate::platform::host();
    let (os, arch) = (host.os, host.architecture);
    let variant = host.normalized_variant().unwrap_or_default();
    [
        ("TARGETPLATFORM", host.normalized_specifier()),
        ("TARGETOS", os.to_string()),
        ("TARGETARCH", arch.to_string()),
        ("TARGETVARIANT", variant.to_string()),
        ("BUILDPLATFORM", host.normalized_specifier()),
        ("BUILDOS", os.to_string()),
        ("BUILDARCH", arch.to_string()),
        ("BUILDVARIANT", variant.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Lower a parsed Dockerfile to a plan.
pub fn lower(
    df: &Dockerfile,
    source: &str,
    context: ContextIndex,
    stat_cache: &StatCache,
    opts: &BuildOptions,
    images: &dyn ImageResolver,
) -> Result<Lowered, LowerError> {
    let mut lw = Lowerer::new(df, source, context, opts, images)?;
    let target = lw.target_stage()?;
    let result = lw.lower_stage(target)?;
    let image = lw.image_node(target, result);
    lw.finish(image, stat_cache)
}

/// Lower every stage (not only the target's chain), for `kiln check`: all errors and the
/// expansion warnings of the whole file. COPY sources are not looked up.
pub fn lower_all_stages(
    df: &Dockerfile,
    source: &str,
    opts: &BuildOptions,
) -> Result<Vec<Warning>, LowerError> {
    let opts = BuildOptions {
        skip_context: true,
        ..opts.clone()
    };
    let mut lw = Lowerer::new(df, source, ContextIndex::default(), &opts, &NoImages)?;
    for i in 0..lw.stages.len() {
        lw.lower_stage(i)?;
    }
    let last = lw.stages.len() - 1;
    let result = lw.lower_stage(last)?;
    let image = lw.image_node(last, result);
    Ok(lw.finish(image, &StatCache::default())?.warnings)
}

/// One `FROM` and the instructions after it.
struct StageDef {
    /// Lower-cased `AS` name.
    name: Option<String>,
    from: usize,
    body: std::ops::Range<usize>,
}

struct StageResult {
    last: NodeId,
    config: RunConfig,
    history: Vec<HistoryEntry>,
}

/// Per-stage state while its instructions are lowered.
struct StageState {
    name: String,
    prev: NodeId,
    config: RunConfig,
    history: Vec<HistoryEntry>,
    /// Declared ARGs in order; None = declared without a value.
    args: Vec<(String, Option<String>)>,
    cmd_set: bool,
    /// The last expansion snapshot, until ARG or ENV changes `args` or `config.env`.
    env_snapshot: Option<Rc<Vec<(String, String)>>>,
}

impl StageState {
    /// The expansion environment: stage ARGs overridden by ENV (a snapshot, shared by the
    /// instructions until ARG or ENV changes it).
    fn env(&mut self) -> Rc<Vec<(String, String)>> {
        if let Some(env) = &self.env_snapshot {
            return Rc::clone(env);
        }
        let mut v: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect();
        for kv in &self.config.env {
            let (k, val) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            v.push((k.to_string(), val.to_string()));
        }
        let env = Rc::new(v);
        self.env_snapshot = Some(Rc::clone(&env));
        env
    }

    fn workdir(&self) -> &str {
        if self.config.working_dir.is_empty() {
            "/"
        } else {
            &self.config.working_dir
        }
    }

    /// The shell form's argv: SHELL (or `/bin/sh -c`) and the command.
    fn shell_argv(&self, command: &str) -> Vec<String> {
        let mut argv = Vec::with_capacity(3);
        match &self.config.shell {
            Some(shell) => argv.extend(shell.iter().cloned()),
            None => argv.extend(["/bin/sh".to_string(), "-c".to_string()]),
        }
        argv.push(command.to_string());
        argv
    }
}

struct PendingNode {
    op: Op,
    inputs: Vec<NodeId>,
    reasons: Vec<String>,
    origin: Origin,
    args: Vec<(String, String)>,
}

/// The build arguments the instruction being lowered reads: `scope` is the stage's ARGs with
/// a value (ENV of the same name hides one), `used` those an expansion (or RUN's
/// environment) took so far, in order of first use. Each node pushed gets `used`.
#[derive(Default)]
struct ArgUse {
    scope: Vec<(String, String)>,
    used: Vec<(String, String)>,
}

impl ArgUse {
    fn note(&mut self, name: &str) {
        if self.used.iter().any(|(k, _)| k == name) {
            return;
        }
        if let Some((k, v)) = self.scope.iter().rev().find(|(k, _)| k == name) {
            self.used.push((k.clone(), v.clone()));
        }
    }
}

/// The most bytes all the variable expansions of one Dockerfile may produce together (one
/// word may produce at most `shell::MAX_EXPANSION`): far above any real Dockerfile, and a
/// bound on what chained ARGs can make the planner allocate.
pub const MAX_EXPANDED_TOTAL: usize = 64 << 20;

struct Lowerer<'a> {
    source: &'a str,
    lexer: Lexer,
    /// Shared so an instruction can be read while `self` is lowered mutably.
    typed: Rc<Vec<Located<'a>>>,
    stages: Vec<StageDef>,
    global_args: Vec<(String, String)>,
    opts: &'a BuildOptions,
    images: &'a dyn ImageResolver,
    context: ContextIndex,
    nodes: Vec<PendingNode>,
    done: HashMap<usize, Rc<StageResult>>,
    in_progress: HashSet<usize>,
    base_nodes: HashMap<String, (NodeId, Option<ResolvedImage>)>,
    consumed_args: HashSet<String>,
    /// Build arguments the current instruction reads (recorded on its nodes).
    arg_use: ArgUse,
    warnings: Vec<Warning>,
    /// Bytes produced by expansions so far (bounded by `MAX_EXPANDED_TOTAL`).
    expanded: usize,
    epoch: u64,
}

impl<'a> Lowerer<'a> {
    fn new(
        df: &'a Dockerfile,
        source: &'a str,
        context: ContextIndex,
        opts: &'a BuildOptions,
        images: &'a dyn ImageResolver,
    ) -> Result<Self, DockerfileError> {
        let mut typed = Vec::with_capacity(df.instructions.len());
        for node in &df.instructions {
            instructions::check_known(node, source)?;
            let instr = instructions::from_node(node, source)?;
            typed.push(Located { instr, node });
        }
        let mut lw = Lowerer {
            source,
            lexer: Lexer::new(df.escape),
            typed: Rc::new(typed),
            stages: Vec::new(),
            global_args: Vec::new(),
            opts,
            images,
            context,
            nodes: Vec::new(),
            done: HashMap::new(),
            in_progress: HashSet::new(),
            base_nodes: HashMap::new(),
            consumed_args: HashSet::new(),
            arg_use: ArgUse::default(),
            warnings: Vec::new(),
            expanded: 0,
            epoch: opts.source_date_epoch.unwrap_or(0),
        };
        lw.split_stages()?;
        Ok(lw)
    }

    fn build_arg(&self, name: &str) -> Option<&'a str> {
        let opts: &'a BuildOptions = self.opts;
        opts.build_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Global ARGs (before the first FROM) and stage boundaries, with name checks.
    fn split_stages(&mut self) -> Result<(), DockerfileError> {
        self.global_args.extend(predefined_args());
        let mut seen: HashMap<String, Span> = HashMap::new();
        let typed = Rc::clone(&self.typed);
        for (i, located) in typed.iter().enumerate() {
            match &located.instr {
                Instruction::From(from) => {
                    let name = match &from.name {
                        Some(n) => {
                            let lower = n.to_ascii_lowercase();
                            let span = self.typed[i].node.span_of(self.source, n);
                            if !valid_stage_name(&lower) {
                                return Err(DockerfileError::at(
                                    format!("invalid name for build stage: {n:?}, name can't start with a number or contain symbols"),
                                    span,
                                    "invalid stage name",
                                )
                                .with_help("stage names match ^[a-z][a-z0-9-_.]*$"));
                            }
                            if seen.insert(lower.clone(), span).is_some() {
                                return Err(DockerfileError::at(
                                    format!("duplicate stage name {n:?}"),
                                    span,
                                    "already used by an earlier stage",
                                )
                                .with_help("give each stage its own name"));
                            }
                            Some(lower)
                        }
                        None => None,
                    };
                    if let Some(last) = self.stages.last_mut() {
                        last.body.end = i;
                    }
                    self.stages.push(StageDef {
                        name,
                        from: i,
                        body: i + 1..self.typed.len(),
                    });
                }
                Instruction::Arg(args) if self.stages.is_empty() => {
                    for (name, default) in args {
                        let value = match self.build_arg(name) {
                            Some(v) => {
                                self.consumed_args.insert(name.clone());
                                Some(v.to_string())
                            }
                            None => match default {
                                Some(d) => {
                                    // Taken out for the call, not cloned.
                                    let global = std::mem::take(&mut self.global_args);
                                    let value = self.expand_in(i, d, &global);
                                    self.global_args = global;
                                    Some(value?)
                                }
                                None => None,
                            },
                        };
                        if let Some(v) = value {
                            self.global_args.push((name.clone(), v));
                        } else {
                            self.global_args.retain(|(k, _)| k != name);
                        }
                    }
                }
                _ if self.stages.is_empty() => {
                    let node = &self.typed[i].node;
                    return Err(DockerfileError::at(
                        format!("{} is not allowed before the first FROM", node.cmd),
                        node.cmd_span,
                        "no build stage yet",
                    )
                    .with_help("only ARG may come before FROM"));
                }
                _ => {}
            }
        }
        if self.stages.is_empty() {
            let span = self.typed.first().map(|l| l.node.span).unwrap_or_default();
            return Err(
                DockerfileError::at("no build stage in current context", span, "no FROM")
                    .with_help("a Dockerfile starts with FROM (after optional ARGs)"),
            );
        }
        Ok(())
    }

    fn target_stage(&self) -> Result<usize, DockerfileError> {
        let Some(t) = &self.opts.target else {
            return Ok(self.stages.len() - 1);
        };
        let lower = t.to_ascii_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Ok(i);
        }
        let names: Vec<&str> = self
            .stages
            .iter()
            .filter_map(|s| s.name.as_deref())
            .collect();
        let mut err = DockerfileError::at(
            format!("target stage {t:?} could not be found"),
            Span::default(),
            "--target",
        );
        err = match crate::suggest::closest(&lower, names.iter().copied()) {
            Some(s) => err.with_help(format!("did you mean {s:?}?")),
            None if names.is_empty() => {
                err.with_help("this Dockerfile names no stages (FROM image AS name)")
            }
            None => err.with_help(format!("stages: {}", names.join(", "))),
        };
        Err(err)
    }

    fn expand_error(
        &self,
        node: &syntax::Instruction,
        word: &str,
        e: crate::shell::ExpandError,
    ) -> DockerfileError {
        let base = node.span_of(self.source, word);
        let span = if base.len() == word.len() {
            let start = (base.start + e.offset).min(base.end);
            Span::new(start, (start + e.len.max(1)).min(base.end.max(start + 1)))
        } else {
            base
        };
        let mut err = DockerfileError::at(e.to_string(), span, "in this expansion");
        if let Some(h) = e.help() {
            err = err.with_help(h);
        }
        err
    }

    /// Expand with the stage snapshot and record unset variables for the UndefinedVar check.
    fn expand_in(
        &mut self,
        instr: usize,
        word: &str,
        env: &[(String, String)],
    ) -> Result<String, DockerfileError> {
        let node = &self.typed[instr].node;
        match self.lexer.expand_word(word, &env) {
            Ok(e) => {
                self.expanded = self.expanded.saturating_add(e.value.len());
                for var in &e.used {
                    self.arg_use.note(var);
                }
                if self.expanded > MAX_EXPANDED_TOTAL {
                    let span = node.span_of(self.source, word);
                    return Err(DockerfileError::at(
                        format!(
                            "the Dockerfile's variable expansions produce more than {} MiB in all",
                            MAX_EXPANDED_TOTAL >> 20
                        ),
                        span,
                        "this expansion crosses the bound",
                    )
                    .with_help(
                        "variables that reference each other several times grow with every \
                         level; pass large values as files (COPY) instead",
                    ));
                }
                for var in e.unset {
                    let span = node.span_of(self.source, &var);
                    self.warnings.push(Warning {
                        rule: "UndefinedVar",
                        message: format!("Usage of undefined variable '${var}'"),
                        span,
                    });
                }
                Ok(e.value)
            }
            Err(e) => Err(self.expand_error(node, word, e)),
        }
    }

    fn push(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        reasons: Vec<String>,
        origin: Origin,
    ) -> NodeId {
        let id = NodeId(self.nodes.len());
        self.nodes.push(PendingNode {
            op,
            inputs,
            reasons,
            origin,
            args: self.arg_use.used.clone(),
        });
        id
    }

    fn origin(&self, stage: &str, instr: usize) -> Origin {
        let node = &self.typed[instr].node;
        Origin {
            stage: stage.to_string(),
            line: node.start_line,
            text: one_line(&node.original),
        }
    }

    fn stage_label(&self, i: usize) -> String {
        // BuildKit calls unnamed stages stage-N.
        self.stages[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"))
    }

    /// A base image node (shared by every stage and COPY --from naming the same reference).
    fn base_image(
        &mut self,
        reference: &str,
        origin: Origin,
    ) -> Result<(NodeId, Option<ResolvedImage>), LowerError> {
        if let Some((id, r)) = self.base_nodes.get(reference) {
            return Ok((*id, r.clone()));
        }
        let resolved = self.images.resolve(reference)?;
        let (digest, config) = match &resolved {
            Some(r) => (Some(r.digest.clone()), r.config.clone()),
            None => (None, RunConfig::default()),
        };
        let mut reasons = Vec::new();
        if !reference.contains("@sha256:") {
            reasons.push(["base image ", reference, " is named without a digest"].concat());
        }
        let id = self.push(
            Op::BaseImage {
                reference: reference.to_string(),
                digest,
                config: Box::new(config),
            },
            vec![],
            reasons,
            origin,
        );
        self.base_nodes
            .insert(reference.to_string(), (id, resolved.clone()));
        Ok((id, resolved))
    }

    fn lower_stage(&mut self, i: usize) -> Result<Rc<StageResult>, LowerError> {
        if let Some(r) = self.done.get(&i) {
            return Ok(Rc::clone(r));
        }
        let from_idx = self.stages[i].from;
        if !self.in_progress.insert(i) {
            let node = &self.typed[from_idx].node;
            return Err(DockerfileError::at(
                "circular dependency between stages",
                node.span,
                "this stage depends on itself",
            )
            .into());
        }
        let label = self.stage_label(i);
        let typed = Rc::clone(&self.typed);
        let Instruction::From(from) = &typed[from_idx].instr else {
            unreachable!("stage starts at a FROM")
        };
        // This stage may be lowered in the middle of another's instruction (COPY --from):
        // that instruction's record of the build arguments it reads is put back at the end.
        let outer_args = std::mem::replace(
            &mut self.arg_use,
            ArgUse {
                scope: self.global_args.clone(),
                used: Vec::new(),
            },
        );
        // Unset names here are the UndefinedArgInFrom check's (checks.rs), not UndefinedVar.
        let image = match self.lexer.expand_word(&from.image, &self.global_args) {
            Ok(e) => {
                for var in &e.used {
                    self.arg_use.note(var);
                }
                e.value
            }
            Err(e) => {
                return Err(self
                    .expand_error(typed[from_idx].node, &from.image, e)
                    .into())
            }
        };
        let from_origin = self.origin(&label, from_idx);
        if image.is_empty() {
            let node = &self.typed[from_idx].node;
            return Err(DockerfileError::at(
                "base name should not be blank",
                node.span_of(self.source, &from.image),
                "expands to nothing",
            )
            .with_help("check the ARG used in FROM; global ARGs need a value or --build-arg")
            .into());
        }
        let lower = image.to_ascii_lowercase();
        let by_name = self.stages[..i]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        let (prev, config, history, triggers) = if let Some(j) = by_name {
            let r = self.lower_stage(j)?;
            let mut config = r.config.clone();
            // A stage's ONBUILD triggers fire in the stages built FROM it, as an image's do.
            let triggers = std::mem::take(&mut config.on_build);
            (r.last, config, r.history.clone(), triggers)
        } else if lower == "scratch" {
            let id = self.push(Op::Scratch, vec![], vec![], from_origin.clone());
            // BuildKit gives a stage from scratch the working directory "/".
            let config = RunConfig {
                working_dir: "/".into(),
                ..Default::default()
            };
            (id, config, Vec::new(), Vec::new())
        } else {
            let (id, resolved) = self.base_image(&image, from_origin.clone())?;
            match resolved {
                Some(r) => {
                    if let Some(actual) = &r.platform {
                        let crate::platform::Platform {
                            os,
                            architecture: arch,
                            ..
                        } = crate::platform::host();
                        let expected = Platform::from_config(os, arch, "");
                        let span = typed[from_idx].node.span_of(self.source, &from.image);
                        self.warnings
                            .extend(checks::base_image_platform(&image, &expected, actual, span));
                    }
                    let mut config = r.config.clone();
                    let triggers = std::mem::take(&mut config.on_build);
                    (id, config, r.history.clone(), triggers)
                }
                None => (id, RunConfig::default(), Vec::new(), Vec::new()),
            }
        };
        let mut st = StageState {
            name: label.clone(),
            prev,
            config,
            history,
            args: Vec::new(),
            cmd_set: false,
            env_snapshot: None,
        };
        if st.config.env_get("PATH").is_none() {
            st.config.env_set("PATH", DEFAULT_PATH);
        }
        for trigger in triggers {
            self.run_trigger(&mut st, from_idx, &trigger)?;
        }
        for idx in self.stages[i].body.clone() {
            self.lower_instruction(&mut st, idx, &typed[idx].instr)?;
        }
        self.in_progress.remove(&i);
        self.arg_use = outer_args;
        let result = Rc::new(StageResult {
            last: st.prev,
            config: st.config,
            history: st.history,
        });
        self.done.insert(i, Rc::clone(&result));
        Ok(result)
    }

    /// Run one ONBUILD trigger of the base image, as if written after FROM.
    fn run_trigger(
        &mut self,
        st: &mut StageState,
        from_idx: usize,
        trigger: &str,
    ) -> Result<(), LowerError> {
        let node = &self.typed[from_idx].node;
        let span = node.span;
        let parsed = syntax::parse(trigger).map_err(|e| {
            DockerfileError::at(
                format!("invalid ONBUILD trigger {trigger:?} in base image: {e}"),
                span,
                "base image",
            )
        })?;
        for t in &parsed.instructions {
            let instr = instructions::from_node(t, trigger).map_err(|e| {
                DockerfileError::at(
                    format!("ONBUILD trigger {trigger:?}: {e}"),
                    span,
                    "from this base image",
                )
            })?;
            if matches!(
                instr,
                Instruction::Onbuild(_) | Instruction::From(_) | Instruction::Maintainer(_)
            ) {
                return Err(DockerfileError::at(
                    format!("{} isn't allowed as an ONBUILD trigger", t.cmd),
                    span,
                    "from this base image",
                )
                .into());
            }
            self.lower_instruction(st, from_idx, &instr)?;
        }
        Ok(())
    }

    fn config_node(&mut self, st: &mut StageState, idx: usize, created_by: String) {
        let origin = self.origin(&st.name, idx);
        st.prev = self.push(
            Op::Config {
                instruction: created_by.clone(),
            },
            vec![st.prev],
            vec![],
            origin,
        );
        st.history.push(HistoryEntry {
            created_by,
            comment: String::new(),
            empty_layer: true,
        });
    }

    fn command(&self, st: &StageState, cmd: &CommandLine) -> Vec<String> {
        match cmd {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => st.shell_argv(s),
        }
    }

    fn lower_instruction(
        &mut self,
        st: &mut StageState,
        idx: usize,
        instr: &Instruction,
    ) -> Result<(), LowerError> {
        // The expansion snapshot, built only for instructions that expand something.
        let expands = match instr {
            Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Healthcheck(_)
            | Instruction::Onbuild(_)
            | Instruction::Maintainer(_)
            | Instruction::Arg(_) => false,
            Instruction::Run(r) => !r.mounts.is_empty(),
            _ => true,
        };
        let env = if expands { st.env() } else { Rc::default() };
        self.arg_use.used.clear();
        self.arg_use.scope.clear();
        if expands || matches!(instr, Instruction::Arg(_)) {
            for (k, v) in &st.args {
                let hidden = st
                    .config
                    .env
                    .iter()
                    .any(|kv| kv.split('=').next() == Some(k.as_str()));
                if let (Some(v), false) = (v, hidden) {
                    self.arg_use.scope.push((k.clone(), v.clone()));
                }
            }
        }
        match instr {
            Instruction::From(_) => unreachable!("FROM starts a stage"),
            Instruction::Env(pairs) => {
                let mut parts = Vec::new();
                let mut expanded = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand_in(idx, k, &env)?;
                    let v = self.expand_in(idx, v, &env)?;
                    parts.push([k.as_str(), "=", v.as_str()].concat());
                    expanded.push((k, v));
                }
                for (k, v) in expanded {
                    st.config.env_set(&k, &v);
                }
                st.env_snapshot = None;
                self.config_node(st, idx, ["ENV ", &parts.join(" ")].concat());
            }
            Instruction::Label(pairs) => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand_in(idx, k, &env)?;
                    let v = self.expand_in(idx, v, &env)?;
                    parts.push([k.as_str(), "=", v.as_str()].concat());
                    st.config.labels.insert(k, v);
                }
                self.config_node(st, idx, ["LABEL ", &parts.join(" ")].concat());
            }
            Instruction::Arg(args) => {
                // BuildKit's history entry: each name with its default as written (expanded).
                let mut created_by = String::from("ARG");
                for (name, default) in args {
                    let expanded_default = match default {
                        Some(d) => Some(self.expand_in(idx, d, &st.env())?),
                        None => None,
                    };
                    created_by.push(' ');
                    created_by.push_str(name);
                    if let Some(d) = &expanded_default {
                        created_by.push('=');
                        created_by.push_str(d);
                    }
                    let value = if let Some(v) = self.build_arg(name) {
                        self.consumed_args.insert(name.clone());
                        Some(v.to_string())
                    } else if let Some(d) = expanded_default {
                        Some(d)
                    } else {
                        self.global_args
                            .iter()
                            .rev()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                    };
                    st.args.retain(|(k, _)| k != name);
                    st.args.push((name.clone(), value));
                    st.env_snapshot = None;
                }
                self.config_node(st, idx, created_by);
            }
            Instruction::Cmd(c) => {
                let v = self.command(st, c);
                st.config.cmd = Some(v.clone());
                st.cmd_set = true;
                self.config_node(st, idx, format!("CMD {}", json_list(&v)));
            }
            Instruction::Entrypoint(c) => {
                let v = self.command(st, c);
                st.config.entrypoint = Some(v.clone());
                if !st.cmd_set {
                    st.config.cmd = None;
                }
                self.config_node(st, idx, format!("ENTRYPOINT {}", json_list(&v)));
            }
            Instruction::Shell(v) => {
                st.config.shell = Some(v.clone());
                // Go's `%v` of the list, as BuildKit writes it: `SHELL [/bin/sh -ec]`.
                self.config_node(st, idx, ["SHELL [", &v.join(" "), "]"].concat());
            }
            Instruction::Workdir(w) => {
                let w = self.expand_in(idx, w, &env)?;
                let path = copy::absolute_dest(st.workdir(), &w);
                let path = if path.len() > 1 {
                    path.trim_end_matches('/').to_string()
                } else {
                    path
                };
                st.config.working_dir = path.clone();
                let origin = self.origin(&st.name, idx);
                st.prev = self.push(
                    Op::Mkdir {
                        path: path.clone(),
                        mtime: self.epoch,
                    },
                    vec![st.prev],
                    vec![],
                    origin,
                );
                st.history.push(HistoryEntry {
                    created_by: ["WORKDIR ", &path].concat(),
                    comment: "buildkit.dockerfile.v0".into(),
                    empty_layer: false,
                });
            }
            Instruction::User(u) => {
                let u = self.expand_in(idx, u, &env)?;
                st.config.user = u.clone();
                self.config_node(st, idx, ["USER ", &u].concat());
            }
            Instruction::StopSignal(s) => {
                let s = self.expand_in(idx, s, &env)?;
                st.config.stop_signal = s.clone();
                self.config_node(st, idx, format!("STOPSIGNAL {s}"));
            }
            Instruction::Maintainer(m) => {
                st.config.labels.remove("maintainer");
                self.config_node(st, idx, format!("MAINTAINER {m}"));
            }
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let p = self.expand_in(idx, p, &env)?;
                    for port in self.expose_ports(idx, &p)? {
                        st.config
                            .exposed_ports
                            .insert(port.clone(), Default::default());
                        out.push(port);
                    }
                }
                self.config_node(st, idx, format!("EXPOSE {}", out.join(" ")));
            }
            Instruction::Volume(vols) => {
                let mut out = Vec::new();
                for v in vols {
                    let v = self.expand_in(idx, v, &env)?;
                    if v.trim().is_empty() {
                        let node = &self.typed[idx].node;
                        return Err(DockerfileError::at(
                            "VOLUME specified can not be an empty string",
                            node.args_span,
                            "empty after expansion",
                        )
                        .into());
                    }
                    st.config.volumes.insert(v.clone(), Default::default());
                    out.push(v);
                }
                self.config_node(st, idx, format!("VOLUME {}", json_list(&out)));
            }
            Instruction::Healthcheck(h) => {
                let test = match &h.test {
                    None => vec!["NONE".to_string()],
                    Some(CommandLine::Exec(v)) => std::iter::once("CMD".to_string())
                        .chain(v.iter().cloned())
                        .collect(),
                    Some(CommandLine::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
                };
                let hc =
                    HealthConfig {
                        test: test.clone(),
                        interval: Self::duration(h.interval.as_ref())?,
                        timeout: Self::duration(h.timeout.as_ref())?,
                        start_period: Self::duration(h.start_period.as_ref())?,
                        start_interval: Self::duration(h.start_interval.as_ref())?,
                        retries: match &h.retries {
                            None => 0,
                            Some(r) => r.value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(
                                || {
                                    DockerfileError::at(
                                        format!("invalid --retries value {:?}", r.value),
                                        r.span,
                                        "not a number",
                                    )
                                    .with_help("--retries takes a whole number, e.g. --retries=3")
                                },
                            )?,
                        },
                    };
                st.config.healthcheck = Some(hc);
                self.config_node(st, idx, format!("HEALTHCHECK {}", json_list(&test)));
            }
            Instruction::Onbuild(t) => {
                st.config.on_build.push(t.clone());
                self.config_node(st, idx, format!("ONBUILD {t}"));
            }
            Instruction::Run(run) => self.lower_run(st, idx, run, &env)?,
            Instruction::Copy(c) => self.lower_copy(st, idx, c, &env)?,
        }
        Ok(())
    }

    fn lower_run(
        &mut self,
        st: &mut StageState,
        idx: usize,
        run: &RunInstr,
        env: &[(String, String)],
    ) -> Result<(), LowerError> {
        let mut script_file = None;
        let argv = match &run.command {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(cmd) => {
                let script = self.run_script(cmd, &run.heredocs, &mut script_file);
                st.shell_argv(&script)
            }
        };
        let mut env_list = st.config.env.clone();
        for (k, v) in &st.args {
            if let Some(v) = v {
                let in_env = st
                    .config
                    .env
                    .iter()
                    .any(|kv| kv.split('=').next() == Some(k.as_str()));
                if !in_env {
                    env_list.push([k.as_str(), "=", v.as_str()].concat());
                    self.arg_use.scope.push((k.clone(), v.clone()));
                    self.arg_use.note(k);
                }
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.build_arg(p) {
                self.consumed_args.insert(p.to_string());
                env_list.push([p, "=", v].concat());
                self.arg_use.scope.push((p.to_string(), v.to_string()));
                self.arg_use.note(p);
            }
        }
        // `RUN --network=default` (or none given) is the build's choice.
        let network = match run
            .network
            .as_ref()
            .and_then(|n| RunNetwork::parse(&n.value))
        {
            None | Some(RunNetwork::Default) => self.opts.network,
            Some(n) => n,
        };
        let mut reasons = Vec::new();
        if network != RunNetwork::None {
            reasons.push(
                [
                    "RUN has network access (--network=",
                    network.as_str(),
                    "); use --network=none",
                ]
                .concat(),
            );
        }
        let mut inputs = vec![st.prev];
        let mut run_mounts = Vec::with_capacity(run.mounts.len() + 1);
        for flag in &run.mounts {
            let m = mounts::parse_mount(&flag.value, flag.span, |v| self.expand_in(idx, v, env))?;
            let mount = self.run_mount(st, idx, flag, m, &mut inputs, &mut reasons)?;
            run_mounts.push(mount);
        }
        run_mounts.extend(script_file);
        // BuildKit's runCommandString: `|N K=V ...` for the stage's ARGs (an ENV of the same
        // name shows its value instead), then the command.
        let mut created_by = String::from("RUN ");
        if !st.args.is_empty() {
            created_by.push('|');
            created_by.push_str(&st.args.len().to_string());
            for (k, v) in &st.args {
                let env_value = st.config.env.iter().find_map(|kv| {
                    kv.strip_prefix(k.as_str())
                        .and_then(|r| r.strip_prefix('='))
                });
                created_by.push(' ');
                created_by.push_str(k);
                created_by.push('=');
                created_by.push_str(env_value.or(v.as_deref()).unwrap_or(""));
            }
            created_by.push(' ');
        }
        for (i, arg) in argv.iter().enumerate() {
            if i > 0 {
                created_by.push(' ');
            }
            created_by.push_str(arg);
        }
        created_by.push_str(" # buildkit");
        let op = RunOp {
            argv,
            env: env_list,
            cwd: st.workdir().to_string(),
            user: st.config.user.clone(),
            network,
            mounts: run_mounts,
            mtime: self.epoch,
        };
        let origin = self.origin(&st.name, idx);
        st.prev = self.push(Op::Run(op), inputs, reasons, origin);
        st.history.push(HistoryEntry {
            created_by,
            comment: "buildkit.dockerfile.v0".into(),
            empty_layer: false,
        });
        Ok(())
    }

    /// The shell script of a shell-form RUN, as BuildKit's `dispatchRun` feeds heredocs:
    /// a command that is one heredoc and nothing else runs the body itself (a body starting
    /// with `#!` is written to `/dev/pipes/<name>`, mode 0755, and that file is run); any
    /// other command with heredocs is reconstituted (command line, then each body as
    /// written and its delimiter) for the shell to read.
    fn run_script(
        &self,
        cmd: &str,
        heredocs: &[syntax::Heredoc],
        file: &mut Option<RunMount>,
    ) -> String {
        if heredocs.is_empty() {
            return cmd.to_string();
        }
        if let [h] = heredocs {
            if syntax::is_whole_line_heredoc(cmd) {
                // Tabs removed for `<<-`; the body is never expanded here.
                let body = h.body().into_owned();
                if body.starts_with("#!") {
                    let target = path_clean(&["/dev/pipes/", &h.name].concat());
                    *file = Some(RunMount {
                        target: Some(target.clone()),
                        kind: MountKind::File {
                            content: body,
                            mode: 0o755,
                        },
                    });
                    return target;
                }
                return body;
            }
        }
        let mut script = cmd.to_string();
        for h in heredocs {
            script.push('\n');
            // As written: the shell reading the script removes `<<-` tabs itself.
            script.push_str(&h.content);
            script.push_str(&h.name);
        }
        script
    }

    /// One `--mount`, resolved: its target against WORKDIR, `from=` as `COPY --from`
    /// resolves it, a context bind as a context selection; each source node becomes an
    /// input of the RUN node (once, in order of first use).
    fn run_mount(
        &mut self,
        st: &StageState,
        idx: usize,
        flag: &FlagValue,
        m: mounts::ParsedMount,
        inputs: &mut Vec<NodeId>,
        reasons: &mut Vec<String>,
    ) -> Result<RunMount, LowerError> {
        fn input_of(inputs: &mut Vec<NodeId>, id: NodeId) -> usize {
            match inputs.iter().position(|i| *i == id) {
                Some(i) => i,
                None => {
                    inputs.push(id);
                    inputs.len() - 1
                }
            }
        }
        match m.kind {
            MountType::Ssh => {
                return Err(DockerfileError::at(
                    "ssh mounts are not supported yet",
                    flag.span,
                    "type=ssh",
                )
                .with_help(
                    "kiln cannot forward an SSH agent into RUN yet; fetch with a secret mount (type=secret) instead",
                ).into())
            }
            MountType::Secret => {
                let id = if !m.source.is_empty() {
                    m.source.clone()
                } else if !m.id.is_empty() {
                    m.id.clone()
                } else {
                    path_base(&m.target)
                };
                // BuildKit does not join a secret's target with WORKDIR; it is cleaned
                // below `/` here.
                let target = match (&m.env, m.target.is_empty()) {
                    (Some(_), true) => None,
                    (_, false) => Some(path_clean(&["/", &m.target].concat())),
                    (None, true) => Some(["/run/secrets/", &path_base(&id)].concat()),
                };
                reasons.push(format!(
                    "RUN mounts the secret {id:?} (its value comes from the host)"
                ));
                return Ok(RunMount {
                    target,
                    kind: MountKind::Secret {
                        id,
                        required: m.required,
                        mode: m.mode.unwrap_or(0o400),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                        env: m.env,
                    },
                });
            }
            _ => {}
        }
        // BuildKit: a relative (or missing) target is below the working directory, and `/`
        // itself is refused.
        let target = if path_clean(&m.target).starts_with('/') {
            path_clean(&m.target)
        } else {
            path_clean(&["/", st.workdir(), "/", &m.target].concat())
        };
        if target == "/" {
            let help = if m.target.is_empty() {
                "no target= given, so the mount would cover the working directory /; add target=/path".to_string()
            } else {
                "mount somewhere below /, e.g. target=/mnt".to_string()
            };
            return Err(DockerfileError::at(
                format!("invalid mount target {target:?}"),
                flag.span,
                "mount target",
            )
            .with_help(help)
            .into());
        }
        let source = path_clean(&["/", &m.source].concat());
        // tmpfs ignores from= (BuildKit mounts it over scratch).
        let from = if m.from.is_empty() || m.kind == MountType::Tmpfs {
            None
        } else {
            let node = self.copy_from(st, idx, &m.from, flag.span)?;
            Some(MountSource::Node {
                input: input_of(inputs, node),
            })
        };
        let kind = match m.kind {
            MountType::Bind => {
                let from = match from {
                    Some(f) => f,
                    None => {
                        let rel = copy::clean(&source);
                        let raw = [(m.source.clone(), rel.clone())];
                        let path = SourcePath {
                            written: rel.clone(),
                            wildcard: copy::has_wildcard(&rel),
                            cleaned: rel.clone(),
                        };
                        let (_, files) =
                            self.select_context(idx, &raw, &[&path], &Excludes::default())?;
                        let entries = files.len();
                        let sel = ContextSelection {
                            patterns: vec![rel],
                            excludes: Excludes::default(),
                            files,
                            entries,
                        };
                        let origin = self.origin(&st.name, idx);
                        let id = self.push(Op::Context(sel), vec![], vec![], origin);
                        MountSource::Context {
                            input: input_of(inputs, id),
                        }
                    }
                };
                MountKind::Bind {
                    source,
                    from,
                    readonly: m.readonly,
                }
            }
            MountType::Cache => {
                let id = if m.id.is_empty() {
                    path_clean(&m.target)
                } else {
                    m.id
                };
                reasons.push(format!(
                    "RUN mounts the cache {id:?} (its contents persist between builds)"
                ));
                MountKind::Cache {
                    id,
                    source,
                    from,
                    sharing: m.sharing.unwrap_or_default(),
                    readonly: m.readonly,
                    mode: m.mode.unwrap_or(0o755),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                }
            }
            _ => MountKind::Tmpfs {
                size: (m.size > 0).then_some(m.size),
                readonly: m.readonly,
            },
        };
        Ok(RunMount {
            target: Some(target),
            kind,
        })
    }

    fn duration(f: Option<&FlagValue>) -> Result<i64, DockerfileError> {
        let Some(f) = f else { return Ok(0) };
        parse_go_duration(&f.value).ok_or_else(|| {
            DockerfileError::at(
                format!("invalid duration {:?}", f.value),
                f.span,
                "not a duration",
            )
            .with_help("durations look like 30s, 1m30s or 500ms")
        })
    }

    /// One expanded EXPOSE word: its `port/proto` keys (BuildKit's `parsePort`), and the
    /// EXPOSE build checks.
    fn expose_ports(&mut self, idx: usize, spec: &str) -> Result<Vec<String>, DockerfileError> {
        let span = self.typed[idx].node.span_of(self.source, spec);
        let read = expose::parse_port(spec).map_err(|message| {
            DockerfileError::at(message, span, "not a port")
                .with_help("ports look like 80, 80/tcp, 53/udp or 8000-8010")
        })?;
        self.warnings
            .extend(checks::expose_warnings(spec, &read, span));
        Ok(read.ports)
    }

    fn lower_copy(
        &mut self,
        st: &mut StageState,
        idx: usize,
        c: &CopyInstr,
        env: &[(String, String)],
    ) -> Result<(), LowerError> {
        let word = if c.is_add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        let mut inline = Vec::new();
        for s in &c.sources {
            if let Some(h) = c
                .heredocs
                .iter()
                .find(|h| heredoc_ref(s) == Some(h.name.as_str()))
            {
                let content = if h.expand {
                    self.expand_in(idx, &h.body(), env)?
                } else {
                    h.body().into_owned()
                };
                inline.push((h.name.clone(), content));
                continue;
            }
            sources.push((s.clone(), self.expand_in(idx, s, env)?));
        }
        let dest_raw = self.expand_in(idx, &c.dest, env)?;
        let dest = copy::absolute_dest(st.workdir(), &dest_raw);
        if sources.len() + inline.len() > 1 && !dest.ends_with('/') {
            let node = &self.typed[idx].node;
            return Err(DockerfileError::at(
                format!("When using {word} with more than one source file, the destination must be a directory and end with a /"),
                node.span_of(self.source, &c.dest),
                "not a directory",
            )
            .with_help(format!("write {}/", c.dest)).into());
        }
        let opt = |me: &mut Self, f: &Option<FlagValue>| -> Result<Option<String>, LowerError> {
            match f {
                Some(f) => Ok(Some(me.expand_in(idx, &f.value, env)?)),
                None => Ok(None),
            }
        };
        let chown = match (opt(self, &c.chown)?, &c.chown) {
            (Some(v), Some(f)) => Some(Chown::parse(&v).map_err(|e| {
                DockerfileError::at(e.to_string(), f.span, "not an owner")
                    .with_help("write --chown=USER[:GROUP] with names or numeric ids")
            })?),
            _ => None,
        };
        let chmod = match (opt(self, &c.chmod)?, &c.chmod) {
            (Some(v), Some(f)) => Some(Chmod::parse(&v).map_err(|e| {
                DockerfileError::at(e.to_string(), f.span, "not a mode")
                    .with_help("--chmod takes an octal mode like 0644 or a symbolic one like u+x")
            })?),
            _ => None,
        };
        let checksum = opt(self, &c.checksum)?;
        let mut exclude_patterns = Vec::new();
        for e in &c.excludes {
            exclude_patterns.push(self.expand_in(idx, &e.value.clone(), env)?);
        }
        let excludes = Excludes::parse(exclude_patterns).map_err(|e| {
            let span = c
                .excludes
                .first()
                .map_or(self.typed[idx].node.span, |f| f.span);
            DockerfileError::at(
                format!("invalid --exclude pattern: {}", e.kind),
                span,
                "here",
            )
            .with_help(e.help())
        })?;
        let mut parsed = Vec::with_capacity(sources.len());
        for (raw, expanded) in &sources {
            let source = CopySource::parse(expanded).map_err(|e| {
                let node = &self.typed[idx].node;
                DockerfileError::at(
                    format!("failed to compute cache key: syntax error in pattern {expanded:?}"),
                    node.span_of(self.source, raw),
                    "this source",
                )
                .with_help(format!(
                    "{}; sources use Go filepath.Match wildcards: '*', '?', '[...]', '\\' escapes",
                    e.reason
                ))
            })?;
            parsed.push(source);
        }
        let origin = self.origin(&st.name, idx);
        let mut reasons = Vec::new();
        let urls: Vec<&str> = parsed.iter().filter_map(CopySource::url).collect();
        if !c.is_add && !urls.is_empty() {
            let node = &self.typed[idx].node;
            return Err(DockerfileError::at(
                "source can't be a URL for COPY",
                node.span_of(self.source, urls[0]),
                "a URL",
            )
            .with_help("use ADD to download a URL")
            .into());
        }
        for u in &urls {
            if checksum.is_none() {
                reasons.push(format!("ADD downloads {u} without --checksum"));
            }
        }
        let mut selected = Vec::new();
        let (src_node, from_context) = match &c.from {
            Some(f) => {
                let from = self.expand_in(idx, &f.value, env)?;
                (Some(self.copy_from(st, idx, &from, f.span)?), false)
            }
            None if urls.len() == parsed.len() => (None, true),
            None => {
                let local: Vec<&SourcePath> = parsed.iter().filter_map(CopySource::path).collect();
                let (paths, files) = self.select_context(idx, &sources, &local, &excludes)?;
                selected = paths;
                let entries = files.len();
                let sel = ContextSelection {
                    patterns: local.iter().map(|s| s.cleaned.clone()).collect(),
                    excludes: excludes.clone(),
                    files,
                    entries,
                };
                let id = self.push(Op::Context(sel), vec![], vec![], origin.clone());
                (Some(id), true)
            }
        };
        let op = CopyOp {
            add: c.is_add,
            sources: parsed,
            selected,
            inline,
            dest,
            chown,
            chmod,
            link: c.link,
            parents: c.parents,
            excludes,
            checksum,
            from_context,
            mtime: self.epoch,
        };
        let text = [origin.text.as_str(), " # buildkit"].concat();
        let inputs = std::iter::once(st.prev).chain(src_node).collect();
        st.prev = self.push(Op::Copy(op), inputs, reasons, origin);
        st.history.push(HistoryEntry {
            created_by: text,
            comment: "buildkit.dockerfile.v0".into(),
            empty_layer: false,
        });
        Ok(())
    }

    /// The node a `COPY --from` reads: a stage by name or index, else an image.
    fn copy_from(
        &mut self,
        st: &StageState,
        idx: usize,
        from: &str,
        span: Span,
    ) -> Result<NodeId, LowerError> {
        let lower = from.to_ascii_lowercase();
        if let Some(j) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Ok(self.lower_stage(j)?.last);
        }
        if let Ok(n) = from.parse::<usize>() {
            if n < self.stages.len() && !self.in_progress.contains(&n) {
                return Ok(self.lower_stage(n)?.last);
            }
            return Err(DockerfileError::at(
                format!("invalid stage index {n} in --from"),
                span,
                "no such earlier stage",
            )
            .with_help(format!(
                "stage indexes count FROM lines from 0; this one is in stage {}",
                st.name
            ))
            .into());
        }
        // Anything else is an image; one the store does not have, named like a stage that
        // exists, is far more likely a misspelt stage.
        let origin = self.origin(&st.name, idx);
        let (id, resolved) = self.base_image(from, origin)?;
        if resolved.is_none() && !from.contains(['/', ':', '@']) {
            let names: Vec<&str> = self
                .stages
                .iter()
                .filter_map(|s| s.name.as_deref())
                .collect();
            if let Some(s) = crate::suggest::closest(&lower, names.iter().copied()) {
                return Err(DockerfileError::at(
                    format!("no stage or image named {from:?}"),
                    span,
                    "unknown stage",
                )
                .with_help(format!("did you mean the stage {s:?}?"))
                .into());
            }
        }
        Ok(id)
    }

    /// Context entries a COPY/ADD reads: each source resolved against the context, with
    /// everything below selected directories, minus `--exclude` patterns. Returns the
    /// selected source paths (what the builder copies) and the context index of every entry
    /// they take (what the key covers).
    fn select_context(
        &self,
        idx: usize,
        raw: &[(String, String)],
        local: &[&SourcePath],
        excludes: &Excludes,
    ) -> Result<(Vec<String>, Vec<usize>), LowerError> {
        let node = &self.typed[idx].node;
        if local.is_empty() || self.opts.skip_context {
            return Ok((Vec::new(), Vec::new()));
        }
        let selected = copy::select_sources(&self.context, local).map_err(|e| {
            let needle = match &e {
                CopyError::NotFound(p) => raw
                    .iter()
                    .find(|(_, s)| copy::clean(s) == *p)
                    .map(|(r, _)| r.clone()),
                CopyError::BadPattern(p) => Some(p.clone()),
            }
            .unwrap_or_default();
            let help = match &e {
                CopyError::NotFound(_) => {
                    Some("the path is relative to the build context; check .dockerignore too")
                }
                CopyError::BadPattern(_) => None,
            };
            let mut err = DockerfileError::at(
                format!("failed to compute cache key: {e}"),
                node.span_of(self.source, &needle),
                "this source",
            );
            if let Some(h) = help {
                err = err.with_help(h);
            }
            err
        })?;
        let mut files = Vec::new();
        // A source that is a symlink is followed (BuildKit copies what it points at), so the
        // key covers the link and its target.
        let mut roots = Vec::new();
        for path in selected.iter().cloned() {
            if let Some(target) = copy::follow_symlinks(&self.context, &path) {
                if target != path {
                    if let Some(i) = self.context.index_of(&path) {
                        files.push(i);
                    }
                    roots.push(target);
                    continue;
                }
            }
            roots.push(path);
        }
        for path in roots {
            for i in self.context.subtree(&path) {
                let rel = &self.context.files[i].path;
                let within = rel
                    .strip_prefix(&path)
                    .map(|r| r.trim_start_matches('/'))
                    .unwrap_or(rel);
                if excludes.excludes(rel, within) {
                    continue;
                }
                files.push(i);
            }
            // Parent directories of a selected path carry no content of their own.
        }
        files.sort_unstable();
        files.dedup();
        Ok((selected, files))
    }

    /// The target's image node; the last call to need the stage's result, so it moves the
    /// config and history out of it unless another holder remains.
    fn image_node(&mut self, target: usize, r: Rc<StageResult>) -> NodeId {
        self.done.remove(&target);
        let StageResult {
            last,
            mut config,
            history,
        } = Rc::try_unwrap(r).unwrap_or_else(|shared| StageResult {
            last: shared.last,
            config: shared.config.clone(),
            history: shared.history.clone(),
        });
        for (k, v) in &self.opts.labels {
            config.labels.insert(k.clone(), v.clone());
        }
        let op = ImageOp {
            config,
            history,
            created: self.epoch,
        };
        let origin = Origin {
            stage: self.stage_label(target),
            line: 0,
            text: "image".into(),
        };
        self.push(Op::Image(Box::new(op)), vec![last], vec![], origin)
    }

    /// Hash the selected context files, then compute keys and hermeticity in node order.
    fn finish(mut self, target: NodeId, stat_cache: &StatCache) -> Result<Lowered, LowerError> {
        let mut wanted: Vec<usize> = Vec::new();
        for n in &self.nodes {
            if let Op::Context(sel) = &n.op {
                wanted.extend_from_slice(&sel.files);
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        self.context.hash(&wanted, stat_cache)?;
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len());
        let mut encoder = plan::key::KeyEncoder::default();
        let mut input_keys: Vec<Key> = Vec::new();
        // "input #N is not hermetic", made once per node N.
        let mut not_hermetic: Vec<Option<String>> = vec![None; self.nodes.len()];
        for (i, p) in self.nodes.into_iter().enumerate() {
            input_keys.clear();
            input_keys.extend(p.inputs.iter().map(|id| nodes[id.0].key));
            let content = match &p.op {
                Op::Context(sel) => Some(self.context.content_digest(&sel.files)),
                _ => None,
            };
            let key = encoder.key(&p.op, &input_keys, content.as_ref());
            let mut reasons = p.reasons;
            for id in &p.inputs {
                if !nodes[id.0].hermetic {
                    let reason = not_hermetic[id.0]
                        .get_or_insert_with(|| format!("input #{} is not hermetic", id.0));
                    reasons.push(reason.clone());
                }
            }
            nodes.push(Node {
                id: NodeId(i),
                hermetic: reasons.is_empty(),
                reasons,
                args: p.args,
                op: p.op,
                inputs: p.inputs,
                key,
                origin: p.origin,
            });
        }
        let unused: BTreeMap<&str, ()> = self
            .opts
            .build_args
            .iter()
            .filter(|(k, _)| !self.consumed_args.contains(k) && k != "SOURCE_DATE_EPOCH")
            .map(|(k, _)| (k.as_str(), ()))
            .collect();
        let mut warnings = self.warnings;
        if !unused.is_empty() {
            warnings.push(Warning {
                rule: "UnusedBuildArg",
                message: format!(
                    "One or more build-args [{}] were not consumed",
                    unused.keys().copied().collect::<Vec<_>>().join(" ")
                ),
                span: Span::default(),
            });
        }
        Ok(Lowered {
            plan: Plan {
                nodes,
                target,
                context: self.context,
            },
            warnings,
        })
    }
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// `<<EOF` / `<<-EOF` / `<<"EOF"` as a COPY source names the heredoc `EOF`.
pub(crate) fn heredoc_ref(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    Some(rest.trim_matches(|c| c == '"' || c == '\''))
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// An instruction's text on one line with runs of whitespace collapsed (most are already).
fn one_line(s: &str) -> String {
    // One pass over the bytes decides whether anything needs collapsing: a line break or
    // tab, two spaces in a row, or whitespace at either end.
    let bytes = s.as_bytes();
    let inner = bytes
        .iter()
        .zip(bytes.iter().skip(1).chain(Some(&0)))
        .any(|(&b, &next)| matches!(b, b'\n' | b'\t' | b'\r') || (b == b' ' && next == b' '));
    let at_ends = s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace);
    if !(inner || at_ends) {
        return s.to_string();
    }
    if s.is_ascii() {
        // Split the bytes on the ASCII characters `char::is_whitespace` accepts.
        let mut out = Vec::with_capacity(s.len());
        let words = bytes
            .split(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
            .filter(|w| !w.is_empty());
        for word in words {
            if !out.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(word);
        }
        return String::from_utf8(out).unwrap_or_default();
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Go's time.ParseDuration for the units Dockerfiles use (ns us µs ms s m h), in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("30s"), Some(30_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn one_line_collapses_as_split_whitespace_does() {
        let reference = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for s in [
            "RUN a \\\n    && b",
            " RUN x",
            "RUN x\t",
            "RUN a\x0bb  c",
            "RUN a\x0cb\r\nc",
            "RUN caf\u{e9}\u{a0}x  y",
            "RUN \u{3000}x\n",
            "RUN a b  c d\te f \n",
            "  a",
            "a  ",
            " ",
            "\n\t",
            "RUN set -e \\\n    && apt-get update  && x y z",
        ] {
            assert_eq!(one_line(s), reference(s), "{s:?}");
        }
        // Nothing to collapse: kept as written, odd whitespace included.
        assert_eq!(one_line("RUN a\u{a0}b"), "RUN a\u{a0}b");
        assert_eq!(one_line("COPY . /app"), "COPY . /app");
    }

    #[test]
    fn stage_names() {
        assert!(valid_stage_name("build-env_1.x"));
        assert!(!valid_stage_name("1build"));
        assert!(!valid_stage_name("bu ild"));
    }
}
