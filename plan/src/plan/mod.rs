//! The layer plan: the DAG both front ends lower to, and what the builder runs.
//!
//! Owns the node types, the run configuration model (`RunConfig`, Docker's field names), and
//! cache keys (`key`: the v1 canonical encoding written down in docs/cache-keys.md), and the
//! one plan builder every front end calls (`builder`). Nodes are stored in dependency order:
//! every input of node `i` has an id below `i`.
//! Must not: know how a node is executed or where results are stored.

pub mod builder;
pub mod config;
pub mod copy_spec;
pub mod explain;
pub mod key;
pub mod record;
mod render;

use serde::Serialize;

pub use builder::{
    BuildOptions, FileId, ImageLookupError, ImageResolver, Lowered, NoImages, PlanBuilder,
    ResolvedImage, Stage, Warning,
};
pub use config::{HealthConfig, HistoryEntry, RunConfig};
pub use copy_spec::{Chmod, Chown, CopySource, Excludes, OwnerId, SourcePath};
pub use key::Key;
pub use render::render_tree;

/// Index of a node in [`Plan::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeId(pub usize);

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub nodes: Vec<Node>,
    /// The image node of the build target.
    pub target: NodeId,
    /// Context files any node selects (indexed by `ContextFiles::files`), with their hashes.
    #[serde(skip)]
    pub context: crate::context::ContextIndex,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: NodeId,
    /// The operation and everything that defines it (what the key covers besides inputs).
    #[serde(flatten)]
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub key: Key,
    pub hermetic: bool,
    /// Why the node is not hermetic (empty when it is).
    pub reasons: Vec<String>,
    /// The build arguments (ARG values, after `--build-arg`) its definition read, in order
    /// of first use: what `kiln build --explain` names when one of them changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<(String, String)>,
    /// Where it came from: stage name (or index) and the instruction, for progress and errors.
    pub origin: Origin,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Origin {
    /// The source file (0: the Dockerfile or the program's main file).
    pub file: FileId,
    /// Byte range of the instruction or expression in that file (empty for implicit nodes).
    #[serde(skip)]
    pub span: crate::span::Span,
    pub stage: String,
    /// 1-based line of the instruction, 0 for implicit nodes.
    pub line: usize,
    /// The step as text (`COPY . /app`), as in image history.
    pub text: String,
}

/// What a node does. Filesystem-changing ops (`Copy`, `Mkdir`, `Run`) take the stage's
/// previous node as input 0; `Copy` takes its source as input 1 (none for heredocs and URLs);
/// `Run` takes one more input per distinct mount source ([`MountSource`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "definition", rename_all = "snake_case")]
pub enum Op {
    /// The empty filesystem.
    Scratch,
    /// An image from the store; `digest` is the manifest digest once resolved.
    BaseImage {
        reference: String,
        digest: Option<String>,
        config: Box<RunConfig>,
    },
    /// A selection of build-context files: the COPY/ADD source patterns after `.dockerignore`.
    Context(ContextSelection),
    /// COPY or ADD into the filesystem of input 0, from input 1.
    Copy(CopyOp),
    /// Create a directory (WORKDIR) if it does not exist.
    Mkdir { path: String, mtime: u64 },
    /// A RUN step.
    Run(RunOp),
    /// A metadata-only change (ENV, LABEL, CMD...), keyed by what it sets; the change is
    /// already folded into the run config of the image nodes after it.
    Config(ConfigChange),
    /// The image of a target: input 0's filesystem with this config and history.
    Image(Box<ImageOp>),
}

/// What a metadata step sets, the same from every front end (`ENV A=1` and the language's
/// `env(A: "1")` are one change). Values are final (expanded, resolved against the working
/// directory, ports normalised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "set", rename_all = "snake_case")]
pub enum ConfigChange {
    /// Environment variables, in order (a later one wins).
    Env {
        vars: Vec<(String, String)>,
    },
    Label {
        labels: Vec<(String, String)>,
    },
    User {
        user: String,
    },
    Cmd {
        argv: Vec<String>,
    },
    Entrypoint {
        argv: Vec<String>,
    },
    Shell {
        argv: Vec<String>,
    },
    /// `port/proto` keys.
    Expose {
        ports: Vec<String>,
    },
    Volume {
        paths: Vec<String>,
    },
    StopSignal {
        signal: String,
    },
    Healthcheck {
        health: HealthConfig,
    },
    OnBuild {
        trigger: String,
    },
    /// Dockerfile ARGs: names and their defaults (the values come from `--build-arg` and
    /// reach the steps that use them through their own ops).
    Arg {
        args: Vec<(String, Option<String>)>,
    },
    Maintainer {
        name: String,
    },
}

impl ConfigChange {
    /// Fold the change into a run config. `cmd_set`: whether the stage set CMD itself (an
    /// ENTRYPOINT clears an inherited CMD, as Docker does).
    pub fn apply(&self, config: &mut RunConfig, cmd_set: &mut bool) {
        match self {
            ConfigChange::Env { vars } => {
                for (k, v) in vars {
                    config.env_set(k, v);
                }
            }
            ConfigChange::Label { labels } => {
                for (k, v) in labels {
                    config.labels.insert(k.clone(), v.clone());
                }
            }
            ConfigChange::User { user } => config.user = user.clone(),
            ConfigChange::Cmd { argv } => {
                config.cmd = Some(argv.clone());
                *cmd_set = true;
            }
            ConfigChange::Entrypoint { argv } => {
                config.entrypoint = Some(argv.clone());
                if !*cmd_set {
                    config.cmd = None;
                }
            }
            ConfigChange::Shell { argv } => config.shell = Some(argv.clone()),
            ConfigChange::Expose { ports } => {
                for p in ports {
                    config.exposed_ports.insert(p.clone(), Default::default());
                }
            }
            ConfigChange::Volume { paths } => {
                for p in paths {
                    config.volumes.insert(p.clone(), Default::default());
                }
            }
            ConfigChange::StopSignal { signal } => config.stop_signal = signal.clone(),
            ConfigChange::Healthcheck { health } => config.healthcheck = Some(health.clone()),
            ConfigChange::OnBuild { trigger } => config.on_build.push(trigger.clone()),
            ConfigChange::Arg { .. } => {}
            ConfigChange::Maintainer { .. } => {
                config.labels.remove("maintainer");
            }
        }
    }

    /// The history text, as BuildKit's Dockerfile frontend writes it (`ENV A=1`,
    /// `CMD ["x"]`), so every front end's image has the same history.
    pub fn created_by(&self) -> String {
        fn pairs(word: &str, kv: &[(String, String)]) -> String {
            let mut s = String::from(word);
            for (k, v) in kv {
                s.push(' ');
                s.push_str(k);
                s.push('=');
                s.push_str(v);
            }
            s
        }
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
        match self {
            ConfigChange::Env { vars } => pairs("ENV", vars),
            ConfigChange::Label { labels } => pairs("LABEL", labels),
            ConfigChange::User { user } => ["USER ", user].concat(),
            ConfigChange::Cmd { argv } => ["CMD ", &json(argv)].concat(),
            ConfigChange::Entrypoint { argv } => ["ENTRYPOINT ", &json(argv)].concat(),
            // Go's `%v` of the list, as BuildKit writes it: `SHELL [/bin/sh -ec]`.
            ConfigChange::Shell { argv } => ["SHELL [", &argv.join(" "), "]"].concat(),
            ConfigChange::Expose { ports } => ["EXPOSE ", &ports.join(" ")].concat(),
            ConfigChange::Volume { paths } => ["VOLUME ", &json(paths)].concat(),
            ConfigChange::StopSignal { signal } => ["STOPSIGNAL ", signal].concat(),
            ConfigChange::Healthcheck { health } => ["HEALTHCHECK ", &json(&health.test)].concat(),
            ConfigChange::OnBuild { trigger } => ["ONBUILD ", trigger].concat(),
            ConfigChange::Arg { args } => {
                let mut s = String::from("ARG");
                for (name, default) in args {
                    s.push(' ');
                    s.push_str(name);
                    if let Some(d) = default {
                        s.push('=');
                        s.push_str(d);
                    }
                }
                s
            }
            ConfigChange::Maintainer { name } => ["MAINTAINER ", name].concat(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextSelection {
    /// Source patterns, cleaned, relative to the context root.
    pub patterns: Vec<String>,
    /// `--exclude` patterns.
    pub excludes: Excludes,
    /// Indexes into the context index of every selected file (directories included).
    #[serde(skip)]
    pub files: Vec<usize>,
    /// Number of selected entries (shown in the plan).
    pub entries: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyOp {
    /// ADD semantics: unpack local archives, fetch URLs.
    pub add: bool,
    /// Sources after variable expansion, classified (URLs, paths and checked patterns
    /// relative to input 1); they serialize as written.
    pub sources: Vec<CopySource>,
    /// For a copy from the build context: the context paths the sources selected, cleaned,
    /// in order, without duplicates (the planner matched them; the builder does not match
    /// again). Empty for other copies. Not part of the key: the `context` input covers it.
    #[serde(skip)]
    pub selected: Vec<String>,
    /// Inline files from heredocs: (name, content).
    pub inline: Vec<(String, String)>,
    /// Absolute destination; a trailing `/` means "a directory".
    pub dest: String,
    /// `--chown` after expansion (`user[:group]`, names resolved at build time).
    pub chown: Option<Chown>,
    pub chmod: Option<Chmod>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Excludes,
    /// `ADD --checksum`.
    pub checksum: Option<String>,
    /// Whether input 1 is a build context selection (else a stage or image filesystem).
    pub from_context: bool,
    /// Layer mtime (SOURCE_DATE_EPOCH, or 0).
    pub mtime: u64,
}

impl CopyOp {
    /// The URLs among the sources (ADD downloads).
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().filter_map(CopySource::url)
    }

    /// The path sources (everything but URLs).
    pub fn paths(&self) -> impl Iterator<Item = &SourcePath> {
        self.sources.iter().filter_map(CopySource::path)
    }
}

/// A RUN step: the command, its environment, and everything the sandbox provides to it.
/// Input 0 is the stage's previous node; every [`MountSource`] names a further input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOp {
    /// The full command: SHELL (or `/bin/sh -c`) and the script for the shell form.
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    /// `RUN --network`, else the build's `--network` (lowering resolves it into the op, so
    /// the key follows the build option).
    pub network: RunNetwork,
    /// `RUN --mount`s in the order written, then the heredoc script file, if any.
    pub mounts: Vec<RunMount>,
    /// The mtime every entry of the step's layer gets (SOURCE_DATE_EPOCH, or 0).
    pub mtime: u64,
    /// A fixed-output step (the kiln language's `run(pin:)`): the diff_id
    /// (`sha256:<hex>`) the step's layer must have, else the build fails. In the key only
    /// when set, so unpinned keys are as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

/// The network a RUN step sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunNetwork {
    /// Neither the step nor the build chose (`RUN --network=default` under
    /// `kiln build --network=default`): the sandbox's default, which gives RUN a network as
    /// Docker does.
    #[default]
    Default,
    /// No network: only a loopback interface.
    None,
    /// The host's network.
    Host,
}

impl RunNetwork {
    /// `default`, `none` or `host`, as `--network` spells them.
    pub fn parse(s: &str) -> Option<RunNetwork> {
        match s {
            "default" => Some(RunNetwork::Default),
            "none" => Some(RunNetwork::None),
            "host" => Some(RunNetwork::Host),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunNetwork::Default => "default",
            RunNetwork::None => "none",
            RunNetwork::Host => "host",
        }
    }
}

/// One filesystem (or secret) a RUN step sees besides its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMount {
    /// Absolute and cleaned. None only for a secret given only as an environment variable
    /// (`type=secret,id=x,env=X` without `target=`).
    pub target: Option<String>,
    #[serde(flatten)]
    pub kind: MountKind,
}

/// BuildKit's `--mount` types, with their defaults applied, plus the heredoc script file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountKind {
    /// A directory of another filesystem. Read-only unless `rw`; writes are discarded.
    Bind {
        /// Absolute and cleaned path inside the source filesystem (`/` for all of it).
        source: String,
        from: MountSource,
        readonly: bool,
    },
    /// A persistent cache directory, shared between builds by `id`; its contents never
    /// enter a key.
    Cache {
        /// Defaults to the target as written, cleaned (BuildKit's `path.Clean(target)`).
        id: String,
        /// Absolute and cleaned path inside the seeding filesystem.
        source: String,
        /// What seeds a new cache: None for an empty directory.
        from: Option<MountSource>,
        sharing: Sharing,
        readonly: bool,
        /// Mode, owner and group of a new cache directory (0755, 0, 0 by default).
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// An empty tmpfs; `size` in bytes, None for no limit.
    Tmpfs { size: Option<u64>, readonly: bool },
    /// A build secret by id. Its value comes from the host at run time and is never part
    /// of the plan, a key or history.
    Secret {
        id: String,
        required: bool,
        /// Mode, owner and group of the secret file (0400, 0, 0 by default).
        mode: u32,
        uid: u32,
        gid: u32,
        /// Also (or only, without a target) expose it as this environment variable.
        env: Option<String>,
    },
    /// A file the plan itself provides, mounted read-only: the script of a RUN heredoc that
    /// starts with `#!`, at `/dev/pipes/<name>` (BuildKit mounts a directory holding only
    /// that file at `/dev/pipes`).
    File { content: String, mode: u32 },
}

/// Where a bind or cache mount's source filesystem comes from: an index into the RUN
/// node's `inputs` (never 0, the stage's own previous node, unless that is the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountSource {
    /// The build context: the input is a `Context` selection of the bound path.
    Context { input: usize },
    /// `from=`: the last node of a stage, or a base image.
    Node { input: usize },
}

impl MountSource {
    pub fn input(self) -> usize {
        match self {
            MountSource::Context { input } | MountSource::Node { input } => input,
        }
    }
}

/// Cache mount sharing between concurrent builds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Concurrent writers share one directory.
    #[default]
    Shared,
    /// A concurrent writer gets its own new directory.
    Private,
    /// A concurrent writer waits for the directory.
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageOp {
    pub config: RunConfig,
    /// One entry per instruction of the target's stage chain, base image's history first.
    pub history: Vec<HistoryEntry>,
    /// `created` of the config and history (from SOURCE_DATE_EPOCH, or 0).
    pub created: u64,
}

impl Plan {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// The image node of the target.
    pub fn target_image(&self) -> (&Node, &ImageOp) {
        let node = self.node(self.target);
        match &node.op {
            Op::Image(img) => (node, img),
            _ => unreachable!("Plan::target always names an Image node"),
        }
    }

    /// Why the target is not hermetic: the chain of nodes from the target's image down to
    /// the first node that is impure itself (following the first impure input at each
    /// step), or None when the target is hermetic.
    pub fn impure_chain(&self) -> Option<Vec<&Node>> {
        let mut node = self.node(self.target);
        if node.hermetic {
            return None;
        }
        let mut chain = vec![node];
        loop {
            let own = node.reasons.iter().any(|r| !r.starts_with("input #"));
            let next = node
                .inputs
                .iter()
                .map(|i| self.node(*i))
                .find(|n| !n.hermetic);
            match next {
                Some(n) if !own => {
                    chain.push(n);
                    node = n;
                }
                _ => return Some(chain),
            }
        }
    }

    /// The plan as JSON: `{"target": id, "nodes": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "target": self.target, "nodes": self.nodes })
    }
}
