//! Reading layer tars back: entry metadata, data offsets, and path-safety checks.
//!
//! Owns: interpreting the entries of one uncompressed layer tar (ustar, PAX and GNU long
//! names, whiteouts, opaque markers) and refusing entries that escape the root.
//! Must not: write anything anywhere, decompress, or merge layers (see `view`).
//!
//! Path rules (docker's; no entry, link or hardlink target may land outside the root):
//! - a leading `/` is dropped (`/etc/x` is `etc/x`), `.` components vanish, `a/../b` is `b`;
//! - a `..` that climbs above the root is refused;
//! - a hardlink whose target climbs above the root is refused;
//! - an entry (or hardlink target) whose parent path goes through a symlink that appeared
//!   earlier in the same layer is refused, even if a later entry replaced that symlink;
//! - symlink targets are kept as written: they are resolved inside the image, clamped to its
//!   root (see `view::FsView::resolve`), never on the host.
//!
//! Whiteouts: `<dir>/.wh.<name>` is `Whiteout` at `<dir>/<name>`, `<dir>/.wh..wh..opq` is
//! `OpaqueDir` at `<dir>` (the empty path for the root), other `.wh..wh.*` names (AUFS
//! metadata) are skipped as docker does. The root directory entry (`./`) is skipped.

use super::path::{
    ancestors, clean_archive_path, file_name, join, parent, OPAQUE_MARKER, WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
};
use super::{Entry, EntryKind, LayerError, TarOffset};
use std::collections::HashSet;
use std::io::Read;

/// Reads every entry of an uncompressed layer tar, in archive order, refusing unsafe ones. A
/// file's data is located by its offset in that tar.
pub fn scan_layer<R: Read>(reader: R) -> Result<Vec<Entry<TarOffset>>, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| malformed("", &e))?;
    scan_entries(entries)
}

/// [`scan_layer`] for a seekable layer (a file): file data is skipped, not read, so only the
/// headers are read from disk.
pub fn scan_layer_seekable<R: Read + std::io::Seek>(
    reader: R,
) -> Result<Vec<Entry<TarOffset>>, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries_with_seek().map_err(|e| malformed("", &e))?;
    scan_entries(entries)
}

fn scan_entries<R: Read>(
    entries: tar::Entries<'_, R>,
) -> Result<Vec<Entry<TarOffset>>, LayerError> {
    let mut symlinks: HashSet<String> = HashSet::new();
    let mut scanned = Vec::new();
    let mut last_path = String::new();
    for item in entries {
        let mut entry = item.map_err(|e| malformed(&last_path, &e))?;
        let raw_path = entry.path_bytes().into_owned();
        last_path = String::from_utf8_lossy(&raw_path).into_owned();
        if let Some(found) = scan_one(&mut entry, &raw_path, &last_path, &mut symlinks)? {
            scanned.push(found);
        }
    }
    Ok(scanned)
}

fn scan_one<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw_path: &[u8],
    shown: &str,
    symlinks: &mut HashSet<String>,
) -> Result<Option<Entry<TarOffset>>, LayerError> {
    let entry_type = entry.header().entry_type();
    if entry_type.is_pax_global_extensions() {
        return Ok(None);
    }
    let cleaned = clean_archive_path(raw_path)?;
    refuse_symlink_parent(shown, &cleaned, symlinks)?;

    let extensions = PaxValues::read(entry).map_err(|e| malformed(shown, &e))?;
    let header = entry.header();
    let field_error = |e: std::io::Error| malformed(shown, &e);
    let mode = header.mode().map_err(field_error)? & 0o7777;
    let uid = header.uid().map_err(field_error)?;
    let gid = header.gid().map_err(field_error)?;
    let mtime = match extensions.mtime {
        Some(mtime) => mtime,
        None => header.mtime().map_err(field_error)?,
    };

    let name = file_name(&cleaned);
    let (path, kind) = if name == OPAQUE_MARKER {
        (parent(&cleaned).to_string(), EntryKind::OpaqueDir)
    } else if name.starts_with(WHITEOUT_META_PREFIX) {
        return Ok(None);
    } else if let Some(deleted) = name.strip_prefix(WHITEOUT_PREFIX) {
        if deleted.is_empty() || deleted == "." || deleted == ".." {
            return Err(LayerError::Escape {
                entry: shown.to_string(),
                reason: "whiteout of `.`, `..` or nothing".to_string(),
            });
        }
        (join(parent(&cleaned), deleted), EntryKind::Whiteout)
    } else if cleaned.is_empty() {
        // The root directory's own entry (`./`).
        return Ok(None);
    } else {
        let kind = match entry_type {
            // Old (v7) archives mark directories with a trailing `/` on a regular entry.
            tar::EntryType::Regular if raw_path.ends_with(b"/") => EntryKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File {
                size: entry.size(),
                source: TarOffset(entry.raw_file_position()),
            },
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                let target = link_text(entry, shown)?;
                symlinks.insert(cleaned.clone());
                EntryKind::Symlink { target }
            }
            tar::EntryType::Link => {
                let raw = link_text(entry, shown)?;
                let target =
                    clean_archive_path(raw.as_bytes()).map_err(|_| LayerError::Escape {
                        entry: shown.to_string(),
                        reason: format!("hardlink target `{raw}` is outside the root"),
                    })?;
                if target.is_empty() {
                    return Err(LayerError::Escape {
                        entry: shown.to_string(),
                        reason: "hardlink to the root directory".to_string(),
                    });
                }
                refuse_symlink_parent(shown, &target, symlinks)?;
                EntryKind::Hardlink { target }
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = header.device_major().map_err(field_error)?.unwrap_or(0);
                let minor = header.device_minor().map_err(field_error)?.unwrap_or(0);
                if entry_type == tar::EntryType::Char {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            }
            tar::EntryType::Fifo => EntryKind::Fifo,
            other => {
                return Err(LayerError::Malformed {
                    detail: format!(
                        "entry `{shown}` has unsupported type {:?}",
                        other.as_byte() as char
                    ),
                })
            }
        };
        (cleaned, kind)
    };
    Ok(Some(Entry {
        path,
        kind,
        mode,
        uid,
        gid,
        mtime,
        xattrs: extensions.xattrs,
    }))
}

/// Refuses `path` when one of its parents is a symlink seen earlier in this layer.
fn refuse_symlink_parent(
    shown: &str,
    path: &str,
    symlinks: &HashSet<String>,
) -> Result<(), LayerError> {
    match ancestors(path).find(|a| symlinks.contains(*a)) {
        Some(link) => Err(LayerError::Escape {
            entry: shown.to_string(),
            reason: format!("its path goes through `{link}`, a symlink of the same layer"),
        }),
        None => Ok(()),
    }
}

fn link_text<R: Read>(entry: &tar::Entry<'_, R>, shown: &str) -> Result<String, LayerError> {
    let raw = entry
        .link_name_bytes()
        .ok_or_else(|| LayerError::Malformed {
            detail: format!("link `{shown}` has no target"),
        })?;
    let text = String::from_utf8(raw.into_owned()).map_err(|_| LayerError::InvalidEntry {
        path: shown.to_string(),
        reason: "link target is not valid UTF-8".to_string(),
    })?;
    if text.is_empty() {
        return Err(LayerError::Malformed {
            detail: format!("link `{shown}` has an empty target"),
        });
    }
    Ok(text)
}

fn malformed(after: &str, error: &std::io::Error) -> LayerError {
    let detail = if after.is_empty() {
        error.to_string()
    } else {
        format!("at or after entry `{after}`: {error}")
    };
    LayerError::Malformed { detail }
}

/// The PAX values the tar crate leaves to us: mtime and xattrs.
struct PaxValues {
    mtime: Option<u64>,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl PaxValues {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Self> {
        let mut values = PaxValues {
            mtime: None,
            xattrs: Vec::new(),
        };
        if let Some(extensions) = entry.pax_extensions()? {
            for extension in extensions {
                let extension = extension?;
                let Ok(key) = extension.key() else { continue };
                if key == "mtime" {
                    values.mtime = Some(pax_seconds(extension.value_bytes()));
                } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    values
                        .xattrs
                        .push((name.to_string(), extension.value_bytes().to_vec()));
                }
            }
        }
        Ok(values)
    }
}

/// Whole seconds of a PAX time value (`1700000000.5` -> 1700000000; negative or junk -> 0).
fn pax_seconds(value: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(value);
    let whole = text.split('.').next().unwrap_or("");
    whole.parse().unwrap_or(0)
}
