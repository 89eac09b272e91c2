//! COPY/ADD source selection and destination mapping, shared by the planner (over the build
//! context) and the builder (over a stage's filesystem), so both read sources the same way.
//!
//! Owns: cleaning source paths (clamped to the root), wildcard matching with Go's
//! `filepath.Match` syntax, and where each selected path lands under the destination.
//! Must not: read files or know about layers.

use std::fmt;

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

/// Resolve source patterns against a tree: every literal source must exist; a wildcard may
/// match nothing (BuildKit copies with AllowEmptyWildcard, so `docker build` accepts it).
/// Returns clean paths in order, without duplicates.
pub fn select_sources(tree: &dyn SourceTree, sources: &[String]) -> Result<Vec<String>, CopyError> {
    let mut out: Vec<String> = Vec::new();
    for src in sources {
        let c = clean(src);
        if has_wildcard(&c) {
            let depth = c.split('/').count();
            for p in tree.paths_at_depth(depth) {
                let matched = glob_match(&c, &p).map_err(|_| CopyError::BadPattern(src.clone()))?;
                if matched && !out.contains(&p) {
                    out.push(p);
                }
            }
        } else {
            if tree.kind(&c).is_none() {
                return Err(CopyError::NotFound(c));
            }
            if !out.contains(&c) {
                out.push(c);
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

/// A malformed wildcard pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `path/filepath.Match` on `/`-separated paths: `*` and `?` never match `/`,
/// `[...]` classes with ranges and `^` negation, `\` escapes. Err on a malformed pattern.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, BadPattern> {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    let (matched, next) = match_class(p, pi, n.get(ni).copied())?;
                    if matched {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    let lit = *p.get(pi + 1).ok_or(BadPattern)?;
                    if n.get(ni) == Some(&lit) {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && n.get(ni) == Some(&c) => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Mismatch: let the last star eat one more character (never a separator).
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => {
                // Go reports malformed patterns even on mismatch; check the rest.
                validate(&p[pi.min(p.len())..])?;
                return Ok(false);
            }
        }
    }
}

/// Match a `[...]` class starting at `p[start] == '['` against `c`.
/// Returns (matched, index after the class).
fn match_class(p: &[char], start: usize, c: Option<char>) -> Result<(bool, usize), BadPattern> {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i).ok_or(BadPattern)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = class_char(p, &mut i)?;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            i += 1;
            class_char(p, &mut i)?
        } else {
            lo
        };
        if let Some(c) = c {
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    match c {
        Some(c) if c != '/' => Ok((matched != negate, i)),
        _ => Ok((false, i)),
    }
}

fn class_char(p: &[char], i: &mut usize) -> Result<char, BadPattern> {
    let mut ch = *p.get(*i).ok_or(BadPattern)?;
    if ch == '\\' {
        *i += 1;
        ch = *p.get(*i).ok_or(BadPattern)?;
    }
    *i += 1;
    Ok(ch)
}

fn validate(p: &[char]) -> Result<(), BadPattern> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(BadPattern);
                }
                i += 2;
            }
            '[' => {
                let (_, next) = match_class(p, i, None)?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_cases() {
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("*.txt", "notes.txt", true),
            ("src/*.rs", "src/main.rs", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n), Ok(want), "{p} vs {n}");
        }
        assert!(glob_match("[", "a").is_err());
        assert!(glob_match("a[", "a").is_err());
        assert!(glob_match("\\", "a").is_err());
    }

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
