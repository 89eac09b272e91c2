//! One `.dockerignore` pattern: moby/patternmatcher's conversion of a pattern into a matcher
//! (exact, prefix, suffix or regexp). The `filepath.Match` syntax check is `crate::glob`'s.
//!
//! The conversion, like patternmatcher's: `*` is `[^/]*`, `?` is `[^/]`, `**` (plus an
//! immediately following `/`) is `(.*/)?`, a trailing `**` is "anything" (a plain prefix test
//! when nothing before it was special), a leading `**` with nothing special after it is a
//! suffix test (so `**foo` also matches `barfoo`), `\x` and `[...]` are passed to Go's regexp
//! as written, and `.+()$` are escaped (`|{}` are meant to be, but are not: so `a|b` is an
//! alternation and `x{2}` a repetition, as in Docker).

use super::goregex::Regex;

/// How a compiled pattern decides whether a path matches.
#[derive(Debug, Clone)]
pub(super) enum Matcher {
    /// The path equals the pattern.
    Exact(Box<[u8]>),
    /// The path starts with the pattern minus its trailing `**`.
    Prefix(Box<[u8]>),
    /// The path ends with the pattern minus its leading `**` (or equals it minus a `/`).
    Suffix(Box<[u8]>),
    Regex(Box<Regex>),
}

/// Compile a cleaned pattern (without its `!`) as patternmatcher does.
pub(super) fn compile(cleaned: &str) -> Result<Matcher, String> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut source = String::with_capacity(cleaned.len() * 2 + 2);
    source.push('^');
    let mut kind = Kind::Exact;
    // Go's text/scanner skips a byte-order mark that opens the pattern.
    let body = cleaned.strip_prefix('\u{FEFF}').unwrap_or(cleaned);
    let mut chars = body.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        source.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    source.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                source.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                source.push_str("[^/]");
                kind = Kind::Regex;
            }
            // patternmatcher means to escape `.+()|{}$`, but its bitmap loses every byte
            // from 64 up, so `|`, `{` and `}` reach the regexp unescaped.
            '.' | '+' | '(' | ')' | '$' => {
                source.push('\\');
                source.push(c);
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    source.push('\\');
                    source.push(escaped);
                    kind = Kind::Regex;
                }
                None => source.push('\\'),
            },
            '[' | ']' => {
                source.push(c);
                kind = Kind::Regex;
            }
            _ => source.push(c),
        }
        first = false;
    }
    let bytes = cleaned.as_bytes();
    Ok(match kind {
        Kind::Exact => Matcher::Exact(bytes.into()),
        Kind::Prefix => Matcher::Prefix(
            bytes
                .get(..bytes.len().saturating_sub(2))
                .unwrap_or(&[])
                .into(),
        ),
        Kind::Suffix => Matcher::Suffix(bytes.get(2..).unwrap_or(&[]).into()),
        Kind::Regex => {
            source.push('$');
            Matcher::Regex(Box::new(Regex::new(&source)?))
        }
    })
}

fn set_bit(bits: &mut [u64], level: usize) {
    if let Some(w) = bits.get_mut(level / 64) {
        *w |= 1 << (level % 64);
    }
}

impl Matcher {
    /// Whether the whole of `path` matches.
    #[cfg(test)]
    pub(super) fn matches(&self, path: &str) -> bool {
        let ends = [path.len()];
        let mut bits = [0u64];
        self.level_mask(path, &ends, &mut bits);
        bits[0] & 1 != 0
    }

    /// Set bit `k` of `out` when `path[..ends[k]]` matches; `ends` are the byte offsets where
    /// each path level (component) ends, ascending, the last one `path.len()`.
    pub(super) fn level_mask(&self, path: &str, ends: &[usize], out: &mut [u64]) {
        let p = path.as_bytes();
        match self {
            Matcher::Exact(lit) => {
                if let Some(k) = ends.iter().position(|&e| e == lit.len()) {
                    if p.starts_with(lit) {
                        set_bit(out, k);
                    }
                }
            }
            Matcher::Prefix(lit) => {
                if p.starts_with(lit) {
                    for (k, &e) in ends.iter().enumerate() {
                        if e >= lit.len() {
                            set_bit(out, k);
                        }
                    }
                }
            }
            Matcher::Suffix(suffix) => {
                let bare = suffix.strip_prefix(b"/");
                for (k, &e) in ends.iter().enumerate() {
                    let level = p.get(..e).unwrap_or(&[]);
                    if level.ends_with(suffix) || bare.is_some_and(|b| level == b) {
                        set_bit(out, k);
                    }
                }
            }
            Matcher::Regex(re) => {
                if !path.starts_with(re.required_prefix.as_str()) {
                    return;
                }
                let suffix = re.required_suffix.as_bytes();
                if !suffix.is_empty()
                    && !ends
                        .iter()
                        .any(|&e| p.get(..e).is_some_and(|l| l.ends_with(suffix)))
                {
                    return;
                }
                let mut k = 0;
                re.run(path, |end| {
                    while ends.get(k).is_some_and(|&e| e < end) {
                        k += 1;
                    }
                    if ends.get(k) == Some(&end) {
                        set_bit(out, k);
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        match compile(pattern) {
            Ok(m) => m.matches(path),
            Err(e) => panic!("{pattern:?}: {e}"),
        }
    }

    #[test]
    fn conversion_kinds() {
        assert!(matches!(compile("a/b"), Ok(Matcher::Exact(_))));
        assert!(matches!(compile("a.b+c"), Ok(Matcher::Exact(_))));
        assert!(matches!(compile("a/**"), Ok(Matcher::Prefix(_))));
        assert!(matches!(compile("**/a"), Ok(Matcher::Suffix(_))));
        assert!(matches!(compile("**"), Ok(Matcher::Suffix(_))));
        assert!(matches!(compile("**/*.go"), Ok(Matcher::Regex(_))));
        assert!(matches!(compile("a\\-b"), Ok(Matcher::Regex(_))));
    }

    #[test]
    fn single_pattern_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("**foo", "barfoo", true),
            ("**/foo", "barfoo", false),
            ("**/foo", "foo", true),
            ("a**b", "ab", true),
            ("a**b", "ax/b", true),
            ("a**b", "axb", false),
            ("a*", "a/b", false),
            ("a\\d", "a7", true),
            ("a\\d", "ad", false),
            ("[*]", "^]", true),
            ("a^b", "a^b", true),
            ("a^b*", "a^bc", false),
            // the suffix is cut two bytes in, through the middle of the BOM, as Go does
            ("\u{FEFF}**", "x", false),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(matches(pattern, path), *want, "{pattern:?} on {path:?}");
        }
    }
}
