//! A stage's filesystem for the builder: the layer module's merged view over the store's
//! uncompressed layers, seen through the compiler's `SourceTree` and the builder's `FsTree`.
//! Must not: write layers.

use kiln_plan::copy::{SourceKind, SourceTree};

use super::copy::{FsTree, Meta, ROOT_META};
use super::{BuildError, LayerRef};
use crate::layer::view::FsView;
use crate::layer::{Entry, EntryKind, TarData};
use crate::store::Store;

/// The merged filesystem of a stack of layers (empty for none).
#[derive(Debug, Default)]
pub struct LayerTree {
    view: FsView,
}

impl LayerTree {
    pub fn open(store: &Store, layers: &[LayerRef]) -> Result<LayerTree, BuildError> {
        if layers.is_empty() {
            return Ok(LayerTree::default());
        }
        let paths = layers
            .iter()
            .map(|l| store.uncompressed_layer(&l.diff_id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LayerTree {
            view: FsView::from_layers(&paths)?,
        })
    }

    /// A small text file of the image (passwd, group), when present and readable.
    /// The merged view itself.
    pub fn view(&self) -> &crate::layer::FsView {
        &self.view
    }

    pub fn read_text(&self, path: &str) -> Option<String> {
        let resolved = self.view.resolve(path, true)?;
        let bytes = self.view.read_file(&resolved).ok()?;
        String::from_utf8(bytes).ok()
    }

    /// Entries that turn `lower` into this tree: changed or new paths, and whiteouts for
    /// paths `lower` has and this tree does not (for `--squash`).
    pub fn diff_entries(&self, lower: &LayerTree) -> Vec<Entry> {
        let mut out = Vec::new();
        for entry in self.view.walk("") {
            if lower.view.get(&entry.path) != Some(entry) {
                out.push(entry.copy_to(entry.path.clone()));
            }
        }
        for entry in lower.view.walk("") {
            let path = entry.path.as_str();
            if self.view.get(path).is_none() {
                let parent_gone = path
                    .rsplit_once('/')
                    .is_some_and(|(p, _)| self.view.get(p).is_none());
                if !parent_gone {
                    out.push(Entry {
                        path: path.to_string(),
                        kind: EntryKind::Whiteout,
                        mode: 0,
                        uid: 0,
                        gid: 0,
                        mtime: entry.mtime,
                        xattrs: Vec::new(),
                    });
                }
            }
        }
        out
    }
}

fn kind_of(e: &Entry<TarData>) -> SourceKind {
    match e.kind {
        EntryKind::Dir => SourceKind::Dir,
        EntryKind::File { .. } => SourceKind::File,
        EntryKind::Symlink { .. } => SourceKind::Symlink,
        _ => SourceKind::Other,
    }
}

impl SourceTree for LayerTree {
    fn kind(&self, path: &str) -> Option<SourceKind> {
        if path.is_empty() {
            return Some(SourceKind::Dir);
        }
        self.view.get(path).map(kind_of)
    }

    fn link_target(&self, path: &str) -> Option<String> {
        match &self.view.get(path)?.kind {
            EntryKind::Symlink { target } => Some(target.clone()),
            _ => None,
        }
    }

    fn paths_at_depth(&self, depth: usize) -> Vec<String> {
        self.view
            .walk("")
            .filter(|e| e.path.split('/').count() == depth)
            .map(|e| e.path.clone())
            .collect()
    }
}

impl FsTree for LayerTree {
    fn meta(&self, path: &str) -> Option<Meta> {
        if path.is_empty() {
            return Some(ROOT_META);
        }
        self.view.get(path).map(|e| Meta {
            kind: kind_of(e),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
        })
    }

    fn descendants(&self, dir: &str) -> Vec<String> {
        self.view.walk(dir).map(|e| e.path.clone()).collect()
    }

    fn entry(&self, path: &str, dest: String) -> Result<Option<Entry>, BuildError> {
        Ok(self.view.get(path).map(|e| e.copy_to(dest)))
    }
}
