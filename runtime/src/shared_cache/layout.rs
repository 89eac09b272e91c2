//! The cache as an OCI image layout directory (`type=local`): `oci-layout`, `index.json`
//! naming the cache manifest, and `blobs/sha256/<hex>`.
//!
//! Writing adds blobs the directory lacks (each written to a temporary file and renamed in)
//! and then replaces `index.json` atomically, so a reader sees the old cache or the new one.
//! Reading verifies every blob against its descriptor before it is used or stored. Must not:
//! trust a file's name for its content.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{check_digest, Result, SharedCacheError};
use crate::oci::{
    self, Descriptor, Digest, Index, Manifest, ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_MANIFEST,
    OCI_LAYOUT_FILE,
};
use crate::store::{Store, StoreError};

/// The name `index.json` gives the cache manifest.
const REF_NAME: &str = "latest";

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SharedCacheError {
    let path = path.to_path_buf();
    move |error| SharedCacheError::Io {
        action,
        path,
        error,
    }
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join("sha256").join(digest.hex())
}

/// Writes `dest` through a temporary file in the same directory, renamed into place only
/// once `fill` has written all of it, so a reader never sees half a file. The file is made
/// world-readable (0644), as other tools' OCI layouts are, since CI systems restore cache
/// directories as other users.
fn write_atomic(
    dest: &Path,
    fill: impl FnOnce(&mut fs::File) -> std::result::Result<(), SharedCacheError>,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-")
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(parent)
        .map_err(io_err("create a file in", parent))?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(io_err("write", dest))?;
    tmp.persist(dest)
        .map_err(|e| io_err("rename a temporary file to", dest)(e.error))?;
    Ok(())
}

fn write_bytes(dest: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(dest, |f| f.write_all(bytes).map_err(io_err("write", dest)))
}

/// Copies a store blob into the layout unless the layout has a file of that size already.
fn put_store_blob(dir: &Path, store: &Store, desc: &Descriptor) -> Result<()> {
    let dest = blob_path(dir, &desc.digest);
    if fs::metadata(&dest).is_ok_and(|m| m.len() == desc.size) {
        return Ok(());
    }
    let mut from = store.open_blob(&desc.digest)?;
    write_atomic(&dest, |f| {
        io::copy(&mut from, f)
            .map(drop)
            .map_err(io_err("write", &dest))
    })
}

/// Writes the cache artifact (`manifest` and its blobs) into `dir` and names it in
/// `index.json`.
pub(super) fn write(
    dir: &Path,
    store: &Store,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    config_bytes: &[u8],
) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
    let layout = dir.join("oci-layout");
    if !layout.is_file() {
        write_bytes(&layout, OCI_LAYOUT_FILE)?;
    }
    for layer in &manifest.layers {
        put_store_blob(dir, store, layer)?;
    }
    write_bytes(&blob_path(dir, &manifest.config.digest), config_bytes)?;
    let digest = Digest::of_bytes(manifest_bytes);
    write_bytes(&blob_path(dir, &digest), manifest_bytes)?;
    let mut desc = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, digest, manifest_bytes.len() as u64);
    desc.annotations
        .insert(ANNOTATION_REF_NAME.to_string(), REF_NAME.to_string());
    write_bytes(
        &dir.join("index.json"),
        &oci::to_canonical_json(&Index::new(vec![desc])),
    )
}

/// Reads at most `limit` bytes of a blob (more is an error), unverified: the caller checks.
pub(super) fn read_blob(
    dir: &Path,
    desc: &Descriptor,
    limit: u64,
    location: &str,
) -> Result<Vec<u8>> {
    let path = blob_path(dir, &desc.digest);
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .map_err(io_err("open", &path))?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", &path))?;
    if bytes.len() as u64 > limit {
        return Err(SharedCacheError::NotACache {
            location: location.to_string(),
            reason: format!("blob {} is larger than {limit} bytes", desc.digest),
        });
    }
    Ok(bytes)
}

/// The cache manifest `index.json` names (the entry called [`REF_NAME`], else the only
/// one), verified against its descriptor. Returns its bytes and digest.
pub(super) fn read_manifest(dir: &Path, location: &str) -> Result<(Vec<u8>, Digest)> {
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(io_err("read", &index_path))?;
    let not_a_cache = |reason: String| SharedCacheError::NotACache {
        location: location.to_string(),
        reason,
    };
    let index: Index =
        serde_json::from_slice(&bytes).map_err(|e| not_a_cache(format!("index.json: {e}")))?;
    let named = index.manifests.iter().find(|d| {
        d.annotations
            .get(ANNOTATION_REF_NAME)
            .is_some_and(|n| n == REF_NAME)
    });
    let desc = match (named, index.manifests.as_slice()) {
        (Some(d), _) => d,
        (None, [only]) => only,
        (None, _) => {
            return Err(not_a_cache(format!(
                "index.json names no manifest `{REF_NAME}`"
            )))
        }
    };
    let manifest = read_blob(dir, desc, super::DOCUMENT_LIMIT, location)?;
    check_digest(location, "the manifest", desc, &manifest)?;
    Ok((manifest, desc.digest.clone()))
}

/// Copies a layer blob from the layout into the store, committed only when its sha256 and
/// size equal `desc`.
pub(super) fn copy_blob(
    dir: &Path,
    store: &Store,
    desc: &Descriptor,
    location: &str,
) -> Result<()> {
    let path = blob_path(dir, &desc.digest);
    let mut from = fs::File::open(&path).map_err(io_err("open", &path))?;
    let mut writer = store.blob_writer()?;
    io::copy(
        &mut (&mut from).take(desc.size.saturating_add(1)),
        &mut writer,
    )
    .map_err(io_err("read", &path))?;
    if writer.size() != desc.size {
        return Err(SharedCacheError::NotACache {
            location: location.to_string(),
            reason: format!(
                "blob {} has {} bytes, its descriptor says {}",
                desc.digest,
                writer.size(),
                desc.size
            ),
        });
    }
    match writer.commit(Some(&desc.digest)) {
        Ok(_) => Ok(()),
        Err(StoreError::DigestMismatch {
            expected, actual, ..
        }) => Err(SharedCacheError::DigestMismatch {
            location: location.to_string(),
            what: format!("blob {expected}"),
            expected,
            actual,
        }),
        Err(e) => Err(e.into()),
    }
}
