//! `.dockerignore`: reading the file and deciding which context paths a build leaves out,
//! exactly as `docker build` with BuildKit does.
//!
//! Owns: the file format (moby/patternmatcher's `ignorefile.ReadAll`: BOM, `#` comments,
//! trimming, `!` re-includes, `filepath.Clean`, leading `/` dropped), pattern syntax and
//! matching (`pattern`, `goregex`), the exclusion decision of BuildKit's context transfer
//! (tonistiigi/fsutil's walker over patternmatcher: `MatchesUsingParentResults` per directory
//! level plus its rule for not descending into excluded directories), and which ignore file
//! applies. Must not: read files, walk directories or hash anything.
//!
//! Semantics, in short: patterns are tried in order and the last one that matches a path or
//! one of its parent directories decides (a `!` pattern re-includes). One refinement comes from
//! the walker: once a pattern has been skipped for a directory (an exclude pattern while the
//! directory was already excluded, or a `!` pattern while it was included), its verdict for
//! that directory counts as "no match" for everything below. And an excluded directory is not
//! entered at all when no `!` pattern could re-include something below it; then everything
//! below is excluded whatever later patterns say.
//!
//! Divergence, on purpose: a pattern Go's regexp would reject (such as `[z-a]`) fails
//! [`IgnoreFile::parse`]; BuildKit only fails once the pattern is first evaluated.
//! Unicode script classes (`\p{Greek}`) inside patterns are rejected as unsupported, and so
//! is a pattern whose regexp would exceed 100,000 states (Go's limit is higher).

mod goregex;
mod pattern;

use std::fmt;
use std::path::{Path, PathBuf};

use pattern::{compile, Matcher};

/// Go's `bufio.Scanner` limit: `ReadAll` fails on a line this long or longer.
const MAX_LINE: usize = 64 * 1024;

/// Characters that make fsutil always descend into excluded directories when they appear in a
/// `!` pattern (after dropping a trailing `/**` or `/*`).
const GLOB_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

/// A parsed `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreFile {
    patterns: Vec<Pattern>,
    has_reincludes: bool,
    descend_always: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern without its `!`.
    text: String,
    reinclude: bool,
    line: usize,
    matcher: Matcher,
    /// For `!` patterns: the text without a trailing `/**` or `/*`.
    reinclude_root: String,
}

/// One pattern as BuildKit receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnorePattern<'a> {
    /// The normalized pattern, without the `!`.
    pub pattern: &'a str,
    /// A `!` pattern: it re-includes what it matches.
    pub reinclude: bool,
    /// 1-based line in the file.
    pub line: usize,
}

/// What is wrong with an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreErrorKind {
    /// A line that is only `!` (or `!/`).
    LoneExclamation,
    /// A pattern that is not valid `filepath.Match` syntax, or that Go's regexp rejects.
    BadPattern { pattern: String, reason: String },
    /// A line of 64 KiB or more (Go's line scanner gives up).
    LineTooLong,
}

impl fmt::Display for IgnoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreErrorKind::LoneExclamation => f.write_str("illegal exclusion pattern: \"!\""),
            IgnoreErrorKind::BadPattern { pattern, reason } => {
                write!(f, "syntax error in pattern {pattern:?}: {reason}")
            }
            IgnoreErrorKind::LineTooLong => f.write_str("line too long (64 KiB or more)"),
        }
    }
}

/// A `.dockerignore` parse failure, located by line and byte range in the file text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct IgnoreError {
    pub kind: IgnoreErrorKind,
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line in the file text.
    pub offset: usize,
    /// Byte length of the line.
    pub len: usize,
}

impl IgnoreError {
    /// A suggestion for fixing the file.
    pub fn help(&self) -> &'static str {
        match self.kind {
            IgnoreErrorKind::LoneExclamation => "follow '!' with the pattern to re-include",
            IgnoreErrorKind::BadPattern { .. } => {
                "patterns use Go filepath.Match syntax: '*', '?', '[...]' (closed, not empty), \
                 '\\' escapes, and '**' for any number of directories"
            }
            IgnoreErrorKind::LineTooLong => "split the line; no path pattern needs 64 KiB",
        }
    }
}

impl miette::Diagnostic for IgnoreError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("kiln::dockerignore"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(IgnoreError::help(self)))
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some("this pattern".to_string()),
            self.offset,
            self.len,
        ))))
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let body = parts.join("/");
    if rooted {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

/// Whether `clean` would change a relative path.
fn needs_clean(path: &str) -> bool {
    path.is_empty()
        || path.starts_with('/')
        || path.ends_with('/')
        || path.contains("//")
        || path.split('/').any(|part| part == "." || part == "..")
}

/// `ignorefile.ReadAll`'s lines: split on `\n`, a trailing `\r` dropped, no empty last line.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        if current.is_empty() {
            rest = None;
            return None;
        }
        let (line, next) = match current.find('\n') {
            Some(i) => (current.get(..i).unwrap_or(""), current.get(i + 1..)),
            None => (current, None),
        };
        let start = offset;
        offset += line.len() + 1;
        rest = next;
        Some((start, line))
    })
}

impl IgnoreFile {
    /// Parse `.dockerignore` text.
    pub fn parse(text: &str) -> Result<IgnoreFile, IgnoreError> {
        let mut patterns = Vec::new();
        for (index, (offset, line)) in lines(text).enumerate() {
            let number = index + 1;
            let error = |kind| IgnoreError {
                kind,
                line: number,
                offset,
                len: line.len(),
            };
            if line.len() >= MAX_LINE {
                return Err(error(IgnoreErrorKind::LineTooLong));
            }
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = if index == 0 {
                line.strip_prefix('\u{FEFF}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            // ReadAll's normalization...
            let (invert, body) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            let mut normalized = String::new();
            if invert {
                normalized.push('!');
            }
            if !body.is_empty() {
                let cleaned = clean(body);
                let cleaned = match cleaned.strip_prefix('/') {
                    Some(relative) if !relative.is_empty() => relative,
                    _ => cleaned.as_str(),
                };
                normalized.push_str(cleaned);
            }
            // ...then patternmatcher.New's, which cleans once more (`!/` becomes `!`).
            let normalized = clean(normalized.trim());
            let (reinclude, text) = match normalized.strip_prefix('!') {
                Some("") => return Err(error(IgnoreErrorKind::LoneExclamation)),
                Some(rest) => (true, rest),
                None => (false, normalized.as_str()),
            };
            let bad = |reason: String| {
                error(IgnoreErrorKind::BadPattern {
                    pattern: text.to_string(),
                    reason,
                })
            };
            crate::glob::check_syntax(text).map_err(|e| bad(e.reason.to_string()))?;
            let matcher = compile(text).map_err(bad)?;
            let reinclude_root = text.strip_suffix("/**").unwrap_or(text);
            let reinclude_root = reinclude_root
                .strip_suffix("/*")
                .unwrap_or(reinclude_root)
                .to_string();
            patterns.push(Pattern {
                text: text.to_string(),
                reinclude,
                line: number,
                matcher,
                reinclude_root,
            });
        }
        let has_reincludes = patterns.iter().any(|p| p.reinclude);
        let descend_always = patterns
            .iter()
            .any(|p| p.reinclude && p.reinclude_root.contains(GLOB_CHARS));
        Ok(IgnoreFile {
            patterns,
            has_reincludes,
            descend_always,
        })
    }

    /// The patterns in file order, normalized as BuildKit receives them.
    pub fn patterns(&self) -> impl Iterator<Item = IgnorePattern<'_>> {
        self.patterns.iter().map(|p| IgnorePattern {
            pattern: &p.text,
            reinclude: p.reinclude,
            line: p.line,
        })
    }

    /// No patterns at all: nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some `!` pattern exists (patternmatcher's `Exclusions()`): only then can an
    /// excluded directory hold something that is sent.
    pub fn has_exclusions(&self) -> bool {
        self.has_reincludes
    }

    /// Is this context-relative path (`/`-separated, like `src/main.rs`) left out of the build
    /// context? A directory for which this is true is still created in the context when
    /// something below it is kept (the walker emits it as a parent).
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let cleaned;
        let path = if needs_clean(rel_path) {
            cleaned = clean(rel_path.trim_start_matches('/'));
            cleaned.as_str()
        } else {
            rel_path
        };
        if path == "." {
            return false;
        }
        let depth = path.bytes().filter(|&b| b == b'/').count() + 1;
        let ends_of = |ends: &mut [usize]| {
            let slashes = path
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'/')
                .map(|(i, _)| i);
            for (slot, end) in ends.iter_mut().zip(slashes.chain([path.len()])) {
                *slot = end;
            }
        };
        if depth <= 64 {
            let mut ends = [0usize; 64];
            let ends = ends.get_mut(..depth).unwrap_or(&mut []);
            ends_of(ends);
            self.decide(path, ends, &mut [0u64], &mut [0u64])
        } else {
            let mut ends = vec![0usize; depth];
            ends_of(&mut ends);
            let words = depth.div_ceil(64);
            self.decide(path, &ends, &mut vec![0u64; words], &mut vec![0u64; words])
        }
    }

    /// The verdict for the whole `path` whose levels end at `ends`, with scratch bit sets of
    /// one bit per level.
    fn decide(&self, path: &str, ends: &[usize], matched: &mut [u64], mask: &mut [u64]) -> bool {
        let get =
            |bits: &[u64], k: usize| bits.get(k / 64).is_some_and(|w| w & (1 << (k % 64)) != 0);
        let put = |bits: &mut [u64], k: usize, on: bool| {
            if let Some(w) = bits.get_mut(k / 64) {
                if on {
                    *w |= 1 << (k % 64);
                } else {
                    *w &= !(1 << (k % 64));
                }
            }
        };
        for pattern in &self.patterns {
            let mut mask_ready = false;
            // Did this pattern match the parent level (as the walker recorded it)?
            let mut parent = false;
            for k in 0..ends.len() {
                let mut hit = parent;
                if !hit {
                    // Skipped: an exclude pattern while already excluded, a `!` pattern while
                    // included. A skipped pattern records "no match" for this level.
                    if pattern.reinclude != get(matched, k) {
                        parent = false;
                        continue;
                    }
                    if !mask_ready {
                        mask.fill(0);
                        pattern.matcher.level_mask(path, ends, mask);
                        mask_ready = true;
                    }
                    hit = get(mask, k);
                }
                parent = hit;
                if hit {
                    put(matched, k, !pattern.reinclude);
                }
            }
        }
        let Some((&last, parents)) = ends.split_last() else {
            return false;
        };
        let _ = last;
        let last_level = parents.len();
        if get(matched, last_level) {
            return true;
        }
        parents.iter().enumerate().any(|(k, &end)| {
            get(matched, k) && !self.may_reinclude_below(path.get(..end).unwrap_or(""))
        })
    }

    /// For an excluded directory: must a walker still descend into it, because a `!` pattern
    /// may re-include something below? (fsutil's rule: always when some `!` pattern has
    /// wildcards, otherwise only when a `!` pattern names this directory or lies below it.)
    /// When this is false, [`IgnoreFile::is_excluded`] is true for everything below `rel_dir`.
    pub fn may_reinclude_below(&self, rel_dir: &str) -> bool {
        if self.descend_always {
            return true;
        }
        if !self.has_reincludes {
            return false;
        }
        let dir = rel_dir.trim_matches('/');
        self.patterns.iter().filter(|p| p.reinclude).any(|p| {
            let root = p.reinclude_root.as_str();
            root.starts_with(dir)
                && (root.len() == dir.len() || root.as_bytes().get(dir.len()) == Some(&b'/'))
        })
    }
}

/// The ignore files that may apply to a build, in order of precedence: the first that exists
/// wins, even when empty. `<Dockerfile>.dockerignore` sits next to the Dockerfile and is named
/// after the Dockerfile as requested (`Dockerfile.dockerignore` even when the file found was
/// `dockerfile`); `.dockerignore` sits in the context root.
pub fn ignore_file_candidates(dockerfile: &Path, context_dir: &Path) -> [PathBuf; 2] {
    let mut beside = dockerfile.as_os_str().to_owned();
    beside.push(".dockerignore");
    [PathBuf::from(beside), context_dir.join(".dockerignore")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("a/", "a"),
            ("a//b", "a/b"),
            ("./a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("../a", "../a"),
            ("../../a/..", "../.."),
            ("/../a", "/a"),
            ("/", "/"),
            ("//a", "/a"),
            ("!..", "!.."),
            ("!/", "!"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn lines_follow_go_scanner() {
        let collect = |t: &str| lines(t).map(|(_, l)| l.to_string()).collect::<Vec<_>>();
        assert_eq!(collect(""), Vec::<String>::new());
        assert_eq!(collect("a"), vec!["a"]);
        assert_eq!(collect("a\n"), vec!["a"]);
        assert_eq!(collect("a\n\nb"), vec!["a", "", "b"]);
        assert_eq!(collect("\n"), vec![""]);
        let offsets: Vec<usize> = lines("ab\ncd\n").map(|(o, _)| o).collect();
        assert_eq!(offsets, vec![0, 3]);
    }
}
