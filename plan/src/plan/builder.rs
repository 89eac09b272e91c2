//! The plan builder: what every front end (the Dockerfile's `dockerfile::lower`, the kiln
//! language's `kiln::lower`) calls to make a [`Plan`].
//!
//! Owns the front-end-neutral part of planning: build options, base images through an
//! [`ImageResolver`] (one node per reference, hermetic only by digest), context selections
//! over the [`ContextIndex`], the per-stage image state ([`Stage`]: previous node, run config,
//! history) and the typed metadata changes applied to it, RUN/COPY/WORKDIR nodes with their
//! history entries, and last, once every selection is known, hashing the selected context
//! files, every node's cache key and hermeticity (a node is impure when it or an input is).
//! Must not: know any front end's syntax (no Dockerfile text, no kiln source), read image
//! blobs or write anything.

use std::collections::HashMap;

use crate::context::{ContextError, ContextIndex, StatCache};
use crate::copy::{self, CopyError};
use crate::plan::{
    ConfigChange, ContextSelection, CopyOp, Excludes, HistoryEntry, ImageOp, Key, MountKind, Node,
    NodeId, Op, Origin, Plan, RunConfig, RunNetwork, RunOp, SourcePath,
};
use crate::platforms::Platform;
use crate::span::Span;

/// Which source file a span is in: 0 is the file the build started from (the Dockerfile or
/// the `.kiln` program); a kiln program numbers its modules and stdlib files after it, then
/// the Dockerfiles its `dockerfile()` calls read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct FileId(pub u32);

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

impl BuildOptions {
    /// The value of `--build-arg NAME` (the last one given).
    pub fn build_arg(&self, name: &str) -> Option<&str> {
        self.build_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
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
    pub file: FileId,
    pub span: Span,
}

/// The `PATH` a stage gets when its base image sets none (BuildKit's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The history comment of steps that write a layer, as BuildKit's Dockerfile frontend
/// writes it (kept for every front end, so equal images have equal configs).
pub const LAYER_COMMENT: &str = "buildkit.dockerfile.v0";

/// One stage's image while it is planned: the node its filesystem is at, its run config and
/// its history.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Name for origins and progress (`build`, `stage-0`).
    pub name: String,
    pub prev: NodeId,
    pub config: RunConfig,
    pub history: Vec<HistoryEntry>,
    /// Whether this stage set CMD itself (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// The stage's build arguments (its ARGs), in declaration order: name and value (None:
    /// declared without one). They are in the environment of the stage's later RUN steps,
    /// never in its config, and a stage built on this one does not inherit them.
    pub args: Vec<(String, Option<String>)>,
}

impl Stage {
    /// Declare a build argument (ARG) with its value (None: declared without one); a name
    /// declared again keeps its first place and takes the new value, if any (current BuildKit's
    /// runCommandString; the BuildKit of docker 20.10 listed it twice in a RUN's `|N`
    /// prefix). The ARG's `config` node and history entry are the [`ConfigChange::Arg`] its
    /// front end makes after declaring each of its names.
    pub fn declare_arg(&mut self, name: &str, value: Option<String>) {
        match self.args.iter_mut().find(|(k, _)| k == name) {
            // Without a value it changes nothing (BuildKit adds no environment for it).
            Some(slot) => {
                if value.is_some() {
                    slot.1 = value;
                }
            }
            None => self.args.push((name.to_string(), value)),
        }
    }

    /// The working directory RUN and relative destinations use (`/` when unset).
    pub fn workdir(&self) -> &str {
        if self.config.working_dir.is_empty() {
            "/"
        } else {
            &self.config.working_dir
        }
    }

    /// The shell form's argv: SHELL (or `/bin/sh -c`) and the command.
    pub fn shell_argv(&self, command: &str) -> Vec<String> {
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
/// a value (an ENV of the same name hides one), `used` those an expansion (or RUN's
/// environment) took so far, in order of first use. Every node pushed gets `used` as its
/// [`Node::args`].
#[derive(Debug, Default)]
pub struct ArgUse {
    pub scope: Vec<(String, String)>,
    pub used: Vec<(String, String)>,
}

impl ArgUse {
    /// `name` was read: recorded when it is a build argument in scope.
    pub fn note(&mut self, name: &str) {
        if self.used.iter().any(|(k, _)| k == name) {
            return;
        }
        if let Some((k, v)) = self.scope.iter().rev().find(|(k, _)| k == name) {
            self.used.push((k.clone(), v.clone()));
        }
    }
}

/// The builder both front ends drive. Nodes are pushed in dependency order; [`finish`]
/// computes keys and hermeticity.
///
/// [`finish`]: PlanBuilder::finish
pub struct PlanBuilder<'a> {
    pub opts: &'a BuildOptions,
    images: &'a dyn ImageResolver,
    context: ContextIndex,
    nodes: Vec<PendingNode>,
    base_nodes: HashMap<String, (NodeId, Option<ResolvedImage>)>,
    pub warnings: Vec<Warning>,
    /// The build arguments the current instruction reads (recorded on its nodes).
    pub arg_use: ArgUse,
    epoch: u64,
}

/// The result of planning: the plan and the warnings found on the way.
pub struct Lowered {
    pub plan: Plan,
    pub warnings: Vec<Warning>,
}

impl<'a> PlanBuilder<'a> {
    pub fn new(
        context: ContextIndex,
        opts: &'a BuildOptions,
        images: &'a dyn ImageResolver,
    ) -> Self {
        PlanBuilder {
            opts,
            images,
            context,
            nodes: Vec::new(),
            base_nodes: HashMap::new(),
            warnings: Vec::new(),
            arg_use: ArgUse::default(),
            epoch: opts.source_date_epoch.unwrap_or(0),
        }
    }

    /// SOURCE_DATE_EPOCH (0 when unset): layer mtimes and `created`.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn context(&self) -> &ContextIndex {
        &self.context
    }

    /// Add a node; its inputs must already be in the plan.
    pub fn push(
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

    /// A stage from the empty filesystem: BuildKit gives it the working directory `/`.
    pub fn scratch_stage(&mut self, name: &str, origin: Origin) -> Stage {
        let prev = self.push(Op::Scratch, vec![], vec![], origin);
        let config = RunConfig {
            working_dir: "/".into(),
            ..Default::default()
        };
        Stage::new(name, prev, config, Vec::new())
    }

    /// A base image node, shared by every use of the same reference. A reference without a
    /// digest is impure (the tag may move).
    pub fn base_image(
        &mut self,
        reference: &str,
        origin: Origin,
    ) -> Result<(NodeId, Option<ResolvedImage>), ImageLookupError> {
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

    /// Context entries a copy reads: each source resolved against the context, with
    /// everything below selected directories, minus `excludes`. Returns the selected source
    /// paths (what the builder copies) and the context index of every entry they take (what
    /// the key covers). Nothing is looked up when the options skip the context.
    pub fn select_context(
        &self,
        local: &[&SourcePath],
        excludes: &Excludes,
    ) -> Result<(Vec<String>, Vec<usize>), CopyError> {
        if local.is_empty() || self.opts.skip_context {
            return Ok((Vec::new(), Vec::new()));
        }
        let selected = copy::select_sources(&self.context, local)?;
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

    /// A `context` node for selected files (see [`select_context`](Self::select_context)).
    pub fn context_node(
        &mut self,
        patterns: Vec<String>,
        excludes: Excludes,
        files: Vec<usize>,
        origin: Origin,
    ) -> NodeId {
        let entries = files.len();
        let sel = ContextSelection {
            patterns,
            excludes,
            files,
            entries,
        };
        self.push(Op::Context(sel), vec![], vec![], origin)
    }

    /// A metadata change: applied to the stage's config, one `config` node keyed by what it
    /// sets, and its history entry.
    pub fn config(&mut self, st: &mut Stage, change: ConfigChange, origin: Origin) {
        change.apply(&mut st.config, &mut st.cmd_set);
        let created_by = change.created_by();
        st.prev = self.push(Op::Config(change), vec![st.prev], vec![], origin);
        st.history.push(HistoryEntry {
            created_by,
            comment: String::new(),
            empty_layer: true,
        });
    }

    /// What the stage's build arguments give a RUN step, as BuildKit's dispatchRun does:
    /// the environment (the config's, then each argument with a value that no ENV of the
    /// same name hides) and the history text's prefix (runCommandString's `|N K=V ... `,
    /// every argument, an ENV of the same name showing its value; empty without arguments).
    /// The arguments put in the environment are noted as read ([`ArgUse`]).
    pub fn run_args(&mut self, st: &Stage) -> (Vec<String>, String) {
        let env_value = |k: &str| {
            st.config
                .env
                .iter()
                .find_map(|kv| kv.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
        };
        let hidden = |k: &str| {
            st.config
                .env
                .iter()
                .any(|kv| kv.split('=').next() == Some(k))
        };
        let mut env = st.config.env.clone();
        for (k, v) in &st.args {
            if let (Some(v), false) = (v, hidden(k)) {
                env.push([k.as_str(), "=", v.as_str()].concat());
                self.arg_use.scope.push((k.clone(), v.clone()));
                self.arg_use.note(k);
            }
        }
        let mut prefix = String::new();
        if !st.args.is_empty() {
            prefix.push('|');
            prefix.push_str(&st.args.len().to_string());
            for (k, v) in &st.args {
                prefix.push(' ');
                prefix.push_str(k);
                prefix.push('=');
                prefix.push_str(env_value(k).or(v.as_deref()).unwrap_or(""));
            }
            prefix.push(' ');
        }
        (env, prefix)
    }

    /// WORKDIR: `path` (absolute or relative to the current one) becomes the working
    /// directory and is created.
    pub fn workdir(&mut self, st: &mut Stage, path: &str, origin: Origin) {
        let path = copy::absolute_dest(st.workdir(), path);
        let path = if path.len() > 1 {
            path.trim_end_matches('/').to_string()
        } else {
            path
        };
        st.config.working_dir = path.clone();
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
            comment: LAYER_COMMENT.into(),
            empty_layer: false,
        });
    }

    /// The network a step runs with: its own choice, else the build's.
    pub fn run_network(&self, chosen: Option<RunNetwork>) -> RunNetwork {
        match chosen {
            None | Some(RunNetwork::Default) => self.opts.network,
            Some(n) => n,
        }
    }

    /// A RUN step on the stage. `inputs` are the mount sources after the stage's own node
    /// (input 0); `reasons` why it is impure besides what this adds: its network, and its
    /// secret and cache mounts.
    pub fn run(
        &mut self,
        st: &mut Stage,
        op: RunOp,
        mount_inputs: Vec<NodeId>,
        mut reasons: Vec<String>,
        created_by: String,
        origin: Origin,
    ) {
        // A pinned step's output is checked against its digest, so its network does not
        // make it impure (a fixed-output step).
        if op.network != RunNetwork::None && op.pin.is_none() {
            reasons.insert(
                0,
                [
                    "RUN has network access (--network=",
                    op.network.as_str(),
                    "); without the network (Dockerfile --network=none, kiln network: false), \
                     or pinned by its output's digest (kiln pin:), it would count as hermetic",
                ]
                .concat(),
            );
        }
        for m in &op.mounts {
            match &m.kind {
                MountKind::Secret { id, .. } => reasons.push(format!(
                    "RUN mounts the secret {id:?} (its value comes from the host)"
                )),
                MountKind::Cache { id, .. } => reasons.push(format!(
                    "RUN mounts the cache {id:?} (its contents persist between builds)"
                )),
                _ => {}
            }
        }
        let inputs = std::iter::once(st.prev).chain(mount_inputs).collect();
        st.prev = self.push(Op::Run(op), inputs, reasons, origin);
        st.history.push(HistoryEntry {
            created_by,
            comment: LAYER_COMMENT.into(),
            empty_layer: false,
        });
    }

    /// A COPY/ADD on the stage from `source` (a context node, another stage's node or a
    /// base image; None for heredocs and URLs). `created_by` is the history text without
    /// the ` # buildkit` suffix.
    pub fn copy(
        &mut self,
        st: &mut Stage,
        op: CopyOp,
        source: Option<NodeId>,
        reasons: Vec<String>,
        created_by: &str,
        origin: Origin,
    ) {
        let inputs = std::iter::once(st.prev).chain(source).collect();
        st.prev = self.push(Op::Copy(op), inputs, reasons, origin);
        st.history.push(HistoryEntry {
            created_by: [created_by, " # buildkit"].concat(),
            comment: LAYER_COMMENT.into(),
            empty_layer: false,
        });
    }

    /// The image node of a target stage, with the build's `--label`s added.
    pub fn image(&mut self, st: Stage, origin: Origin) -> NodeId {
        let Stage {
            prev,
            mut config,
            history,
            ..
        } = st;
        for (k, v) in &self.opts.labels {
            config.labels.insert(k.clone(), v.clone());
        }
        let op = ImageOp {
            config,
            history,
            created: self.epoch,
        };
        self.push(Op::Image(Box::new(op)), vec![prev], vec![], origin)
    }

    /// Hash the selected context files, then compute keys and hermeticity in node order.
    pub fn finish(
        mut self,
        target: NodeId,
        stat_cache: &StatCache,
    ) -> Result<Lowered, ContextError> {
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
        let mut encoder = crate::plan::key::KeyEncoder::default();
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
        Ok(Lowered {
            plan: Plan {
                nodes,
                target,
                context: self.context,
            },
            warnings: self.warnings,
        })
    }
}

impl Stage {
    /// A stage at `prev` with a base image's config and history; a stage without `PATH`
    /// gets the default one, as BuildKit gives it.
    pub fn new(
        name: &str,
        prev: NodeId,
        mut config: RunConfig,
        history: Vec<HistoryEntry>,
    ) -> Stage {
        if config.env_get("PATH").is_none() {
            config.env_set("PATH", DEFAULT_PATH);
        }
        Stage {
            name: name.to_string(),
            prev,
            config,
            history,
            cmd_set: false,
            args: Vec::new(),
        }
    }
}

/// A RUN step's history text, as BuildKit writes it without build args: the argv joined by
/// spaces and ` # buildkit`.
pub fn run_created_by(prefix: &str, argv: &[String]) -> String {
    let mut created_by = String::from("RUN ");
    created_by.push_str(prefix);
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            created_by.push(' ');
        }
        created_by.push_str(arg);
    }
    created_by.push_str(" # buildkit");
    created_by
}
