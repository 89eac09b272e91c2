//! The merged filesystem of a stack of layers, as a container would see it.
//!
//! Owns: applying layers in order (whiteouts and opaque directories hide lower content, a
//! non-directory replaces a directory and its contents), symlink resolution inside the image
//! (clamped to its root, loop-limited), and reading small files (`/etc/passwd`). Its entries
//! are layer `Entry` values whose file data stays in the lower layer tars (`TarData`):
//! `Entry::copy_to` makes writer input of them (`COPY --from`).
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
use super::reader::scan_layer_file;
use super::{Entry, EntryKind, LayerError, TarData, TarOffset};
use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Symlinks followed in one resolution before giving up (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;

/// The merged filesystem of a stack of uncompressed layer tars: one entry per path, each
/// file's data in the layer tar it came from.
#[derive(Debug, Clone, Default)]
pub struct FsView {
    entries: BTreeSet<ByPath>,
}

/// A view entry, ordered, compared and looked up by its path alone (so the set is a map
/// from path to entry that stores each path once).
#[derive(Debug, Clone)]
struct ByPath(Entry<TarData>);

impl Borrow<str> for ByPath {
    fn borrow(&self) -> &str {
        &self.0.path
    }
}

impl PartialEq for ByPath {
    fn eq(&self, other: &Self) -> bool {
        self.0.path == other.0.path
    }
}

impl Eq for ByPath {}

impl PartialOrd for ByPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.path.cmp(&other.0.path)
    }
}

/// A parent a layer omits (see the module docs).
fn implicit_dir(path: &str) -> Entry<TarData> {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: Vec::new(),
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

    /// Builds the view of layers already scanned (tar path and its entries, lowest first),
    /// for callers that read the entries for other purposes too.
    pub fn from_scanned<'l>(
        layers: impl IntoIterator<Item = (&'l Path, Vec<Entry<TarOffset>>)>,
    ) -> Result<FsView, LayerError> {
        let mut view = FsView::default();
        for (layer, scanned) in layers {
            view.apply_scanned(layer, scanned)
                .map_err(|e| LayerError::InLayer {
                    layer: layer.to_path_buf(),
                    source: Box::new(e),
                })?;
        }
        Ok(view)
    }

    fn apply_layer(&mut self, layer: &Path) -> Result<(), LayerError> {
        let file = File::open(layer)
            .map_err(|e| LayerError::io(format!("opening {}", layer.display()), e))?;
        let scanned = scan_layer_file(&file)?;
        self.apply_scanned(layer, scanned)
    }

    fn apply_scanned(
        &mut self,
        layer: &Path,
        scanned: Vec<Entry<TarOffset>>,
    ) -> Result<(), LayerError> {
        let tar: Arc<Path> = Arc::from(layer);

        for item in &scanned {
            match item.kind {
                EntryKind::Whiteout => self.remove_tree(&item.path, true),
                EntryKind::OpaqueDir => self.remove_tree(&item.path, false),
                _ => {}
            }
        }
        for item in scanned {
            let entry = match item.kind {
                EntryKind::Whiteout | EntryKind::OpaqueDir => continue,
                EntryKind::Hardlink { target } => {
                    let linked = self
                        .resolve(&target, false)
                        .and_then(|p| self.get(&p))
                        .map(|e| e.kind.clone());
                    match linked {
                        Some(kind @ EntryKind::File { .. }) => Entry {
                            path: item.path,
                            kind,
                            mode: item.mode,
                            uid: item.uid,
                            gid: item.gid,
                            mtime: item.mtime,
                            xattrs: item.xattrs,
                        },
                        _ => {
                            return Err(LayerError::HardlinkTarget {
                                path: item.path,
                                target,
                            })
                        }
                    }
                }
                _ => item.map_source(|offset| offset.in_tar(&tar)),
            };
            self.insert(entry);
        }
        Ok(())
    }

    /// Puts `entry` at its path, creating missing parents (see the module docs).
    fn insert(&mut self, entry: Entry<TarData>) {
        self.ensure_parent_dirs(&entry.path);
        let merges = entry.is_dir() && self.get(&entry.path).is_some_and(Entry::is_dir);
        if !merges {
            self.remove_tree(&entry.path, false);
        }
        self.entries.replace(ByPath(entry));
    }

    /// Makes every ancestor of `path` a directory: missing ones are created, lower
    /// non-directories (symlinks included) are replaced, existing directories are kept.
    ///
    /// Every path in the view has directories for all its ancestors (inserting keeps this,
    /// and removing takes whole subtrees), so the walk up stops at the first directory it
    /// finds: the cost is one lookup per parent created, not one per ancestor of every path.
    fn ensure_parent_dirs(&mut self, path: &str) {
        let mut dir = parent(path);
        while !dir.is_empty() && !self.entries.get(dir).is_some_and(|e| e.0.is_dir()) {
            // A non-directory has nothing below it: replacing it removes nothing else.
            self.entries.replace(ByPath(implicit_dir(dir)));
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
        let below: Vec<String> = self.below(path).map(|e| e.0.path.clone()).collect();
        for key in below {
            self.entries.remove(key.as_str());
        }
    }

    /// The entries strictly below directory `path` (the whole tree when empty), in path order.
    fn below(&self, path: &str) -> std::collections::btree_set::Range<'_, ByPath> {
        if path.is_empty() {
            return self.entries.range::<str, _>(..);
        }
        // Every path below `path` starts with `path/`; `0` is the byte after `/`.
        let first = format!("{path}/");
        let end = format!("{path}0");
        self.entries.range::<str, _>((
            Bound::Included(first.as_str()),
            Bound::Excluded(end.as_str()),
        ))
    }

    /// The entry at exactly `path` (relative or absolute; no symlinks followed).
    pub fn get(&self, path: &str) -> Option<&Entry<TarData>> {
        self.entries.get(path.trim_start_matches('/')).map(|e| &e.0)
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
            let entry = self.get(&done)?;
            let is_final = todo.is_empty();
            match &entry.kind {
                EntryKind::Symlink { target } if !is_final || follow_final_symlink => {
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
                EntryKind::Dir => starts.push(start),
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
        let entry = self.get(&real).ok_or_else(not_found)?;
        let EntryKind::File {
            size,
            source: TarData { tar, offset },
        } = &entry.kind
        else {
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
    /// [`Entry::copy_to`] turns an entry into writer input whose data stays in its layer tar.
    pub fn walk<'v>(&'v self, dir: &str) -> impl Iterator<Item = &'v Entry<TarData>> + 'v {
        self.below(dir.trim_matches('/')).map(|e| &e.0)
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
