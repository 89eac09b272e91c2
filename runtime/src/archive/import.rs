//! `import`: a root filesystem (tarball or directory) as a one-layer image.
//!
//! A tarball is kept as given: its decompressed bytes (plain, gzip, bzip2, xz or zstd) become
//! the layer, never re-tarred, so the image depends only on those bytes; its entries are
//! checked with the layer module's path-safety and structure rules (`layer::scan_layer`) in
//! the same single pass that writes and hashes them (nothing is stored when they fail). A directory
//! becomes a deterministic layer (`layer::write_layer`): every file with its mode and numeric
//! owner as on disk (as `tar --numeric-owner` would keep them), every mtime set to the
//! image's `created` time, symlinks stored as links (never followed).
//!
//! The config: `os` linux, the host's architecture, `created` from the caller (the build's
//! SOURCE_DATE_EPOCH, 1970-01-01T00:00:00Z when unset), one history entry, no source path.
//! Must not: follow symlinks out of a source directory.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::image::ImageName;
use crate::layer::{self, LayerError};
use crate::oci::{time, Descriptor, History, ImageConfig, Platform, RootFs, MEDIA_TYPE_OCI_LAYER};
use crate::store::{BlobWriter, Image, Store, StoreError};

const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Layer(#[from] LayerError),
    #[error("cannot read {}: {error}", path.display())]
    #[diagnostic(
        code(kiln::import::read),
        help("give an existing tarball or directory")
    )]
    Read { path: PathBuf, error: io::Error },
    #[error("{} is not a usable root filesystem tarball: {detail}", path.display())]
    #[diagnostic(
        code(kiln::import::bad_tarball),
        help("give a tar archive (plain, gzip, bzip2, xz or zstd) or a directory; entries must stay inside the root")
    )]
    BadTarball { path: PathBuf, detail: String },
    #[error("{} has a name that is not valid UTF-8", path.display())]
    #[diagnostic(
        code(kiln::import::file_name),
        help("rename the file; layer paths are UTF-8")
    )]
    FileName { path: PathBuf },
}

/// Makes a one-layer image from `source` and tags it `reference` (untagged when `None`).
/// `created` is the image's timestamp in seconds (the caller reads SOURCE_DATE_EPOCH with
/// `kiln_plan::source_date_epoch`).
pub fn import(
    store: &Store,
    source: &Path,
    reference: Option<&ImageName>,
    created: u64,
) -> Result<Image, ImportError> {
    let meta = std::fs::metadata(source).map_err(|error| ImportError::Read {
        path: source.to_path_buf(),
        error,
    })?;
    let (layer, comment) = if meta.is_dir() {
        (
            import_directory(store, source, created)?,
            "Imported from a root filesystem directory",
        )
    } else {
        (
            import_tarball(store, source)?,
            "Imported from a root filesystem tarball",
        )
    };
    let created = time::format_rfc3339(i64::try_from(created).unwrap_or(i64::MAX));
    let host = Platform::host();
    let config = ImageConfig {
        architecture: host.architecture,
        variant: host.variant,
        os: "linux".to_string(),
        created: Some(created.clone()),
        rootfs: RootFs {
            diff_ids: vec![layer.digest.clone()],
            ..RootFs::default()
        },
        history: vec![History {
            created: Some(created),
            comment: Some(comment.to_string()),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    let tags: Vec<ImageName> = reference.into_iter().cloned().collect();
    Ok(store.save_image(&config, &[layer], &tags)?)
}

/// Stores the decompressed tarball as an uncompressed layer blob, checking its entries
/// (`layer::scan_layer`) in the same pass that writes and hashes it.
fn import_tarball(store: &Store, path: &Path) -> Result<Descriptor, ImportError> {
    let file = File::open(path).map_err(|error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let (_, reader) = layer::decompress_auto(BufReader::with_capacity(READ_BUFFER, file))?;
    let mut copying = CopyingReader {
        inner: reader,
        out: store.blob_writer()?,
        write_error: None,
    };
    let scanned = layer::scan_layer(&mut copying);
    // The bytes after the last entry (the end-of-archive blocks) belong to the layer too.
    let rest = scanned
        .as_ref()
        .ok()
        .map(|_| io::copy(&mut copying, &mut io::sink()));
    let CopyingReader {
        out, write_error, ..
    } = copying;
    // A failed write (a full disk) is the store's error, not the input's.
    if let Some(error) = write_error {
        return Err(StoreError::Io {
            action: "write a staged layer for",
            path: out.path().to_path_buf(),
            error,
        }
        .into());
    }
    scanned.map_err(|e| ImportError::BadTarball {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if let Some(Err(error)) = rest {
        return Err(ImportError::Read {
            path: path.to_path_buf(),
            error,
        });
    }
    let (digest, size) = out.commit(None)?;
    Ok(Descriptor::new(MEDIA_TYPE_OCI_LAYER, digest, size))
}

/// A reader that writes everything read through it to `out`, keeping the first write
/// error apart from read errors.
struct CopyingReader<'s, R> {
    inner: R,
    out: BlobWriter<'s>,
    write_error: Option<io::Error>,
}

impl<R: Read> Read for CopyingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(error) = self.out.write_all(buf.get(..n).unwrap_or(&[])) {
            let shown = io::Error::new(error.kind(), error.to_string());
            self.write_error = Some(error);
            return Err(shown);
        }
        Ok(n)
    }
}

/// Writes the directory tree under `dir` as a deterministic layer blob.
fn import_directory(store: &Store, dir: &Path, mtime: u64) -> Result<Descriptor, ImportError> {
    let mut entries = Vec::new();
    for item in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| ImportError::Read {
            path: e.path().unwrap_or(dir).to_path_buf(),
            error: e.into(),
        })?;
        let rel = item
            .path()
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.to_str())
            .ok_or_else(|| ImportError::FileName {
                path: item.path().to_path_buf(),
            })?
            .to_string();
        let meta = item.metadata().map_err(|e| ImportError::Read {
            path: item.path().to_path_buf(),
            error: e.into(),
        })?;
        let entry = layer::host_entry(
            item.path(),
            rel,
            u64::from(meta.uid()),
            u64::from(meta.gid()),
            mtime,
        )?;
        entries.extend(entry);
    }
    let mut w = store.blob_writer()?;
    let written = layer::write_layer(entries, &mut w)?;
    let (digest, size) = w.commit(Some(&written.diff_id))?;
    Ok(Descriptor::new(MEDIA_TYPE_OCI_LAYER, digest, size))
}
