//! `save`: images from the store to one tarball in the combined layout Docker 25+ writes: an
//! OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) that is also a docker
//! archive (`manifest.json`, `repositories`), so `docker load` of any version, podman, skopeo
//! and umoci read it.
//!
//! Layers are written with the compression asked for. A layer already stored that way passes
//! through byte for byte, and an image whose layers all do keeps its manifest (and digest);
//! otherwise kiln makes the missing form (decompressed, or compressed deterministically and
//! cached in the store) and writes a new OCI manifest for the same config.
//! Must not: change the store's index.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::Serialize;

use super::tar_out::TarOut;
use crate::image::{ImageName, ImageRef};
use crate::oci::{
    self, Compression, Descriptor, Digest, Index, Manifest, ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_CONFIG, OCI_LAYOUT_FILE,
};
use crate::store::{Image, Store, StoreError};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SaveError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the tarball: {0}")]
    #[diagnostic(
        code(kiln::save::write),
        help("check the output file's disk space, or the reader of the pipe")
    )]
    Write(std::io::Error),
    #[error("cannot write the tarball to {}: {error}", path.display())]
    #[diagnostic(
        code(kiln::save::destination),
        help("the destination must be a file path in an existing, writable directory with space for the tarball")
    )]
    Destination {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("no images to save")]
    #[diagnostic(
        code(kiln::save::nothing),
        help("name at least one image: `kiln save app:1.0 -o app.tar`")
    )]
    Nothing,
}

/// One image as it goes into the tarball.
struct SavedImage {
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    manifest: Manifest,
    platform: oci::Platform,
    tags: BTreeSet<ImageName>,
}

/// An entry of `manifest.json` (docker's field names and order).
#[derive(Serialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    /// `null` for an image saved by ID, as docker writes it.
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Which images and tags `references` select (docker's rules: `app` without a tag selects
/// every tag of `app`; an ID or digest selects the image without naming it).
fn select(
    store: &Store,
    references: &[ImageRef],
) -> Result<BTreeMap<Digest, (Image, BTreeSet<ImageName>)>, StoreError> {
    let mut selected: BTreeMap<Digest, (Image, BTreeSet<ImageName>)> = BTreeMap::new();
    let mut add = |image: Image, tag: Option<ImageName>| {
        let entry = selected
            .entry(image.manifest_digest.clone())
            .or_insert_with(|| (image, BTreeSet::new()));
        if let Some(tag) = tag {
            entry.1.insert(tag);
        }
    };
    for reference in references {
        match reference {
            ImageRef::Name {
                name,
                tag_given: false,
            } => {
                let repo = name.full_repository();
                let tags: Vec<ImageName> = store
                    .list_refs()?
                    .into_iter()
                    .map(|(n, _)| n)
                    .filter(|n| n.full_repository() == repo)
                    .collect();
                if tags.is_empty() {
                    return Err(StoreError::NoSuchImage {
                        reference: reference.to_string(),
                        root: store.root().to_path_buf(),
                    });
                }
                for tag in tags {
                    let image = store.resolve(&ImageRef::Name {
                        name: tag.clone(),
                        tag_given: true,
                    })?;
                    add(image, Some(tag));
                }
            }
            ImageRef::Name { name, .. } => {
                let image = store.resolve(reference)?;
                add(image, Some(name.clone()));
            }
            ImageRef::IdPrefix {
                name: Some(name), ..
            } => {
                let image = store.resolve(reference)?;
                let tag = image.tags.contains(name).then(|| name.clone());
                add(image, tag);
            }
            _ => {
                let image = store.resolve(reference)?;
                add(image, None);
            }
        }
    }
    Ok(selected)
}

/// The manifest to write for `image` with layers in `compression`: the stored one when every
/// layer already is, else a new OCI manifest over converted layers.
fn manifest_for(
    store: &Store,
    image: &Image,
    compression: Compression,
) -> Result<(Digest, Vec<u8>, Manifest), StoreError> {
    let fits = image
        .manifest
        .layers
        .iter()
        .all(|l| Compression::of_layer_media_type(&l.media_type) == Some(compression));
    if fits {
        let bytes = store.read_blob(&image.manifest_digest)?;
        return Ok((image.manifest_digest.clone(), bytes, image.manifest.clone()));
    }
    let mut layers = Vec::with_capacity(image.manifest.layers.len());
    for (layer, diff_id) in image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
    {
        if Compression::of_layer_media_type(&layer.media_type) == Some(compression) {
            let mut d = Descriptor::new(
                compression.layer_media_type(false),
                layer.digest.clone(),
                layer.size,
            );
            d.annotations = layer.annotations.clone();
            layers.push(d);
        } else {
            layers.push(store.compressed_layer(diff_id, compression)?);
        }
    }
    let config = Descriptor::new(
        MEDIA_TYPE_OCI_CONFIG,
        image.manifest.config.digest.clone(),
        image.manifest.config.size,
    );
    let mut manifest = Manifest::oci(config, layers);
    manifest.annotations = image.manifest.annotations.clone();
    let bytes = oci::to_canonical_json(&manifest);
    Ok((Digest::of_bytes(&bytes), bytes, manifest))
}

/// Writes `images` (as resolved in `store`) to `out` as one tarball, layers in `compression`.
/// The same images and options always give the same bytes.
pub fn save<W: Write>(
    store: &Store,
    images: &[ImageRef],
    out: W,
    compression: Compression,
) -> Result<W, SaveError> {
    if images.is_empty() {
        return Err(SaveError::Nothing);
    }
    write_selected(store, select(store, images)?, out, compression)
}

/// [`save`] of chosen images, each with the names it gets in the tarball.
fn write_selected<W: Write>(
    store: &Store,
    selected: BTreeMap<Digest, (Image, BTreeSet<ImageName>)>,
    out: W,
    compression: Compression,
) -> Result<W, SaveError> {
    let mut saved = Vec::new();
    for (_, (image, tags)) in selected {
        let (manifest_digest, manifest_bytes, manifest) = manifest_for(store, &image, compression)?;
        saved.push(SavedImage {
            manifest_digest,
            manifest_bytes,
            manifest,
            platform: image.config.platform(),
            tags,
        });
    }
    saved.sort_by(|a, b| a.manifest_digest.cmp(&b.manifest_digest));

    // Blobs: stored ones by path, made manifests from memory.
    let mut stored: BTreeSet<Digest> = BTreeSet::new();
    let mut in_memory: BTreeMap<Digest, &[u8]> = BTreeMap::new();
    let mut docker_manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut tagged_entries = Vec::new();
    let mut untagged_entries = Vec::new();
    for image in &saved {
        stored.insert(image.manifest.config.digest.clone());
        stored.extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
        if store.has_blob(&image.manifest_digest) {
            stored.insert(image.manifest_digest.clone());
        } else {
            in_memory.insert(image.manifest_digest.clone(), &image.manifest_bytes);
        }
        let mut desc = Descriptor::new(
            image
                .manifest
                .media_type
                .as_deref()
                .unwrap_or(oci::MEDIA_TYPE_OCI_MANIFEST),
            image.manifest_digest.clone(),
            image.manifest_bytes.len() as u64,
        );
        desc.platform = Some(image.platform.clone());
        if image.tags.is_empty() {
            untagged_entries.push(desc.clone());
        }
        for tag in &image.tags {
            let mut d = desc.clone();
            d.annotations
                .insert(ANNOTATION_IMAGE_NAME.to_string(), tag.full());
            d.annotations
                .insert(ANNOTATION_REF_NAME.to_string(), tag.tag().to_string());
            tagged_entries.push((tag.full(), d));
            if let Some(top) = image.manifest.layers.last() {
                repositories
                    .entry(tag.repository())
                    .or_default()
                    .insert(tag.tag().to_string(), top.digest.hex().to_string());
            }
        }
        docker_manifest.push(DockerManifestEntry {
            config: blob_name(&image.manifest.config.digest),
            repo_tags: (!image.tags.is_empty())
                .then(|| image.tags.iter().map(|t| t.familiar()).collect()),
            layers: image
                .manifest
                .layers
                .iter()
                .map(|l| blob_name(&l.digest))
                .collect(),
        });
    }
    tagged_entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut index_entries: Vec<Descriptor> = tagged_entries.into_iter().map(|(_, d)| d).collect();
    index_entries.extend(untagged_entries);
    let index = oci::to_canonical_json(&Index::new(index_entries));
    let mut manifest_json = oci::to_canonical_json(&docker_manifest);
    manifest_json.push(b'\n');
    let repositories_json = (!repositories.is_empty()).then(|| {
        let mut bytes = oci::to_canonical_json(&repositories);
        bytes.push(b'\n');
        bytes
    });

    let mut blobs: BTreeSet<&Digest> = stored.iter().collect();
    blobs.extend(in_memory.keys());
    let mut tar = TarOut::new(out);
    let write = |r: std::io::Result<()>| r.map_err(SaveError::Write);
    write(tar.dir("blobs/"))?;
    write(tar.dir("blobs/sha256/"))?;
    for digest in blobs {
        let name = blob_name(digest);
        if let Some(bytes) = in_memory.get(digest) {
            write(tar.file_bytes(&name, bytes))?;
        } else {
            let size = store.blob_size(digest)?;
            let file = store.open_blob(digest)?;
            write(tar.file_from(&name, file, size))?;
        }
    }
    write(tar.file_bytes("index.json", &index))?;
    write(tar.file_bytes("manifest.json", &manifest_json))?;
    write(tar.file_bytes("oci-layout", OCI_LAYOUT_FILE))?;
    if let Some(repos) = &repositories_json {
        write(tar.file_bytes("repositories", repos))?;
    }
    tar.finish().map_err(SaveError::Write)
}

/// [`save`] to the file `path`, atomically: the tarball is written to a temporary file beside
/// it and renamed over `path` only when complete.
pub fn save_to_path(
    store: &Store,
    images: &[ImageRef],
    path: &std::path::Path,
    compression: Compression,
) -> Result<(), SaveError> {
    if images.is_empty() {
        return Err(SaveError::Nothing);
    }
    let selected = select(store, images)?;
    write_to_path(path, |file| {
        write_selected(store, selected, file, compression)
    })
}

/// Writes `image` to the file `path` (atomically, as [`save_to_path`]) under `names`,
/// whether or not the store has those names yet: a build writes its output before it tags
/// the image, so a failed write leaves no tag behind.
pub fn save_image_to_path(
    store: &Store,
    image: &Image,
    names: &[ImageName],
    path: &std::path::Path,
    compression: Compression,
) -> Result<(), SaveError> {
    let mut selected = BTreeMap::new();
    selected.insert(
        image.manifest_digest.clone(),
        (image.clone(), names.iter().cloned().collect()),
    );
    write_to_path(path, |file| {
        write_selected(store, selected, file, compression)
    })
}

/// Writes through `write` to a temporary file beside `path`, syncs it and renames it over
/// `path`: `path` is the whole tarball or is left as it was.
fn write_to_path(
    path: &std::path::Path,
    write: impl FnOnce(&std::fs::File) -> Result<&std::fs::File, SaveError>,
) -> Result<(), SaveError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-save-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|error| SaveError::Destination {
            path: path.to_path_buf(),
            error,
        })?;
    if path.is_dir() {
        return Err(SaveError::Destination {
            path: path.to_path_buf(),
            error: std::io::Error::from(std::io::ErrorKind::IsADirectory),
        });
    }
    let at_path = |error| SaveError::Destination {
        path: path.to_path_buf(),
        error,
    };
    let file = write(tmp.as_file()).map_err(|e| match e {
        SaveError::Write(error) => at_path(error),
        other => other,
    })?;
    file.sync_all().map_err(at_path)?;
    tmp.persist(path).map_err(|e| SaveError::Destination {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    Ok(())
}
