//! Small text rules of Go's standard library that BuildKit's parser relies on, so the parser
//! splits and trims exactly where BuildKit does.
//!
//! Owns: Go's notion of white space (`unicode.IsSpace`, including its byte-wise misuse),
//! BuildKit's `reWhitespace` class, Go's string quoting for error messages, and the byte-to-
//! string conversions that reproduce Go's handling of bytes. Must not: know any Dockerfile rule.

use std::borrow::Cow;

/// `unicode.IsSpace(rune(b))` for a single byte, as BuildKit's flag and HEALTHCHECK splitters
/// call it on bytes (not characters): bytes 0x85 and 0xA0, which only occur inside multi-byte
/// UTF-8 sequences here, count as white space too.
pub(super) fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0x85 | 0xA0)
}

/// BuildKit's `reWhitespace` class `[\t\v\f\r ]` (no newline, nothing beyond ASCII).
pub(super) fn is_separator_byte(b: u8) -> bool {
    matches!(b, b'\t' | 0x0B | 0x0C | b'\r' | b' ')
}

/// `reWhitespace.Split(s, -1)` for an `s` that is already trimmed (Go's `strings.TrimSpace`),
/// so no piece is empty. Empty input gives no pieces.
pub(super) fn split_on_separators(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && !is_separator_byte(b[i]) {
            i += 1;
        }
        out.push(s[start..i].to_owned());
        while i < b.len() && is_separator_byte(b[i]) {
            i += 1;
        }
    }
    out
}

/// `reWhitespace.Split(s, 2)`: the text before the first run of separators and everything
/// after it, or `None` when there is no separator.
pub(super) fn split_once_on_separators(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let first = b.iter().position(|&c| is_separator_byte(c))?;
    let mut after = first;
    while after < b.len() && is_separator_byte(b[after]) {
        after += 1;
    }
    Some((&s[..first], &s[after..]))
}

/// Go's `string(rune(b))` for a byte: the byte read as a Latin-1 character. BuildKit builds
/// flag words this way, so a non-ASCII byte in a flag becomes a different character.
pub(super) fn push_byte_as_char(out: &mut String, b: u8) {
    out.push(char::from(b));
}

/// A Go string slice that may start or end inside a UTF-8 sequence (BuildKit slices by bytes
/// in a few places), as Rust text: invalid bytes become U+FFFD as Go's decoders read them.
pub(super) fn bytes_to_text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Go's `strconv.Quote`, close enough for error messages: printable characters as they are,
/// `"` and `\` escaped, control characters as escapes.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') || is_format_or_private(c) => {
                if (c as u32) <= 0xFFFF {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Format characters (category Cf) and private-use characters, which Go's `strconv.Quote`
/// escapes as not printable.
fn is_format_or_private(c: char) -> bool {
    matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F | 0xE000..=0xF8FF
        | 0xF0000..=0x10FFFF)
}

/// Go's `strings.ToLower` restricted to what can matter when comparing with ASCII keywords:
/// ASCII letters, plus the two non-ASCII characters whose simple lower case is ASCII (KELVIN
/// SIGN to `k`, LATIN CAPITAL LETTER I WITH DOT ABOVE to `i`). Any other non-ASCII character
/// cannot be part of a keyword, so `None`.
pub(super) fn ascii_keyword_lowercase(word: &str) -> Option<Cow<'_, str>> {
    if word.is_ascii() {
        if word.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some(Cow::Owned(word.to_ascii_lowercase()));
        }
        return Some(Cow::Borrowed(word));
    }
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        match c {
            '\u{212A}' => out.push('k'),
            '\u{130}' => out.push('i'),
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            _ => return None,
        }
    }
    Some(Cow::Owned(out))
}

/// Go's `unicode.IsLetter` (general category L). Exact for ASCII; beyond ASCII this uses
/// Rust's `Alphabetic` property minus numeric characters, which differs from category L only
/// for a few combining marks.
pub(super) fn is_go_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    c.is_alphabetic() && !c.is_numeric()
}

/// Go's `unicode.IsDigit` (general category Nd). Exact for ASCII; beyond ASCII it uses Rust's
/// `is_numeric`, which also admits Nl and No characters.
pub(super) fn is_go_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    c.is_numeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_split_like_buildkit() {
        assert_eq!(split_on_separators("a  b\tc"), vec!["a", "b", "c"]);
        assert!(split_on_separators("").is_empty());
        assert_eq!(split_once_on_separators("k  v w"), Some(("k", "v w")));
        assert_eq!(split_once_on_separators("k\u{a0}v"), None);
    }

    #[test]
    fn keyword_lowercase_follows_go() {
        assert_eq!(ascii_keyword_lowercase("RuN").as_deref(), Some("run"));
        assert_eq!(
            ascii_keyword_lowercase("WOR\u{212A}DIR").as_deref(),
            Some("workdir")
        );
        assert_eq!(ascii_keyword_lowercase("RÜN"), None);
    }

    #[test]
    fn quote_escapes() {
        assert_eq!(go_quote("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\x01\"");
    }
}
