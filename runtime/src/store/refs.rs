//! The store's image index (`index.json`): which manifests are images, and their tags.
//! Also turns what a user typed into an image (`Store::image`).
//!
//! Rules: one descriptor per tag; an image with no tag has one descriptor without
//! annotations. Moving a tag to another image leaves the old image untagged (dangling, as in
//! docker); removing an image's last tag removes the image from the index (its blobs stay
//! until `prune`). An entry is an image manifest or an image index (OCI index or docker
//! manifest list, told apart by the entry's media type): an index is stored with the exact
//! bytes it came with, its child manifests (with their configs and layers) are blobs reached
//! through it and never entries of their own, and it is registered only when every child's
//! blobs are in. A reference to an index resolves, as an image, to its host platform's child.
//! Must not: delete blobs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;

use super::{io_err, Result, Store, StoreError};
use crate::image::{ImageName, ImageRef};
use crate::oci::{
    self, is_index_media_type, Compression, Descriptor, Digest, ImageConfig, Index, Manifest,
    Platform, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST,
};

/// An image in the store: its manifest, its config and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub manifest: Manifest,
    pub config: ImageConfig,
    /// Sorted; empty for an untagged image.
    pub tags: Vec<ImageName>,
}

impl Image {
    /// The image ID: the config digest, as docker shows it.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }

    /// Sum of the layer blob sizes (compressed where the layers are).
    pub fn size(&self) -> u64 {
        self.manifest.layers.iter().map(|l| l.size).sum()
    }

    /// The descriptor that points at this image's manifest.
    pub fn manifest_descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            self.manifest
                .media_type
                .as_deref()
                .unwrap_or(MEDIA_TYPE_OCI_MANIFEST),
            self.manifest_digest.clone(),
            self.manifest_size,
        );
        d.platform = Some(self.config.platform());
        d
    }
}

/// An image index (OCI index or docker manifest list) in the store, under its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIndex {
    /// The digest of the bytes as received (and pushed).
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub index: Index,
    /// Sorted; empty for an untagged index.
    pub tags: Vec<ImageName>,
}

impl StoredIndex {
    /// The descriptor that points at this index.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.digest.clone(), self.size)
    }

    /// The child manifests (nested indexes are refused when the index is registered).
    pub fn children(&self) -> impl Iterator<Item = &Descriptor> {
        self.index
            .manifests
            .iter()
            .filter(|d| !is_index_media_type(&d.media_type))
    }
}

/// What a reference names in the store: an image, or an index of images.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Image(Box<Image>),
    Index(StoredIndex),
}

impl Stored {
    /// The digest of the manifest or index the reference names.
    pub fn digest(&self) -> &Digest {
        match self {
            Stored::Image(i) => &i.manifest_digest,
            Stored::Index(x) => &x.digest,
        }
    }

    pub fn tags(&self) -> &[ImageName] {
        match self {
            Stored::Image(i) => &i.tags,
            Stored::Index(x) => &x.tags,
        }
    }

    /// What `kiln images` shows as its ID: an image's config digest, an index's own digest.
    pub fn id(&self) -> &Digest {
        match self {
            Stored::Image(i) => i.id(),
            Stored::Index(x) => &x.digest,
        }
    }
}

/// Whether a child manifest is an image kiln can use: every layer has a layer media type it
/// reads (attestations and other artifacts are kept as blobs only).
pub(super) fn is_usable_image(manifest: &Manifest) -> bool {
    manifest
        .layers
        .iter()
        .all(|l| Compression::of_layer_media_type(&l.media_type).is_some())
}

/// What `Store::remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub untagged: Vec<ImageName>,
    /// The image ID when the image itself left the index.
    pub deleted: Option<Digest>,
}

fn entry_name(d: &Descriptor) -> Option<ImageName> {
    d.annotations
        .get(ANNOTATION_IMAGE_NAME)
        .and_then(|n| ImageName::parse(n).ok())
}

fn tagged_entry(manifest: &Descriptor, name: &ImageName) -> Descriptor {
    let mut d = manifest.clone();
    d.annotations = BTreeMap::from([
        (ANNOTATION_IMAGE_NAME.to_string(), name.full()),
        (ANNOTATION_REF_NAME.to_string(), name.tag().to_string()),
    ]);
    d
}

fn untagged_entry(manifest: &Descriptor) -> Descriptor {
    let mut d = manifest.clone();
    d.annotations.clear();
    d
}

/// Points `name` at `manifest` in `entries`; an image that loses its last tag stays, untagged.
fn put_tag(entries: &mut Vec<Descriptor>, name: &ImageName, manifest: &Descriptor) {
    let previous = entries
        .iter()
        .position(|e| entry_name(e).as_ref() == Some(name))
        .map(|i| entries.remove(i));
    entries.retain(|e| !(e.digest == manifest.digest && entry_name(e).is_none()));
    entries.push(tagged_entry(manifest, name));
    if let Some(prev) = previous {
        if !entries.iter().any(|e| e.digest == prev.digest) {
            entries.push(untagged_entry(&prev));
        }
    }
}

/// The one order index.json is written in: tagged entries by full name, then untagged ones by
/// digest.
fn sort_entries(entries: &mut [Descriptor]) {
    entries.sort_by_key(|e| {
        (
            entry_name(e).map(|n| n.full()).is_none(),
            entry_name(e).map(|n| n.full()),
            e.digest.clone(),
        )
    });
}

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.root.join("index.json")
    }

    /// The store's index (empty when the store has no image yet).
    pub(crate) fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| StoreError::BadJson {
                what: path.display().to_string(),
                error,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::new(Vec::new())),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Read-modify-write of the index under the exclusive lock.
    fn update_index<T>(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T>) -> Result<T> {
        self.with_lock(|| {
            let mut index = self.read_index()?;
            let before = index.manifests.clone();
            let out = f(&mut index.manifests)?;
            sort_entries(&mut index.manifests);
            // Re-tagging an image with the tags it has (a cached rebuild) writes nothing.
            if index.manifests != before {
                self.write_atomic(&self.index_path(), &oci::to_canonical_json(&index))?;
            }
            Ok(out)
        })
    }

    /// Reads and checks an image's manifest and config blobs.
    pub(super) fn load_image(
        &self,
        manifest_digest: &Digest,
        tags: Vec<ImageName>,
    ) -> Result<Image> {
        let bytes = self.read_blob(manifest_digest)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|error| StoreError::BadJson {
                what: format!("manifest {manifest_digest}"),
                error,
            })?;
        let config_bytes = self.read_blob(&manifest.config.digest)?;
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|error| StoreError::BadJson {
                what: format!("image config {}", manifest.config.digest),
                error,
            })?;
        let mut tags = tags;
        tags.sort();
        Ok(Image {
            manifest_digest: manifest_digest.clone(),
            manifest_size: bytes.len() as u64,
            manifest,
            config,
            tags,
        })
    }

    /// Every image in the store (one per manifest entry; indexes are [`Store::indexes`]),
    /// tagged ones first, by name.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.entries(false)?
            .into_iter()
            .map(|(d, tags)| self.load_image(&d, tags))
            .collect()
    }

    /// Every index in the store (one per index entry), tagged ones first, by name.
    pub fn indexes(&self) -> Result<Vec<StoredIndex>> {
        self.entries(true)?
            .into_iter()
            .map(|(d, tags)| self.load_index(&d, tags))
            .collect()
    }

    /// The distinct digests of the store's index entries that are indexes (`indexes`) or
    /// manifests (not), in the order they first appear, each with every name it has.
    fn entries(&self, indexes: bool) -> Result<Vec<(Digest, Vec<ImageName>)>> {
        let index = self.read_index()?;
        let mut order: Vec<Digest> = Vec::new();
        let mut tags: BTreeMap<Digest, Vec<ImageName>> = BTreeMap::new();
        for e in index
            .manifests
            .iter()
            .filter(|e| is_index_media_type(&e.media_type) == indexes)
        {
            if !tags.contains_key(&e.digest) {
                order.push(e.digest.clone());
            }
            let list = tags.entry(e.digest.clone()).or_default();
            if let Some(name) = entry_name(e) {
                list.push(name);
            }
        }
        Ok(order
            .into_iter()
            .map(|d| {
                let t = tags.remove(&d).unwrap_or_default();
                (d, t)
            })
            .collect())
    }

    /// Reads an index blob.
    fn load_index(&self, digest: &Digest, tags: Vec<ImageName>) -> Result<StoredIndex> {
        let bytes = self.read_blob(digest)?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|error| StoreError::BadJson {
            what: format!("image index {digest}"),
            error,
        })?;
        let media_type = index
            .media_type
            .clone()
            .filter(|m| is_index_media_type(m))
            .unwrap_or_else(|| MEDIA_TYPE_OCI_INDEX.to_string());
        let mut tags = tags;
        tags.sort();
        Ok(StoredIndex {
            digest: digest.clone(),
            size: bytes.len() as u64,
            media_type,
            index,
            tags,
        })
    }

    /// The child manifests of a stored index, each with its digest.
    pub fn index_manifests(&self, index: &StoredIndex) -> Result<Vec<(Digest, Manifest)>> {
        index
            .children()
            .map(|d| {
                let bytes = self.read_blob(&d.digest)?;
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|error| StoreError::BadJson {
                        what: format!("manifest {} of index {}", d.digest, index.digest),
                        error,
                    })?;
                Ok((d.digest.clone(), manifest))
            })
            .collect()
    }

    /// The child image of `index` for `platform` (see [`Platform::satisfies`]), carrying the
    /// index's tags.
    pub fn index_image(&self, index: &StoredIndex, platform: &Platform) -> Result<Image> {
        let Some(child) = index.index.manifest_for(platform) else {
            return Err(StoreError::NoPlatform {
                reference: match index.tags.first() {
                    Some(t) => t.familiar(),
                    None => index.digest.to_string(),
                },
                wanted: platform.text(),
                available: index.index.platforms_text(),
            });
        };
        self.load_image(&child.digest, index.tags.clone())
    }

    /// Adds the index whose bytes are the stored blob `digest`, with these tags (untagged when
    /// `tags` is empty). Every child's manifest, config and layer blobs must be stored with
    /// the sizes named; children that are images kiln reads are checked like any image.
    pub fn register_index(&self, digest: &Digest, tags: &[ImageName]) -> Result<StoredIndex> {
        let stored = self.load_index(digest, Vec::new())?;
        let invalid = |reason: String| StoreError::InvalidImage { reason };
        for child in &stored.index.manifests {
            if is_index_media_type(&child.media_type) {
                return Err(invalid(format!(
                    "index {digest} names another index ({}); nested indexes are not kept",
                    child.digest
                )));
            }
            let size = self.blob_size(&child.digest)?;
            if size != child.size {
                return Err(invalid(format!(
                    "manifest {} is {size} bytes, index {digest} says {}",
                    child.digest, child.size
                )));
            }
        }
        for (child, manifest) in self.index_manifests(&stored)? {
            if is_usable_image(&manifest) {
                let image = self.load_image(&child, Vec::new())?;
                check_image(self, &image)?;
                for (layer, diff_id) in image
                    .manifest
                    .layers
                    .iter()
                    .zip(&image.config.rootfs.diff_ids)
                {
                    if Compression::of_layer_media_type(&layer.media_type)
                        != Some(Compression::None)
                    {
                        self.record_layer_source(diff_id, layer)?;
                    }
                }
            } else {
                for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                    let size = self.blob_size(&blob.digest)?;
                    if size != blob.size {
                        return Err(invalid(format!(
                            "blob {} of manifest {child} is {size} bytes, the manifest says {}",
                            blob.digest, blob.size
                        )));
                    }
                }
            }
        }
        let desc = stored.descriptor();
        self.update_index(|entries| {
            if tags.is_empty() {
                if !entries.iter().any(|e| e.digest == desc.digest) {
                    entries.push(untagged_entry(&desc));
                }
            } else {
                for name in tags {
                    put_tag(entries, name, &desc);
                }
            }
            Ok(())
        })?;
        let tags = self.tags_of(digest)?;
        Ok(StoredIndex { tags, ..stored })
    }

    /// Every tag with the manifest digest it points at, sorted by name.
    pub fn list_refs(&self) -> Result<Vec<(ImageName, Digest)>> {
        let index = self.read_index()?;
        let mut refs: Vec<(ImageName, Digest)> = index
            .manifests
            .iter()
            .filter_map(|e| entry_name(e).map(|n| (n, e.digest.clone())))
            .collect();
        refs.sort();
        Ok(refs)
    }

    /// The manifest digest a tag points at.
    pub fn get_ref(&self, name: &ImageName) -> Result<Option<Digest>> {
        Ok(self
            .list_refs()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d))
    }

    /// Points `name` at the image whose manifest is `manifest` (a stored blob).
    pub fn set_ref(&self, name: &ImageName, manifest: &Digest) -> Result<()> {
        let image = self.load_image(manifest, Vec::new())?;
        let desc = image.manifest_descriptor();
        self.update_index(|entries| {
            put_tag(entries, name, &desc);
            Ok(())
        })
    }

    /// Removes a tag. When it was the image's last one, the image leaves the index.
    /// Returns the manifest digest the tag pointed at.
    pub fn remove_ref(&self, name: &ImageName) -> Result<Option<Digest>> {
        self.update_index(|entries| {
            let Some(i) = entries
                .iter()
                .position(|e| entry_name(e).as_ref() == Some(name))
            else {
                return Ok(None);
            };
            let removed = entries.remove(i);
            Ok(Some(removed.digest))
        })
    }

    /// Adds the image whose manifest and config blobs (and layers) are already stored, with
    /// these tags (or untagged when `tags` is empty). Checks that every blob is present and
    /// that layers and diff_ids agree.
    pub fn register_image(&self, manifest_digest: &Digest, tags: &[ImageName]) -> Result<Image> {
        let image = self.load_image(manifest_digest, Vec::new())?;
        check_image(self, &image)?;
        let desc = image.manifest_descriptor();
        self.update_index(|entries| {
            if tags.is_empty() {
                if !entries.iter().any(|e| e.digest == desc.digest) {
                    entries.push(untagged_entry(&desc));
                }
            } else {
                for name in tags {
                    put_tag(entries, name, &desc);
                }
            }
            Ok(())
        })?;
        for (layer, diff_id) in image
            .manifest
            .layers
            .iter()
            .zip(&image.config.rootfs.diff_ids)
        {
            if Compression::of_layer_media_type(&layer.media_type) != Some(Compression::None) {
                self.record_layer_source(diff_id, layer)?;
            }
        }
        let tags = self.tags_of(manifest_digest)?;
        Ok(Image { tags, ..image })
    }

    /// Copies `image` (manifest, config and layer blobs, as they are) from the store `from`
    /// into this one and registers it under its tags there: the same manifest digest and
    /// image ID. Blobs are hard-linked when both stores are on one filesystem (blobs are never
    /// changed in place), else copied and verified.
    pub fn copy_image_from(&self, from: &Store, image: &Image) -> Result<Image> {
        let digests = std::iter::once(&image.manifest_digest)
            .chain(std::iter::once(&image.manifest.config.digest))
            .chain(image.manifest.layers.iter().map(|l| &l.digest));
        for digest in digests {
            if self.has_blob(digest) {
                continue;
            }
            let source = from.blob_path(digest);
            if fs::hard_link(&source, self.blob_path(digest)).is_ok() {
                continue;
            }
            let mut input = from.open_blob(digest)?;
            let mut w = self.blob_writer()?;
            io::copy(&mut input, &mut w).map_err(io_err("copy", &source))?;
            w.commit(Some(digest))?;
        }
        self.register_image(&image.manifest_digest, &image.tags)
    }

    fn tags_of(&self, manifest_digest: &Digest) -> Result<Vec<ImageName>> {
        let mut tags: Vec<ImageName> = self
            .list_refs()?
            .into_iter()
            .filter(|(_, d)| d == manifest_digest)
            .map(|(n, _)| n)
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Writes `config` (deterministic JSON) and an OCI manifest over `layers` (blobs already
    /// in the store, bottom first, one per `config.rootfs.diff_ids` entry), and adds the image
    /// with `tags`.
    pub fn save_image(
        &self,
        config: &ImageConfig,
        layers: &[Descriptor],
        tags: &[ImageName],
    ) -> Result<Image> {
        let config_bytes = oci::to_canonical_json(config);
        let config_digest = self.put_blob(&config_bytes)?;
        let manifest = Manifest::oci(
            Descriptor::new(
                MEDIA_TYPE_OCI_CONFIG,
                config_digest,
                config_bytes.len() as u64,
            ),
            layers.to_vec(),
        );
        let manifest_digest = self.put_blob(&oci::to_canonical_json(&manifest))?;
        self.register_image(&manifest_digest, tags)
    }

    /// Resolves what a user typed: `name[:tag]`, `name@sha256:<manifest>`, `sha256:<manifest
    /// digest or image ID>`, or a (short) image ID.
    pub fn image(&self, reference: &str) -> Result<Image> {
        let parsed = ImageRef::parse(reference)?;
        self.resolve(&parsed)
    }

    /// Resolves a parsed reference (see [`Store::image`]) to an image: a reference to an index
    /// gives its child for the host platform, as docker does.
    pub fn resolve(&self, reference: &ImageRef) -> Result<Image> {
        match self.lookup(reference)? {
            Stored::Image(image) => Ok(*image),
            Stored::Index(index) => self.index_image(&index, &Platform::host_default()),
        }
    }

    /// What a reference names: an image or an index. Tags and IDs name entries of the index;
    /// a digest also names a child manifest of a stored index (an untagged image then).
    pub fn lookup(&self, reference: &ImageRef) -> Result<Stored> {
        let images = self.images()?;
        let indexes = self.indexes()?;
        let not_found = || StoreError::NoSuchImage {
            reference: reference.to_string(),
            root: self.root.clone(),
        };
        let by_name = |name: &ImageName| {
            images
                .iter()
                .find(|i| i.tags.contains(name))
                .map(|i| Stored::Image(Box::new(i.clone())))
                .or_else(|| {
                    indexes
                        .iter()
                        .find(|x| x.tags.contains(name))
                        .map(|x| Stored::Index(x.clone()))
                })
        };
        let by_digest = |d: &Digest| -> Result<Option<Stored>> {
            if let Some(i) = images.iter().find(|i| &i.manifest_digest == d) {
                return Ok(Some(Stored::Image(Box::new(i.clone()))));
            }
            if let Some(x) = indexes.iter().find(|x| &x.digest == d) {
                return Ok(Some(Stored::Index(x.clone())));
            }
            if indexes.iter().any(|x| x.children().any(|c| &c.digest == d)) {
                return Ok(Some(Stored::Image(Box::new(
                    self.load_image(d, Vec::new())?,
                ))));
            }
            Ok(None)
        };
        let found = match reference {
            ImageRef::Name { name, .. } => by_name(name),
            ImageRef::NameDigest { digest, .. } => by_digest(digest)?,
            ImageRef::Digest(d) => match by_digest(d)? {
                Some(found) => Some(found),
                None => match images.iter().find(|i| i.id() == d) {
                    Some(i) => Some(Stored::Image(Box::new(i.clone()))),
                    // An image ID of an index's child (a container run from the index).
                    None => self.index_child_by_id(&indexes, d)?.map(Stored::Image),
                },
            },
            ImageRef::IdPrefix { prefix, name } => {
                if let Some(found) = name.as_ref().and_then(by_name) {
                    Some(found)
                } else {
                    let all: Vec<Stored> = images
                        .into_iter()
                        .map(|i| Stored::Image(Box::new(i)))
                        .chain(indexes.into_iter().map(Stored::Index))
                        .collect();
                    let ids: BTreeSet<&Digest> = all
                        .iter()
                        .map(Stored::id)
                        .filter(|id| id.hex().starts_with(prefix.as_str()))
                        .collect();
                    if ids.len() > 1 {
                        return Err(StoreError::AmbiguousId {
                            prefix: prefix.clone(),
                            candidates: ids.iter().map(|d| d.short().to_string()).collect(),
                        });
                    }
                    let id = ids.into_iter().next().cloned();
                    id.and_then(|id| all.iter().find(|s| *s.id() == id).cloned())
                }
            }
        };
        found.ok_or_else(not_found)
    }

    /// The child image of one of `indexes` whose config digest (image ID) is `id`.
    fn index_child_by_id(
        &self,
        indexes: &[StoredIndex],
        id: &Digest,
    ) -> Result<Option<Box<Image>>> {
        for index in indexes {
            for (digest, manifest) in self.index_manifests(index)? {
                if manifest.config.digest == *id {
                    return Ok(Some(Box::new(self.load_image(&digest, Vec::new())?)));
                }
            }
        }
        Ok(None)
    }

    /// Tags the image or index `source` names as `target`.
    pub fn tag(&self, source: &str, target: &ImageName) -> Result<Stored> {
        let parsed = ImageRef::parse(source)?;
        match self.lookup(&parsed)? {
            Stored::Image(image) => {
                self.set_ref(target, &image.manifest_digest)?;
                let tags = self.tags_of(&image.manifest_digest)?;
                Ok(Stored::Image(Box::new(Image { tags, ..*image })))
            }
            Stored::Index(index) => {
                let desc = index.descriptor();
                self.update_index(|entries| {
                    put_tag(entries, target, &desc);
                    Ok(())
                })?;
                let tags = self.tags_of(&index.digest)?;
                Ok(Stored::Index(StoredIndex { tags, ..index }))
            }
        }
    }

    /// `kiln rmi`: by tag, removes that tag (and the image or index when no tag remains); by
    /// ID or digest, removes the image or index when it has at most one tag. A child of an
    /// index goes with its index, never alone.
    pub fn remove(&self, reference: &str) -> Result<Removed> {
        let parsed = ImageRef::parse(reference)?;
        let found = self.lookup(&parsed)?;
        let digest = found.digest().clone();
        let tags = found.tags().to_vec();
        let by_name = match &parsed {
            ImageRef::Name { name, .. } => Some(name.clone()),
            ImageRef::IdPrefix { name: Some(n), .. } if tags.contains(n) => Some(n.clone()),
            _ => None,
        };
        self.update_index(|entries| {
            if !entries.iter().any(|e| e.digest == digest) {
                return Err(StoreError::PartOfIndex {
                    reference: reference.to_string(),
                });
            }
            let untagged: Vec<ImageName> = match &by_name {
                Some(name) => vec![name.clone()],
                None if tags.len() > 1 => {
                    return Err(StoreError::ImageHasTags {
                        id: found.id().short().to_string(),
                        tags: tags.iter().map(|t| t.familiar()).collect(),
                    })
                }
                None => tags.clone(),
            };
            entries.retain(|e| {
                !(e.digest == digest && entry_name(e).is_some_and(|n| untagged.contains(&n)))
            });
            let remaining_tags = entries
                .iter()
                .any(|e| e.digest == digest && entry_name(e).is_some());
            let deleted = if remaining_tags {
                None
            } else {
                entries.retain(|e| e.digest != digest);
                Some(found.id().clone())
            };
            Ok(Removed { untagged, deleted })
        })
    }
}

/// Checks an image's blobs are present and consistent: one layer per diff_id, sizes as
/// described, uncompressed layers named by their diff_id.
fn check_image(store: &Store, image: &Image) -> Result<()> {
    let invalid = |reason: String| Err(StoreError::InvalidImage { reason });
    let diff_ids = &image.config.rootfs.diff_ids;
    if image.manifest.layers.len() != diff_ids.len() {
        return invalid(format!(
            "the manifest lists {} layers but the config has {} diff_ids",
            image.manifest.layers.len(),
            diff_ids.len()
        ));
    }
    let config_size = store.blob_size(&image.manifest.config.digest)?;
    if config_size != image.manifest.config.size {
        return invalid(format!(
            "config {} is {config_size} bytes, the manifest says {}",
            image.manifest.config.digest, image.manifest.config.size
        ));
    }
    for (layer, diff_id) in image.manifest.layers.iter().zip(diff_ids) {
        let size = store.blob_size(&layer.digest)?;
        if size != layer.size {
            return invalid(format!(
                "layer {} is {size} bytes, the manifest says {}",
                layer.digest, layer.size
            ));
        }
        match Compression::of_layer_media_type(&layer.media_type) {
            None => {
                return invalid(format!(
                    "layer {} has unsupported media type `{}`",
                    layer.digest, layer.media_type
                ))
            }
            Some(Compression::None) if layer.digest != *diff_id => {
                return invalid(format!(
                    "uncompressed layer {} does not match its diff_id {diff_id}",
                    layer.digest
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}
