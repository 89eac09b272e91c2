//! The build context: which files it holds after `.dockerignore`, and their content hashes.
//!
//! Owns walking the context directory (metadata only), hashing selected files in parallel
//! (rayon, streamed or memory-mapped by blake3), and the stat cache that lets a rebuild skip
//! re-hashing unchanged files. What enters cache keys is relative path, type, mode, link
//! target and the blake3 of the contents: never mtimes, inodes, owners or absolute paths
//! (those live only in the stat cache, which decides whether a stored hash can be trusted).
//! Must not: write anywhere. The stat cache is serialized to bytes; the caller stores them.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::copy::{SourceKind, SourceTree};
use crate::dockerignore::IgnoreFile;
use crate::plan::Key;

/// One entry of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Relative, `/`-separated.
    pub path: String,
    pub kind: SourceKind,
    /// Permission bits (incl. setuid/setgid/sticky).
    pub mode: u32,
    pub size: u64,
    pub link_target: Option<String>,
    /// blake3 of the contents (files only), once hashed.
    pub hash: Option<[u8; 32]>,
    pub stat: Stat,
}

/// Host metadata used only to decide whether a cached hash is still valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ContextError {
    #[error("cannot read the build context {path}")]
    #[diagnostic(help("the context must be a readable directory"))]
    Walk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("context path is not valid UTF-8: {0}")]
    NotUtf8(PathBuf),
    #[error("cannot read {path} to hash it")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The build context's entries after `.dockerignore`, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct ContextIndex {
    pub root: PathBuf,
    pub files: Vec<ContextFile>,
    by_path: HashMap<String, usize>,
}

impl ContextIndex {
    /// Walk `root` (metadata only), leaving out what `ignore` excludes.
    pub fn scan(root: &Path, ignore: &IgnoreFile) -> Result<ContextIndex, ContextError> {
        let mut files = Vec::new();
        let mut walk = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by(|a, b| a.file_name().cmp(b.file_name()))
            .min_depth(1)
            .into_iter();
        while let Some(item) = walk.next() {
            let entry = item.map_err(|e| ContextError::Walk {
                path: e.path().unwrap_or(root).to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            })?;
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            let rel = rel
                .to_str()
                .ok_or_else(|| ContextError::NotUtf8(entry.path().to_path_buf()))?;
            let is_dir = entry.file_type().is_dir();
            if ignore.is_excluded(rel) {
                if is_dir && !ignore.may_reinclude_below(rel) {
                    walk.skip_current_dir();
                }
                if !is_dir {
                    continue;
                }
                if !ignore.may_reinclude_below(rel) {
                    continue;
                }
            }
            let md = entry.metadata().map_err(|e| ContextError::Walk {
                path: entry.path().to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("metadata")),
            })?;
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                SourceKind::Dir
            } else if ft.is_file() {
                SourceKind::File
            } else if ft.is_symlink() {
                SourceKind::Symlink
            } else {
                SourceKind::Other
            };
            let link_target = if kind == SourceKind::Symlink {
                let t = std::fs::read_link(entry.path()).map_err(|source| ContextError::Walk {
                    path: entry.path().to_path_buf(),
                    source,
                })?;
                Some(
                    t.to_str()
                        .ok_or_else(|| ContextError::NotUtf8(t.clone()))?
                        .to_string(),
                )
            } else {
                None
            };
            files.push(ContextFile {
                path: rel.to_string(),
                kind,
                mode: md.permissions().mode() & 0o7777,
                size: if kind == SourceKind::File {
                    md.len()
                } else {
                    0
                },
                link_target,
                hash: None,
                stat: Stat {
                    size: md.len(),
                    mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                    ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
                    ino: md.ino(),
                    dev: md.dev(),
                    nlink: md.nlink(),
                },
            });
        }
        // walkdir sorts siblings by name; a full-path bytewise order makes lookups simple.
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i))
            .collect();
        Ok(ContextIndex {
            root: root.to_path_buf(),
            files,
            by_path,
        })
    }

    pub fn get(&self, path: &str) -> Option<&ContextFile> {
        self.by_path.get(path).map(|&i| &self.files[i])
    }

    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    /// Absolute host path of an entry (for reading it; never part of a key).
    pub fn host_path(&self, file: &ContextFile) -> PathBuf {
        self.root.join(&file.path)
    }

    /// Indexes of `path` and everything below it.
    pub fn subtree(&self, path: &str) -> Vec<usize> {
        if path.is_empty() {
            return (0..self.files.len()).collect();
        }
        let Some(&start) = self.by_path.get(path) else {
            return Vec::new();
        };
        let prefix = format!("{path}/");
        let mut out = vec![start];
        // Children sort right after their parent only among paths sharing the prefix.
        let from = self
            .files
            .partition_point(|f| f.path.as_str() < prefix.as_str());
        out.extend(
            self.files[from..]
                .iter()
                .enumerate()
                .take_while(|(_, f)| f.path.starts_with(&prefix))
                .map(|(i, _)| from + i),
        );
        out
    }

    /// Hash the files among `which` that have no hash yet, in parallel, trusting `cache`
    /// for files whose metadata is unchanged.
    pub fn hash(&mut self, which: &[usize], cache: &StatCache) -> Result<(), ContextError> {
        let root = &self.root;
        let todo: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&i| self.files[i].kind == SourceKind::File && self.files[i].hash.is_none())
            .collect();
        let hashes: Vec<(usize, [u8; 32])> = todo
            .par_iter()
            .map(|&i| {
                let f = &self.files[i];
                if let Some(h) = cache.lookup(&f.path, &f.stat) {
                    return Ok((i, h));
                }
                let path = root.join(&f.path);
                let mut hasher = blake3::Hasher::new();
                let res = if f.size >= 1 << 20 {
                    hasher.update_mmap_rayon(&path).map(|_| ())
                } else {
                    std::fs::read(&path).map(|bytes| {
                        hasher.update(&bytes);
                    })
                };
                res.map_err(|source| ContextError::Read {
                    path: path.clone(),
                    source,
                })?;
                Ok((i, *hasher.finalize().as_bytes()))
            })
            .collect::<Result<_, ContextError>>()?;
        for (i, h) in hashes {
            self.files[i].hash = Some(h);
        }
        Ok(())
    }

    /// The digest of a selection's content (spec v1, docs/cache-keys.md): blake3 over one
    /// record per entry, in path order: `path \0 kind \0 mode(octal) \0 link \0 hash(hex) \n`.
    pub fn content_digest(&self, which: &[usize]) -> Key {
        let mut sorted: Vec<usize> = which.to_vec();
        sorted.sort_by(|&a, &b| self.files[a].path.cmp(&self.files[b].path));
        sorted.dedup();
        let mut h = blake3::Hasher::new();
        for i in sorted {
            let f = &self.files[i];
            let kind = match f.kind {
                SourceKind::File => "file",
                SourceKind::Dir => "dir",
                SourceKind::Symlink => "symlink",
                SourceKind::Other => "other",
            };
            h.update(f.path.as_bytes());
            h.update(b"\0");
            h.update(kind.as_bytes());
            h.update(format!("\0{:o}\0", f.mode).as_bytes());
            h.update(f.link_target.as_deref().unwrap_or("").as_bytes());
            h.update(b"\0");
            h.update(f.hash.map(hex::encode).unwrap_or_default().as_bytes());
            h.update(b"\n");
        }
        Key(*h.finalize().as_bytes())
    }

    /// A stat cache recording every hashed file, to be stored for the next build.
    pub fn to_stat_cache(&self, now_secs: i64) -> StatCache {
        let entries = self
            .files
            .iter()
            .filter_map(|f| f.hash.map(|h| (f.path.clone(), (f.stat, hex::encode(h)))))
            .collect();
        StatCache {
            written_at: now_secs,
            entries,
        }
    }
}

impl SourceTree for ContextIndex {
    fn kind(&self, path: &str) -> Option<SourceKind> {
        if path.is_empty() {
            return Some(SourceKind::Dir);
        }
        self.get(path).map(|f| f.kind)
    }

    fn paths_at_depth(&self, depth: usize) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.path.split('/').count() == depth)
            .map(|f| f.path.clone())
            .collect()
    }
}

/// Hashes from an earlier build, trusted only while a file's size, mtime, ctime, inode and
/// device match, and only for files last modified at least one second before the cache was
/// written (a file changed within that second could change again unseen, as git's racy-clean
/// rule has it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatCache {
    /// Seconds since the epoch when the cache was written.
    pub written_at: i64,
    pub entries: HashMap<String, (Stat, String)>,
}

impl StatCache {
    pub fn lookup(&self, path: &str, stat: &Stat) -> Option<[u8; 32]> {
        let (cached, hash) = self.entries.get(path)?;
        if cached != stat || stat.mtime_ns.div_euclid(1_000_000_000) >= self.written_at {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hash, &mut out).ok()?;
        Some(out)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A damaged or foreign cache is treated as empty: it only ever saves work.
    pub fn from_bytes(bytes: &[u8]) -> StatCache {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
}
