//! Exec-form detection: reads instruction arguments as a JSON array the way BuildKit v0.12.5
//! does with Go's `encoding/json` `Decoder` into `[]interface{}`.
//!
//! Go's rules, reproduced here: only the first JSON value is read and any text after it is
//! ignored; JSON white space is space, tab, CR and LF; more than 10000 nested arrays/objects is
//! a syntax error; a number that overflows float64 anywhere in the value makes decoding fail
//! (shell form), while a well-formed array with a non-string element is BuildKit's error;
//! `\u` escapes with unpaired surrogates decode to U+FFFD.
//! Must not: know anything about instructions.

/// What the argument text is, read as BuildKit reads exec form.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ExecForm {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// A well-formed JSON array with an element that is not a string (BuildKit rejects it).
    NotStrings,
    /// Not a JSON array Go would decode: the text is shell form.
    NotJson,
}

/// Go's `maxNestingDepth` in `encoding/json`.
const MAX_NESTING: usize = 10_000;

/// Read `text` (already trimmed at the start) as BuildKit's `parseJSON` does.
pub(super) fn read_exec_form(text: &str) -> ExecForm {
    if !text.starts_with('[') {
        return ExecForm::NotJson;
    }
    let mut reader = Reader {
        b: text.as_bytes(),
        i: 0,
        number_overflow: false,
    };
    match reader.top_array() {
        Ok(Some(strings)) if !reader.number_overflow => ExecForm::Strings(strings),
        Ok(None) if !reader.number_overflow => ExecForm::NotStrings,
        _ => ExecForm::NotJson,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    number_overflow: bool,
}

/// A JSON syntax error (or end of input before the value ends).
struct Syntax;

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), Syntax> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    /// The top-level array: `Some(strings)` when every element is a string, `None` when some
    /// element is not (the whole value is still checked for syntax).
    fn top_array(&mut self) -> Result<Option<Vec<String>>, Syntax> {
        self.i = 1; // past '['
        let mut strings = Some(Vec::new());
        self.skip_ws();
        if self.peek() == Some(b']') {
            return Ok(strings);
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(b'"') {
                let s = self.string(true)?;
                if let (Some(list), Some(s)) = (strings.as_mut(), s) {
                    list.push(s);
                }
            } else {
                strings = None;
                self.nested_value()?;
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => return Ok(strings),
                _ => return Err(Syntax),
            }
        }
    }

    /// Any JSON value, checked for syntax without building it. Iterative, so deep nesting
    /// cannot exhaust the stack.
    fn nested_value(&mut self) -> Result<(), Syntax> {
        // The top-level array already counts as one level.
        let mut stack: Vec<Container> = Vec::new();
        loop {
            // Expecting a value.
            self.skip_ws();
            match self.peek() {
                Some(b'[') => {
                    self.i += 1;
                    stack.push(Container::Array);
                    if stack.len() + 1 > MAX_NESTING {
                        return Err(Syntax);
                    }
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        stack.pop();
                    } else {
                        continue;
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    stack.push(Container::Object);
                    if stack.len() + 1 > MAX_NESTING {
                        return Err(Syntax);
                    }
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        stack.pop();
                    } else {
                        self.object_key()?;
                        continue;
                    }
                }
                _ => self.scalar()?,
            }
            // After a complete value: close containers or move to the next element.
            loop {
                let Some(&top) = stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match (self.peek(), top) {
                    (Some(b','), Container::Array) => {
                        self.i += 1;
                        break;
                    }
                    (Some(b','), Container::Object) => {
                        self.i += 1;
                        self.object_key()?;
                        break;
                    }
                    (Some(b']'), Container::Array) | (Some(b'}'), Container::Object) => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return Err(Syntax),
                }
            }
        }
    }

    /// `"key" :` inside an object.
    fn object_key(&mut self) -> Result<(), Syntax> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(Syntax);
        }
        self.string(false)?;
        self.expect(b':')
    }

    fn scalar(&mut self) -> Result<(), Syntax> {
        match self.peek() {
            Some(b'"') => self.string(false).map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Syntax),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Syntax> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), Syntax> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Syntax),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Syntax);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Syntax);
            }
        }
        // Go decodes numbers into float64 and fails (for the whole value) when out of range.
        let literal = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("0");
        if literal.parse::<f64>().map_or(true, |f| f.is_infinite()) {
            self.number_overflow = true;
        }
        Ok(())
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.b.get(at..at + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + char::from(c).to_digit(16)?;
        }
        Some(v)
    }

    /// A JSON string starting at `"`. Decoded when `decode`, else only checked.
    fn string(&mut self, decode: bool) -> Result<Option<String>, Syntax> {
        self.i += 1; // opening quote
        let mut out = decode.then(String::new);
        loop {
            let run_start = self.i;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            if let Some(out) = out.as_mut() {
                // The run ends at an ASCII byte, so it is whole UTF-8.
                out.push_str(std::str::from_utf8(&self.b[run_start..self.i]).map_err(|_| Syntax)?);
            }
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or(Syntax)?;
                    self.i += 1;
                    let ch = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let first = self.hex4(self.i).ok_or(Syntax)?;
                            self.i += 4;
                            self.surrogate_aware(first)
                        }
                        _ => return Err(Syntax),
                    };
                    if let Some(out) = out.as_mut() {
                        out.push(ch);
                    }
                }
                _ => return Err(Syntax), // control character or end of input
            }
        }
    }

    /// Go's rule for `\uXXXX`: a high surrogate followed by `\u` + low surrogate is one
    /// character (both consumed); any other surrogate is U+FFFD.
    fn surrogate_aware(&mut self, first: u32) -> char {
        if !(0xD800..0xE000).contains(&first) {
            return char::from_u32(first).unwrap_or('\u{FFFD}');
        }
        if first < 0xDC00 && self.b.get(self.i..self.i + 2) == Some(b"\\u") {
            if let Some(second) = self.hex4(self.i + 2) {
                if (0xDC00..0xE000).contains(&second) {
                    self.i += 6;
                    let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    return char::from_u32(c).unwrap_or('\u{FFFD}');
                }
            }
        }
        '\u{FFFD}'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> ExecForm {
        ExecForm::Strings(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn arrays_of_strings() {
        assert_eq!(read_exec_form(r#"["a", "b c"]"#), strings(&["a", "b c"]));
        assert_eq!(read_exec_form("[]"), strings(&[]));
        assert_eq!(read_exec_form(r#"[ "x" ] trailing"#), strings(&["x"]));
        assert_eq!(
            read_exec_form(r#"["\u00e9\n\"", "\ud83d\ude00"]"#),
            strings(&["é\n\"", "😀"])
        );
        assert_eq!(
            read_exec_form(r#"["\ud800", "\udc00x"]"#),
            strings(&["\u{FFFD}", "\u{FFFD}x"])
        );
    }

    #[test]
    fn non_strings_and_non_json() {
        assert_eq!(read_exec_form("[1]"), ExecForm::NotStrings);
        assert_eq!(
            read_exec_form(r#"["a", {"k": [null, true]}]"#),
            ExecForm::NotStrings
        );
        assert_eq!(read_exec_form("[1e999]"), ExecForm::NotJson);
        assert_eq!(read_exec_form(r#"["a", [1e999]]"#), ExecForm::NotJson);
        assert_eq!(read_exec_form("['a']"), ExecForm::NotJson);
        assert_eq!(read_exec_form(r#"["a""#), ExecForm::NotJson);
        assert_eq!(read_exec_form(r#"["a",]"#), ExecForm::NotJson);
        assert_eq!(read_exec_form("[01]"), ExecForm::NotJson);
        assert_eq!(read_exec_form("[\"\t\"]"), ExecForm::NotJson);
        assert_eq!(read_exec_form("a"), ExecForm::NotJson);
    }

    #[test]
    fn nesting_limit_is_gos() {
        let ok = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(read_exec_form(&ok), ExecForm::NotStrings);
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        assert_eq!(read_exec_form(&deep), ExecForm::NotJson);
    }
}
