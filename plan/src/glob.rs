//! Go's `path/filepath.Match` wildcards on `/`-separated paths: the one syntax check and the
//! matcher.
//!
//! Owns: what a well-formed pattern is (every `[` class closed and non-empty, `-` and `]` not
//! unescaped at the start of a class item, ranges complete, no trailing `\`), used by COPY/ADD
//! sources, `--exclude` patterns and `.dockerignore` alike, and matching a checked pattern
//! against a path. Must not: clean paths or know about `**` (patternmatcher's extension lives
//! in `dockerignore`).

/// A malformed wildcard pattern (Go's `filepath.ErrBadPattern`), with what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern {
    pub reason: &'static str,
}

const UNTERMINATED: BadPattern = BadPattern {
    reason: "unterminated '['",
};

impl std::fmt::Display for BadPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)
    }
}

/// Check `pattern` the way `filepath.Match(pattern, ".")` does on Unix: every `[` class closed
/// and non-empty, ranges complete, no trailing `\`.
pub fn check_syntax(pattern: &str) -> Result<(), BadPattern> {
    let mut rest = pattern;
    while !rest.is_empty() {
        rest = rest.trim_start_matches('*');
        let end = chunk_end(rest);
        let (chunk, after) = rest.split_at(end);
        check_chunk(chunk)?;
        rest = after;
    }
    Ok(())
}

/// Where the chunk at the start of `s` ends: at the first `*` outside `[...]`.
fn chunk_end(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn check_chunk(chunk: &str) -> Result<(), BadPattern> {
    let mut chars = chunk.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                let mut ranges = 0;
                loop {
                    if chars.peek() == Some(&']') && ranges > 0 {
                        chars.next();
                        break;
                    }
                    check_class_char(&mut chars)?;
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        check_class_char(&mut chars)?;
                    }
                    ranges += 1;
                }
            }
            '\\' if chars.next().is_none() => {
                return Err(BadPattern {
                    reason: "trailing '\\'",
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Go's `getEsc`: one class character, which cannot be `-` or `]` unescaped and must be
/// followed by more of the class.
fn check_class_char(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<(), BadPattern> {
    match chars.next() {
        None => {
            return Err(BadPattern {
                reason: "unterminated '['",
            })
        }
        Some('-') => {
            return Err(BadPattern {
                reason: "'-' cannot start a range in '[...]'",
            })
        }
        Some(']') => {
            return Err(BadPattern {
                reason: "empty '[]' or range ending in ']'",
            })
        }
        Some('\\') => {
            if chars.next().is_none() {
                return Err(BadPattern {
                    reason: "unterminated '['",
                });
            }
        }
        Some(_) => {}
    }
    if chars.peek().is_none() {
        return Err(BadPattern {
            reason: "unterminated '['",
        });
    }
    Ok(())
}

/// Go's `path/filepath.Match` on `/`-separated paths: `*` and `?` never match `/`,
/// `[...]` classes with ranges and `^` negation, `\` escapes. Err on a malformed pattern,
/// whatever the name (Go checks the rest of a pattern before it reports a mismatch).
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    check_syntax(pattern)?;
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
                    let lit = *p.get(pi + 1).ok_or(UNTERMINATED)?;
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
            _ => return Ok(false),
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
        let ch = *p.get(i).ok_or(UNTERMINATED)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = class_char_at(p, &mut i)?;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            i += 1;
            class_char_at(p, &mut i)?
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

fn class_char_at(p: &[char], i: &mut usize) -> Result<char, BadPattern> {
    let mut ch = *p.get(*i).ok_or(UNTERMINATED)?;
    if ch == '\\' {
        *i += 1;
        ch = *p.get(*i).ok_or(UNTERMINATED)?;
    }
    *i += 1;
    Ok(ch)
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
    fn filepath_syntax() {
        let ok = [
            "",
            "a",
            "*",
            "**",
            "a*b",
            "[a]",
            "[^a]",
            "[a-z]",
            "[\\]]",
            "[*]",
            "[[]",
            "a]",
            "\\*",
            "[!a]",
            "[é-ü]",
            "x[a][b]*[c]",
        ];
        for p in ok {
            assert_eq!(check_syntax(p), Ok(()), "{p:?}");
        }
        let bad = [
            "[", "a[", "[]", "[^]", "[a", "[a-", "[a-]", "[-a]", "\\", "a\\", "[\\", "[a]*[",
            "[]a]", "*[", "[a-b-]x]",
        ];
        for p in bad {
            assert!(check_syntax(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn the_matcher_refuses_what_the_checker_refuses() {
        // Go's getEsc rules that the COPY matcher alone used to miss.
        for p in ["[]a]", "[-a]", "[a-]", "[a-b-]x]", "x*[a"] {
            assert!(check_syntax(p).is_err(), "{p:?}");
            assert!(glob_match(p, "a").is_err(), "{p:?}");
            assert!(glob_match(p, "zzz").is_err(), "{p:?}");
        }
    }
}
