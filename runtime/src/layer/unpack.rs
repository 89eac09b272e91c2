//! ADD of local archives: recognising a tar (possibly compressed) and turning its entries
//! into layer entries placed under a destination directory.
//!
//! Owns: the "is this file an archive" decision and the mapping of archive entries to
//! `Entry` values (paths under `dest`, ownership and mtime policies).
//! Must not: fetch remote files (remote ADD sources are never unpacked), resolve `dest`
//! through the image's symlinks (the caller passes the real destination), or write layers.
//!
//! Detection, as docker's: the file's content decides, never its name. It is an archive
//! when, after gzip/bzip2/xz/zstd decompression by magic bytes (or none), its first 512
//! bytes are a tar header with a valid checksum. A file that merely looks compressed but does
//! not decompress to a tar is not an archive (ADD copies it as it is).
//!
//! File data: entries of a plain tar point into the archive itself (`FileSource::Tar`). A
//! compressed archive is decompressed once into a file in the caller's scratch directory
//! (named `kiln-unpacked-*`, kept until the caller removes the scratch directory, which must
//! outlive writing the layer), and the entries point into that file.
//!
//! Refused: entries escaping the root (as in `reader`), and whiteout or opaque-marker entries
//! (an ADD must not delete lower content). A path that appears twice keeps its last entry,
//! as extraction would.

use super::compress::{decompress_auto, decompress_into, StreamFormat};
use super::header::BLOCK;
use super::path::join;
use super::reader::scan_layer;
use super::{Entry, EntryKind, FileSource, LayerError};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which mtime unpacked entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveMtime {
    /// The archive's own mtimes (docker's and BuildKit's default).
    Keep,
    /// The archive's mtimes, but none later than this (SOURCE_DATE_EPOCH clamping).
    Clamp(u64),
    /// This mtime for every entry.
    Fixed(u64),
}

/// Which owner unpacked entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveOwner {
    /// The archive's numeric uid/gid (docker's default for ADD of a local archive).
    Keep,
    /// This uid/gid for every entry (ADD --chown).
    Fixed { uid: u64, gid: u64 },
}

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub mtime: ArchiveMtime,
    pub owner: ArchiveOwner,
    /// Where a compressed archive is decompressed to; must outlive the layer write.
    pub scratch: PathBuf,
}

/// The entries of the archive `path` placed under `dest` (relative, `""` for the root), or
/// `None` when `path` is not a tar archive. The archive's root entry (`./`) is not included:
/// `dest` itself is the caller's to create.
pub fn archive_entries(
    path: &Path,
    dest: &str,
    options: &UnpackOptions,
) -> Result<Option<Vec<Entry>>, LayerError> {
    let Some(format) = sniff_archive(path)? else {
        return Ok(None);
    };
    let (tar_path, tar_file) = match format {
        StreamFormat::Plain => (path.to_path_buf(), open(path)?),
        _ => decompress_to_scratch(path, &options.scratch)?,
    };
    let scanned = scan_layer(BufReader::with_capacity(1 << 16, tar_file))?;
    let tar_path: Arc<Path> = Arc::from(tar_path);

    let mut entries: Vec<Entry> = Vec::with_capacity(scanned.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for item in scanned {
        if matches!(item.kind, EntryKind::Whiteout | EntryKind::OpaqueDir) {
            return Err(LayerError::InvalidEntry {
                path: item.path,
                reason: "archives given to ADD may not contain whiteouts".to_string(),
            });
        }
        let mut entry = item.map_source(|offset| FileSource::Tar(offset.in_tar(&tar_path)));
        entry.path = join(dest, &entry.path);
        if let EntryKind::Hardlink { target } = &mut entry.kind {
            *target = join(dest, target);
        }
        entry.mtime = match options.mtime {
            ArchiveMtime::Keep => entry.mtime,
            ArchiveMtime::Clamp(limit) => entry.mtime.min(limit),
            ArchiveMtime::Fixed(mtime) => mtime,
        };
        if let ArchiveOwner::Fixed { uid, gid } = options.owner {
            entry.uid = uid;
            entry.gid = gid;
        }
        match index.get(&entry.path) {
            Some(&at) => {
                if let Some(slot) = entries.get_mut(at) {
                    *slot = entry;
                }
            }
            None => {
                index.insert(entry.path.clone(), entries.len());
                entries.push(entry);
            }
        }
    }
    Ok(Some(entries))
}

/// Decides whether `path` is a (possibly compressed) tar: returns its compression, or `None`.
fn sniff_archive(path: &Path) -> Result<Option<StreamFormat>, LayerError> {
    let file = open(path)?;
    let (format, mut reader) = decompress_auto(BufReader::with_capacity(1 << 16, file))?;
    let mut block = vec![0u8; BLOCK];
    let mut filled = 0;
    while filled < BLOCK {
        match reader.read(block.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Content that looks compressed but does not decompress is not an archive.
            Err(_) if format != StreamFormat::Plain => return Ok(None),
            Err(e) => return Err(LayerError::io(format!("reading {}", path.display()), e)),
        }
    }
    if filled < BLOCK || !is_tar_header(&block) {
        return Ok(None);
    }
    Ok(Some(format))
}

/// A non-zero 512-byte block whose checksum field matches its bytes.
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() != BLOCK || block.iter().all(|&b| b == 0) {
        return false;
    }
    let header = tar::Header::from_byte_slice(block);
    let Ok(recorded) = header.cksum() else {
        return false;
    };
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum();
    recorded == computed
}

fn decompress_to_scratch(path: &Path, scratch: &Path) -> Result<(PathBuf, File), LayerError> {
    let context = || {
        format!(
            "decompressing {} into {}",
            path.display(),
            scratch.display()
        )
    };
    let mut temp = tempfile::Builder::new()
        .prefix("kiln-unpacked-")
        .suffix(".tar")
        .tempfile_in(scratch)
        .map_err(|e| LayerError::io(context(), e))?;
    decompress_into(
        BufReader::with_capacity(1 << 16, open(path)?),
        temp.as_file_mut(),
    )?;
    let (mut file, kept) = temp
        .keep()
        .map_err(|e| LayerError::io(context(), e.error))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| LayerError::io(context(), e))?;
    Ok((kept, file))
}

fn open(path: &Path) -> Result<File, LayerError> {
    File::open(path).map_err(|e| LayerError::io(format!("opening {}", path.display()), e))
}
