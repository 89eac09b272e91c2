//! Lowering: a parsed Dockerfile, its context and build options in, a [`Plan`] out.
//!
//! Owns the Dockerfile's meaning: stages by name and index, `--target` pruning (stages the
//! target does not need are never lowered), global and stage ARG scopes, ENV, one expansion
//! snapshot per instruction, ONBUILD triggers of base images, the CMD/ENTRYPOINT/SHELL table,
//! WORKDIR chaining, and COPY/ADD sources and flags. Nodes, base images, context selection,
//! metadata changes, keys and hermeticity are the plan builder's (`plan::builder`), which the
//! kiln language's front end calls too.
//! Must not: read image blobs or write anything (base images come from an [`ImageResolver`]),
//! or build nodes other than through the plan builder.

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
use crate::plan::builder::{self, ArgUse, Lowered, PlanBuilder, Stage};
use crate::plan::{
    BuildOptions, Chmod, Chown, ConfigChange, CopyOp, CopySource, Excludes, FileId, HealthConfig,
    HistoryEntry, ImageLookupError, ImageResolver, MountKind, MountSource, NoImages, NodeId,
    Origin, RunConfig, RunMount, RunNetwork, RunOp, SourcePath, Warning,
};
use crate::shell::Lexer;
use crate::syntax::{self, Dockerfile, Span};

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

/// Lower a parsed Dockerfile to a plan.
pub fn lower(
    df: &Dockerfile,
    source: &str,
    context: ContextIndex,
    stat_cache: &StatCache,
    opts: &BuildOptions,
    images: &dyn ImageResolver,
) -> Result<Lowered, LowerError> {
    let mut b = PlanBuilder::new(context, opts, images);
    let mut lw = Lowerer::new(df, source, opts, FileId(0), &mut b)?;
    let target = lw.target_stage()?;
    let result = lw.lower_stage(target)?;
    let image = lw.image_node(target, result);
    let unused = lw.unused_build_args();
    let mut lowered = b.finish(image, stat_cache)?;
    lowered.warnings.extend(unused);
    Ok(lowered)
}

/// Why [`lower_stage_into`] failed: the target stage is not in the Dockerfile, or lowering
/// the Dockerfile failed (its diagnostic, with spans in the Dockerfile's text).
#[derive(Debug)]
pub enum StageIntoError {
    NoTarget(DockerfileError),
    Lower(LowerError),
}

/// Lower one stage of a Dockerfile (`opts.target`, or the last) into another front end's
/// plan builder, and return its image state: what the kiln language's `dockerfile()` calls,
/// so the stage's nodes are the ones building the Dockerfile gives. `opts` carries only
/// the Dockerfile's build arguments and target; the network, SOURCE_DATE_EPOCH and the
/// context are the builder's. Origins name `file`.
pub fn lower_stage_into(
    df: &Dockerfile,
    source: &str,
    opts: &BuildOptions,
    file: FileId,
    b: &mut PlanBuilder<'_>,
) -> Result<Stage, StageIntoError> {
    let mut lw =
        Lowerer::new(df, source, opts, file, b).map_err(|e| StageIntoError::Lower(e.into()))?;
    let target = lw.target_stage().map_err(StageIntoError::NoTarget)?;
    let r = lw.lower_stage(target).map_err(StageIntoError::Lower)?;
    let name = lw.stage_label(target);
    lw.done.clear();
    let r = Rc::try_unwrap(r).unwrap_or_else(|shared| StageResult {
        last: shared.last,
        config: shared.config.clone(),
        history: shared.history.clone(),
    });
    Ok(Stage::new(&name, r.last, r.config, r.history))
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
    let mut b = PlanBuilder::new(ContextIndex::default(), &opts, &NoImages);
    let mut lw = Lowerer::new(df, source, &opts, FileId(0), &mut b)?;
    for i in 0..lw.stages.len() {
        lw.lower_stage(i)?;
    }
    let last = lw.stages.len() - 1;
    let result = lw.lower_stage(last)?;
    let image = lw.image_node(last, result);
    let unused = lw.unused_build_args();
    let mut warnings = b.finish(image, &StatCache::default())?.warnings;
    warnings.extend(unused);
    Ok(warnings)
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

/// Per-stage state while its instructions are lowered: the builder's image state and the
/// Dockerfile's scopes.
struct StageState {
    /// The builder's image state; its `args` are the stage's declared ARGs.
    img: Stage,
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
            .img
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect();
        for kv in &self.img.config.env {
            let (k, val) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            v.push((k.to_string(), val.to_string()));
        }
        let env = Rc::new(v);
        self.env_snapshot = Some(Rc::clone(&env));
        env
    }
}

/// The most bytes all the variable expansions of one Dockerfile may produce together (one
/// word may produce at most `shell::MAX_EXPANSION`): far above any real Dockerfile, and a
/// bound on what chained ARGs can make the planner allocate.
pub const MAX_EXPANDED_TOTAL: usize = 64 << 20;

struct Lowerer<'a, 'p> {
    source: &'a str,
    /// The file origins name.
    file: FileId,
    lexer: Lexer,
    /// Shared so an instruction can be read while `self` is lowered mutably.
    typed: Rc<Vec<Located<'a>>>,
    stages: Vec<StageDef>,
    global_args: Vec<(String, String)>,
    opts: &'a BuildOptions,
    b: &'a mut PlanBuilder<'p>,
    done: HashMap<usize, Rc<StageResult>>,
    in_progress: HashSet<usize>,
    consumed_args: HashSet<String>,
    /// Bytes produced by expansions so far (bounded by `MAX_EXPANDED_TOTAL`).
    expanded: usize,
}

impl<'a, 'p> Lowerer<'a, 'p> {
    fn new(
        df: &'a Dockerfile,
        source: &'a str,
        opts: &'a BuildOptions,
        file: FileId,
        b: &'a mut PlanBuilder<'p>,
    ) -> Result<Self, DockerfileError> {
        let mut typed = Vec::with_capacity(df.instructions.len());
        for node in &df.instructions {
            instructions::check_known(node, source)?;
            let instr = instructions::from_node(node, source)?;
            typed.push(Located { instr, node });
        }
        let mut lw = Lowerer {
            source,
            file,
            lexer: Lexer::new(df.escape),
            typed: Rc::new(typed),
            stages: Vec::new(),
            global_args: Vec::new(),
            opts,
            b,
            done: HashMap::new(),
            in_progress: HashSet::new(),
            consumed_args: HashSet::new(),
            expanded: 0,
        };
        lw.split_stages()?;
        Ok(lw)
    }

    fn build_arg(&self, name: &str) -> Option<&'a str> {
        let opts: &'a BuildOptions = self.opts;
        opts.build_arg(name)
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
                    self.b.arg_use.note(var);
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
                    self.b.warnings.push(Warning {
                        rule: "UndefinedVar",
                        message: format!("Usage of undefined variable '${var}'"),
                        file: self.file,
                        span,
                    });
                }
                Ok(e.value)
            }
            Err(e) => Err(self.expand_error(node, word, e)),
        }
    }

    fn origin(&self, stage: &str, instr: usize) -> Origin {
        let node = &self.typed[instr].node;
        Origin {
            file: self.file,
            span: node.span,
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
            &mut self.b.arg_use,
            ArgUse {
                scope: self.global_args.clone(),
                used: Vec::new(),
            },
        );
        // Unset names here are the UndefinedArgInFrom check's (checks.rs), not UndefinedVar.
        let image = match self.lexer.expand_word(&from.image, &self.global_args) {
            Ok(e) => {
                for var in &e.used {
                    self.b.arg_use.note(var);
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
            let st = self.b.scratch_stage(&label, from_origin.clone());
            (st.prev, st.config, Vec::new(), Vec::new())
        } else {
            let (id, resolved) = self.b.base_image(&image, from_origin.clone())?;
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
                        self.b
                            .warnings
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
            img: Stage::new(&label, prev, config, history),
            env_snapshot: None,
        };
        for trigger in triggers {
            self.run_trigger(&mut st, from_idx, &trigger)?;
        }
        for idx in self.stages[i].body.clone() {
            self.lower_instruction(&mut st, idx, &typed[idx].instr)?;
        }
        self.in_progress.remove(&i);
        self.b.arg_use = outer_args;
        let result = Rc::new(StageResult {
            last: st.img.prev,
            config: st.img.config,
            history: st.img.history,
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

    fn config_node(&mut self, st: &mut StageState, idx: usize, change: ConfigChange) {
        let origin = self.origin(&st.img.name, idx);
        self.b.config(&mut st.img, change, origin);
    }

    fn command(&self, st: &StageState, cmd: &CommandLine) -> Vec<String> {
        match cmd {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => st.img.shell_argv(s),
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
        self.b.arg_use.used.clear();
        self.b.arg_use.scope.clear();
        if expands || matches!(instr, Instruction::Arg(_)) {
            for (k, v) in &st.img.args {
                let hidden = st
                    .img
                    .config
                    .env
                    .iter()
                    .any(|kv| kv.split('=').next() == Some(k.as_str()));
                if let (Some(v), false) = (v, hidden) {
                    self.b.arg_use.scope.push((k.clone(), v.clone()));
                }
            }
        }
        match instr {
            Instruction::From(_) => unreachable!("FROM starts a stage"),
            Instruction::Env(pairs) => {
                let mut vars = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand_in(idx, k, &env)?;
                    let v = self.expand_in(idx, v, &env)?;
                    vars.push((k, v));
                }
                st.env_snapshot = None;
                self.config_node(st, idx, ConfigChange::Env { vars });
            }
            Instruction::Label(pairs) => {
                let mut labels = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand_in(idx, k, &env)?;
                    let v = self.expand_in(idx, v, &env)?;
                    labels.push((k, v));
                }
                self.config_node(st, idx, ConfigChange::Label { labels });
            }
            Instruction::Arg(args) => {
                // BuildKit's history entry: each name with its default as written (expanded).
                let mut declared = Vec::new();
                for (name, default) in args {
                    let expanded_default = match default {
                        Some(d) => Some(self.expand_in(idx, d, &st.env())?),
                        None => None,
                    };
                    let value = if let Some(v) = self.build_arg(name) {
                        self.consumed_args.insert(name.clone());
                        Some(v.to_string())
                    } else if let Some(d) = &expanded_default {
                        Some(d.clone())
                    } else {
                        self.global_args
                            .iter()
                            .rev()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                    };
                    declared.push((name.clone(), expanded_default));
                    st.img.declare_arg(name, value);
                    st.env_snapshot = None;
                }
                self.config_node(st, idx, ConfigChange::Arg { args: declared });
            }
            Instruction::Cmd(c) => {
                let argv = self.command(st, c);
                self.config_node(st, idx, ConfigChange::Cmd { argv });
            }
            Instruction::Entrypoint(c) => {
                let argv = self.command(st, c);
                self.config_node(st, idx, ConfigChange::Entrypoint { argv });
            }
            Instruction::Shell(v) => {
                self.config_node(st, idx, ConfigChange::Shell { argv: v.clone() });
            }
            Instruction::Workdir(w) => {
                let w = self.expand_in(idx, w, &env)?;
                let origin = self.origin(&st.img.name, idx);
                self.b.workdir(&mut st.img, &w, origin);
            }
            Instruction::User(u) => {
                let user = self.expand_in(idx, u, &env)?;
                self.config_node(st, idx, ConfigChange::User { user });
            }
            Instruction::StopSignal(s) => {
                let signal = self.expand_in(idx, s, &env)?;
                self.config_node(st, idx, ConfigChange::StopSignal { signal });
            }
            Instruction::Maintainer(m) => {
                self.config_node(st, idx, ConfigChange::Maintainer { name: m.clone() });
            }
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let p = self.expand_in(idx, p, &env)?;
                    out.extend(self.expose_ports(idx, &p)?);
                }
                self.config_node(st, idx, ConfigChange::Expose { ports: out });
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
                    out.push(v);
                }
                self.config_node(st, idx, ConfigChange::Volume { paths: out });
            }
            Instruction::Healthcheck(h) => {
                let test = match &h.test {
                    None => vec!["NONE".to_string()],
                    Some(CommandLine::Exec(v)) => std::iter::once("CMD".to_string())
                        .chain(v.iter().cloned())
                        .collect(),
                    Some(CommandLine::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
                };
                let health =
                    HealthConfig {
                        test,
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
                self.config_node(st, idx, ConfigChange::Healthcheck { health });
            }
            Instruction::Onbuild(t) => {
                self.config_node(st, idx, ConfigChange::OnBuild { trigger: t.clone() });
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
                st.img.shell_argv(&script)
            }
        };
        let (mut env_list, prefix) = self.b.run_args(&st.img);
        for p in PROXY_ARGS {
            if let Some(v) = self.build_arg(p) {
                self.consumed_args.insert(p.to_string());
                env_list.push([p, "=", v].concat());
                self.b.arg_use.scope.push((p.to_string(), v.to_string()));
                self.b.arg_use.note(p);
            }
        }
        // `RUN --network=default` (or none given) is the build's choice.
        let network = self.b.run_network(
            run.network
                .as_ref()
                .and_then(|n| RunNetwork::parse(&n.value)),
        );
        let reasons = Vec::new();
        let mut inputs = vec![st.img.prev];
        let mut run_mounts = Vec::with_capacity(run.mounts.len() + 1);
        for flag in &run.mounts {
            let m = mounts::parse_mount(&flag.value, flag.span, |v| self.expand_in(idx, v, env))?;
            let mount = self.run_mount(st, idx, flag, m, &mut inputs)?;
            run_mounts.push(mount);
        }
        run_mounts.extend(script_file);
        let created_by = builder::run_created_by(&prefix, &argv);
        let op = RunOp {
            argv,
            env: env_list,
            cwd: st.img.workdir().to_string(),
            user: st.img.config.user.clone(),
            network,
            mounts: run_mounts,
            pin: None,
            mtime: self.b.epoch(),
        };
        let origin = self.origin(&st.img.name, idx);
        inputs.remove(0);
        self.b
            .run(&mut st.img, op, inputs, reasons, created_by, origin);
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
            path_clean(&["/", st.img.workdir(), "/", &m.target].concat())
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
                        let origin = self.origin(&st.img.name, idx);
                        let id = self
                            .b
                            .context_node(vec![rel], Excludes::default(), files, origin);
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
        self.b
            .warnings
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
        let dest = copy::absolute_dest(st.img.workdir(), &dest_raw);
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
        let origin = self.origin(&st.img.name, idx);
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
                let patterns = local.iter().map(|s| s.cleaned.clone()).collect();
                let id = self
                    .b
                    .context_node(patterns, excludes.clone(), files, origin.clone());
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
            mtime: self.b.epoch(),
        };
        let text = origin.text.clone();
        self.b
            .copy(&mut st.img, op, src_node, reasons, &text, origin);
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
                st.img.name
            ))
            .into());
        }
        // Anything else is an image; one the store does not have, named like a stage that
        // exists, is far more likely a misspelt stage.
        let origin = self.origin(&st.img.name, idx);
        let (id, resolved) = self.b.base_image(from, origin)?;
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
        self.b.select_context(local, excludes).map_err(|e| {
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
            err.into()
        })
    }

    /// The target's image node; the last call to need the stage's result, so it moves the
    /// config and history out of it unless another holder remains.
    fn image_node(&mut self, target: usize, r: Rc<StageResult>) -> NodeId {
        self.done.remove(&target);
        let StageResult {
            last,
            config,
            history,
        } = Rc::try_unwrap(r).unwrap_or_else(|shared| StageResult {
            last: shared.last,
            config: shared.config.clone(),
            history: shared.history.clone(),
        });
        let name = self.stage_label(target);
        let origin = Origin {
            stage: name.clone(),
            text: "image".into(),
            ..Default::default()
        };
        let st = Stage {
            name,
            prev: last,
            config,
            history,
            cmd_set: false,
            args: Vec::new(),
        };
        self.b.image(st, origin)
    }

    /// The warning that build args nothing used were given (none when all were used).
    fn unused_build_args(&self) -> Option<Warning> {
        let unused: BTreeMap<&str, ()> = self
            .opts
            .build_args
            .iter()
            .filter(|(k, _)| !self.consumed_args.contains(k) && k != "SOURCE_DATE_EPOCH")
            .map(|(k, _)| (k.as_str(), ()))
            .collect();
        (!unused.is_empty()).then(|| Warning {
            rule: "UnusedBuildArg",
            message: format!(
                "One or more build-args [{}] were not consumed",
                unused.keys().copied().collect::<Vec<_>>().join(" ")
            ),
            file: self.file,
            span: Span::default(),
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
