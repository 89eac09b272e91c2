//! COPY/ADD source selection and destination mapping, shared by the planner (over the build
//! context) and the builder (over a stage's filesystem), so both read sources the same way.
//!
//! Owns: cleaning source paths (clamped to the root), selecting sources with Go's
//! `filepath.Match` wildcards (`crate::glob`), and where each selected path lands under the
//! destination.
//! Must not: read files or know about layers.

use std::fmt;

use crate::glob::glob_match;
use crate::plan::SourcePath;

/// What a path in a source tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A tree COPY reads from: the build context or a stage's filesystem.
pub trait SourceTree {
    /// The kind of the entry at `path` (clean, relative, "" is the root), symlinks not followed.
    fn kind(&self, path: &str) -> Option<SourceKind>;
    /// All paths of the tree with `depth` components (for wildcard matching), in sorted order.
    fn paths_at_depth(&self, depth: usize) -> Vec<String>;
    /// The target of the symlink at `path`, as stored.
    fn link_target(&self, path: &str) -> Option<String>;
}

/// Follow symlinks at `path` (and in its parents' targets) inside the tree, the way BuildKit
/// follows a COPY source: relative targets from the link's directory, absolute ones from the
/// tree's root, `..` clamped at the root, at most 40 links. None for a dangling link or a loop.
pub fn follow_symlinks(tree: &dyn SourceTree, path: &str) -> Option<String> {
    let mut current = clean(path);
    for _ in 0..40 {
        match tree.kind(&current) {
            Some(SourceKind::Symlink) => {
                let target = tree.link_target(&current)?;
                let base = if target.starts_with('/') {
                    String::new()
                } else {
                    current
                        .rsplit_once('/')
                        .map(|(d, _)| d.to_string())
                        .unwrap_or_default()
                };
                current = clean(&format!("{base}/{target}"));
            }
            Some(_) => return Some(current),
            None => return None,
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyError {
    /// A literal source that does not exist.
    NotFound(String),
    BadPattern(String),
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyError::NotFound(p) => write!(f, "\"/{p}\": not found"),
            CopyError::BadPattern(p) => write!(f, "syntax error in pattern {p:?}"),
        }
    }
}

/// Clean a source path as BuildKit does: resolve `.` and `..` lexically, clamping at the
/// root, drop leading `/`. The root itself is "".
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Join a destination with a working directory and clean it, keeping a trailing `/`.
pub fn absolute_dest(workdir: &str, dest: &str) -> String {
    let dir_hint = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty();
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let c = clean(&joined);
    match (c.is_empty(), dir_hint) {
        (true, _) => "/".to_string(),
        (false, true) => format!("/{c}/"),
        (false, false) => format!("/{c}"),
    }
}

pub fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// A COPY/ADD source that ADD downloads rather than reads from a tree.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Resolve source paths against a tree: every literal source must exist; a wildcard may
/// match nothing (BuildKit copies with AllowEmptyWildcard, so `docker build` accepts it).
/// Returns clean paths in order, without duplicates.
pub fn select_sources(
    tree: &dyn SourceTree,
    sources: &[&SourcePath],
) -> Result<Vec<String>, CopyError> {
    let mut out: Vec<String> = Vec::new();
    for src in sources {
        let c = &src.cleaned;
        if src.wildcard {
            let depth = c.split('/').count();
            for p in tree.paths_at_depth(depth) {
                let matched =
                    glob_match(c, &p).map_err(|_| CopyError::BadPattern(src.written.clone()))?;
                if matched && !out.contains(&p) {
                    out.push(p);
                }
            }
        } else {
            if tree.kind(c).is_none() {
                return Err(CopyError::NotFound(c.clone()));
            }
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    Ok(out)
}

/// Where a selected source lands. `dest` is absolute (from [`absolute_dest`]);
/// `dest_is_dir` says whether the destination must be treated as a directory: it ends with
/// `/`, there are several sources or wildcards, or it already is a directory in the image.
/// A directory source copies its contents into the destination itself.
pub fn dest_for(source: &str, source_is_dir: bool, dest: &str, dest_is_dir: bool) -> String {
    let base = dest.trim_end_matches('/');
    if source_is_dir {
        return if base.is_empty() {
            "/".into()
        } else {
            base.into()
        };
    }
    if dest_is_dir {
        let name = source.rsplit('/').next().unwrap_or(source);
        format!("{base}/{name}")
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps_to_root() {
        assert_eq!(clean("/a/../../b/./c/"), "b/c");
        assert_eq!(clean("../.."), "");
        assert_eq!(clean("."), "");
    }

    #[test]
    fn destinations() {
        assert_eq!(absolute_dest("/", "app"), "/app");
        assert_eq!(absolute_dest("/srv", "app/"), "/srv/app/");
        assert_eq!(absolute_dest("/srv", "."), "/srv/");
        assert_eq!(absolute_dest("/", "/"), "/");
        assert_eq!(dest_for("dir/f.txt", false, "/app/", true), "/app/f.txt");
        assert_eq!(dest_for("f.txt", false, "/app", false), "/app");
        assert_eq!(dest_for("dir", true, "/app", false), "/app");
        assert_eq!(dest_for("dir", true, "/", true), "/");
    }
}
