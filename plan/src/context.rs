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
    /// Files hashed by reading them (not taken from the stat cache) so far.
    pub fresh_hashes: usize,
    by_path: HashMap<String, usize>,
}

impl ContextIndex {
    /// Walk `root` (metadata only), leaving out what `ignore` excludes. Directories are read
    /// in parallel (one lstat per entry, nothing more), then entries are sorted by path.
    pub fn scan(root: &Path, ignore: &IgnoreFile) -> Result<ContextIndex, ContextError> {
        let mut files = scan_dir(root, "", ignore)?;
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i))
            .collect();
        Ok(ContextIndex {
            root: root.to_path_buf(),
            files,
            by_path,
            fresh_hashes: 0,
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
        let hashes: Vec<(usize, [u8; 32], bool)> = todo
            .par_iter()
            .map(|&i| {
                let f = &self.files[i];
                if let Some(h) = cache.lookup(&f.path, &f.stat) {
                    return Ok((i, h, false));
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
                Ok((i, *hasher.finalize().as_bytes(), true))
            })
            .collect::<Result<_, ContextError>>()?;
        for (i, h, fresh) in hashes {
            self.files[i].hash = Some(h);
            self.fresh_hashes += usize::from(fresh);
        }
        Ok(())
    }

    /// The digest of a selection's content (spec v1, docs/cache-keys.md): blake3 over one
    /// record per entry, in path order: `path \0 kind \0 mode(octal) \0 link \0 hash(hex) \n`.
    pub fn content_digest(&self, which: &[usize]) -> Key {
        let mut h = blake3::Hasher::new();
        let mut record = Vec::with_capacity(256);
        for i in sorted_unique(which) {
            record.clear();
            self.write_record(i, &mut record);
            h.update(&record);
        }
        Key(*h.finalize().as_bytes())
    }

    /// Appends entry `i`'s record in the content digest's format
    /// (`path \0 kind \0 mode(octal) \0 link \0 hash(hex) \n`): the one encoding of a context
    /// listing, also used by build records and the provenance's context digest.
    pub fn write_record(&self, i: usize, out: &mut Vec<u8>) {
        use std::io::Write;
        let f = &self.files[i];
        let kind = match f.kind {
            SourceKind::File => "file",
            SourceKind::Dir => "dir",
            SourceKind::Symlink => "symlink",
            SourceKind::Other => "other",
        };
        let link = f.link_target.as_deref().unwrap_or("");
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{}\0{kind}\0{:o}\0{link}\0", f.path, f.mode);
        if let Some(hash) = f.hash {
            out.extend_from_slice(blake3::Hash::from(hash).to_hex().as_bytes());
        }
        out.push(b'\n');
    }

    /// A stat cache recording every hashed file, to be stored for the next build.
    pub fn to_stat_cache(&self, now_secs: i64) -> StatCache {
        let entries = self
            .files
            .iter()
            .filter_map(|f| f.hash.map(|h| (f.path.clone(), (f.stat, h))))
            .collect();
        StatCache {
            written_at: now_secs,
            entries,
        }
    }
}

/// `which` sorted, without duplicates: entries are sorted by path, so index order is path
/// order.
pub fn sorted_unique(which: &[usize]) -> Vec<usize> {
    let mut sorted = which.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// The entries of one directory of the context and everything below it (unsorted).
fn scan_dir(
    root: &Path,
    rel_dir: &str,
    ignore: &IgnoreFile,
) -> Result<Vec<ContextFile>, ContextError> {
    let dir = if rel_dir.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel_dir)
    };
    let walk_err = |path: PathBuf, source: std::io::Error| ContextError::Walk { path, source };
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| walk_err(dir.clone(), e))? {
        let entry = entry.map_err(|e| walk_err(dir.clone(), e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| ContextError::NotUtf8(entry.path()))?;
        let rel = if rel_dir.is_empty() {
            name
        } else {
            format!("{rel_dir}/{name}")
        };
        // The type comes from readdir (d_type), so excluded entries are never stat'ed.
        let is_dir = entry
            .file_type()
            .map_err(|e| walk_err(entry.path(), e))?
            .is_dir();
        // An excluded directory is entered only when a `!` pattern may re-include below it.
        if ignore.is_excluded(&rel) && !(is_dir && ignore.may_reinclude_below(&rel)) {
            continue;
        }
        // DirEntry::metadata is an fstatat relative to the open directory: no path lookup.
        let md = entry.metadata().map_err(|e| walk_err(entry.path(), e))?;
        files.push(context_file(&entry, rel.clone(), &md)?);
        if is_dir {
            subdirs.push(rel);
        }
    }
    // Directories are the unit of parallel work (one task per directory, not per file).
    let below: Vec<Result<Vec<ContextFile>, ContextError>> = subdirs
        .par_iter()
        .map(|rel| scan_dir(root, rel, ignore))
        .collect();
    for b in below {
        files.extend(b?);
    }
    Ok(files)
}

fn context_file(
    entry: &std::fs::DirEntry,
    rel: String,
    md: &std::fs::Metadata,
) -> Result<ContextFile, ContextError> {
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
        let path = entry.path();
        let t = std::fs::read_link(&path).map_err(|source| ContextError::Walk { path, source })?;
        Some(
            t.to_str()
                .ok_or_else(|| ContextError::NotUtf8(t.clone()))?
                .to_string(),
        )
    } else {
        None
    };
    Ok(ContextFile {
        path: rel,
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
    })
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

    fn link_target(&self, path: &str) -> Option<String> {
        self.get(path)?.link_target.clone()
    }
}

/// Hashes from an earlier build, trusted only while a file's size, mtime, ctime, inode and
/// device match, and only for files last modified at least one second before the cache was
/// written (a file changed within that second could change again unseen, as git's racy-clean
/// rule has it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatCache {
    /// Seconds since the epoch when the cache was written.
    pub written_at: i64,
    pub entries: HashMap<String, (Stat, [u8; 32])>,
}

const STAT_CACHE_MAGIC: &[u8; 8] = b"KILNSC1\n";

impl StatCache {
    pub fn lookup(&self, path: &str, stat: &Stat) -> Option<[u8; 32]> {
        let (cached, hash) = self.entries.get(path)?;
        if cached != stat || stat.mtime_ns.div_euclid(1_000_000_000) >= self.written_at {
            return None;
        }
        Some(*hash)
    }

    /// A compact binary encoding (it is read and written on every build): the magic, then
    /// `written_at`, then per entry the path (u32 length + bytes), six u64/i64 stat fields and
    /// the 32-byte hash, all little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 120);
        out.extend_from_slice(STAT_CACHE_MAGIC);
        out.extend_from_slice(&self.written_at.to_le_bytes());
        let mut paths: Vec<&String> = self.entries.keys().collect();
        paths.sort();
        for path in paths {
            let (st, hash) = &self.entries[path];
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path.as_bytes());
            for v in [
                st.size,
                st.mtime_ns as u64,
                st.ctime_ns as u64,
                st.ino,
                st.dev,
                st.nlink,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(hash);
        }
        out
    }

    /// A damaged or foreign cache is treated as empty: it only ever saves work.
    pub fn from_bytes(bytes: &[u8]) -> StatCache {
        Self::decode(bytes).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<StatCache> {
        let mut r = Reader(bytes);
        if r.take(8)? != STAT_CACHE_MAGIC {
            return None;
        }
        let written_at = r.u64()? as i64;
        let mut entries = HashMap::new();
        while !r.0.is_empty() {
            let len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
            let path = std::str::from_utf8(r.take(len)?).ok()?.to_string();
            let stat = Stat {
                size: r.u64()?,
                mtime_ns: r.u64()? as i64,
                ctime_ns: r.u64()? as i64,
                ino: r.u64()?,
                dev: r.u64()?,
                nlink: r.u64()?,
            };
            let hash: [u8; 32] = r.take(32)?.try_into().ok()?;
            entries.insert(path, (stat, hash));
        }
        Some(StatCache {
            written_at,
            entries,
        })
    }
}

struct Reader<'b>(&'b [u8]);

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cache_round_trips_and_rejects_junk() {
        let mut c = StatCache {
            written_at: 1_700_000_000,
            entries: HashMap::new(),
        };
        let st = Stat {
            size: 5,
            mtime_ns: 1_600_000_000_000_000_000,
            ctime_ns: 1,
            ino: 7,
            dev: 8,
            nlink: 1,
        };
        c.entries.insert("a/b.txt".into(), (st, [3u8; 32]));
        let bytes = c.to_bytes();
        assert_eq!(StatCache::from_bytes(&bytes), c);
        assert_eq!(c.lookup("a/b.txt", &st), Some([3u8; 32]));
        assert_eq!(c.lookup("a/b.txt", &Stat { ino: 9, ..st }), None);
        // Modified in the second the cache was written: not trusted.
        let racy = Stat {
            mtime_ns: 1_700_000_000_500_000_000,
            ..st
        };
        c.entries.insert("r".into(), (racy, [1u8; 32]));
        assert_eq!(c.lookup("r", &racy), None);
        assert_eq!(
            StatCache::from_bytes(&bytes[..bytes.len() - 1]),
            StatCache::default()
        );
        assert_eq!(StatCache::from_bytes(b"junk"), StatCache::default());
    }
}
