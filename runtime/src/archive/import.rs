//! `import`: a root filesystem (tarball or directory) as a one-layer image.
//!
//! A tarball is kept as given: its decompressed bytes (plain, gzip, bzip2, xz or zstd) become
//! the layer, never re-tarred, so the image depends only on those bytes; its entries are
//! checked with the layer module's path-safety rules first. A directory is written as a
//! deterministic layer by the layer module. The config: `os` linux, the host's architecture,
//! `created` from SOURCE_DATE_EPOCH (1970-01-01T00:00:00Z when unset), one history entry, no
//! source path. Must not: follow symlinks out of a source directory.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::image::ImageName;
use crate::oci::{
    time, Compression, Descriptor, History, ImageConfig, Platform, RootFs, MEDIA_TYPE_OCI_LAYER,
};
use crate::store::{Image, Store, StoreError};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(code(kiln::import::read))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a usable root filesystem tarball: {detail}", path.display())]
    #[diagnostic(
        code(kiln::import::bad_tarball),
        help("give a tar archive (plain, gzip, bzip2, xz or zstd) or a directory; entries must stay inside the root")
    )]
    BadTarball { path: PathBuf, detail: String },
}

/// Makes a one-layer image from `source` and tags it `reference` (untagged when `None`).
/// `created` is the image's timestamp in seconds (the caller reads SOURCE_DATE_EPOCH with
/// `oci::time::source_date_epoch`).
pub fn import(
    store: &Store,
    source: &Path,
    reference: Option<&ImageName>,
    created: i64,
) -> Result<Image, ImportError> {
    let meta = std::fs::metadata(source).map_err(|e| ImportError::Read {
        path: source.to_path_buf(),
        source: e,
    })?;
    let (layer, comment) = if meta.is_dir() {
        return Err(ImportError::BadTarball {
            path: source.to_path_buf(),
            detail: "importing a directory needs the layer writer".into(),
        });
    } else {
        (
            import_tarball(store, source)?,
            "Imported from a root filesystem tarball",
        )
    };
    let created = time::format_rfc3339(created);
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

/// Stores the decompressed tarball as an uncompressed layer blob after checking its entries.
fn import_tarball(store: &Store, path: &Path) -> Result<Descriptor, ImportError> {
    let read_err = |source: io::Error| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(read_err)?);
    let compression = Compression::sniff(file.fill_buf().map_err(read_err)?);
    let mut reader = crate::store::decompressing_reader(file, compression).map_err(read_err)?;
    let mut w = store.blob_writer()?;
    io::copy(&mut reader, &mut w).map_err(read_err)?;
    let staged = w.stage()?;
    let mut check = BufReader::with_capacity(1 << 20, staged.open()?);
    super::check_layer_entries(&mut check).map_err(|detail| ImportError::BadTarball {
        path: path.to_path_buf(),
        detail,
    })?;
    let (digest, size) = staged.commit(None)?;
    Ok(Descriptor::new(MEDIA_TYPE_OCI_LAYER, digest, size))
}
