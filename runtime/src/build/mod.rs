//! The builder: runs a plan against the store and produces an image.
//!
//! Owns execution order (nodes of one dependency level run in parallel on rayon), the layer
//! cache (plan cache key -> layer, in the store's cache index), layers for COPY/ADD/WORKDIR,
//! the final image config and history, and `--squash`. Reports progress as [`Event`]s.
//! Must not: parse Dockerfiles (it receives a `Plan`) or print (the CLI renders events).

mod config;
mod copy;
mod fetch;
mod run;
mod users;
pub mod vary;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kiln_plan::copy::SourceKind;
use kiln_plan::plan::{CopyOp, ImageOp, Node, NodeId, Op, Plan};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use copy::{FsTree, Meta};
pub(crate) use run::capture_layer;
pub use run::{SandboxRunner, Secrets, StepExit, StepRunner};
pub use users::{resolve_chown, ChownError, Owner};
pub use view::LayerTree;

use crate::image::ImageName;
use crate::layer::{self, Entry, EntryKind, LayerError};
use crate::oci::{self, Descriptor, Digest};
use crate::shared_cache::{ImportedCache, PendingLayers, SharedCacheError};
use crate::store::{Image, Store, StoreError};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Chown(#[from] ChownError),
    /// A layer from a `--cache-from` cache could not be fetched.
    #[error(transparent)]
    #[diagnostic(transparent)]
    SharedCache(#[from] SharedCacheError),
    /// A COPY/ADD source selection failed (a missing literal source, a bad wildcard).
    #[error("{0}")]
    #[diagnostic(code(kiln::build::copy_source))]
    CopySource(kiln_plan::copy::CopyError),
    #[error("\"/{path}\": not found")]
    #[diagnostic(
        code(kiln::build::copy_source_missing),
        help("the source was selected when the build was planned, but its filesystem does not have it")
    )]
    CopySourceMissing { path: String },
    #[error("invalid --exclude patterns: {source}")]
    #[diagnostic(code(kiln::build::exclude))]
    Exclude {
        #[source]
        source: kiln_plan::dockerignore::IgnoreError,
    },
    #[error("cannot name the file downloaded from {url}: add a file name to the destination")]
    #[diagnostic(code(kiln::build::download_name))]
    DownloadName { url: String },
    #[error("{0} is not supported yet")]
    #[diagnostic(help(
        "this build needs a feature kiln does not have yet; see the README's status section"
    ))]
    Unsupported(String),
    #[error("cannot download {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("pinned step {step} made layer {got}, not the pinned {want}")]
    #[diagnostic(help(
        "what the step fetched or made changed; check it, then pin the new digest if it is right"
    ))]
    PinMismatch {
        step: String,
        want: String,
        got: String,
    },
    #[error("checksum mismatch for {url}: expected {want}, got {got}")]
    #[diagnostic(help("the file at the URL changed, or --checksum is wrong"))]
    Checksum {
        url: String,
        want: String,
        got: String,
    },
    #[error("base image {reference} was {digest} when this build was planned, and the store no longer has that image")]
    #[diagnostic(
        code(kiln::build::base_image_gone),
        help("it was removed, or re-tagged and pruned, while the build was starting; run the build again to plan it against what {reference} names now")
    )]
    BaseImageGone { reference: String, digest: Digest },
    #[error("the plan names the digest `{digest}`, which is not a digest: {source}")]
    #[diagnostic(code(kiln::build::plan_digest))]
    PlanDigest {
        digest: String,
        #[source]
        source: oci::DigestError,
    },
    #[error("no such image: {0}")]
    #[diagnostic(help("kiln builds from images in its store: `kiln load -i image.tar` or `kiln import rootfs.tar NAME` first"))]
    NoImage(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("RUN step: {0}")]
    Run(String),
    #[error("process \"{command}\" did not complete successfully: exit code: {code}{}", if tail.is_empty() { String::new() } else { format!("\n--- last lines of its output:\n{tail}") })]
    RunFailed {
        command: String,
        code: i32,
        tail: String,
    },
    #[error("secret {0} not found")]
    #[diagnostic(help("pass it to the build: kiln build --secret id={0},src=FILE (or env=VAR)"))]
    MissingSecret(String),
    #[error("step #{id} failed: {text}")]
    Step {
        id: usize,
        text: String,
        #[source]
        source: Box<BuildError>,
    },
}

/// What the user asked of this build beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct BuildSettings {
    pub secrets: Secrets,
    pub no_cache: bool,
    pub squash: bool,
    pub tags: Vec<ImageName>,
    /// The order in which the independent nodes of one dependency level are started. The
    /// result never depends on it; `kiln build --check` runs its second build reversed.
    pub order: StartOrder,
    /// Caches (`--cache-from`) asked, in order, for a step the store's cache lacks.
    pub cache_from: Vec<Arc<ImportedCache>>,
}

/// See [`BuildSettings::order`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartOrder {
    /// Plan order (node ids ascending).
    #[default]
    Plan,
    /// Plan order reversed within each level.
    Reversed,
}

/// A progress event; the CLI renders them (tty, plain or JSON lines).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Start {
        id: usize,
        stage: String,
        text: String,
    },
    Cached {
        id: usize,
        stage: String,
        text: String,
    },
    Done {
        id: usize,
        stage: String,
        text: String,
        seconds: f64,
        layer_bytes: Option<u64>,
    },
    Error {
        id: usize,
        stage: String,
        text: String,
        message: String,
    },
    /// A line of a running step's output.
    Log { id: usize, line: String },
}

pub trait Progress: Sync {
    fn event(&self, event: Event);
}

/// One layer of a node's filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub diff_id: Digest,
    /// The blob in the store (equal to `diff_id` for uncompressed layers).
    pub blob: Descriptor,
}

/// The result of one node: its filesystem as a stack of layers (lowest first), and whether
/// it added a layer itself.
#[derive(Debug, Clone, Default)]
struct Output {
    layers: Vec<LayerRef>,
    added: bool,
}

/// The cache index value for a layer-producing node (also the value of a shared cache's key
/// map, see [`crate::shared_cache`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer the step added; none when it added nothing.
    pub layer: Option<LayerRef>,
}

/// A step whose result is recorded in the cache: COPY/ADD, WORKDIR's directory and RUN,
/// except a download without `--checksum`, which may change under the same key.
pub(crate) fn is_cacheable_step(node: &Node) -> bool {
    match &node.op {
        Op::Copy(c) => c.checksum.is_some() || c.urls().next().is_none(),
        Op::Mkdir { .. } | Op::Run(_) => true,
        _ => false,
    }
}

#[derive(Debug)]
pub struct Built {
    pub image: Image,
    /// For each layer of the image, lowest first: the plan node that made it (`None` for a
    /// base image's layers and for the one layer `--squash` makes).
    pub layer_nodes: Vec<Option<NodeId>>,
    pub steps: usize,
    pub cached: usize,
}

/// Run `plan` and store the target image.
pub fn build(
    store: &Store,
    plan: &Plan,
    settings: &BuildSettings,
    runner: &dyn StepRunner,
    progress: &dyn Progress,
) -> Result<Built, BuildError> {
    let levels = levels(plan);
    let mut outputs: Vec<Option<Output>> = vec![None; plan.nodes.len()];
    let cached = std::sync::atomic::AtomicUsize::new(0);
    let steps = std::sync::atomic::AtomicUsize::new(0);
    let pending = PendingLayers::default();
    for mut level in levels {
        if settings.order == StartOrder::Reversed {
            level.reverse();
        }
        let results: Vec<(NodeId, Result<Output, BuildError>)> = level
            .par_iter()
            .map(|&id| {
                let node = plan.node(id);
                let ctx = Exec {
                    store,
                    plan,
                    settings,
                    outputs: &outputs,
                    runner,
                    progress,
                    pending: &pending,
                };
                let r = ctx.run(node, &cached, &steps).map_err(|e| {
                    progress.event(Event::Error {
                        id: id.0,
                        stage: node.origin.stage.clone(),
                        text: node.origin.text.clone(),
                        message: e.to_string(),
                    });
                    BuildError::Step {
                        id: id.0,
                        text: node.origin.text.clone(),
                        source: Box::new(e),
                    }
                });
                (id, r)
            })
            .collect();
        for (id, r) in results {
            outputs[id.0] = Some(r?);
        }
    }
    let (target, img) = plan.target_image();
    let out = outputs[target.id.0].take().unwrap_or_default();
    // The image's layers found in a shared cache are fetched now, if no step needed them.
    pending.ensure(
        store,
        &settings.cache_from,
        out.layers.iter().map(|l| &l.blob),
    )?;
    let (image, layer_nodes) = finish_image(store, plan, target, img, &outputs, out, settings)?;
    Ok(Built {
        image,
        layer_nodes,
        steps: steps.into_inner(),
        cached: cached.into_inner(),
    })
}

/// Group nodes into dependency levels: a node's level is one more than its deepest input.
fn levels(plan: &Plan) -> Vec<Vec<NodeId>> {
    let mut level = vec![0usize; plan.nodes.len()];
    let mut out: Vec<Vec<NodeId>> = Vec::new();
    for n in &plan.nodes {
        let l = n.inputs.iter().map(|i| level[i.0] + 1).max().unwrap_or(0);
        level[n.id.0] = l;
        if out.len() <= l {
            out.resize_with(l + 1, Vec::new);
        }
        out[l].push(n.id);
    }
    out
}

struct Exec<'a> {
    store: &'a Store,
    plan: &'a Plan,
    settings: &'a BuildSettings,
    outputs: &'a [Option<Output>],
    runner: &'a dyn StepRunner,
    progress: &'a dyn Progress,
    /// Layers of steps found in `--cache-from` caches, fetched when their bytes are needed.
    pending: &'a PendingLayers,
}

impl Exec<'_> {
    fn input(&self, node: &Node, i: usize) -> Output {
        node.inputs
            .get(i)
            .and_then(|id| self.outputs[id.0].clone())
            .unwrap_or_default()
    }

    fn run(
        &self,
        node: &Node,
        cached: &std::sync::atomic::AtomicUsize,
        steps: &std::sync::atomic::AtomicUsize,
    ) -> Result<Output, BuildError> {
        match &node.op {
            Op::Scratch | Op::Context(_) => Ok(Output::default()),
            Op::Image(_) => Ok(Output {
                layers: self.input(node, 0).layers,
                added: false,
            }),
            Op::BaseImage {
                reference, digest, ..
            } => {
                let image = self.base_image(reference, digest.as_deref())?;
                Ok(Output {
                    layers: image_layers(&image),
                    added: false,
                })
            }
            Op::Config { .. } => Ok(Output {
                layers: self.input(node, 0).layers,
                added: false,
            }),
            Op::Copy(_) | Op::Mkdir { .. } | Op::Run(_) => {
                steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let base = self.input(node, 0);
                let key = node.key.to_hex();
                let (stage, text) = (node.origin.stage.clone(), node.origin.text.clone());
                // A download without --checksum may change under the same key: fetch it again.
                if !self.settings.no_cache && is_cacheable_step(node) {
                    let hit = match self.cached(&key)? {
                        Some(rec) => Some(rec),
                        None => self.imported(&key)?,
                    };
                    if let Some(rec) = hit {
                        cached.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.progress.event(Event::Cached {
                            id: node.id.0,
                            stage,
                            text,
                        });
                        return Ok(with_layer(base, rec.layer));
                    }
                }
                self.progress.event(Event::Start {
                    id: node.id.0,
                    stage: stage.clone(),
                    text: text.clone(),
                });
                let started = Instant::now();
                let layer = match &node.op {
                    Op::Copy(c) => self.copy(node, c, &base)?,
                    Op::Mkdir { path, mtime } => self.mkdir(path, *mtime, &base)?,
                    Op::Run(r) => {
                        let layer = self.run_step(node, r, &base)?;
                        if let Some(want) = &r.pin {
                            let got = layer
                                .as_ref()
                                .map_or_else(|| "no layer".to_string(), |l| l.diff_id.to_string());
                            if &got != want {
                                return Err(BuildError::PinMismatch {
                                    step: node.origin.text.clone(),
                                    want: want.clone(),
                                    got,
                                });
                            }
                        }
                        layer
                    }
                    _ => unreachable!("matched above"),
                };
                let bytes = layer.as_ref().map(|l| l.blob.size);
                self.store.put_cache(
                    &key,
                    &serde_json::to_value(CacheRecord {
                        layer: layer.clone(),
                    })
                    .unwrap_or_default(),
                )?;
                self.progress.event(Event::Done {
                    id: node.id.0,
                    stage,
                    text,
                    seconds: started.elapsed().as_secs_f64(),
                    layer_bytes: bytes,
                });
                Ok(with_layer(base, layer))
            }
        }
    }

    /// The base image exactly as the plan named it: the manifest digest the planner
    /// resolved (and put in the node's key). Never whatever the tag names now: another
    /// process may have re-tagged it since.
    fn base_image(&self, reference: &str, digest: Option<&str>) -> Result<Image, BuildError> {
        let Some(digest) = digest else {
            // Unresolved when planned: the key says "no image", so no image may be used.
            return Err(BuildError::NoImage(reference.to_string()));
        };
        let parsed: Digest = digest.parse().map_err(|source| BuildError::PlanDigest {
            digest: digest.to_string(),
            source,
        })?;
        match self.store.image(&parsed.to_string()) {
            Ok(image) if image.manifest_digest == parsed => Ok(image),
            Ok(_) | Err(StoreError::NoSuchImage { .. }) => Err(BuildError::BaseImageGone {
                reference: reference.to_string(),
                digest: parsed,
            }),
            Err(other) => Err(other.into()),
        }
    }

    /// A record from the first `--cache-from` cache that has `key`, now also in the store's
    /// cache index; its layer is fetched when a step or the image needs it.
    fn imported(&self, key: &str) -> Result<Option<CacheRecord>, BuildError> {
        for (i, cache) in self.settings.cache_from.iter().enumerate() {
            let Some(rec) = cache.lookup(key) else {
                continue;
            };
            if let Some(layer) = &rec.layer {
                self.pending.note(&layer.blob.digest, i);
            }
            self.store.put_cache(
                key,
                &serde_json::to_value(rec).map_err(|error| StoreError::BadJson {
                    what: format!("the cache value for `{key}`"),
                    error,
                })?,
            )?;
            return Ok(Some(rec.clone()));
        }
        Ok(None)
    }

    /// The layers' blobs in the store: those found in a `--cache-from` cache are fetched.
    fn ensure_layers(&self, layers: &[LayerRef]) -> Result<(), BuildError> {
        Ok(self.pending.ensure(
            self.store,
            &self.settings.cache_from,
            layers.iter().map(|l| &l.blob),
        )?)
    }

    /// A cache record whose layer blob is still in the store.
    fn cached(&self, key: &str) -> Result<Option<CacheRecord>, BuildError> {
        let Some(v) = self.store.get_cache(key)? else {
            return Ok(None);
        };
        let Ok(rec) = serde_json::from_value::<CacheRecord>(v) else {
            return Ok(None);
        };
        match &rec.layer {
            Some(l) if !self.store.has_blob(&l.blob.digest) => Ok(None),
            _ => Ok(Some(rec)),
        }
    }

    fn tree(&self, layers: &[LayerRef]) -> Result<LayerTree, BuildError> {
        self.ensure_layers(layers)?;
        LayerTree::open(self.store, layers)
    }

    fn copy(
        &self,
        node: &Node,
        op: &CopyOp,
        base: &Output,
    ) -> Result<Option<LayerRef>, BuildError> {
        let dest = self.tree(&base.layers)?;
        let owner = match &op.chown {
            Some(spec) => {
                let passwd = dest.read_text("etc/passwd");
                let group = dest.read_text("etc/group");
                Some(resolve_chown(spec, passwd.as_deref(), group.as_deref())?)
            }
            None => None,
        };
        let from_tree;
        let source: &dyn FsTree = if op.from_context {
            &self.plan.context
        } else {
            from_tree = self.tree(&self.input(node, 1).layers)?;
            &from_tree
        };
        // ADD decompresses archives here; the layer is written before it is dropped.
        let scratch = self.store.scratch_dir()?;
        let inputs = copy::CopyInputs {
            source,
            dest: &dest,
            owner,
            from_context: op.from_context,
            scratch: scratch.path(),
        };
        let entries = copy::copy_entries(op, &inputs)?;
        self.write(entries).map(Some)
    }

    fn mkdir(&self, path: &str, mtime: u64, base: &Output) -> Result<Option<LayerRef>, BuildError> {
        let dest = self.tree(&base.layers)?;
        let rel = kiln_plan::copy::clean(path);
        if rel.is_empty() || dest.meta(&rel).is_some_and(|m| m.kind == SourceKind::Dir) {
            return Ok(None);
        }
        let mut entries = BTreeMap::new();
        entries.insert(
            rel.clone(),
            Entry {
                path: rel,
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime,
                xattrs: Vec::new(),
            },
        );
        copy::add_parents(&mut entries, &dest, mtime, Owner { uid: 0, gid: 0 });
        self.write(entries.into_values().collect()).map(Some)
    }

    /// Write a layer into the store; its blob is the uncompressed tar, so digest = diff_id.
    fn write(&self, entries: Vec<Entry>) -> Result<LayerRef, BuildError> {
        write_layer_blob(self.store, entries)
    }
}

/// Write entries as an uncompressed layer blob.
pub fn write_layer_blob(store: &Store, entries: Vec<Entry>) -> Result<LayerRef, BuildError> {
    let mut w = store.blob_writer()?;
    let diff_id = layer::write_layer(entries, &mut w)?.diff_id;
    let (digest, size) = w.commit(Some(&diff_id))?;
    Ok(LayerRef {
        diff_id,
        blob: Descriptor::new(oci::MEDIA_TYPE_OCI_LAYER, digest, size),
    })
}

fn with_layer(mut base: Output, layer: Option<LayerRef>) -> Output {
    base.added = layer.is_some();
    base.layers.extend(layer);
    base
}

pub(crate) fn image_layers(image: &Image) -> Vec<LayerRef> {
    image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(blob, diff_id)| LayerRef {
            diff_id: diff_id.clone(),
            blob: blob.clone(),
        })
        .collect()
}

/// Assemble and store the target image: config from the plan, rootfs from the layers,
/// history with `empty_layer` set for steps that added nothing. Also returns the node that
/// made each layer (see [`Built::layer_nodes`]).
fn finish_image(
    store: &Store,
    plan: &Plan,
    target: &Node,
    img: &ImageOp,
    outputs: &[Option<Output>],
    out: Output,
    settings: &BuildSettings,
) -> Result<(Image, Vec<Option<NodeId>>), BuildError> {
    // Walk the target's chain (input 0) down to its root, marking which steps added layers.
    let mut chain = Vec::new();
    let mut makers = Vec::new();
    let mut cur = target.inputs.first().copied();
    let mut base_layers = 0;
    while let Some(id) = cur {
        let node = plan.node(id);
        match &node.op {
            Op::BaseImage { .. } | Op::Scratch => {
                base_layers = outputs[id.0].as_ref().map_or(0, |o| o.layers.len());
                break;
            }
            _ => {
                let added = outputs[id.0].as_ref().is_some_and(|o| o.added);
                chain.push(added);
                if added {
                    makers.push(Some(id));
                }
            }
        }
        cur = node.inputs.first().copied();
    }
    chain.reverse();
    makers.reverse();
    let mut history = img.history.clone();
    let own = history.len().saturating_sub(chain.len());
    for (entry, added) in history[own..].iter_mut().zip(&chain) {
        if !entry.empty_layer && !added {
            entry.empty_layer = true;
        }
    }
    let mut layers = out.layers;
    if settings.squash && layers.len() > base_layers + 1 {
        let tree = LayerTree::open(store, &layers)?;
        let lower = LayerTree::open(store, &layers[..base_layers])?;
        let squashed = write_layer_blob(store, tree.diff_entries(&lower))?;
        layers.truncate(base_layers);
        layers.push(squashed);
        makers = vec![None];
        let mut kept_one = false;
        for entry in history[own..].iter_mut().rev() {
            if !entry.empty_layer {
                if kept_one {
                    entry.empty_layer = true;
                }
                kept_one = true;
            }
        }
    }
    let config = config::image_config(
        &img.config,
        layers.iter().map(|l| l.diff_id.clone()).collect(),
        &history,
        img.created,
    );
    let descriptors: Vec<Descriptor> = layers.iter().map(|l| l.blob.clone()).collect();
    let mut layer_nodes = vec![None; base_layers];
    layer_nodes.extend(makers);
    layer_nodes.resize(layers.len(), None);
    Ok((
        store.save_image(&config, &descriptors, &settings.tags)?,
        layer_nodes,
    ))
}
