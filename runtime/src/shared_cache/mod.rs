//! The build cache shared between stores: `kiln build --cache-to` / `--cache-from` through a
//! registry (`type=registry,ref=R`) or an OCI image layout directory (`type=local`).
//!
//! Owns the cache artifact format and moving it: an OCI image manifest whose config (media
//! type [`MEDIA_TYPE_CACHE_CONFIG`]) maps plan cache keys to the layer each step made (diff_id
//! and blob descriptor, or none for a step that added nothing), and whose layers are those
//! blobs. Export writes the records of the plan's steps from the store's cache index; import
//! reads the key map up front and fetches a layer only when the build needs its bytes.
//!
//! Invariant: nothing enters the store unverified. The artifact's manifest and config are
//! checked against their descriptors, and every layer is committed through a
//! [`crate::store::BlobWriter`] only when its sha256 and size equal the descriptor; an entry
//! is accepted only for an uncompressed layer whose blob digest is its diff_id, so the bytes
//! the store gets are exactly the layer the key names. Keys are content hashes of a step's
//! inputs, so a cache made from other inputs has other keys and serves nothing.
//!
//! Must not: decide when a step is cached (the executor asks [`ImportedCache::lookup`]),
//! print, or parse Dockerfiles or image references (it receives an [`ImageName`]).

mod layout;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use kiln_plan::plan::{NodeId, Plan};
use serde::{Deserialize, Serialize};

use crate::build::{is_cacheable_step, CacheRecord};
use crate::image::ImageName;
use crate::oci::{
    self, Descriptor, Digest, Manifest, MEDIA_TYPE_DOCKER_LAYER, MEDIA_TYPE_OCI_LAYER,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::registry::{self, Client, RegistryError, RegistryOptions, TransferProgress};
use crate::store::{Store, StoreError};

/// The media type of the cache artifact's config: the key map. (OCI 1.1: without an
/// `artifactType`, the config's media type is the artifact's type.)
pub const MEDIA_TYPE_CACHE_CONFIG: &str = "application/vnd.kiln.build-cache.config.v1+json";
/// The format version in the config.
const FORMAT_VERSION: u32 = 1;
/// Largest manifest or config read.
const DOCUMENT_LIMIT: u64 = 16 * 1024 * 1024;

/// Where a cache goes or comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=registry,ref=R`: an artifact tagged R in a registry.
    Registry(ImageName),
    /// `type=local,dest=DIR` / `src=DIR`: an OCI image layout directory.
    Local(PathBuf),
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(name) => write!(f, "{name}"),
            CacheLocation::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// Which steps `--cache-to` exports (BuildKit's `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportMode {
    /// The steps whose layers are in the target image (BuildKit's default).
    #[default]
    Min,
    /// Every step of the plan, other stages included.
    Max,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SharedCacheError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error("cannot {action} {}: {error}", path.display())]
    #[diagnostic(code(kiln::cache::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{location} is not a kiln build cache: {reason}")]
    #[diagnostic(
        code(kiln::cache::not_a_cache),
        help("--cache-from reads what `kiln build --cache-to` wrote there")
    )]
    NotACache { location: String, reason: String },
    #[error("{what} in the cache at {location} has digest {actual}, expected {expected}")]
    #[diagnostic(
        code(kiln::cache::digest_mismatch),
        help(
            "the cache was corrupted; nothing from it was stored. Export it again with --cache-to"
        )
    )]
    DigestMismatch {
        location: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
}

type Result<T, E = SharedCacheError> = std::result::Result<T, E>;

/// The artifact's config: plan cache key (hex) to the step's result.
#[derive(Debug, Serialize, Deserialize)]
struct CacheConfig {
    version: u32,
    keys: BTreeMap<String, CacheRecord>,
}

/// A cache read by `--cache-from`: its key map, and where its layers are fetched from.
#[derive(Debug)]
pub struct ImportedCache {
    location: CacheLocation,
    keys: BTreeMap<String, CacheRecord>,
    source: Source,
    /// Entries left out because their layer is not an uncompressed blob equal to its diff_id.
    pub refused: usize,
}

#[derive(Debug)]
enum Source {
    Layout(PathBuf),
    Registry {
        client: Box<Client>,
        name: ImageName,
    },
}

impl ImportedCache {
    /// Reads the cache at `location`: its manifest and key map, verified (layers later, when
    /// a build needs them).
    pub fn open(location: &CacheLocation, registry: &RegistryOptions) -> Result<ImportedCache> {
        let shown = location.to_string();
        let (source, manifest_bytes, manifest_digest) = match location {
            CacheLocation::Local(dir) => {
                let (bytes, digest) = layout::read_manifest(dir, &shown)?;
                (Source::Layout(dir.clone()), bytes, digest)
            }
            CacheLocation::Registry(name) => {
                let client = Client::connect(
                    name.domain(),
                    registry,
                    None,
                    vec![format!("repository:{}:pull", name.path())],
                )?;
                let fetched = registry::fetch_manifest(&client, name.path(), name.tag(), None)?;
                (
                    Source::Registry {
                        client: Box::new(client),
                        name: name.clone(),
                    },
                    fetched.bytes,
                    fetched.digest,
                )
            }
        };
        let not_a_cache = |reason: String| SharedCacheError::NotACache {
            location: shown.clone(),
            reason,
        };
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| not_a_cache(format!("manifest {manifest_digest}: {e}")))?;
        if manifest.config.media_type != MEDIA_TYPE_CACHE_CONFIG {
            return Err(not_a_cache(format!(
                "its manifest's config is {}, not {MEDIA_TYPE_CACHE_CONFIG}",
                manifest.config.media_type
            )));
        }
        if manifest.config.size > DOCUMENT_LIMIT {
            return Err(not_a_cache(format!(
                "its config is larger than {DOCUMENT_LIMIT} bytes"
            )));
        }
        let mut cache = ImportedCache {
            location: location.clone(),
            keys: BTreeMap::new(),
            source,
            refused: 0,
        };
        let config_bytes = cache.read_small(&manifest.config)?;
        let config: CacheConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| not_a_cache(format!("its config: {e}")))?;
        if config.version != FORMAT_VERSION {
            return Err(not_a_cache(format!(
                "format version {} (this kiln reads {FORMAT_VERSION})",
                config.version
            )));
        }
        let listed: std::collections::BTreeSet<&Digest> =
            manifest.layers.iter().map(|d| &d.digest).collect();
        for (key, record) in config.keys {
            let usable = match &record.layer {
                None => true,
                Some(l) => {
                    l.blob.digest == l.diff_id
                        && [MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_DOCKER_LAYER]
                            .contains(&l.blob.media_type.as_str())
                        && listed.contains(&l.blob.digest)
                }
            };
            if usable {
                cache.keys.insert(key, record);
            } else {
                cache.refused += 1;
            }
        }
        Ok(cache)
    }

    pub fn location(&self) -> &CacheLocation {
        &self.location
    }

    /// Steps this cache has a result for.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The result recorded for plan cache key `key` (hex).
    pub fn lookup(&self, key: &str) -> Option<&CacheRecord> {
        self.keys.get(key)
    }

    /// Brings the layer blob `blob` into the store, verified against its digest and size.
    pub fn fetch(&self, store: &Store, blob: &Descriptor) -> Result<()> {
        if store.has_blob(&blob.digest) {
            return Ok(());
        }
        match &self.source {
            Source::Layout(dir) => layout::copy_blob(dir, store, blob, &self.location.to_string()),
            Source::Registry { client, name } => Ok(registry::fetch_blob(
                client,
                store,
                name.path(),
                blob,
                &registry::NoProgress,
            )?),
        }
    }

    /// A small blob (the config) read into memory, verified.
    fn read_small(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let shown = self.location.to_string();
        let bytes = match &self.source {
            Source::Layout(dir) => layout::read_blob(dir, desc, DOCUMENT_LIMIT, &shown)?,
            Source::Registry { client, name } => {
                registry::fetch_small_blob(client, name.path(), desc, DOCUMENT_LIMIT)?
            }
        };
        check_digest(&shown, "the config", desc, &bytes)?;
        Ok(bytes)
    }
}

fn check_digest(location: &str, what: &str, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
    let actual = Digest::of_bytes(bytes);
    if actual != desc.digest || bytes.len() as u64 != desc.size {
        return Err(SharedCacheError::DigestMismatch {
            location: location.to_string(),
            what: what.to_string(),
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// The layers a build found in imported caches and has not fetched yet: a hit costs nothing
/// until a later step or the image needs the layer's bytes.
#[derive(Debug, Default)]
pub struct PendingLayers {
    /// Blob digest to the index of the cache (in the build's list) that has it.
    pending: Mutex<BTreeMap<Digest, usize>>,
}

impl PendingLayers {
    pub fn note(&self, blob: &Digest, cache: usize) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(blob.clone())
            .or_insert(cache);
    }

    /// Fetches every blob of `blobs` that is pending and not yet in the store (several at
    /// once).
    pub fn ensure<'d>(
        &self,
        store: &Store,
        caches: &[std::sync::Arc<ImportedCache>],
        blobs: impl IntoIterator<Item = &'d Descriptor>,
    ) -> Result<()> {
        use rayon::prelude::*;
        let wanted: Vec<(&Descriptor, &ImportedCache)> = {
            let pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            blobs
                .into_iter()
                .filter(|b| !store.has_blob(&b.digest))
                .filter_map(|b| {
                    let cache = pending.get(&b.digest).and_then(|i| caches.get(*i))?;
                    Some((b, cache.as_ref()))
                })
                .collect()
        };
        wanted
            .par_iter()
            .try_for_each(|(blob, cache)| cache.fetch(store, blob))
    }
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// Steps recorded.
    pub steps: usize,
    /// Distinct layers the artifact names.
    pub layers: usize,
}

/// Writes the cache records of `plan`'s steps (per `mode`) to `location`: the store's, else
/// those of `imported` (the build's `--cache-from` caches; a layer the build left there is
/// fetched first, verified). Steps with no record (never cacheable) are left out.
pub fn export(
    store: &Store,
    plan: &Plan,
    mode: ExportMode,
    location: &CacheLocation,
    imported: &[std::sync::Arc<ImportedCache>],
    registry_options: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<Exported> {
    let mut keys = BTreeMap::new();
    for id in exported_nodes(plan, mode) {
        let node = plan.node(id);
        if !is_cacheable_step(node) {
            continue;
        }
        let key = node.key.to_hex();
        let local = store
            .get_cache(&key)?
            .and_then(|v| serde_json::from_value::<CacheRecord>(v).ok());
        let record = match local {
            Some(r) => r,
            None => {
                let Some((cache, r)) = imported
                    .iter()
                    .find_map(|c| c.lookup(&key).map(|r| (c, r.clone())))
                else {
                    continue;
                };
                if let Some(layer) = &r.layer {
                    cache.fetch(store, &layer.blob)?;
                }
                r
            }
        };
        keys.insert(key, record);
    }
    let mut layers: Vec<Descriptor> = keys
        .values()
        .filter_map(|r| r.layer.as_ref().map(|l| l.blob.clone()))
        .collect();
    layers.sort_by(|a, b| a.digest.cmp(&b.digest));
    layers.dedup_by(|a, b| a.digest == b.digest);
    let steps = keys.len();
    let config_bytes = oci::to_canonical_json(&CacheConfig {
        version: FORMAT_VERSION,
        keys,
    });
    let config_digest = store.put_blob(&config_bytes)?;
    let manifest = Manifest::oci(
        Descriptor::new(
            MEDIA_TYPE_CACHE_CONFIG,
            config_digest,
            config_bytes.len() as u64,
        ),
        layers.clone(),
    );
    let manifest_bytes = oci::to_canonical_json(&manifest);
    let digest = Digest::of_bytes(&manifest_bytes);
    match location {
        CacheLocation::Local(dir) => {
            layout::write(dir, store, &manifest, &manifest_bytes, &config_bytes)?;
        }
        CacheLocation::Registry(name) => {
            let document = registry::Document {
                bytes: &manifest_bytes,
                digest: &digest,
                media_type: MEDIA_TYPE_OCI_MANIFEST,
                blobs: std::iter::once(&manifest.config)
                    .chain(&manifest.layers)
                    .collect(),
            };
            registry::push_document(store, name, &document, &[], registry_options, progress)?;
        }
    }
    Ok(Exported {
        digest,
        steps,
        layers: layers.len(),
    })
}

/// The nodes whose records an export writes: with `Min`, the target's chain (the steps whose
/// layers the image has); with `Max`, every node.
fn exported_nodes(plan: &Plan, mode: ExportMode) -> Vec<NodeId> {
    match mode {
        ExportMode::Max => plan.nodes.iter().map(|n| n.id).collect(),
        ExportMode::Min => {
            let (target, _) = plan.target_image();
            let mut out = Vec::new();
            let mut cur = target.inputs.first().copied();
            while let Some(id) = cur {
                out.push(id);
                cur = plan.node(id).inputs.first().copied();
            }
            out
        }
    }
}
