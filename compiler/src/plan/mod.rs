//! The layer plan: the DAG both front ends lower to, and what the builder runs.
//!
//! Owns the node types, the image configuration model (Docker's field names), and cache keys
//! (`key`: the v1 canonical encoding written down in docs/cache-keys.md). Nodes are stored in
//! dependency order: every input of node `i` has an id below `i`.
//! Must not: know how a node is executed or where results are stored.

pub mod config;
pub mod key;
mod render;

use serde::Serialize;

pub use config::{HealthConfig, HistoryEntry, ImageConfig};
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
    /// Where it came from: stage name (or index) and the instruction, for progress and errors.
    pub origin: Origin,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Origin {
    pub stage: String,
    /// 1-based line of the instruction, 0 for implicit nodes.
    pub line: usize,
    /// The instruction text (`COPY . /app`), as in image history.
    pub text: String,
}

/// What a node does. Filesystem-changing ops (`Copy`, `Mkdir`, `Run`) take the stage's
/// previous node as input 0; `Copy` takes its source as input 1 (none for heredocs and URLs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "definition", rename_all = "snake_case")]
pub enum Op {
    /// The empty filesystem.
    Scratch,
    /// An image from the store; `digest` is the manifest digest once resolved.
    BaseImage {
        reference: String,
        digest: Option<String>,
        config: Box<ImageConfig>,
    },
    /// A selection of build-context files: the COPY/ADD source patterns after `.dockerignore`.
    Context(ContextSelection),
    /// COPY or ADD into the filesystem of input 0, from input 1.
    Copy(CopyOp),
    /// Create a directory (WORKDIR) if it does not exist.
    Mkdir { path: String, mtime: u64 },
    /// A RUN step.
    Run(RunOp),
    /// A metadata-only instruction; the change is already folded into the image config.
    Config { instruction: String },
    /// The image of a target: input 0's filesystem with this config and history.
    Image(Box<ImageOp>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextSelection {
    /// Source patterns, cleaned, relative to the context root.
    pub patterns: Vec<String>,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
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
    /// Source paths or patterns as written (after variable expansion), relative to input 1.
    pub sources: Vec<String>,
    /// Inline files from heredocs: (name, content).
    pub inline: Vec<(String, String)>,
    /// Absolute destination; a trailing `/` means "a directory".
    pub dest: String,
    /// `--chown` after expansion (`user[:group]`, names resolved at build time).
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// `ADD --checksum`.
    pub checksum: Option<String>,
    /// Whether input 1 is a build context selection (else a stage or image filesystem).
    pub from_context: bool,
    /// Layer mtime (SOURCE_DATE_EPOCH, or 0).
    pub mtime: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOp {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub network: String,
    pub mounts: Vec<String>,
    /// Heredoc bodies the command reads: (name, content, fd).
    pub heredocs: Vec<(String, String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageOp {
    pub config: ImageConfig,
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

    /// The plan as JSON: `{"target": id, "nodes": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "target": self.target, "nodes": self.nodes })
    }
}
