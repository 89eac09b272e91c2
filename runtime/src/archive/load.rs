//! `load`: images from a tarball into the store. Reads the docker archive (`manifest.json`,
//! `<id>/layer.tar` or `blobs/sha256/...`, `<config>.json`), the Docker 25+ combined layout
//! and plain OCI archives (`index.json`, nested indexes), with layers uncompressed, gzip or
//! zstd, several images per file, the tarball itself optionally gzip or zstd compressed.
//!
//! The input may be a pipe: every file entry is streamed into a staged blob (hashed as it
//! goes) in the store's tmp directory. Only when the whole tarball has been read and every
//! blob digest, layer diff_id and layer path has been verified are the blobs moved into the
//! store and the tags set; a refused tarball leaves the store as it was.
//! Must not: unpack layers anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read, Write};

use serde::Deserialize;

use crate::image::ImageName;
use crate::layer::{self, StreamFormat};
use crate::oci::{
    self, Compression, Descriptor, Digest, DigestReader, ImageConfig, Index, Manifest, Platform,
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_CONFIG,
};
use crate::store::{Image, StagedBlob, Store, StoreError};

const READ_BUFFER: usize = 1 << 20;
/// How many symlinks are followed to find a file inside the archive.
const MAX_LINK_HOPS: usize = 16;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error("the tarball is truncated: {detail}")]
    #[diagnostic(
        code(kiln::load::truncated),
        help("the file ends in the middle of an entry; was it copied or downloaded completely?")
    )]
    Truncated { detail: String },
    #[error("cannot read the tarball: {error}")]
    #[diagnostic(
        code(kiln::load::read),
        help("is the input a tar archive written by `docker save`, `kiln save` or an OCI tool?")
    )]
    Read { error: io::Error },
    #[error("the input is not a tar archive")]
    #[diagnostic(
        code(kiln::load::not_a_tar),
        help("kiln load reads tarballs (optionally gzip, bzip2, xz or zstd compressed) written by `docker save`, `kiln save` or OCI tools")
    )]
    NotATar,
    #[error("tarball entry `{path}` escapes the archive root")]
    #[diagnostic(
        code(kiln::load::entry_escapes),
        help("the tarball was crafted to write outside its directory; it is refused")
    )]
    EntryEscapes { path: String },
    #[error("the tarball has neither manifest.json nor index.json")]
    #[diagnostic(
        code(kiln::load::not_an_image_archive),
        help("kiln loads tarballs written by `docker save`, `kiln save`, `podman save` or OCI tools; use `kiln import` for a root filesystem tarball")
    )]
    NotAnImageArchive,
    #[error("`{path}` is named in {referenced_by} but is not in the tarball")]
    #[diagnostic(
        code(kiln::load::missing_file),
        help("the tarball is incomplete or was edited by hand")
    )]
    MissingFile { path: String, referenced_by: String },
    #[error("`{path}`, named in {referenced_by}, is a symlink that does not reach a file within {hops} links (a loop?)")]
    #[diagnostic(
        code(kiln::load::link_loop),
        help("the tarball's symlinks point at each other; it is corrupt or crafted")
    )]
    LinkLoop {
        path: String,
        referenced_by: String,
        hops: usize,
    },
    #[error("blob `{path}` has digest {actual}, but {expected} was expected")]
    #[diagnostic(
        code(kiln::load::blob_digest),
        help("the tarball is corrupt: a blob's content does not match its name")
    )]
    BlobDigestMismatch {
        path: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob `{path}` is {actual} bytes, but its descriptor says {expected}")]
    #[diagnostic(
        code(kiln::load::blob_size),
        help("the tarball is corrupt or truncated")
    )]
    BlobSizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {index} of {image} (`{path}`) has diff_id {actual}, but the image config says {expected}")]
    #[diagnostic(
        code(kiln::load::diff_id),
        help("the layer's content was changed or corrupted; the tarball is refused")
    )]
    DiffIdMismatch {
        image: String,
        index: usize,
        path: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer `{path}` cannot be read: {detail}")]
    #[diagnostic(
        code(kiln::load::bad_layer),
        help("the layer is not a valid (optionally gzip or zstd compressed) tar, or it is unsafe")
    )]
    BadLayer { path: String, detail: String },
    #[error("`{path}` is not valid: {detail}")]
    #[diagnostic(
        code(kiln::load::bad_metadata),
        help("the tarball's JSON files are corrupt or not of a known format")
    )]
    BadMetadata { path: String, detail: String },
    #[error("image {image} has {layers} layers but its config lists {diff_ids} diff_ids")]
    #[diagnostic(code(kiln::load::layer_count), help("the tarball is inconsistent"))]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
}

/// One image the load added (or found already present) in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    pub image: Image,
    /// The names the tarball gave it (empty: loaded by ID only).
    pub tags: Vec<ImageName>,
}

/// A file of the tarball: staged, or a link to another path of the tarball.
enum ArchiveFile<'s> {
    Staged(StagedBlob<'s>),
    Link(String),
}

/// Every file of the tarball, by cleaned path.
struct ArchiveFiles<'s> {
    files: BTreeMap<String, ArchiveFile<'s>>,
}

impl<'s> ArchiveFiles<'s> {
    /// The path of the staged file `path` names, following links.
    fn resolve(&self, path: &str, referenced_by: &str) -> Result<String, LoadError> {
        let missing = || LoadError::MissingFile {
            path: path.to_string(),
            referenced_by: referenced_by.to_string(),
        };
        let mut current = clean_path(path).ok_or_else(|| LoadError::EntryEscapes {
            path: path.to_string(),
        })?;
        for _ in 0..MAX_LINK_HOPS {
            match self.files.get(&current) {
                Some(ArchiveFile::Staged(_)) => return Ok(current),
                Some(ArchiveFile::Link(target)) => current = target.clone(),
                None => return Err(missing()),
            }
        }
        Err(LoadError::LinkLoop {
            path: path.to_string(),
            referenced_by: referenced_by.to_string(),
            hops: MAX_LINK_HOPS,
        })
    }

    fn staged(&self, path: &str) -> Option<&StagedBlob<'s>> {
        match self.files.get(path) {
            Some(ArchiveFile::Staged(s)) => Some(s),
            _ => None,
        }
    }

    fn read_small(&self, path: &str, referenced_by: &str) -> Result<Vec<u8>, LoadError> {
        let real = self.resolve(path, referenced_by)?;
        let staged = self.staged(&real).ok_or_else(|| LoadError::MissingFile {
            path: path.to_string(),
            referenced_by: referenced_by.to_string(),
        })?;
        let mut bytes = Vec::new();
        staged
            .open()?
            .read_to_end(&mut bytes)
            .map_err(|error| LoadError::Read { error })?;
        Ok(bytes)
    }

    /// The blob `blobs/sha256/<hex>` of an OCI layout, checked against its descriptor.
    fn blob(&self, desc: &Descriptor, referenced_by: &str) -> Result<String, LoadError> {
        let path = format!("blobs/sha256/{}", desc.digest.hex());
        let real = self.resolve(&path, referenced_by)?;
        let staged = self.staged(&real).ok_or_else(|| LoadError::MissingFile {
            path: path.clone(),
            referenced_by: referenced_by.to_string(),
        })?;
        if *staged.digest() != desc.digest {
            return Err(LoadError::BlobDigestMismatch {
                path,
                expected: desc.digest.clone(),
                actual: staged.digest().clone(),
            });
        }
        if staged.size() != desc.size {
            return Err(LoadError::BlobSizeMismatch {
                path,
                expected: desc.size,
                actual: staged.size(),
            });
        }
        Ok(real)
    }
}

/// Cleans a path inside the tarball: `./a//b` is `a/b`, `a/../b` is `b`; `None` when it climbs
/// out or is absolute.
fn clean_path(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Streams every file entry of the tarball into staged blobs.
fn read_archive<'s>(
    store: &'s Store,
    input: impl Read + Send,
) -> Result<ArchiveFiles<'s>, LoadError> {
    let buffered = BufReader::with_capacity(READ_BUFFER, input);
    let (_, reader) = layer::decompress_auto(buffered).map_err(|e| LoadError::Read {
        error: io::Error::other(e.to_string()),
    })?;
    let mut archive = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    let entries = archive.entries().map_err(read_error)?;
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut first = true;
    for entry in entries {
        let mut entry = entry.map_err(|e| match read_error(e) {
            // A first header that does not parse: this is not a tarball at all.
            LoadError::Read { .. } if first => LoadError::NotATar,
            other => other,
        })?;
        first = false;
        // Names are compared as bytes: every name the JSON files give is UTF-8, so an entry
        // whose name is not (`\xff/layer.tar`) can be named by none of them (decoding it
        // lossily would make it `\u{fffd}/layer.tar`, which a manifest can name). It is
        // skipped, and so is a link to such a name.
        let Ok(raw) = String::from_utf8(entry.path_bytes().into_owned()) else {
            continue;
        };
        let path = clean_path(&raw).ok_or_else(|| LoadError::EntryEscapes { path: raw.clone() })?;
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let expected = entry.size();
            let mut w = store.blob_writer()?;
            loop {
                let n = match entry.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_error(e)),
                };
                w.write_all(buffer.get(..n).unwrap_or(&[]))
                    .map_err(|error| StoreError::Io {
                        action: "write a staged blob for",
                        path: raw.clone().into(),
                        error,
                    })?;
            }
            if w.size() != expected {
                return Err(LoadError::Truncated {
                    detail: format!(
                        "`{raw}` should have {expected} bytes but the tarball ends after {}",
                        w.size()
                    ),
                });
            }
            files.insert(path, ArchiveFile::Staged(w.stage()?));
        } else if kind.is_symlink() || kind.is_hard_link() {
            let Some(Ok(target)) = entry
                .link_name_bytes()
                .map(|t| String::from_utf8(t.into_owned()))
            else {
                continue;
            };
            let joined = if kind.is_symlink() {
                match path.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/{target}"),
                    None => target.clone(),
                }
            } else {
                target.clone()
            };
            let resolved = clean_path(&joined).ok_or_else(|| LoadError::EntryEscapes {
                path: format!("{raw} -> {target}"),
            })?;
            files.insert(path, ArchiveFile::Link(resolved));
        }
        // Directories, PAX/GNU metadata entries (handled by the tar reader) and special files
        // carry nothing an image needs.
    }
    Ok(ArchiveFiles { files })
}

fn read_error(e: io::Error) -> LoadError {
    let text = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof || text.contains("failed to read entire block") {
        LoadError::Truncated { detail: text }
    } else {
        LoadError::Read { error: e }
    }
}

/// A layer of an image to load.
struct PlannedLayer {
    /// Staged file (path in the tarball).
    file: String,
    /// The descriptor the OCI manifest gave (checked against the staged blob), or `None` for
    /// a docker-archive layer (its media type follows its content).
    descriptor: Option<Descriptor>,
}

/// An image to load: where its parts are in the tarball.
struct PlannedImage {
    /// From an OCI manifest: the staged manifest file. From manifest.json: `None` (kiln
    /// writes an OCI manifest for it).
    manifest_file: Option<String>,
    config_file: String,
    config: ImageConfig,
    layers: Vec<PlannedLayer>,
    tags: Vec<ImageName>,
    /// How to call the image in messages.
    label: String,
}

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Option<Vec<String>>,
}

fn bad_json(path: &str) -> impl FnOnce(serde_json::Error) -> LoadError + '_ {
    move |e| LoadError::BadMetadata {
        path: path.to_string(),
        detail: e.to_string(),
    }
}

fn parse_config(
    files: &ArchiveFiles<'_>,
    file: &str,
    referenced_by: &str,
) -> Result<ImageConfig, LoadError> {
    let bytes = files.read_small(file, referenced_by)?;
    serde_json::from_slice(&bytes).map_err(bad_json(file))
}

/// Plans the images of a docker archive from `manifest.json`.
fn plan_docker(files: &ArchiveFiles<'_>) -> Result<Vec<PlannedImage>, LoadError> {
    let bytes = files.read_small("manifest.json", "the tarball")?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(bad_json("manifest.json"))?;
    let mut planned = Vec::new();
    for entry in entries {
        let config_file = files.resolve(&entry.config, "manifest.json")?;
        check_blob_name(files, &config_file)?;
        let config = parse_config(files, &config_file, "manifest.json")?;
        let mut tags = Vec::new();
        for tag in entry.repo_tags.unwrap_or_default() {
            tags.push(ImageName::parse(&tag).map_err(|e| LoadError::BadMetadata {
                path: "manifest.json".into(),
                detail: e.to_string(),
            })?);
        }
        let mut layers = Vec::new();
        for layer in entry.layers.unwrap_or_default() {
            let file = files.resolve(&layer, "manifest.json")?;
            check_blob_name(files, &file)?;
            layers.push(PlannedLayer {
                file,
                descriptor: None,
            });
        }
        let label = tags
            .first()
            .map(|t| t.familiar())
            .unwrap_or_else(|| entry.config.clone());
        planned.push(PlannedImage {
            manifest_file: None,
            config_file,
            config,
            layers,
            tags,
            label,
        });
    }
    Ok(planned)
}

/// A file named `blobs/sha256/<hex>` must have that digest.
fn check_blob_name(files: &ArchiveFiles<'_>, path: &str) -> Result<(), LoadError> {
    let Some(hex) = path.strip_prefix("blobs/sha256/") else {
        return Ok(());
    };
    let (Ok(expected), Some(staged)) = (Digest::from_hex(hex), files.staged(path)) else {
        return Ok(());
    };
    if *staged.digest() != expected {
        return Err(LoadError::BlobDigestMismatch {
            path: path.to_string(),
            expected,
            actual: staged.digest().clone(),
        });
    }
    Ok(())
}

/// The name an index entry gives its image: `io.containerd.image.name`, else
/// `org.opencontainers.image.ref.name` when that is a whole reference (a bare tag like `1.0`
/// names no repository and is ignored).
fn name_of(desc: &Descriptor) -> Option<ImageName> {
    if let Some(full) = desc.annotations.get(ANNOTATION_IMAGE_NAME) {
        if let Ok(name) = ImageName::parse(full) {
            return Some(name);
        }
    }
    desc.annotations
        .get(ANNOTATION_REF_NAME)
        .filter(|r| r.contains(':') || r.contains('/'))
        .and_then(|r| ImageName::parse(r).ok())
}

/// Plans the images of an OCI layout from `index.json` (following nested indexes; of a
/// multi-platform index, the host's platform is taken when it is there).
fn plan_oci(files: &ArchiveFiles<'_>) -> Result<Vec<PlannedImage>, LoadError> {
    let bytes = files.read_small("index.json", "the tarball")?;
    let index: Index = serde_json::from_slice(&bytes).map_err(bad_json("index.json"))?;
    let mut by_manifest: BTreeMap<Digest, (Descriptor, BTreeSet<ImageName>)> = BTreeMap::new();
    let mut order = Vec::new();
    collect_manifests(
        files,
        &index.manifests,
        None,
        "index.json",
        0,
        &mut by_manifest,
        &mut order,
    )?;
    let mut planned = Vec::new();
    for digest in order {
        let Some((desc, names)) = by_manifest.remove(&digest) else {
            continue;
        };
        let referenced_by = format!("manifest {digest}");
        let manifest_file = files.blob(&desc, "index.json")?;
        let manifest_bytes = files.read_small(&manifest_file, "index.json")?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(bad_json(&manifest_file))?;
        let config_file = files.blob(&manifest.config, &referenced_by)?;
        let config = parse_config(files, &config_file, &referenced_by)?;
        let mut layers = Vec::new();
        for layer in &manifest.layers {
            if Compression::of_layer_media_type(&layer.media_type).is_none() {
                return Err(LoadError::BadLayer {
                    path: format!("blobs/sha256/{}", layer.digest.hex()),
                    detail: format!("unsupported layer media type `{}`", layer.media_type),
                });
            }
            layers.push(PlannedLayer {
                file: files.blob(layer, &referenced_by)?,
                descriptor: Some(layer.clone()),
            });
        }
        let tags: Vec<ImageName> = names.into_iter().collect();
        let label = tags
            .first()
            .map(|t| t.familiar())
            .unwrap_or_else(|| digest.to_string());
        planned.push(PlannedImage {
            manifest_file: Some(manifest_file),
            config_file,
            config,
            layers,
            tags,
            label,
        });
    }
    Ok(planned)
}

const MAX_INDEX_DEPTH: usize = 8;

fn collect_manifests(
    files: &ArchiveFiles<'_>,
    descriptors: &[Descriptor],
    inherited_name: Option<&ImageName>,
    referenced_by: &str,
    depth: usize,
    out: &mut BTreeMap<Digest, (Descriptor, BTreeSet<ImageName>)>,
    order: &mut Vec<Digest>,
) -> Result<(), LoadError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(LoadError::BadMetadata {
            path: referenced_by.to_string(),
            detail: "indexes nested too deeply".into(),
        });
    }
    let host = Platform::host();
    let has_host = descriptors
        .iter()
        .any(|d| d.platform.as_ref().is_some_and(|p| p.matches(&host)));
    for desc in descriptors {
        let platform_ok = match &desc.platform {
            None => true,
            Some(p) if p.os == "unknown" => false, // BuildKit attestations
            Some(p) => !has_host || p.matches(&host),
        };
        if !platform_ok {
            continue;
        }
        let name = name_of(desc).or_else(|| inherited_name.cloned());
        if oci::is_index_media_type(&desc.media_type) {
            let file = files.blob(desc, referenced_by)?;
            let bytes = files.read_small(&file, referenced_by)?;
            let child: Index = serde_json::from_slice(&bytes).map_err(bad_json(&file))?;
            collect_manifests(
                files,
                &child.manifests,
                name.as_ref(),
                &file,
                depth + 1,
                out,
                order,
            )?;
        } else if oci::is_manifest_media_type(&desc.media_type) || desc.media_type.is_empty() {
            let entry = out.entry(desc.digest.clone()).or_insert_with(|| {
                order.push(desc.digest.clone());
                (desc.clone(), BTreeSet::new())
            });
            if let Some(name) = name {
                entry.1.insert(name);
            }
        }
        // Other artifact types in an index are not images; they are skipped.
    }
    Ok(())
}

/// Reads a layer (decompressing as its first bytes say), checks every entry with the layer
/// module's path-safety and structure rules (`layer::scan_layer`: data inside the tar,
/// hardlinks to earlier regular files), and returns its compression and diff_id. A
/// compressed layer is decompressed, hashed and checked in one pass; an uncompressed one was
/// hashed while it was staged, and its headers are checked against its length here.
fn verify_layer(staged: &StagedBlob<'_>, path: &str) -> Result<(Compression, Digest), LoadError> {
    let bad = |detail: String| LoadError::BadLayer {
        path: path.to_string(),
        detail,
    };
    let mut head = [0u8; 512];
    let mut probe = staged.open()?;
    let n = read_up_to(&mut probe, &mut head).map_err(|e| bad(e.to_string()))?;
    if layer::compress::detect_format(&head[..n]) == StreamFormat::Plain {
        // An uncompressed layer's diff_id is its blob digest, already computed while it was
        // staged: only the headers need reading, for the path checks.
        layer::scan_layer_file(&staged.open()?).map_err(|e| bad(e.to_string()))?;
        return Ok((Compression::None, staged.digest().clone()));
    }
    let file = BufReader::with_capacity(READ_BUFFER, staged.open()?);
    let (format, reader) = layer::decompress_auto(file).map_err(|e| bad(e.to_string()))?;
    let compression =
        match format {
            StreamFormat::Plain => Compression::None,
            StreamFormat::Gzip => Compression::Gzip,
            StreamFormat::Zstd => Compression::Zstd,
            StreamFormat::Bzip2 | StreamFormat::Xz => return Err(bad(
                "bzip2 and xz compressed layers have no OCI media type; decompress the layer first"
                    .into(),
            )),
        };
    let mut hashed = DigestReader::new(reader);
    layer::scan_layer(&mut hashed).map_err(|e| bad(e.to_string()))?;
    let (diff_id, _) = hashed.finish_to_end().map_err(|e| bad(e.to_string()))?;
    Ok((compression, diff_id))
}

/// Fill `buf` as far as the reader allows (short only at end of input).
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Loads every image of the tarball `input` into `store`. Nothing is added unless everything
/// verifies.
pub fn load(store: &Store, input: impl Read + Send) -> Result<Vec<LoadedImage>, LoadError> {
    let mut files = read_archive(store, input)?;
    let has = |p: &str| files.files.contains_key(p);
    let planned = if has("index.json") {
        match plan_oci(&files) {
            Ok(p) => p,
            // A docker archive with an index.json it does not need (or one that does not
            // describe every layer) is read by its manifest.json, as docker reads it.
            Err(oci_error) if has("manifest.json") => plan_docker(&files).map_err(|_| oci_error)?,
            Err(e) => return Err(e),
        }
    } else if has("manifest.json") {
        plan_docker(&files)?
    } else {
        return Err(LoadError::NotAnImageArchive);
    };

    // Verify every layer once (images may share layers), then build the manifests.
    let mut verified: BTreeMap<String, (Compression, Digest)> = BTreeMap::new();
    let mut manifests: Vec<(Option<Vec<u8>>, Digest)> = Vec::new();
    for image in &planned {
        let diff_ids = &image.config.rootfs.diff_ids;
        if image.layers.len() != diff_ids.len() {
            return Err(LoadError::LayerCount {
                image: image.label.clone(),
                layers: image.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut descriptors = Vec::new();
        for (i, (layer, expected)) in image.layers.iter().zip(diff_ids).enumerate() {
            let staged = files
                .staged(&layer.file)
                .ok_or_else(|| LoadError::MissingFile {
                    path: layer.file.clone(),
                    referenced_by: image.label.clone(),
                })?;
            let (compression, diff_id) = match verified.get(&layer.file) {
                Some(v) => v.clone(),
                None => {
                    let v = verify_layer(staged, &layer.file)?;
                    verified.insert(layer.file.clone(), v.clone());
                    v
                }
            };
            if diff_id != *expected {
                return Err(LoadError::DiffIdMismatch {
                    image: image.label.clone(),
                    index: i,
                    path: layer.file.clone(),
                    expected: expected.clone(),
                    actual: diff_id,
                });
            }
            if let Some(desc) = &layer.descriptor {
                let declared = Compression::of_layer_media_type(&desc.media_type);
                if declared != Some(compression) {
                    return Err(LoadError::BadLayer {
                        path: layer.file.clone(),
                        detail: format!(
                            "its media type is `{}` but its content is {}",
                            desc.media_type,
                            compression.name()
                        ),
                    });
                }
            }
            descriptors.push(Descriptor::new(
                compression.layer_media_type(false),
                staged.digest().clone(),
                staged.size(),
            ));
        }
        let config = files
            .staged(&image.config_file)
            .ok_or_else(|| LoadError::MissingFile {
                path: image.config_file.clone(),
                referenced_by: image.label.clone(),
            })?;
        match &image.manifest_file {
            Some(file) => {
                let digest = files
                    .staged(file)
                    .map(|s| s.digest().clone())
                    .ok_or_else(|| LoadError::MissingFile {
                        path: file.clone(),
                        referenced_by: image.label.clone(),
                    })?;
                manifests.push((None, digest));
            }
            None => {
                let config_desc = Descriptor::new(
                    MEDIA_TYPE_OCI_CONFIG,
                    config.digest().clone(),
                    config.size(),
                );
                let bytes = oci::to_canonical_json(&Manifest::oci(config_desc, descriptors));
                let digest = Digest::of_bytes(&bytes);
                manifests.push((Some(bytes), digest));
            }
        }
    }

    // Everything verified: move the blobs in, then set the tags.
    let mut needed: BTreeSet<String> = BTreeSet::new();
    for image in &planned {
        needed.insert(image.config_file.clone());
        needed.extend(image.manifest_file.iter().cloned());
        needed.extend(image.layers.iter().map(|l| l.file.clone()));
    }
    for path in needed {
        if let Some(ArchiveFile::Staged(staged)) = files.files.remove(&path) {
            staged.commit(None)?;
        }
    }
    let mut loaded = Vec::new();
    for (image, (bytes, digest)) in planned.into_iter().zip(manifests) {
        if let Some(bytes) = bytes {
            store.put_blob(&bytes)?;
        }
        let stored = store.register_image(&digest, &image.tags)?;
        loaded.push(LoadedImage {
            image: stored,
            tags: image.tags,
        });
    }
    Ok(loaded)
}
