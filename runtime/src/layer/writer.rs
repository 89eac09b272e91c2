//! Writing deterministic layer tars.
//!
//! Owns: the order of entries in a layer, hardlink grouping, whiteout and opaque-marker
//! placement, streaming of file data with the diff_id computed on the way, and the
//! end-of-archive marker (exactly 1024 zero bytes: the diff_id covers them, and GNU tar's
//! padding to 10240 bytes would give another digest).
//! Must not: invent entries (missing parent directories are the caller's job), look at the
//! host beyond opening the sources it is given (see `host`), or compress.
//!
//! Order: entries are sorted by path components (bytewise per component), so a directory
//! comes right before its contents and parents precede children. Among the children of one
//! directory the opaque marker `.wh..wh..opq` comes first, then the `.wh.<name>` whiteouts
//! (by name), then everything else (by name).
//!
//! Hardlinks: regular files with the same identity form a group, and every member after the
//! first (in the order above) is written as a hardlink to the first. Identity is the host
//! `(device, inode)` for host files with several links, the (tar, offset) of a `Tar` source
//! (two entries reading the same bytes of a lower layer are one file there), or the target
//! file of an explicit `EntryKind::Hardlink`.
//!
//! Whiteouts and opaque markers: typeflag `0`, size 0, mode 0, uid/gid 0, the entry's mtime.
//!
//! On error the output holds a partial tar: callers write to a temporary file and discard it.

use super::header::{padding, typeflag, TarHeader, BLOCK};
use super::path::{check_entry_path, file_name, parent, OPAQUE_MARKER, WHITEOUT_PREFIX};
use super::{host, Entry, EntryKind, FileSource, LayerError, TarData};
use crate::oci::{Digest, DigestWriter};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Identity of a written layer: `diff_id` is the sha256 of the uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigest {
    pub diff_id: Digest,
    pub size: u64,
}

/// Size of the buffer file data is copied through.
const COPY_BUFFER: usize = 1 << 20;
/// Size of the output buffer (headers and small files gather here).
const OUTPUT_BUFFER: usize = 1 << 20;

/// Writes `entries` as one deterministic layer tar to `out`; the order of `entries` does not
/// matter. Refuses invalid paths, duplicate paths, hardlinks to missing files, sources whose
/// size differs from the entry's, and values that cannot be encoded.
pub fn write_layer<W: Write>(entries: Vec<Entry>, out: W) -> Result<LayerDigest, LayerError> {
    check_entries(&entries)?;
    let records = ordered_records(&entries);
    let groups = LinkGroups::new(&entries, &records)?;

    let mut out = DigestWriter::new(BufWriter::with_capacity(OUTPUT_BUFFER, out));
    let mut data = DataCopier::new();
    let mut header = Vec::with_capacity(4 * BLOCK);
    let mut leaders: HashMap<&Identity<'_>, &str> = HashMap::new();

    for record in &records {
        header.clear();
        let entry = record.entry;
        match record.role {
            Role::OpaqueMarker => {
                let name = format!("{}/{OPAQUE_MARKER}", entry.path);
                marker_header(&name, entry.mtime).encode(&mut header)?;
                write_all(&mut out, &header)?;
            }
            Role::Whiteout => {
                let name = sibling_name(
                    &entry.path,
                    &format!("{WHITEOUT_PREFIX}{}", file_name(&entry.path)),
                );
                marker_header(&name, entry.mtime).encode(&mut header)?;
                write_all(&mut out, &header)?;
            }
            Role::Main => {
                let file_group = groups.identity_of(&entry.path);
                match (&entry.kind, file_group) {
                    (EntryKind::File { .. } | EntryKind::Hardlink { .. }, Some(identity)) => {
                        if let Some(leader) = leaders.get(identity) {
                            entry_header(entry, &entry.path, typeflag::HARDLINK, 0, leader, None)
                                .encode(&mut header)?;
                            write_all(&mut out, &header)?;
                        } else {
                            leaders.insert(identity, &entry.path);
                            let (source, size) = match &entry.kind {
                                EntryKind::File { size, source } => (source, *size),
                                _ => groups.data_of(identity).ok_or_else(|| {
                                    LayerError::HardlinkTarget {
                                        path: entry.path.clone(),
                                        target: String::new(),
                                    }
                                })?,
                            };
                            entry_header(entry, &entry.path, typeflag::FILE, size, "", None)
                                .encode(&mut header)?;
                            write_all(&mut out, &header)?;
                            data.copy(source, size, &entry.path, &mut out)?;
                            write_all(&mut out, &ZEROS[..padding(size)])?;
                        }
                    }
                    (EntryKind::File { .. } | EntryKind::Hardlink { .. }, None) => {
                        // LinkGroups gives every file and hardlink an identity.
                        return Err(LayerError::HardlinkTarget {
                            path: entry.path.clone(),
                            target: String::new(),
                        });
                    }
                    (EntryKind::Dir | EntryKind::OpaqueDir, _) => {
                        let name = format!("{}/", entry.path);
                        entry_header(entry, &name, typeflag::DIR, 0, "", None)
                            .encode(&mut header)?;
                        write_all(&mut out, &header)?;
                    }
                    (EntryKind::Symlink { target }, _) => {
                        entry_header(entry, &entry.path, typeflag::SYMLINK, 0, target, None)
                            .encode(&mut header)?;
                        write_all(&mut out, &header)?;
                    }
                    (EntryKind::CharDevice { major, minor }, _) => {
                        entry_header(
                            entry,
                            &entry.path,
                            typeflag::CHAR,
                            0,
                            "",
                            Some((*major, *minor)),
                        )
                        .encode(&mut header)?;
                        write_all(&mut out, &header)?;
                    }
                    (EntryKind::BlockDevice { major, minor }, _) => {
                        entry_header(
                            entry,
                            &entry.path,
                            typeflag::BLOCK,
                            0,
                            "",
                            Some((*major, *minor)),
                        )
                        .encode(&mut header)?;
                        write_all(&mut out, &header)?;
                    }
                    (EntryKind::Fifo, _) => {
                        entry_header(entry, &entry.path, typeflag::FIFO, 0, "", None)
                            .encode(&mut header)?;
                        write_all(&mut out, &header)?;
                    }
                    (EntryKind::Whiteout, _) => {
                        // Whiteouts only ever get Role::Whiteout.
                    }
                }
            }
        }
    }
    write_all(&mut out, &ZEROS[..2 * BLOCK])?;
    let (_, diff_id, size) = out
        .finish()
        .map_err(|e| LayerError::io("writing layer", e))?;
    Ok(LayerDigest { diff_id, size })
}

static ZEROS: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

fn write_all<W: Write>(out: &mut W, bytes: &[u8]) -> Result<(), LayerError> {
    out.write_all(bytes)
        .map_err(|e| LayerError::io("writing layer", e))
}

/// `<parent of path>/<name>` (or `name` at the root).
fn sibling_name(path: &str, name: &str) -> String {
    super::path::join(parent(path), name)
}

fn marker_header(name: &str, mtime: u64) -> TarHeader<'_> {
    TarHeader {
        name,
        typeflag: typeflag::FILE,
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        mtime,
        linkname: "",
        device: None,
        xattrs: &[],
    }
}

fn entry_header<'a>(
    entry: &'a Entry,
    name: &'a str,
    flag: u8,
    size: u64,
    linkname: &'a str,
    device: Option<(u32, u32)>,
) -> TarHeader<'a> {
    TarHeader {
        name,
        typeflag: flag,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        size,
        mtime: entry.mtime,
        linkname,
        device,
        xattrs: &entry.xattrs,
    }
}

/// Path rules, duplicates and link-target spelling.
fn check_entries(entries: &[Entry]) -> Result<(), LayerError> {
    let mut seen = HashSet::with_capacity(entries.len());
    for entry in entries {
        check_entry_path(&entry.path)?;
        if !seen.insert(entry.path.as_str()) {
            return Err(LayerError::DuplicatePath {
                path: entry.path.clone(),
            });
        }
        match &entry.kind {
            EntryKind::Symlink { target } if target.is_empty() || target.contains('\0') => {
                return Err(LayerError::InvalidEntry {
                    path: entry.path.clone(),
                    reason: "symlink target is empty or contains a NUL byte".to_string(),
                })
            }
            EntryKind::Hardlink { target } => check_entry_path(target)?,
            _ => {}
        }
    }
    Ok(())
}

/// What a tar record does for its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    /// `<dir>/.wh..wh..opq` of an opaque directory (the directory itself is `Main`).
    OpaqueMarker,
    /// `<parent>/.wh.<name>`.
    Whiteout,
    /// The entry's own header (and data).
    Main,
}

struct Record<'a> {
    /// Path components, each with the rank of its role among siblings.
    key: Vec<(Role, &'a str)>,
    role: Role,
    entry: &'a Entry,
}

/// The tar records of all entries, in layer order (see the module docs).
fn ordered_records(entries: &[Entry]) -> Vec<Record<'_>> {
    let mut records = Vec::with_capacity(entries.len() + 8);
    for entry in entries {
        let components = || entry.path.split('/').map(|c| (Role::Main, c));
        match entry.kind {
            EntryKind::Whiteout => {
                let mut key: Vec<_> = components().collect();
                if let Some(last) = key.last_mut() {
                    last.0 = Role::Whiteout;
                }
                records.push(Record {
                    key,
                    role: Role::Whiteout,
                    entry,
                });
            }
            EntryKind::OpaqueDir => {
                records.push(Record {
                    key: components().collect(),
                    role: Role::Main,
                    entry,
                });
                records.push(Record {
                    key: components().chain([(Role::OpaqueMarker, "")]).collect(),
                    role: Role::OpaqueMarker,
                    entry,
                });
            }
            _ => records.push(Record {
                key: components().collect(),
                role: Role::Main,
                entry,
            }),
        }
    }
    records.sort_by(|a, b| a.key.cmp(&b.key));
    records
}

/// What makes several paths one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Identity<'a> {
    Inode(u64, u64),
    InTar(&'a Path, u64),
    Path(&'a str),
}

/// Hardlink groups of a layer: every regular file and hardlink entry has an identity, and
/// every identity the data source of its first regular file in layer order.
struct LinkGroups<'a> {
    identity: HashMap<&'a str, Identity<'a>>,
    data: HashMap<Identity<'a>, (&'a FileSource, u64)>,
}

impl<'a> LinkGroups<'a> {
    fn new(entries: &'a [Entry], records: &[Record<'a>]) -> Result<Self, LayerError> {
        let by_path: HashMap<&str, &Entry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut identity = HashMap::new();
        let mut data = HashMap::new();
        for entry in records.iter().map(|r| r.entry) {
            match &entry.kind {
                EntryKind::File { size, source } => {
                    let id = file_identity(&entry.path, source);
                    data.entry(id.clone()).or_insert((source, *size));
                    identity.insert(entry.path.as_str(), id);
                }
                EntryKind::Hardlink { target } => {
                    let file = resolve_hardlink(&entry.path, target, &by_path)?;
                    if let EntryKind::File { source, .. } = &file.kind {
                        identity.insert(entry.path.as_str(), file_identity(&file.path, source));
                    }
                }
                _ => {}
            }
        }
        Ok(LinkGroups { identity, data })
    }

    fn identity_of(&self, path: &str) -> Option<&Identity<'a>> {
        self.identity.get(path)
    }

    fn data_of(&self, identity: &Identity<'a>) -> Option<(&'a FileSource, u64)> {
        self.data.get(identity).copied()
    }
}

fn file_identity<'a>(path: &'a str, source: &'a FileSource) -> Identity<'a> {
    match source {
        FileSource::Host {
            link_id: Some((dev, ino)),
            ..
        } => Identity::Inode(*dev, *ino),
        FileSource::Tar(TarData { tar, offset }) => Identity::InTar(tar, *offset),
        FileSource::Host { link_id: None, .. } | FileSource::Bytes(_) => Identity::Path(path),
    }
}

/// Follows a chain of hardlink entries to the regular file it ends at.
fn resolve_hardlink<'a>(
    path: &str,
    target: &str,
    by_path: &HashMap<&str, &'a Entry>,
) -> Result<&'a Entry, LayerError> {
    let refused = || LayerError::HardlinkTarget {
        path: path.to_string(),
        target: target.to_string(),
    };
    let mut current = target;
    for _ in 0..=by_path.len() {
        let entry = by_path.get(current).ok_or_else(refused)?;
        match &entry.kind {
            EntryKind::File { .. } => return Ok(entry),
            EntryKind::Hardlink { target } => current = target,
            _ => return Err(refused()),
        }
    }
    Err(refused())
}

/// Copies file data from the three kinds of sources, reusing one buffer and the last opened
/// layer tar.
struct DataCopier {
    buffer: Vec<u8>,
    open_tar: Option<(PathBuf, File)>,
}

impl DataCopier {
    fn new() -> Self {
        DataCopier {
            buffer: vec![0; COPY_BUFFER],
            open_tar: None,
        }
    }

    fn copy<W: Write>(
        &mut self,
        source: &FileSource,
        size: u64,
        entry_path: &str,
        out: &mut W,
    ) -> Result<(), LayerError> {
        match source {
            FileSource::Bytes(bytes) => {
                if bytes.len() as u64 != size {
                    return Err(LayerError::InvalidEntry {
                        path: entry_path.to_string(),
                        reason: format!("size is {size} but {} bytes are given", bytes.len()),
                    });
                }
                write_all(out, bytes)
            }
            FileSource::Host { path, .. } => {
                let mut file = host::open_for_copy(path, size)?;
                let copied = copy_exact(&mut file, out, size, &mut self.buffer, path)?;
                let mut probe = [0u8; 1];
                let grew = file
                    .read(&mut probe)
                    .map_err(|e| LayerError::io(format!("reading {}", path.display()), e))?
                    > 0;
                if copied != size || grew {
                    return Err(LayerError::SourceChanged {
                        source_path: path.clone(),
                        expected: size,
                        found: host::current_size(&file),
                    });
                }
                Ok(())
            }
            FileSource::Tar(TarData { tar, offset }) => {
                let file = open_cached(&mut self.open_tar, tar)?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(|e| LayerError::io(format!("seeking in {}", tar.display()), e))?;
                let copied = copy_exact(file, out, size, &mut self.buffer, tar)?;
                if copied != size {
                    return Err(LayerError::Malformed {
                        detail: format!(
                            "{} ends inside the data of `{entry_path}` (offset {offset}, size {size})",
                            tar.display()
                        ),
                    });
                }
                Ok(())
            }
        }
    }
}

/// The open handle of `tar`, reusing the cached one when it is the same file.
fn open_cached<'c>(
    cache: &'c mut Option<(PathBuf, File)>,
    tar: &Path,
) -> Result<&'c mut File, LayerError> {
    if matches!(cache, Some((open, _)) if open != tar) {
        *cache = None;
    }
    match cache {
        Some((_, file)) => Ok(file),
        None => {
            let file = File::open(tar)
                .map_err(|e| LayerError::io(format!("opening {}", tar.display()), e))?;
            Ok(&mut cache.insert((tar.to_path_buf(), file)).1)
        }
    }
}

/// Copies up to `size` bytes; returns how many were copied (fewer when the reader ends).
fn copy_exact<R: Read, W: Write>(
    reader: &mut R,
    out: &mut W,
    size: u64,
    buffer: &mut [u8],
    source_name: &Path,
) -> Result<u64, LayerError> {
    let mut remaining = size;
    while remaining > 0 {
        let want = remaining.min(buffer.len() as u64) as usize;
        let chunk = &mut buffer[..want];
        let n = match reader.read(chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(LayerError::io(
                    format!("reading {}", source_name.display()),
                    e,
                ))
            }
        };
        write_all(out, &chunk[..n])?;
        remaining -= n as u64;
    }
    Ok(size - remaining)
}
