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
//! Structure rules (what `kiln import` and `kiln load` refuse, and what extraction needs):
//! - every entry's data lies inside the tar: a tar that ends inside an entry, or a header
//!   whose size runs past the end, is `Malformed` naming the entry (the seekable scan, which
//!   skips data, checks this against the length of the input);
//! - a hardlink names a regular file (or a hardlink to one) that appears earlier in the same
//!   layer and was not replaced since: a hardlink to a missing path, a symlink, a directory
//!   or a device is `HardlinkTarget`.
//!
//! Every check is linear in the size of the tar: symlinks are looked up component by
//! component (`SymlinkIndex`), never by hashing each ancestor path anew.
//!
//! Whiteouts: `<dir>/.wh.<name>` is `Whiteout` at `<dir>/<name>`, `<dir>/.wh..wh..opq` is
//! `OpaqueDir` at `<dir>` (the empty path for the root), other `.wh..wh.*` names (AUFS
//! metadata) are skipped as docker does. The root directory entry (`./`) is skipped.

use super::path::{
    clean_archive_path, file_name, join, parent, OPAQUE_MARKER, WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
};
use super::{Entry, EntryKind, LayerError, TarOffset};
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// Header reads come in chunks of this size (headers are small and mostly close together).
const HEADER_CHUNK: usize = 64 * 1024;

/// Reads every entry of an uncompressed layer tar, in archive order, refusing unsafe ones
/// and malformed ones (see the module docs). A file's data is located by its offset in that
/// tar. Reads the whole input, data included, so a caller can hash the same bytes as they
/// pass (one pass over the layer).
pub fn scan_layer<R: Read>(reader: R) -> Result<Vec<Entry<TarOffset>>, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| malformed("", &e))?;
    scan_entries(entries)
}

/// [`scan_layer`] for a layer in a file: file data is skipped, not read, so only the blocks
/// around headers are read from disk; every entry's data is checked to end inside the file.
pub fn scan_layer_file(file: &File) -> Result<Vec<Entry<TarOffset>>, LayerError> {
    let mut archive = tar::Archive::new(PositionedReader::new(file));
    let scanned = {
        let entries = archive.entries_with_seek().map_err(|e| malformed("", &e))?;
        scan_entries(entries)?
    };
    let length = archive
        .into_inner()
        .seek(SeekFrom::End(0))
        .map_err(|e| malformed("", &e))?;
    // Skipping data seeks, and a seek past the end succeeds: a size past the end shows only
    // here (the tar crate then reads no further header and stops as if the archive ended).
    for entry in &scanned {
        if let EntryKind::File {
            size,
            source: TarOffset(data_offset),
        } = entry.kind
        {
            let end = data_offset.saturating_add(size);
            if end > length {
                return Err(LayerError::Malformed {
                    detail: format!(
                        "entry `{}` claims {size} bytes of data, but the tar ends {} bytes \
                         after its header",
                        entry.path,
                        length.saturating_sub(data_offset)
                    ),
                });
            }
        }
    }
    Ok(scanned)
}

fn scan_entries<R: Read>(
    entries: tar::Entries<'_, R>,
) -> Result<Vec<Entry<TarOffset>>, LayerError> {
    let mut symlinks = SymlinkIndex::default();
    let mut files = RegularFiles::default();
    let mut scanned = Vec::new();
    let mut last_path = String::new();
    for item in entries {
        let mut entry = item.map_err(|e| malformed(&last_path, &e))?;
        let raw_path = entry.path_bytes().into_owned();
        last_path = String::from_utf8_lossy(&raw_path).into_owned();
        if let Some(found) = scan_one(&mut entry, &raw_path, &last_path, &mut symlinks)? {
            files.record(&found)?;
            scanned.push(found);
        }
    }
    Ok(scanned)
}

/// The paths of a layer that are regular files so far, in archive order: what a hardlink
/// may name.
#[derive(Default)]
struct RegularFiles {
    paths: BTreeSet<String>,
}

impl RegularFiles {
    fn record(&mut self, entry: &Entry<TarOffset>) -> Result<(), LayerError> {
        match &entry.kind {
            // A whiteout or an opaque marker hides lower layers only, never this layer's
            // own entries.
            EntryKind::Whiteout | EntryKind::OpaqueDir => return Ok(()),
            EntryKind::Hardlink { target } if !self.paths.contains(target) => {
                return Err(LayerError::HardlinkTarget {
                    path: entry.path.clone(),
                    target: target.clone(),
                })
            }
            _ => {}
        }
        let path = &entry.path;
        match &entry.kind {
            EntryKind::Dir => {
                self.paths.remove(path);
            }
            EntryKind::File { .. } | EntryKind::Hardlink { .. } => {
                self.remove_below(path);
                self.paths.insert(path.clone());
            }
            _ => {
                self.remove_below(path);
                self.paths.remove(path);
            }
        }
        Ok(())
    }

    /// A non-directory replaces a directory and everything below it.
    fn remove_below(&mut self, path: &str) {
        let below: Vec<String> = self
            .paths
            .range(format!("{path}/")..format!("{path}0"))
            .cloned()
            .collect();
        for gone in below {
            self.paths.remove(&gone);
        }
    }
}

/// The symlinks seen so far in a layer, as a tree of path components, so that finding
/// whether any ancestor of a path is one costs one lookup per component.
#[derive(Default)]
struct SymlinkIndex {
    /// Node 0 is the root; each node's children by component name.
    children: Vec<HashMap<Box<str>, usize>>,
    is_symlink: Vec<bool>,
}

impl SymlinkIndex {
    fn insert(&mut self, path: &str) {
        if self.children.is_empty() {
            self.children.push(HashMap::new());
            self.is_symlink.push(false);
        }
        let mut node = 0;
        for component in path.split('/') {
            let next = self.children.len();
            let Some(children) = self.children.get_mut(node) else {
                return;
            };
            node = *children.entry(component.into()).or_insert(next);
            if node == next {
                self.children.push(HashMap::new());
                self.is_symlink.push(false);
            }
        }
        if let Some(flag) = self.is_symlink.get_mut(node) {
            *flag = true;
        }
    }

    /// The first proper ancestor of `path` that is a symlink.
    fn symlink_ancestor<'p>(&self, path: &'p str) -> Option<&'p str> {
        let mut node = 0;
        for (end, _) in path.match_indices('/') {
            let component = file_name(path.get(..end)?);
            node = *self.children.get(node)?.get(component)?;
            if self.is_symlink.get(node).copied().unwrap_or(false) {
                return path.get(..end);
            }
        }
        None
    }
}

fn scan_one<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw_path: &[u8],
    shown: &str,
    symlinks: &mut SymlinkIndex,
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
                symlinks.insert(&cleaned);
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
    symlinks: &SymlinkIndex,
) -> Result<(), LayerError> {
    match symlinks.symlink_ancestor(path) {
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

/// A `Read + Seek` over a file that reads with `pread` in chunks and seeks without a
/// syscall, so scanning headers (skipping file data) reads only the blocks around headers. A `BufReader` would not do:
/// its `seek` drops the buffer, so every skipped entry would cost a full buffer read.
struct PositionedReader<'f> {
    file: &'f File,
    position: u64,
    chunk: Vec<u8>,
    chunk_start: u64,
    chunk_len: usize,
}

impl<'f> PositionedReader<'f> {
    fn new(file: &'f File) -> Self {
        PositionedReader {
            file,
            position: 0,
            chunk: vec![0; HEADER_CHUNK],
            chunk_start: 0,
            chunk_len: 0,
        }
    }
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let in_chunk = self.position >= self.chunk_start
            && self.position < self.chunk_start + self.chunk_len as u64;
        if !in_chunk {
            if buf.len() >= self.chunk.len() {
                let n = self.file.read_at(buf, self.position)?;
                self.position += n as u64;
                return Ok(n);
            }
            self.chunk_start = self.position;
            self.chunk_len = 0;
            self.chunk_len = self.file.read_at(&mut self.chunk, self.position)?;
            if self.chunk_len == 0 {
                return Ok(0);
            }
        }
        let skip = (self.position - self.chunk_start) as usize;
        let available = &self.chunk[skip..self.chunk_len];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for PositionedReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid seek");
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
            SeekFrom::End(delta) => self.file.metadata()?.len().checked_add_signed(delta),
        };
        self.position = target.ok_or_else(invalid)?;
        Ok(self.position)
    }
}
