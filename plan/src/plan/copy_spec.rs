//! The parsed values a COPY/ADD node carries, so the builder acts on them without reading
//! any text again: classified sources, `--chmod`, `--chown` and `--exclude`.
//!
//! Owns: the syntax of these flag values (checked once, when the Dockerfile is lowered, with
//! errors at the instruction), applying a `--chmod` to a mode, and the one rule for which
//! paths an `--exclude` leaves out. Each value keeps the text it was parsed from and
//! serializes as that text, so plan JSON and cache keys (docs/cache-keys.md) read as before.
//! Must not: look up user or group names (the builder does that in the image's own
//! /etc/passwd and /etc/group) or read any filesystem.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::dockerignore::{IgnoreError, IgnoreFile};

/// One COPY/ADD source after variable expansion (heredoc sources are the op's `inline`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// An `http://` or `https://` URL (ADD only; the planner refuses it for COPY).
    Url(String),
    /// A path or `filepath.Match` pattern in the source filesystem, syntax already checked.
    Path(SourcePath),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath {
    /// As written (after expansion): what keys and history show.
    pub written: String,
    /// Cleaned (`crate::copy::clean`): relative, `.`/`..` resolved, "" for the root.
    pub cleaned: String,
    /// Whether `cleaned` has wildcards (`*`, `?`, `[`).
    pub wildcard: bool,
}

impl CopySource {
    /// Classify one expanded source: a URL, or a path whose wildcards must be well-formed.
    pub fn parse(written: &str) -> Result<CopySource, crate::glob::BadPattern> {
        if crate::copy::is_url(written) {
            return Ok(CopySource::Url(written.to_string()));
        }
        let cleaned = crate::copy::clean(written);
        let wildcard = crate::copy::has_wildcard(&cleaned);
        if wildcard {
            crate::glob::check_syntax(&cleaned)?;
        }
        Ok(CopySource::Path(SourcePath {
            written: written.to_string(),
            cleaned,
            wildcard,
        }))
    }

    /// The source as written.
    pub fn as_str(&self) -> &str {
        match self {
            CopySource::Url(u) => u,
            CopySource::Path(p) => &p.written,
        }
    }

    pub fn url(&self) -> Option<&str> {
        match self {
            CopySource::Url(u) => Some(u),
            CopySource::Path(_) => None,
        }
    }

    pub fn path(&self) -> Option<&SourcePath> {
        match self {
            CopySource::Url(_) => None,
            CopySource::Path(p) => Some(p),
        }
    }
}

impl Serialize for CopySource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A `--chmod` value: an octal mode, or symbolic clauses (`u+x,go-w`) applied to each
/// entry's own mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chmod {
    text: String,
    mode: ChmodMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ChmodMode {
    Octal(u32),
    Symbolic(Vec<ChmodClause>),
}

/// `[ugoa]*` then one or more `[+-=][rwxXst]*` actions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChmodClause {
    /// The bits the clause may touch (from `u`, `g`, `o`, `a`; all of them when none is given).
    who: u32,
    actions: Vec<ChmodAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChmodAction {
    op: ChmodOp,
    /// r, w, x, s, t bits (before masking with `who`).
    bits: u32,
    /// `X`: execute only for directories and for files already executable by someone.
    conditional_x: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChmodOp {
    Add,
    Remove,
    Set,
}

/// A `--chmod` value that is neither an octal mode up to 7777 nor symbolic clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChmod(pub String);

impl fmt::Display for BadChmod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid chmod value {:?}", self.0)
    }
}

impl Chmod {
    pub fn parse(text: &str) -> Result<Chmod, BadChmod> {
        let bad = || BadChmod(text.to_string());
        if text.is_empty() {
            return Err(bad());
        }
        let mode = if text.bytes().all(|b| matches!(b, b'0'..=b'7')) {
            match u32::from_str_radix(text, 8) {
                Ok(m) if m <= 0o7777 => ChmodMode::Octal(m),
                _ => return Err(bad()),
            }
        } else {
            let clauses = text
                .split(',')
                .map(parse_clause)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            ChmodMode::Symbolic(clauses)
        };
        Ok(Chmod {
            text: text.to_string(),
            mode,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The mode an entry with `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match &self.mode {
            ChmodMode::Octal(m) => *m,
            ChmodMode::Symbolic(clauses) => clauses
                .iter()
                .fold(mode, |m, clause| clause.apply(m, is_dir)),
        }
    }
}

fn parse_clause(clause: &str) -> Option<ChmodClause> {
    let who_end = clause.find(['+', '-', '=']).unwrap_or(clause.len());
    let (who_text, mut rest) = clause.split_at(who_end);
    let mut who = 0u32;
    for c in who_text.chars() {
        who |= match c {
            'u' => 0o4700,
            'g' => 0o2070,
            'o' => 0o1007,
            'a' => 0o7777,
            _ => return None,
        };
    }
    if who_text.is_empty() {
        who = 0o7777;
    }
    let mut actions = Vec::new();
    while let Some(op_char) = rest.chars().next() {
        let op = match op_char {
            '+' => ChmodOp::Add,
            '-' => ChmodOp::Remove,
            '=' => ChmodOp::Set,
            _ => return None,
        };
        let perms_text = &rest[1..];
        let perms_end = perms_text.find(['+', '-', '=']).unwrap_or(perms_text.len());
        let (perms, next) = perms_text.split_at(perms_end);
        let mut action = ChmodAction {
            op,
            bits: 0,
            conditional_x: false,
        };
        for p in perms.chars() {
            match p {
                'r' => action.bits |= 0o444,
                'w' => action.bits |= 0o222,
                'x' => action.bits |= 0o111,
                'X' => action.conditional_x = true,
                's' => action.bits |= 0o6000,
                't' => action.bits |= 0o1000,
                _ => return None,
            }
        }
        actions.push(action);
        rest = next;
    }
    if actions.is_empty() {
        return None;
    }
    Some(ChmodClause { who, actions })
}

impl ChmodClause {
    fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        self.actions.iter().fold(mode, |mode, a| {
            let x = if a.conditional_x && (is_dir || mode & 0o111 != 0) {
                0o111
            } else {
                0
            };
            let bits = (a.bits | x) & self.who;
            match a.op {
                ChmodOp::Add => mode | bits,
                ChmodOp::Remove => mode & !bits,
                ChmodOp::Set => (mode & !(self.who & 0o7777)) | bits,
            }
        })
    }
}

impl Serialize for Chmod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A `--chown` value, `user[:group]`, each part a numeric id or a name the builder looks up
/// in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chown {
    text: String,
    pub user: OwnerId,
    pub group: Option<OwnerId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerId {
    Numeric(u64),
    Name(String),
}

impl OwnerId {
    fn parse(s: &str) -> OwnerId {
        match s.parse::<u64>() {
            Ok(id) => OwnerId::Numeric(id),
            Err(_) => OwnerId::Name(s.to_string()),
        }
    }
}

/// A `--chown` value with an empty user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChown(pub String);

impl fmt::Display for BadChown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid --chown value {:?}", self.0)
    }
}

impl Chown {
    pub fn parse(text: &str) -> Result<Chown, BadChown> {
        let (user, group) = match text.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (text, None),
        };
        if user.is_empty() || group == Some("") {
            return Err(BadChown(text.to_string()));
        }
        Ok(Chown {
            text: text.to_string(),
            user: OwnerId::parse(user),
            group: group.map(OwnerId::parse),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Serialize for Chown {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// `--exclude` patterns (`.dockerignore` syntax), compiled once.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<String>,
    matcher: Option<Arc<IgnoreFile>>,
}

impl Excludes {
    /// Compile the patterns; none gives an `Excludes` that leaves nothing out.
    pub fn parse(patterns: Vec<String>) -> Result<Excludes, IgnoreError> {
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(Arc::new(IgnoreFile::parse(&patterns.join("\n"))?))
        };
        Ok(Excludes { patterns, matcher })
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a COPY leaves out the entry at `path` (in the source tree), found under a
    /// selected source as `within_source` (relative to it; "" for the source itself): a
    /// pattern may name either.
    pub fn excludes(&self, path: &str, within_source: &str) -> bool {
        match &self.matcher {
            None => false,
            Some(m) => {
                m.is_excluded(path) || (!within_source.is_empty() && m.is_excluded(within_source))
            }
        }
    }
}

impl PartialEq for Excludes {
    fn eq(&self, other: &Excludes) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for Excludes {}

impl Serialize for Excludes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.patterns.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(s: &str) -> Chmod {
        Chmod::parse(s).unwrap()
    }

    #[test]
    fn chmod_forms() {
        assert_eq!(chmod("0755").apply(0o644, false), 0o755);
        assert_eq!(chmod("755").apply(0o644, true), 0o755);
        assert_eq!(chmod("u+x").apply(0o644, false), 0o744);
        assert_eq!(chmod("go-w").apply(0o666, false), 0o644);
        assert_eq!(chmod("a=r").apply(0o777, false), 0o444);
        assert_eq!(chmod("+X").apply(0o644, true), 0o755);
        assert_eq!(chmod("+X").apply(0o644, false), 0o644);
        assert_eq!(chmod("+X").apply(0o744, false), 0o755);
        assert_eq!(chmod("u=rwx,g=rx,o=").apply(0o600, false), 0o750);
        assert_eq!(chmod("u+s").apply(0o755, false), 0o4755);
        assert_eq!(chmod("+t").apply(0o777, true), 0o1777);
        assert_eq!(chmod("u+x-w").apply(0o644, false), 0o544);
    }

    #[test]
    fn chmod_refuses_what_is_not_a_mode() {
        for bad in [
            "", "8", "17777", "u", "u+q", "z+x", "u+x,", ",u+x", "0o755", "rwx",
        ] {
            assert_eq!(Chmod::parse(bad), Err(BadChmod(bad.to_string())), "{bad:?}");
        }
    }

    #[test]
    fn chown_parts() {
        let c = Chown::parse("1000:staff").unwrap();
        assert_eq!(c.user, OwnerId::Numeric(1000));
        assert_eq!(c.group, Some(OwnerId::Name("staff".into())));
        assert_eq!(c.as_str(), "1000:staff");
        assert_eq!(Chown::parse("app").unwrap().group, None);
        for bad in ["", ":x", "x:", ":"] {
            assert!(Chown::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sources_are_classified_and_checked() {
        assert_eq!(
            CopySource::parse("https://example.com/a.tgz"),
            Ok(CopySource::Url("https://example.com/a.tgz".into()))
        );
        let p = CopySource::parse("./src/../*.rs").unwrap();
        assert_eq!(p.as_str(), "./src/../*.rs");
        assert_eq!(
            p.path().map(|p| (p.cleaned.as_str(), p.wildcard)),
            Some(("*.rs", true))
        );
        assert!(CopySource::parse("a[").is_err());
        assert!(CopySource::parse("[]a]").is_err());
    }

    #[test]
    fn values_serialize_as_written() {
        let json = serde_json::json!({
            "chmod": chmod("u+x"),
            "chown": Chown::parse("app:app").unwrap(),
            "sources": [CopySource::parse("./a").unwrap()],
            "excludes": Excludes::parse(vec!["*.md".into()]).unwrap(),
        });
        assert_eq!(
            json.to_string(),
            r#"{"chmod":"u+x","chown":"app:app","excludes":["*.md"],"sources":["./a"]}"#
        );
    }

    #[test]
    fn excludes_match_the_path_or_the_path_within_the_source() {
        let x = Excludes::parse(vec!["*.md".into(), "dir/keep/secret".into()]).unwrap();
        assert!(x.excludes("README.md", ""));
        assert!(x.excludes("dir/notes.md", "notes.md"));
        assert!(!x.excludes("dir/notes.md", ""));
        assert!(x.excludes("dir/keep/secret", "keep/secret"));
        assert!(!x.excludes("dir/main.rs", "main.rs"));
        assert!(!Excludes::default().excludes("a", "a"));
    }
}
