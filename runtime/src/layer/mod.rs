//! Layers: deterministic layer tars, and the merged filesystem view of a stack of layers.
//!
//! Owns the tar encoding of layers (one encoding, set field by field; the policy is in
//! `docs/reproducibility.md`, Layer tars and Compression), reading layers back with path
//! safety checks, the overlay view (whiteouts applied) used by `COPY --from` and `--chown`
//! name lookups, unpacking of local archives for ADD, and the on-disk overlayfs forms of
//! layers (lowerdirs extracted from tars, upperdirs captured into entries).
//! Must not: know about the store's layout, manifests or configs.
//!
//! One entry model serves the writer, the reader, extraction and the view: [`Entry`] and
//! [`EntryKind`], which differ between them only in where a file's data lives.
//!
//! Files: `writer` (entry order, hardlinks, whiteouts, data streaming, diff_id), `header`
//! (the byte layout of one header: ustar + PAX when needed), `compress` (gzip/zstd settings,
//! format detection), `reader` (scanning a layer with escape checks), `view` (merged
//! filesystem), `unpack` (ADD of local archives), `host` (all host-file syscalls), `path`
//! (path spelling rules), `extract` (a layer tar to an overlayfs lowerdir on disk),
//! `capture` (an overlayfs upperdir back to entries), `error`. Digests come from
//! `oci::DigestWriter`, the one streaming sha256.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One entry of a layer: a path, what is there, and its metadata. The one model of a layer
/// entry in kiln; `D` says where a regular file's bytes are:
/// - [`FileSource`] (the default): anywhere, as the writer takes them (`writer`);
/// - [`TarOffset`]: at an offset in the tar being read (`reader`, `extract`);
/// - [`TarData`]: in a named layer tar (`view`, whose entries come from several tars).
///
/// [`Entry::map_source`] is the one conversion between them. Paths are relative,
/// `/`-separated, cleaned, no leading `/` (e.g. `app/src/main.rs`); the root directory itself
/// is never an entry (a whiteout or an opaque marker of the root has the empty path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<D = FileSource> {
    pub path: String,
    pub kind: EntryKind<D>,
    /// Permission bits including setuid/setgid/sticky (no file-type bits).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch (the build's SOURCE_DATE_EPOCH, or 0).
    pub mtime: u64,
    /// The writer writes only allow-listed names (`security.capability`); the reader keeps
    /// every `SCHILY.xattr.*` record, in archive order.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// What an entry is. In a merged view (`view::FsView`) only `Dir`, `File`, `Symlink`, the
/// devices and `Fifo` occur: hardlinks, whiteouts and opaque markers are applied when their
/// layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind<D = FileSource> {
    Dir,
    File {
        size: u64,
        source: D,
    },
    Symlink {
        target: String,
    },
    /// A hardlink to another entry of the same layer (relative path of the target, cleaned
    /// like entry paths).
    Hardlink {
        target: String,
    },
    /// A deletion: written as `<dir>/.wh.<name>` for `path`.
    Whiteout,
    /// `path` is a directory whose lower contents are hidden: `<path>/.wh..wh..opq`.
    OpaqueDir,
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// Where a file's bytes come from, for the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A file on the host (a build context file). `link_id` is (device, inode) when the file
    /// has several links, so the writer can emit hardlinks within one layer.
    Host {
        path: PathBuf,
        link_id: Option<(u64, u64)>,
    },
    /// Bytes in memory (heredocs, generated files).
    Bytes(Arc<[u8]>),
    /// The data of an entry of an uncompressed tar (a lower layer, an ADD archive).
    Tar(TarData),
}

/// A file's data in the tar that was read: the offset of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarOffset(pub u64);

/// A file's data in a given uncompressed tar: its bytes start at `offset` in `tar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarData {
    pub tar: Arc<Path>,
    pub offset: u64,
}

impl TarOffset {
    /// The data this offset locates in `tar` (the file that was read).
    pub fn in_tar(self, tar: &Arc<Path>) -> TarData {
        TarData {
            tar: Arc::clone(tar),
            offset: self.0,
        }
    }
}

impl From<TarData> for FileSource {
    fn from(data: TarData) -> Self {
        FileSource::Tar(data)
    }
}

impl<D> Entry<D> {
    /// The same entry with a regular file's data located by `locate`; every other kind and
    /// all metadata are kept as they are.
    pub fn map_source<E>(self, locate: impl FnOnce(D) -> E) -> Entry<E> {
        Entry {
            path: self.path,
            kind: self.kind.map_source(locate),
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            xattrs: self.xattrs,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }
}

impl<D: Clone + Into<FileSource>> Entry<D> {
    /// This entry as writer input at `path` (kind and metadata kept, data left where it is);
    /// callers override uid/gid/mtime as they need.
    pub fn copy_to(&self, path: String) -> Entry {
        Entry {
            path,
            kind: self.kind.clone().map_source(Into::into),
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            xattrs: self.xattrs.clone(),
        }
    }
}

impl<D> EntryKind<D> {
    /// The same kind with a regular file's data located by `locate`.
    pub fn map_source<E>(self, locate: impl FnOnce(D) -> E) -> EntryKind<E> {
        match self {
            EntryKind::Dir => EntryKind::Dir,
            EntryKind::File { size, source } => EntryKind::File {
                size,
                source: locate(source),
            },
            EntryKind::Symlink { target } => EntryKind::Symlink { target },
            EntryKind::Hardlink { target } => EntryKind::Hardlink { target },
            EntryKind::Whiteout => EntryKind::Whiteout,
            EntryKind::OpaqueDir => EntryKind::OpaqueDir,
            EntryKind::CharDevice { major, minor } => EntryKind::CharDevice { major, minor },
            EntryKind::BlockDevice { major, minor } => EntryKind::BlockDevice { major, minor },
            EntryKind::Fifo => EntryKind::Fifo,
        }
    }
}

pub mod capture;
pub mod compress;
mod error;
pub mod extract;
pub mod header;
pub mod host;
pub mod path;
pub mod reader;
pub mod unpack;
pub mod view;
pub mod writer;

pub use capture::{capture_changes, capture_upper};
pub use compress::{
    compress, decompress_auto, decompress_into, BlobDigest, LayerCompression, StreamFormat,
};
pub use error::LayerError;
pub use extract::extract_layer;
pub use host::host_entry;
pub use reader::{scan_layer, scan_layer_file};
pub use unpack::{archive_entries, ArchiveMtime, ArchiveOwner, UnpackOptions};
pub use view::FsView;
pub use writer::{write_layer, LayerDigest};
