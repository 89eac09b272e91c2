//! The merged filesystem of a stack of layers, as a container would see it.
//!
//! Owns: applying layers in order (whiteouts and opaque directories hide lower content, a
//! non-directory replaces a directory and its contents), symlink resolution inside the image
//! (clamped to its root, loop-limited), reading small files (`/etc/passwd`), and turning
//! view entries into writer entries whose data stays in the lower layer tars (`COPY --from`).
//! Must not: extract anything to disk or follow a symlink on the host.
//!
//! Semantics worth knowing:
//! - a layer's whiteouts and opaque markers apply to the layers below it only, whatever
//!   their position in the tar;
//! - parents a layer omits exist implicitly as directories (mode 0755, 0:0, mtime 0), as
//!   docker's overlay2 driver creates them when it extracts the layer into its own empty
//!   directory: such a parent replaces a lower non-directory at that path, symlinks
//!   included (so an entry never lands "through" a lower symlink), and leaves a lower
//!   directory as it is (overlay2 would show the implicit 0755 directory's metadata instead;
//!   kiln's own layers never omit parents);
//! - a hardlink becomes a second file sharing the target's data location, with its own
//!   metadata; the writer re-links files that share a data location.

use super::path::parent;
use super::reader::{scan_layer_seekable, ScannedKind};
use super::{Entry, EntryKind, FileSource, LayerError};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Symlinks followed in one resolution before giving up (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;

/// The merged filesystem of a stack of uncompressed layer tars.
#[derive(Debug, Clone, Default)]
pub struct FsView {
    entries: BTreeMap<String, ViewEntry>,
}

/// One path of the merged filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEntry {
    pub kind: ViewKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewKind {
    Dir,
    /// A regular file whose data is `size` bytes at `offset` in the layer tar `tar`.
    File {
        tar: Arc<Path>,
        offset: u64,
        size: u64,
    },
    Symlink {
        target: String,
    },
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

impl ViewEntry {
    fn implicit_dir() -> Self {
        ViewEntry {
            kind: ViewKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == ViewKind::Dir
    }
}

impl FsView {
    /// Builds the view of `layers` (uncompressed tars, lowest first).
    pub fn from_layers(layers: &[PathBuf]) -> Result<FsView, LayerError> {
        let mut view = FsView::default();
        for layer in layers {
            view.apply_layer(layer).map_err(|e| LayerError::InLayer {
                layer: layer.clone(),
                source: Box::new(e),
            })?;
        }
        Ok(view)
    }

    fn apply_layer(&mut self, layer: &Path) -> Result<(), LayerError> {
        let file = File::open(layer)
            .map_err(|e| LayerError::io(format!("opening {}", layer.display()), e))?;
        let scanned = scan_layer_seekable(BufReader::with_capacity(1 << 16, file))?;
        let tar: Arc<Path> = Arc::from(layer);

        for item in &scanned {
            match item.kind {
                ScannedKind::Whiteout => self.remove_tree(&item.path, true),
                ScannedKind::OpaqueDir => self.remove_tree(&item.path, false),
                _ => {}
            }
        }
        for item in scanned {
            let kind = match item.kind {
                ScannedKind::Whiteout | ScannedKind::OpaqueDir => continue,
                ScannedKind::Dir => ViewKind::Dir,
                ScannedKind::File { size, data_offset } => ViewKind::File {
                    tar: tar.clone(),
                    offset: data_offset,
                    size,
                },
                ScannedKind::Symlink { target } => ViewKind::Symlink { target },
                ScannedKind::Hardlink { target } => {
                    let linked = self
                        .resolve(&target, false)
                        .and_then(|p| self.entries.get(&p))
                        .map(|e| e.kind.clone());
                    match linked {
                        Some(kind @ ViewKind::File { .. }) => kind,
                        _ => {
                            return Err(LayerError::HardlinkTarget {
                                path: item.path,
                                target,
                            })
                        }
                    }
                }
                ScannedKind::CharDevice { major, minor } => ViewKind::CharDevice { major, minor },
                ScannedKind::BlockDevice { major, minor } => ViewKind::BlockDevice { major, minor },
                ScannedKind::Fifo => ViewKind::Fifo,
            };
            let entry = ViewEntry {
                kind,
                mode: item.mode,
                uid: item.uid,
                gid: item.gid,
                mtime: item.mtime,
                xattrs: item.xattrs,
            };
            self.insert(item.path, entry);
        }
        Ok(())
    }

    /// Puts `entry` at `path`, creating missing parents (see the module docs).
    fn insert(&mut self, path: String, entry: ViewEntry) {
        self.ensure_parent_dirs(&path);
        let merges = entry.is_dir() && self.entries.get(&path).is_some_and(ViewEntry::is_dir);
        if !merges {
            self.remove_tree(&path, false);
        }
        self.entries.insert(path, entry);
    }

    /// Makes every ancestor of `path` a directory: missing ones are created, lower
    /// non-directories (symlinks included) are replaced, existing directories are kept.
    ///
    /// Every path in the view has directories for all its ancestors (inserting keeps this,
    /// and removing takes whole subtrees), so the walk up stops at the first directory it
    /// finds: the cost is one lookup per parent created, not one per ancestor of every path.
    fn ensure_parent_dirs(&mut self, path: &str) {
        let mut dir = parent(path);
        while !dir.is_empty() && !self.entries.get(dir).is_some_and(ViewEntry::is_dir) {
            // A non-directory has nothing below it: replacing it removes nothing else.
            self.entries
                .insert(dir.to_string(), ViewEntry::implicit_dir());
            dir = parent(dir);
        }
    }

    /// Removes everything below `path`, and `path` itself when `itself` (the root when empty).
    fn remove_tree(&mut self, path: &str, itself: bool) {
        if path.is_empty() {
            self.entries.clear();
            return;
        }
        if itself {
            self.entries.remove(path);
        }
        let below: Vec<String> = self
            .entries
            .range(format!("{path}/")..format!("{path}0"))
            .map(|(k, _)| k.clone())
            .collect();
        for key in below {
            self.entries.remove(&key);
        }
    }

    /// The entry at exactly `path` (relative or absolute; no symlinks followed).
    pub fn get(&self, path: &str) -> Option<&ViewEntry> {
        self.entries.get(path.trim_start_matches('/'))
    }

    /// Resolves `path` (absolute or relative to the root) inside the image: symlinks in the
    /// parents are always followed, the final one only when `follow_final_symlink`; `..`
    /// stops at the root; absolute symlink targets restart at the root. Returns the real
    /// relative path (empty for the root), or `None` when a component does not exist, a
    /// parent is not a directory, or more than `MAX_SYMLINKS` symlinks were followed.
    pub fn resolve(&self, path: &str, follow_final_symlink: bool) -> Option<String> {
        // The real path so far, and where each of its components starts (so `..` and a
        // failed step cost the length of one component, not of the whole path).
        let mut done = String::new();
        let mut starts: Vec<usize> = Vec::new();
        let mut todo: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut followed = 0;
        while let Some(component) = todo.pop() {
            if component == ".." {
                done.truncate(starts.pop().unwrap_or(0));
                continue;
            }
            let start = done.len();
            if !done.is_empty() {
                done.push('/');
            }
            done.push_str(&component);
            let entry = self.entries.get(&done)?;
            let is_final = todo.is_empty();
            match &entry.kind {
                ViewKind::Symlink { target } if !is_final || follow_final_symlink => {
                    done.truncate(start);
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return None;
                    }
                    if target.starts_with('/') {
                        done.clear();
                        starts.clear();
                    }
                    todo.extend(components(target).rev().map(str::to_string));
                }
                ViewKind::Dir => starts.push(start),
                _ if is_final => starts.push(start),
                _ => return None,
            }
        }
        Some(done)
    }

    /// Reads the whole content of the regular file at `path` (symlinks followed).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, LayerError> {
        let not_found = || LayerError::NotFound {
            path: path.to_string(),
        };
        let real = self.resolve(path, true).ok_or_else(not_found)?;
        let entry = self.entries.get(&real).ok_or_else(not_found)?;
        let ViewKind::File { tar, offset, size } = &entry.kind else {
            return Err(LayerError::NotAFile {
                path: path.to_string(),
            });
        };
        let context = || format!("reading `{path}` from {}", tar.display());
        let mut file = File::open(tar).map_err(|e| LayerError::io(context(), e))?;
        file.seek(SeekFrom::Start(*offset))
            .map_err(|e| LayerError::io(context(), e))?;
        let mut data = Vec::new();
        file.take(*size)
            .read_to_end(&mut data)
            .map_err(|e| LayerError::io(context(), e))?;
        if data.len() as u64 != *size {
            return Err(LayerError::Malformed {
                detail: format!("{} ends inside the data of `{path}`", tar.display()),
            });
        }
        Ok(data)
    }

    /// Every entry strictly below `dir` (the whole tree for the root, `""` or `/`), sorted
    /// bytewise by path. `dir` is taken literally (no symlinks followed; resolve it first).
    pub fn walk<'v>(&'v self, dir: &str) -> impl Iterator<Item = (&'v str, &'v ViewEntry)> + 'v {
        let dir = dir.trim_matches('/');
        let range = if dir.is_empty() {
            self.entries.range::<String, _>(..)
        } else {
            self.entries.range(format!("{dir}/")..format!("{dir}0"))
        };
        range.map(|(path, entry)| (path.as_str(), entry))
    }

    /// The writer entry that copies `entry` to `new_path` (file data stays in its layer tar,
    /// `FileSource::TarRange`). Metadata is kept; callers override uid/gid/mtime as needed.
    pub fn to_entry(&self, entry: &ViewEntry, new_path: String) -> Entry {
        let kind = match &entry.kind {
            ViewKind::Dir => EntryKind::Dir,
            ViewKind::File { tar, offset, size } => EntryKind::File {
                size: *size,
                source: FileSource::TarRange {
                    tar: tar.to_path_buf(),
                    offset: *offset,
                },
            },
            ViewKind::Symlink { target } => EntryKind::Symlink {
                target: target.clone(),
            },
            ViewKind::CharDevice { major, minor } => EntryKind::CharDevice {
                major: *major,
                minor: *minor,
            },
            ViewKind::BlockDevice { major, minor } => EntryKind::BlockDevice {
                major: *major,
                minor: *minor,
            },
            ViewKind::Fifo => EntryKind::Fifo,
        };
        Entry {
            path: new_path,
            kind,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
            xattrs: entry.xattrs.clone(),
        }
    }

    /// Number of paths in the view.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The components of a path that matter for resolution (no empty or `.` ones).
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}
