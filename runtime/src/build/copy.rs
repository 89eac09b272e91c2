//! COPY and ADD: from a copy node of the plan to the entries of its layer.
//!
//! Owns: walking selected sources (the build context or a stage's filesystem, both behind
//! [`FsTree`]), mapping them under the destination with the compiler's shared rules
//! (`kiln_plan::copy`), applying owners (`--chown`), modes (`--chmod`) and `--exclude`
//! as the plan carries them parsed, parent directories, heredoc files, and ADD's unpacking
//! of local archives. Must not: parse flag values or sources (the plan holds them parsed).
//! Must not: write layers or touch the store (the executor does).

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_plan::context::ContextIndex;
use kiln_plan::copy::{self, SourceKind, SourceTree};
use kiln_plan::plan::{CopyOp, SourcePath};

use super::users::Owner;
use super::BuildError;
use crate::layer::unpack::{archive_entries, ArchiveMtime, ArchiveOwner, UnpackOptions};
use crate::layer::{Entry, EntryKind, FileSource};

/// Metadata of one path of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: SourceKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// What every tree says of its root directory.
pub const ROOT_META: Meta = Meta {
    kind: SourceKind::Dir,
    mode: 0o755,
    uid: 0,
    gid: 0,
};

/// A filesystem COPY reads from or writes over.
pub trait FsTree: SourceTree {
    fn meta(&self, path: &str) -> Option<Meta>;
    /// Every path strictly below `dir` ("" is the root), parents before children.
    fn descendants(&self, dir: &str) -> Vec<String>;
    /// The layer entry that reproduces `path` at `dest` (kind, mode, owner, content source).
    fn entry(&self, path: &str, dest: String) -> Result<Option<Entry>, BuildError>;
    /// The host file behind `path`, for trees that are host directories (ADD unpacking).
    fn host_path(&self, _path: &str) -> Option<std::path::PathBuf> {
        None
    }
}

impl FsTree for ContextIndex {
    fn meta(&self, path: &str) -> Option<Meta> {
        if path.is_empty() {
            return Some(ROOT_META);
        }
        self.get(path).map(|f| Meta {
            kind: f.kind,
            mode: f.mode,
            uid: 0,
            gid: 0,
        })
    }

    fn descendants(&self, dir: &str) -> Vec<String> {
        let mut all = self.subtree(dir);
        if !dir.is_empty() && !all.is_empty() {
            all.remove(0);
        }
        all.into_iter()
            .map(|i| self.files[i].path.clone())
            .collect()
    }

    fn entry(&self, path: &str, dest: String) -> Result<Option<Entry>, BuildError> {
        let Some(f) = self.get(path) else {
            return Ok(None);
        };
        let kind = match f.kind {
            SourceKind::Dir => EntryKind::Dir,
            SourceKind::File => EntryKind::File {
                size: f.size,
                source: FileSource::Host {
                    path: self.host_path(f),
                    link_id: (f.stat.nlink > 1).then_some((f.stat.dev, f.stat.ino)),
                },
            },
            SourceKind::Symlink => EntryKind::Symlink {
                target: f.link_target.clone().unwrap_or_default(),
            },
            SourceKind::Other => {
                return crate::layer::host_entry(&self.host_path(f), dest, 0, 0, 0)
                    .map_err(BuildError::from)
            }
        };
        Ok(Some(Entry {
            path: dest,
            kind,
            mode: f.mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }))
    }

    fn host_path(&self, path: &str) -> Option<std::path::PathBuf> {
        self.get(path).map(|f| self.host_path(f))
    }
}

/// Everything a copy needs besides the op.
pub struct CopyInputs<'a> {
    pub source: &'a dyn FsTree,
    /// The filesystem being copied over (for existing directories and their metadata).
    pub dest: &'a dyn FsTree,
    pub owner: Option<Owner>,
    /// Whether `source` is the build context (owners become 0:0 unless --chown).
    pub from_context: bool,
    /// Where ADD may decompress archives; must outlive the layer write.
    pub scratch: &'a std::path::Path,
}

/// The entries of a COPY/ADD layer.
pub fn copy_entries(op: &CopyOp, inp: &CopyInputs<'_>) -> Result<Vec<Entry>, BuildError> {
    let local: Vec<&SourcePath> = op.paths().collect();
    let urls: Vec<&str> = op.urls().collect();
    // From the context the planner already selected the sources; a stage's filesystem is
    // only known now, so its (already checked) patterns are matched here.
    let selected = if op.from_context {
        op.selected.clone()
    } else if local.is_empty() {
        Vec::new()
    } else {
        copy::select_sources(inp.source, &local).map_err(BuildError::CopySource)?
    };
    let dest_dir_path = copy::clean(&op.dest);
    let dest_exists_dir = inp
        .dest
        .meta(&dest_dir_path)
        .is_some_and(|m| m.kind == SourceKind::Dir);
    let dest_is_dir = op.dest.ends_with('/')
        || selected.len() + op.inline.len() + urls.len() > 1
        || local.iter().any(|s| s.wildcard)
        || dest_exists_dir;

    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let mut created_dirs: Vec<String> = Vec::new();
    let owned = |mut e: Entry, src_meta: Option<Meta>| -> Entry {
        e.mtime = op.mtime;
        match (inp.owner, src_meta) {
            (Some(o), _) => {
                e.uid = o.uid;
                e.gid = o.gid;
            }
            (None, Some(m)) if !inp.from_context => {
                e.uid = m.uid;
                e.gid = m.gid;
            }
            _ => {
                e.uid = 0;
                e.gid = 0;
            }
        }
        if let Some(c) = &op.chmod {
            if !matches!(e.kind, EntryKind::Symlink { .. }) {
                e.mode = c.apply(e.mode, matches!(e.kind, EntryKind::Dir));
            }
        }
        e
    };

    for src in &selected {
        // A source symlink is followed; the copy keeps the name the source was given by.
        let resolved = copy::follow_symlinks(inp.source, src).unwrap_or_else(|| src.clone());
        let meta = inp
            .source
            .meta(&resolved)
            .ok_or_else(|| BuildError::CopySourceMissing { path: src.clone() })?;
        if meta.kind == SourceKind::Dir {
            // The directory's contents go into the destination; the destination itself is
            // an existing directory or a new one, made like any missing parent.
            let base_rel = copy::clean(&copy::dest_for(src, true, &op.dest, dest_is_dir));
            if !base_rel.is_empty() {
                created_dirs.push(base_rel.clone());
            }
            for d in inp.source.descendants(&resolved) {
                let rel = d
                    .strip_prefix(resolved.as_str())
                    .unwrap_or(&d)
                    .trim_start_matches('/');
                if op.excludes.excludes(&d, rel) {
                    continue;
                }
                let target = join(&base_rel, rel);
                if let Some(e) = inp.source.entry(&d, target)? {
                    let e = owned(e, inp.source.meta(&d));
                    out.insert(e.path.clone(), e);
                }
            }
        } else {
            if op.excludes.excludes(src, "") {
                continue;
            }
            if op.add && meta.kind == SourceKind::File {
                if let Some(entries) = unpack_if_archive(inp, &resolved, &op.dest)? {
                    // Archive contents keep their own owners (unless --chown), modes and mtimes.
                    for e in entries {
                        out.insert(e.path.clone(), e);
                    }
                    continue;
                }
            }
            let target = copy::clean(&copy::dest_for(src, false, &op.dest, dest_is_dir));
            if let Some(e) = inp.source.entry(&resolved, target)? {
                let e = owned(e, Some(meta));
                out.insert(e.path.clone(), e);
            }
        }
    }
    for (n, url) in urls.iter().enumerate() {
        let d = super::fetch::download(url, op.checksum.as_deref(), inp.scratch, n)?;
        let name = match (&d.file_name, dest_is_dir) {
            (Some(name), _) => name.clone(),
            (None, false) => String::new(),
            (None, true) => {
                return Err(BuildError::DownloadName {
                    url: url.to_string(),
                })
            }
        };
        let target = copy::clean(&copy::dest_for(&name, false, &op.dest, dest_is_dir));
        let e = Entry {
            path: target,
            kind: EntryKind::File {
                size: d.size,
                source: FileSource::Host {
                    path: d.path,
                    link_id: None,
                },
            },
            mode: 0o600,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        };
        let e = owned(e, None);
        out.insert(e.path.clone(), e);
    }
    for (name, content) in &op.inline {
        let target = copy::clean(&copy::dest_for(name, false, &op.dest, dest_is_dir));
        let bytes: Arc<[u8]> = Arc::from(content.as_bytes());
        let e = Entry {
            path: target,
            kind: EntryKind::File {
                size: bytes.len() as u64,
                source: FileSource::Bytes(bytes),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        };
        let e = owned(e, None);
        out.insert(e.path.clone(), e);
    }
    let new_dir_owner = inp.owner.unwrap_or(Owner { uid: 0, gid: 0 });
    for dir in created_dirs {
        add_dir(&mut out, inp.dest, &dir, op.mtime, new_dir_owner);
    }
    add_parents(&mut out, inp.dest, op.mtime, new_dir_owner);
    Ok(out.into_values().collect())
}

/// Every ancestor directory of a written entry goes into the layer too: with its existing
/// metadata when the image has it, else as a new 0755 directory owned by `owner` (root, or the
/// `--chown` user, as BuildKit creates missing destination directories).
pub fn add_parents(
    out: &mut BTreeMap<String, Entry>,
    lower: &dyn FsTree,
    mtime: u64,
    owner: Owner,
) {
    let paths: Vec<String> = out.keys().cloned().collect();
    for p in paths {
        let mut parent = p.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            parent = dir;
            add_dir(out, lower, dir, mtime, owner);
        }
    }
}

/// Put directory `dir` into the layer (unless it already is): existing metadata from `lower`,
/// or a new 0755 directory owned by `owner`.
fn add_dir(
    out: &mut BTreeMap<String, Entry>,
    lower: &dyn FsTree,
    dir: &str,
    mtime: u64,
    owner: Owner,
) {
    if out.contains_key(dir) {
        return;
    }
    let (mode, uid, gid) = match lower.meta(dir) {
        Some(m) if m.kind == SourceKind::Dir => (m.mode, m.uid, m.gid),
        _ => (0o755, owner.uid, owner.gid),
    };
    let entry = Entry {
        path: dir.to_string(),
        kind: EntryKind::Dir,
        mode,
        uid,
        gid,
        mtime,
        xattrs: Vec::new(),
    };
    out.insert(dir.to_string(), entry);
}

fn join(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}/{rel}"),
    }
}

/// ADD of a local archive: its entries under the destination directory, or None when the
/// file is not an archive.
fn unpack_if_archive(
    inp: &CopyInputs<'_>,
    src: &str,
    dest: &str,
) -> Result<Option<Vec<Entry>>, BuildError> {
    let Some(path) = inp.source.host_path(src) else {
        return Ok(None);
    };
    let dest = copy::clean(dest);
    let owner = match inp.owner {
        Some(o) => ArchiveOwner::Fixed {
            uid: o.uid,
            gid: o.gid,
        },
        None => ArchiveOwner::Keep,
    };
    let options = UnpackOptions {
        mtime: ArchiveMtime::Keep,
        owner,
        scratch: inp.scratch.to_path_buf(),
    };
    Ok(archive_entries(&path, &dest, &options)?)
}
