//! Host files as layer entries: the only place of the layer module that asks the host
//! filesystem about files (lstat, readlink, xattrs, open for copying); `extract` makes
//! files, through directory descriptors, and asks only about what it made.
//!
//! Owns: turning one host path into an `Entry` and opening a host file for the writer with
//! the checks that keep a header's size true.
//! Must not: walk directories, apply .dockerignore, or choose ownership and mtime (the caller
//! passes them: COPY uses 0:0 unless --chown, and the build's SOURCE_DATE_EPOCH policy).

use super::header::ALLOWED_XATTRS;
use super::{Entry, EntryKind, FileSource, LayerError};
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Builds the entry for the host file `path`, to be placed at `rel` in the layer.
/// Reads the file's lstat: permission bits (setuid/setgid/sticky kept), kind, size, symlink
/// target, device numbers, and `(device, inode)` as `link_id` when the file has more than one
/// link. `security.capability` is kept when present. uid, gid and mtime are the caller's.
///
/// Returns `Ok(None)` for a socket: a tar cannot hold one (docker skips them too).
pub fn host_entry(
    path: &Path,
    rel: String,
    uid: u64,
    gid: u64,
    mtime: u64,
) -> Result<Option<Entry>, LayerError> {
    let meta = lstat(path)?;
    entry_from_metadata(path, &meta, rel, uid, gid, mtime)
}

/// The lstat of a host file (symlinks not followed).
pub(crate) fn lstat(path: &Path) -> Result<Metadata, LayerError> {
    std::fs::symlink_metadata(path)
        .map_err(|e| LayerError::io(format!("reading metadata of {}", path.display()), e))
}

/// [`host_entry`] for a file whose lstat the caller already has.
pub(crate) fn entry_from_metadata(
    path: &Path,
    meta: &Metadata,
    rel: String,
    uid: u64,
    gid: u64,
    mtime: u64,
) -> Result<Option<Entry>, LayerError> {
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        let link_id = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        EntryKind::File {
            size: meta.len(),
            source: FileSource::Host {
                path: path.to_path_buf(),
                link_id,
            },
        }
    } else if file_type.is_symlink() {
        let target = std::fs::read_link(path)
            .map_err(|e| LayerError::io(format!("reading symlink {}", path.display()), e))?;
        let target =
            target
                .into_os_string()
                .into_string()
                .map_err(|_| LayerError::InvalidEntry {
                    path: rel.clone(),
                    reason: "symlink target is not valid UTF-8".to_string(),
                })?;
        EntryKind::Symlink { target }
    } else if file_type.is_char_device() || file_type.is_block_device() {
        let rdev = meta.rdev();
        let (major, minor) = (
            nix::sys::stat::major(rdev) as u32,
            nix::sys::stat::minor(rdev) as u32,
        );
        if file_type.is_char_device() {
            EntryKind::CharDevice { major, minor }
        } else {
            EntryKind::BlockDevice { major, minor }
        }
    } else if file_type.is_fifo() {
        EntryKind::Fifo
    } else {
        return Ok(None);
    };
    let xattrs = if file_type.is_symlink() {
        Vec::new()
    } else {
        allowed_xattrs(path)?
    };
    Ok(Some(Entry {
        path: rel,
        kind,
        mode: meta.mode() & 0o7777,
        uid,
        gid,
        mtime,
        xattrs,
    }))
}

/// Whether the host directory `path` is an overlayfs opaque directory: its
/// `trusted.overlay.opaque` (or, for `userxattr` mounts, `user.overlay.opaque`) is `y`.
pub(crate) fn overlay_opaque(path: &Path) -> Result<bool, LayerError> {
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        match xattr::get(path, name) {
            Ok(Some(value)) if value == b"y" => return Ok(true),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => {}
            Err(e) => {
                return Err(LayerError::io(
                    format!("reading extended attribute {name} of {}", path.display()),
                    e,
                ))
            }
        }
    }
    Ok(false)
}

/// Reads the allow-listed extended attributes of a host file, sorted by name.
fn allowed_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, LayerError> {
    let mut found = Vec::new();
    for name in ALLOWED_XATTRS {
        match xattr::get(path, name) {
            Ok(Some(value)) => found.push((name.to_string(), value)),
            Ok(None) => {}
            // Filesystems without xattr support have none to keep.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => {}
            Err(e) => {
                return Err(LayerError::io(
                    format!("reading extended attribute {name} of {}", path.display()),
                    e,
                ))
            }
        }
    }
    Ok(found)
}

/// Opens a host file for copying into a layer and checks that it is still a regular file
/// of `expected_size` bytes (a symlink in its place is not followed).
pub(crate) fn open_for_copy(path: &Path, expected_size: u64) -> Result<File, LayerError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| LayerError::io(format!("opening {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| LayerError::io(format!("reading metadata of {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(LayerError::InvalidEntry {
            path: path.display().to_string(),
            reason: "is no longer a regular file".to_string(),
        });
    }
    if meta.len() != expected_size {
        return Err(LayerError::SourceChanged {
            source_path: path.to_path_buf(),
            expected: expected_size,
            found: meta.len(),
        });
    }
    Ok(file)
}

/// The current size of an open host file (to report a file that grew while being copied).
pub(crate) fn current_size(file: &File) -> u64 {
    file.metadata().map(|m| m.len()).unwrap_or(0)
}
