//! Layers: deterministic layer tars, and the merged filesystem view of a stack of layers.
//!
//! Owns the tar encoding of layers (one encoding, set field by field; see
//! `../shared/spec/oci-and-reproducibility.md` items 7-17), reading layers back with path
//! safety checks, the overlay view (whiteouts applied) used by `COPY --from` and `--chown`
//! name lookups, unpacking of local archives for ADD, and the on-disk overlayfs forms of
//! layers (lowerdirs extracted from tars, upperdirs captured into entries).
//! Must not: know about the store's layout, manifests or configs.
//!
//! Files: `writer` (entry order, hardlinks, whiteouts, data streaming, diff_id), `header`
//! (the byte layout of one header: ustar + PAX when needed), `compress` (gzip/zstd settings,
//! format detection), `reader` (scanning a layer with escape checks), `view` (merged
//! filesystem), `unpack` (ADD of local archives), `host` (all host-file syscalls), `path`
//! (path spelling rules), `extract` (a layer tar to an overlayfs lowerdir on disk),
//! `capture` (an overlayfs upperdir back to entries), `error`. Digests come from
//! `oci::DigestWriter`, the one streaming sha256.

use std::path::PathBuf;
use std::sync::Arc;

/// One entry to put into a layer. Paths are relative, `/`-separated, cleaned, no leading `/`
/// (e.g. `app/src/main.rs`); the root directory itself is never an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (no file-type bits).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch (the build's SOURCE_DATE_EPOCH, or 0).
    pub mtime: u64,
    /// Only allow-listed names (`security.capability`) are written.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File {
        size: u64,
        source: FileSource,
    },
    Symlink {
        target: String,
    },
    /// A hardlink to another entry of the same layer (relative path of the target).
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

/// Where a file's bytes come from.
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
    /// A byte range of an uncompressed layer tar (the data of an entry of a lower layer).
    TarRange { tar: PathBuf, offset: u64 },
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

pub use capture::capture_upper;
pub use compress::{
    compress, decompress_auto, decompress_into, BlobDigest, LayerCompression, StreamFormat,
};
pub use error::LayerError;
pub use extract::extract_layer;
pub use host::host_entry;
pub use reader::{scan_layer, scan_layer_seekable, ScannedEntry, ScannedKind};
pub use unpack::{archive_entries, ArchiveMtime, ArchiveOwner, UnpackOptions};
pub use view::{FsView, ViewEntry, ViewKind};
pub use writer::{write_layer, LayerDigest};
