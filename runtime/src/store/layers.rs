//! Layer blobs in their other forms: the uncompressed tar of a compressed layer (the builder
//! reads uncompressed tars), and kiln's own compressed copies (for `save --compression`).
//!
//! An uncompressed layer tar is simply the blob named by its diff_id. `layers/source/<hex>`
//! remembers a compressed blob that decompresses to that diff_id, so the tar can be made once
//! when first needed; `layers/{gzip,zstd}/<hex>` remember kiln's deterministic compression of
//! it (the layer module's encoders, see `layer::compress`). Must not: read tar entries.

use std::fs;
use std::io::{self, BufReader};
use std::path::PathBuf;

use super::{io_err, Result, Store, StoreError};
use crate::layer::{self, LayerCompression};
use crate::oci::{Compression, Descriptor, Digest};

const READ_BUFFER: usize = 256 * 1024;

/// The layer module's encoder for a compression.
pub(crate) fn layer_compression(compression: Compression) -> LayerCompression {
    match compression {
        Compression::None => LayerCompression::Uncompressed,
        Compression::Gzip => LayerCompression::Gzip,
        Compression::Zstd => LayerCompression::Zstd,
    }
}

impl Store {
    fn layer_map_path(&self, kind: &str, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(kind).join(diff_id.hex())
    }

    fn read_layer_map(&self, kind: &str, diff_id: &Digest) -> Result<Option<Descriptor>> {
        let path = self.layer_map_path(kind, diff_id);
        match fs::read(&path) {
            // A mapping that does not parse (never written that way, but a disk may lie) is
            // treated as absent: it is only a cache.
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Remembers that `blob` (a stored compressed layer) decompresses to `diff_id`.
    pub(crate) fn record_layer_source(&self, diff_id: &Digest, blob: &Descriptor) -> Result<()> {
        if self
            .read_layer_map("source", diff_id)?
            .is_some_and(|d| self.has_blob(&d.digest))
        {
            return Ok(());
        }
        let mut desc = Descriptor::new(&blob.media_type, blob.digest.clone(), blob.size);
        desc.annotations.clear();
        self.write_atomic(
            &self.layer_map_path("source", diff_id),
            &crate::oci::to_canonical_json(&desc),
        )
    }

    /// The path of the uncompressed tar of layer `diff_id`. For a layer stored compressed,
    /// the tar is decompressed into the store on first use (and verified against `diff_id`).
    pub fn uncompressed_layer(&self, diff_id: &Digest) -> Result<PathBuf> {
        let path = self.blob_path(diff_id);
        if path.is_file() {
            return Ok(path);
        }
        let Some(source) = self.read_layer_map("source", diff_id)? else {
            return Err(StoreError::UnknownLayer {
                diff_id: diff_id.clone(),
            });
        };
        let blob = self.open_blob(&source.digest)?;
        let (_, mut reader) = layer::decompress_auto(BufReader::with_capacity(READ_BUFFER, blob))?;
        let source_path = self.blob_path(&source.digest);
        let mut w = self.blob_writer()?;
        io::copy(&mut reader, &mut w).map_err(io_err("decompress", &source_path))?;
        w.commit(Some(diff_id)).map_err(|e| match e {
            StoreError::DigestMismatch {
                expected, actual, ..
            } => StoreError::DigestMismatch {
                what: format!("the decompressed layer {}", source.digest),
                expected,
                actual,
            },
            other => other,
        })?;
        Ok(path)
    }

    /// Layer `diff_id` compressed with `compression` by kiln (deterministic bytes), as a
    /// stored blob; made once and remembered. `Compression::None` gives the tar itself.
    pub fn compressed_layer(
        &self,
        diff_id: &Digest,
        compression: Compression,
    ) -> Result<Descriptor> {
        let media_type = compression.layer_media_type(false);
        let kind = match compression {
            Compression::None => {
                let path = self.uncompressed_layer(diff_id)?;
                let size = fs::metadata(&path).map_err(io_err("read", &path))?.len();
                return Ok(Descriptor::new(media_type, diff_id.clone(), size));
            }
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        };
        if let Some(known) = self.read_layer_map(kind, diff_id)? {
            if self.has_blob(&known.digest) {
                return Ok(Descriptor::new(media_type, known.digest, known.size));
            }
        }
        let tar_path = self.uncompressed_layer(diff_id)?;
        let tar = fs::File::open(&tar_path).map_err(io_err("open", &tar_path))?;
        let mut w = self.blob_writer()?;
        layer::compress(
            layer_compression(compression),
            BufReader::with_capacity(READ_BUFFER, tar),
            &mut w,
        )?;
        let (digest, size) = w.commit(None)?;
        let desc = Descriptor::new(media_type, digest, size);
        self.write_atomic(
            &self.layer_map_path(kind, diff_id),
            &crate::oci::to_canonical_json(&desc),
        )?;
        self.record_layer_source(diff_id, &desc)?;
        Ok(desc)
    }
}
