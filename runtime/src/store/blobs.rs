//! Blobs: writing them (hashed as written, staged in tmp, renamed in when verified) and
//! reading them back.
//!
//! Must not: parse blob contents.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

use super::{io_err, sync_dir, Result, Store, StoreError};
use crate::oci::{Digest, DigestWriter};

const WRITE_BUFFER: usize = 256 * 1024;

/// Writes one blob. Implements `Write`; nothing is visible in the store until
/// [`BlobWriter::commit`]. Dropped without commit, it leaves nothing behind.
pub struct BlobWriter<'s> {
    store: &'s Store,
    path: PathBuf,
    out: DigestWriter<BufWriter<NamedTempFile>>,
}

impl<'s> BlobWriter<'s> {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.out.size()
    }

    /// The staging file in the store's tmp directory (for messages about writing it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes writing and keeps the data staged (not yet in the store): its digest is known
    /// and it can be read back, then committed or dropped.
    pub fn stage(self) -> Result<StagedBlob<'s>> {
        let (buffered, digest, size) = self.out.finish().map_err(io_err("write", &self.path))?;
        let file = buffered
            .into_inner()
            .map_err(|e| io_err("write", &self.path)(e.into_error()))?;
        Ok(StagedBlob {
            store: self.store,
            path: file.into_temp_path(),
            digest,
            size,
        })
    }

    /// Finishes writing and moves the blob into the store. With `expected`, a blob whose
    /// digest differs is refused (and deleted). Returns the digest and size.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.stage()?.commit(expected)
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A completely written blob waiting in the store's tmp directory. Dropping it deletes it.
pub struct StagedBlob<'s> {
    store: &'s Store,
    path: TempPath,
    digest: Digest,
    size: u64,
}

impl std::fmt::Debug for StagedBlob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish()
    }
}

impl<'s> StagedBlob<'s> {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The temporary file (for reading back before commit).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn open(&self) -> Result<File> {
        File::open(&self.path).map_err(io_err("open", &self.path))
    }

    /// Moves the blob into the store (fsync, rename, fsync of the directory), unless an
    /// identical blob is already there. With `expected`, a different digest is refused.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        if let Some(expected) = expected {
            if *expected != self.digest {
                return Err(StoreError::DigestMismatch {
                    what: format!("a blob written as {expected}"),
                    expected: expected.clone(),
                    actual: self.digest,
                });
            }
        }
        let dest = self.store.blob_path(&self.digest);
        if !dest.exists() {
            File::open(&self.path)
                .and_then(|f| f.sync_all())
                .map_err(io_err("sync", &self.path))?;
            self.path
                .persist(&dest)
                .map_err(|e| io_err("rename a temporary file to", &dest)(e.error))?;
            if let Some(dir) = dest.parent() {
                sync_dir(dir)?;
            }
        }
        Ok((self.digest, self.size))
    }
}

impl Store {
    /// A writer for a new blob (see [`BlobWriter`]).
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let file = self.temp_file()?;
        let path = file.path().to_path_buf();
        Ok(BlobWriter {
            store: self,
            path,
            out: DigestWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file)),
        })
    }

    /// Stores `bytes` as a blob; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes).map_err(io_err("write", &w.path))?;
        Ok(w.commit(Some(&digest))?.0)
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::MissingBlob {
                digest: digest.clone(),
            }),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob {
                digest: digest.clone(),
            },
            _ => io_err("open", &path)(e),
        })
    }

    /// Reads a whole blob into memory (for manifests and configs; stream layers with
    /// [`Store::open_blob`]).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let path = self.blob_path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        Ok(bytes)
    }

    /// Every blob in the store with its size.
    pub fn list_blobs(&self) -> Result<Vec<(Digest, u64)>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
            let entry = entry.map_err(io_err("read", &dir))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            let size = entry
                .metadata()
                .map_err(io_err("read", &entry.path()))?
                .len();
            out.push((digest, size));
        }
        out.sort();
        Ok(out)
    }
}
