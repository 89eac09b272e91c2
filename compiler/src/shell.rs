//! Shell-word expansion as BuildKit's Dockerfile shell lexer (`frontend/dockerfile/shell`) does it.
//!
//! Owns: quote removal, escape processing, `$name`/`${name...}` expansion with every modifier
//! BuildKit accepts (`:-` `-` `:+` `+` `:?` `?` `#` `##` `%` `%%` `/` `//`), the shell patterns
//! those modifiers use, word splitting after expansion, and the record of which variables a word
//! used or found unset (for the UndefinedVar check).
//! Must not: decide which instructions expand, keep variable scopes, or run anything; callers
//! hand in an [`Env`] snapshot per instruction.
//!
//! Fidelity notes (all checked against BuildKit's lexer):
//! - Words are scanned character by character; a byte-order mark opening the word is dropped.
//! - Variable names are Unicode letters, decimal digits and `_`; a name that starts with a digit
//!   is a run of digits (`$10x` is `$10` then `x`); `@ * # ? - $ ! 0` are one-character names.
//!   None of these are special: they are looked up like any name and are normally unset.
//! - Shell patterns know `*`, `?` and `\` escapes of `*`, `?`, `\` (plus `\}` and `\/`, which
//!   only protect the delimiter); neither wildcard matches a newline; there are no `[...]`
//!   classes. `#`/`%` match shortest (longest when doubled), `/` replaces the leftmost longest.
//! - `${v//p/r}` expands `$0`/`${0}` in `r` to the matched text, other `$name` references to
//!   nothing and `$$` to `$` (BuildKit hands `r` to Go's `Regexp.ReplaceAllString`);
//!   `${v/p/r}` inserts `r` verbatim.
//! - In word-splitting mode, a `${name<modifier>...}` expansion drops the part of the current
//!   word collected before it (BuildKit's lexer shares one word buffer with the nested scan).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Variables visible to an expansion.
pub trait Env {
    /// The value of `name`, or `None` when it is not set (set-but-empty is `Some("")`).
    fn get(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// `(name, value)` pairs; when a name repeats, the last pair wins.
impl<K: AsRef<str>, V: AsRef<str>> Env for [(K, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Env for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

impl<T: Env + ?Sized> Env for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

/// An environment in which nothing is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The word with quotes removed, escapes processed and variables expanded.
    pub value: String,
    /// Variables the word referenced that were set, in order of first reference.
    pub used: Vec<String>,
    /// Variables the word referenced that were not set, in order of first reference.
    pub unset: Vec<String>,
}

/// What went wrong in an expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandErrorKind {
    /// A `'` without its closing `'`.
    UnterminatedSingleQuote,
    /// A `"` without its closing `"`.
    UnterminatedDoubleQuote,
    /// `${` without its closing `}`.
    MissingBrace,
    /// `${name/pattern` without the `/` that ends the pattern.
    MissingSlash,
    /// `${}`, `${{`, `${:` ...: no variable name after `${`.
    BadSubstitution,
    /// `${name<modifier>...}` with a modifier BuildKit does not know (`:=`, `:#`, `.`...).
    UnsupportedModifier { modifier: String },
    /// `${name?message}` / `${name:?message}` on an unset (or empty) variable.
    Required { name: String, message: String },
    /// A `#`, `%` or `/` pattern with an escape other than `\*`, `\?`, `\\`.
    InvalidPattern { pattern: String, reason: String },
    /// The expanded word would be longer than `limit` bytes (see [`MAX_EXPANSION`]).
    TooLong { limit: usize },
}

/// The most bytes one expanded word may have: far above any real Dockerfile (whose source
/// may have at most 10 MiB), and low enough that variables doubling at every level
/// (`ARG A2=${A1}${A1}`) stop within a few steps instead of exhausting memory.
pub const MAX_EXPANSION: usize = 1 << 20;

impl fmt::Display for ExpandErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandErrorKind::UnterminatedSingleQuote => {
                f.write_str("unexpected end of statement while looking for matching single-quote")
            }
            ExpandErrorKind::UnterminatedDoubleQuote => {
                f.write_str("unexpected end of statement while looking for matching double-quote")
            }
            ExpandErrorKind::MissingBrace => f.write_str("syntax error: missing '}'"),
            ExpandErrorKind::MissingSlash => f.write_str("syntax error: missing '/' in ${}"),
            ExpandErrorKind::BadSubstitution => f.write_str("syntax error: bad substitution"),
            ExpandErrorKind::UnsupportedModifier { modifier } => {
                write!(f, "unsupported modifier ({modifier}) in substitution")
            }
            ExpandErrorKind::Required { name, message } => write!(f, "{name}: {message}"),
            ExpandErrorKind::InvalidPattern { pattern, reason } => {
                write!(f, "invalid pattern ({pattern}) in substitution: {reason}")
            }
            ExpandErrorKind::TooLong { limit } => write!(
                f,
                "this expansion produces more than {} MiB, the most one word may expand to",
                limit >> 20
            ),
        }
    }
}

impl ExpandErrorKind {
    fn help(&self) -> Option<String> {
        match self {
            ExpandErrorKind::UnterminatedSingleQuote | ExpandErrorKind::UnterminatedDoubleQuote => {
                Some("close the quote, or escape the quote character".to_string())
            }
            ExpandErrorKind::MissingBrace => Some("close the expansion with '}'".to_string()),
            ExpandErrorKind::MissingSlash => {
                Some("write the replacement form as ${name/pattern/replacement}".to_string())
            }
            ExpandErrorKind::BadSubstitution => {
                Some("a variable name must follow '${'; write a literal '$' as '\\$'".to_string())
            }
            ExpandErrorKind::UnsupportedModifier { .. } => Some(
                "supported: ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?m} ${v?m} ${v#p} ${v##p} \
                 ${v%p} ${v%%p} ${v/p/r} ${v//p/r}"
                    .to_string(),
            ),
            ExpandErrorKind::Required { name, .. } => {
                Some(format!("set {name} with ARG, ENV or --build-arg"))
            }
            ExpandErrorKind::InvalidPattern { .. } => {
                Some("in patterns only '*', '?' and '\\' can be escaped".to_string())
            }
            ExpandErrorKind::TooLong { .. } => Some(
                "variables that reference each other several times grow with every level; \
                 pass large values as files (COPY) instead"
                    .to_string(),
            ),
        }
    }
}

/// An expansion failure, located by a byte range within the input word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ExpandError {
    pub kind: ExpandErrorKind,
    /// Start of the offending text, in bytes from the start of the input.
    pub offset: usize,
    /// Length of the offending text in bytes.
    pub len: usize,
}

impl ExpandError {
    fn new(kind: ExpandErrorKind, start: usize, end: usize) -> Self {
        ExpandError {
            kind,
            offset: start,
            len: end.saturating_sub(start),
        }
    }

    /// A suggestion for fixing the input, when there is one.
    pub fn help(&self) -> Option<String> {
        self.kind.help()
    }
}

impl miette::Diagnostic for ExpandError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("kiln::expand"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.kind
            .help()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some("here".to_string()),
            self.offset,
            self.len,
        ))))
    }
}

/// BuildKit's shell lexer: one instance per escape character and option set; cheap to clone,
/// safe to share between threads.
#[derive(Debug, Clone)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_quotes: bool,
    keep_unset: bool,
    /// Bytes at which the plain-text fast path must stop (first byte of each special char);
    /// the current stop character and, when splitting words, `<` are checked separately.
    special: [bool; 256],
}

impl Lexer {
    /// A lexer with `escape` as the escape character (`\` by default, `` ` `` after an
    /// `# escape=`` ` directive) and every option off.
    pub fn new(escape: char) -> Self {
        let mut lexer = Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_quotes: false,
            keep_unset: false,
            special: [false; 256],
        };
        lexer.rebuild_special();
        lexer
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub fn with_raw_quotes(mut self, on: bool) -> Self {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub fn with_raw_escapes(mut self, on: bool) -> Self {
        self.raw_escapes = on;
        self
    }

    /// Treat quotes as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub fn with_quotes_unprocessed(mut self, on: bool) -> Self {
        self.skip_quotes = on;
        self.rebuild_special();
        self
    }

    /// Leave references to unset variables in the output as written (`$v`, `${v}`,
    /// `${v:-w}` with `w` expanded), like BuildKit's `SkipUnsetEnv`.
    pub fn with_unset_kept(mut self, on: bool) -> Self {
        self.keep_unset = on;
        self
    }

    fn rebuild_special(&mut self) {
        self.special = [false; 256];
        self.special[usize::from(b'$')] = true;
        if !self.skip_quotes {
            self.special[usize::from(b'\'')] = true;
            self.special[usize::from(b'"')] = true;
        }
        let mut buf = [0u8; 4];
        let lead = self.escape.encode_utf8(&mut buf).as_bytes()[0];
        self.special[usize::from(lead)] = true;
    }

    /// Expand one word: quotes removed, escapes processed, variables expanded; whitespace is
    /// kept (BuildKit's `ProcessWord`).
    pub fn expand_word(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        let mut scan = Scanner::new(self, word, env, false);
        let mut value = String::with_capacity(word.len());
        scan.top_level(&mut value)?;
        Ok(Expansion {
            value,
            used: scan.used.iter().map(|s| (*s).to_string()).collect(),
            unset: scan.unset.iter().map(|s| (*s).to_string()).collect(),
        })
    }

    /// Expand `text` and split it into words on unquoted, unescaped whitespace, the split
    /// happening after expansion (BuildKit's `ProcessWords`). Empty words are dropped, so `""`
    /// alone yields nothing.
    pub fn expand_words(&self, text: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        let mut scan = Scanner::new(self, text, env, true);
        let mut value = String::with_capacity(text.len());
        scan.top_level(&mut value)?;
        Ok(scan.words.finish())
    }
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

/// Go's `unicode.IsLetter`: general category L.
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        c.general_category_group() == GeneralCategoryGroup::Letter
    }
}

/// Go's `unicode.IsDigit`: general category Nd.
fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        c.general_category() == GeneralCategory::DecimalNumber
    }
}

/// POSIX special parameters; BuildKit reads each as a one-character name.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Word collection for [`Lexer::expand_words`].
#[derive(Default)]
struct Words {
    on: bool,
    current: String,
    done: Vec<String>,
}

impl Words {
    fn push_char(&mut self, c: char) {
        if !self.on {
            return;
        }
        if c.is_whitespace() {
            self.flush();
        } else {
            self.current.push(c);
        }
    }

    /// `push_char` for each character of `s`.
    fn push_str(&mut self, s: &str) {
        if !self.on {
            return;
        }
        let mut parts = s.split(char::is_whitespace);
        if let Some(first) = parts.next() {
            self.current.push_str(first);
        }
        for part in parts {
            self.flush();
            self.current.push_str(part);
        }
    }

    fn push_raw_char(&mut self, c: char) {
        if self.on {
            self.current.push(c);
        }
    }

    fn push_raw_str(&mut self, s: &str) {
        if self.on {
            self.current.push_str(s);
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.flush();
        self.done
    }
}

/// The state of one expansion: a cursor over the input plus what has been recorded.
struct Scanner<'l, 's, 'e> {
    lexer: &'l Lexer,
    src: &'s str,
    pos: usize,
    env: &'e dyn Env,
    raw_escapes: bool,
    /// Nesting depth of `scan_until` (0 = the whole word).
    depth: usize,
    words: Words,
    used: Vec<&'s str>,
    unset: Vec<&'s str>,
}

impl<'l, 's, 'e> Scanner<'l, 's, 'e> {
    fn new(lexer: &'l Lexer, src: &'s str, env: &'e dyn Env, split_words: bool) -> Self {
        // Go's text/scanner drops a byte-order mark that opens its input.
        let pos = if src.starts_with('\u{FEFF}') { 3 } else { 0 };
        Scanner {
            lexer,
            src,
            pos,
            env,
            raw_escapes: lexer.raw_escapes,
            depth: 0,
            words: Words {
                on: split_words,
                ..Words::default()
            },
            used: Vec::new(),
            unset: Vec::new(),
        }
    }

    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn lookup(&mut self, name: &'s str) -> Option<&'e str> {
        match self.env.get(name) {
            Some(v) => {
                if !self.used.contains(&name) {
                    self.used.push(name);
                }
                Some(v)
            }
            None => {
                if !self.unset.contains(&name) {
                    self.unset.push(name);
                }
                None
            }
        }
    }

    fn top_level(&mut self, out: &mut String) -> Result<(), ExpandError> {
        let raw = self.raw_escapes;
        self.scan_until(None, raw, out)
    }

    /// BuildKit's `processStopOn`: scan until `stop` (consumed) or the end of input.
    /// Only the outermost scan feeds word splitting; a nested one clears the current word.
    fn scan_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        out: &mut String,
    ) -> Result<(), ExpandError> {
        let saved_raw = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        self.depth += 1;
        let outermost = self.depth == 1;
        if !outermost {
            self.words.current.clear();
        }
        let result = self.scan_until_inner(stop, outermost, out);
        self.depth -= 1;
        self.raw_escapes = saved_raw;
        result
    }

    fn scan_until_inner(
        &mut self,
        stop: Option<char>,
        outermost: bool,
        out: &mut String,
    ) -> Result<(), ExpandError> {
        let escape = self.lexer.escape;
        let split = outermost && self.words.on;
        // Bytes that never occur in UTF-8 stand for "no such byte".
        let stop_byte = stop.map_or(0xFF, |c| u8::try_from(c).unwrap_or(0xFF));
        let heredoc_byte = if split { b'<' } else { 0xFF };
        loop {
            // Fast path: copy the run of bytes that cannot start anything special.
            let bytes = self.src.as_bytes();
            let start = self.pos;
            let mut end = start;
            while let Some(&b) = bytes.get(end) {
                if self.lexer.special[usize::from(b)] || b == stop_byte || b == heredoc_byte {
                    break;
                }
                end += 1;
            }
            if end > start {
                let run = self.src.get(start..end).unwrap_or("");
                out.push_str(run);
                if split {
                    self.words.push_str(run);
                }
                self.pos = end;
            }
            let Some(c) = self.peek() else { break };
            if Some(c) == stop {
                self.pos += c.len_utf8();
                return Ok(());
            }
            match c {
                '$' => {
                    let from = out.len();
                    self.dollar(out)?;
                    if split {
                        let added = out.get(from..).unwrap_or("");
                        self.words.push_str(added);
                    }
                }
                '<' if split => {
                    // BuildKit keeps `<<` and the blanks after it inside one word (heredocs).
                    self.pos += 1;
                    if self.peek() == Some('<') {
                        self.pos += 1;
                        let from = self.pos;
                        while matches!(self.peek(), Some('\t' | '\r' | ' ')) {
                            self.pos += 1;
                        }
                        let blanks = self.src.get(from..self.pos).unwrap_or("");
                        out.push_str("<<");
                        out.push_str(blanks);
                        self.words.push_raw_str("<<");
                        self.words.push_raw_str(blanks);
                    } else {
                        out.push('<');
                        self.words.push_raw_char('<');
                    }
                }
                '\'' if !self.lexer.skip_quotes => {
                    let from = out.len();
                    self.single_quote(out)?;
                    if split {
                        let added = out.get(from..).unwrap_or("");
                        self.words.push_raw_str(added);
                    }
                }
                '"' if !self.lexer.skip_quotes => {
                    let from = out.len();
                    self.double_quote(out)?;
                    if split {
                        let added = out.get(from..).unwrap_or("");
                        self.words.push_raw_str(added);
                    }
                }
                _ if c == escape => {
                    self.pos += c.len_utf8();
                    if self.raw_escapes {
                        out.push(c);
                        if split {
                            self.words.push_raw_char(c);
                        }
                    }
                    // An escape at the very end is dropped.
                    let Some(escaped) = self.next_char() else {
                        break;
                    };
                    out.push(escaped);
                    if split {
                        self.words.push_raw_char(escaped);
                    }
                }
                _ => {
                    self.pos += c.len_utf8();
                    out.push(c);
                    if split {
                        self.words.push_char(c);
                    }
                }
            }
        }
        match stop {
            // Callers turn this into MissingBrace / MissingSlash with their own span.
            Some(_) => Err(ExpandError::new(
                ExpandErrorKind::MissingBrace,
                self.pos,
                self.pos,
            )),
            None => Ok(()),
        }
    }

    fn single_quote(&mut self, out: &mut String) -> Result<(), ExpandError> {
        let open = self.pos;
        self.pos += 1;
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        let rest = self.rest();
        let Some(close) = rest.find('\'') else {
            self.pos = self.src.len();
            return Err(ExpandError::new(
                ExpandErrorKind::UnterminatedSingleQuote,
                open,
                self.src.len(),
            ));
        };
        out.push_str(rest.get(..close).unwrap_or(""));
        self.pos += close + 1;
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        Ok(())
    }

    fn double_quote(&mut self, out: &mut String) -> Result<(), ExpandError> {
        let open = self.pos;
        self.pos += 1;
        if self.lexer.raw_quotes {
            out.push('"');
        }
        let escape = self.lexer.escape;
        let mut lead = [0u8; 4];
        let escape_lead = escape.encode_utf8(&mut lead).as_bytes()[0];
        loop {
            // Fast path: copy the run up to the next `"`, `$` or escape character.
            let bytes = self.src.as_bytes();
            let start = self.pos;
            let mut end = start;
            while let Some(&b) = bytes.get(end) {
                if b == b'"' || b == b'$' || b == escape_lead {
                    break;
                }
                end += 1;
            }
            if end > start {
                out.push_str(self.src.get(start..end).unwrap_or(""));
                self.pos = end;
            }
            let Some(c) = self.peek() else {
                return Err(ExpandError::new(
                    ExpandErrorKind::UnterminatedDoubleQuote,
                    open,
                    self.src.len(),
                ));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(());
                }
                '$' => self.dollar(out)?,
                _ => {
                    self.pos += c.len_utf8();
                    let mut literal = c;
                    if c == escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // An escape right before the end is dropped (the quote then
                            // fails as unterminated).
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == escape => {
                                self.pos += n.len_utf8();
                                literal = n;
                            }
                            // Any other escape stays literal.
                            Some(_) => {}
                        }
                    }
                    out.push(literal);
                }
            }
        }
    }

    /// BuildKit's `processName`.
    fn name(&mut self) -> &'s str {
        let start = self.pos;
        match self.peek() {
            Some(c) if is_digit(c) => {
                while let Some(d) = self.peek().filter(|d| is_digit(*d)) {
                    self.pos += d.len_utf8();
                }
            }
            Some(c) if is_special_param(c) => self.pos += c.len_utf8(),
            _ => {
                while let Some(c) = self
                    .peek()
                    .filter(|c| is_letter(*c) || is_digit(*c) || *c == '_')
                {
                    self.pos += c.len_utf8();
                }
            }
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// Scan a modifier's word up to `stop`; an error that leaves the cursor at the end of
    /// input becomes `at_end` located at the `${` (as BuildKit reports it).
    fn modifier_word(
        &mut self,
        stop: char,
        raw_escapes: bool,
        dollar: usize,
        at_end: ExpandErrorKind,
    ) -> Result<String, ExpandError> {
        let mut word = String::new();
        match self.scan_until(Some(stop), raw_escapes, &mut word) {
            Ok(()) => Ok(word),
            Err(_) if self.at_end() => Err(ExpandError::new(at_end, dollar, self.src.len())),
            Err(e) => Err(e),
        }
    }

    /// [`Scanner::expand_dollar`], then the bound on what one expansion may produce: a
    /// word longer than [`MAX_EXPANSION`] is an error at the `$` that made it so (values
    /// fed in are bounded the same way, so `out` never grows past twice the bound).
    fn dollar(&mut self, out: &mut String) -> Result<(), ExpandError> {
        let dollar = self.pos;
        self.expand_dollar(out)?;
        if out.len() + self.words.current.len() > MAX_EXPANSION {
            return Err(ExpandError::new(
                ExpandErrorKind::TooLong {
                    limit: MAX_EXPANSION,
                },
                dollar,
                self.pos,
            ));
        }
        Ok(())
    }

    /// BuildKit's `processDollar`; the cursor is on the `$`.
    fn expand_dollar(&mut self, out: &mut String) -> Result<(), ExpandError> {
        let dollar = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                out.push('$');
                return Ok(());
            }
            match self.lookup(name) {
                Some(v) => out.push_str(v),
                None if self.lexer.keep_unset => {
                    out.push('$');
                    out.push_str(name);
                }
                None => {}
            }
            return Ok(());
        }
        self.pos += 1;
        match self.peek() {
            None => {
                return Err(ExpandError::new(
                    ExpandErrorKind::MissingBrace,
                    dollar,
                    self.src.len(),
                ))
            }
            Some('{' | '}' | ':') => {
                return Err(ExpandError::new(
                    ExpandErrorKind::BadSubstitution,
                    dollar,
                    self.pos + 1,
                ))
            }
            Some(_) => {}
        }
        let name = self.name();
        let Some(ch) = self.next_char() else {
            return Err(ExpandError::new(
                ExpandErrorKind::MissingBrace,
                dollar,
                self.src.len(),
            ));
        };
        match ch {
            '}' => {
                match self.lookup(name) {
                    Some(v) => out.push_str(v),
                    None if self.lexer.keep_unset => {
                        out.push_str("${");
                        out.push_str(name);
                        out.push('}');
                    }
                    None => {}
                }
                Ok(())
            }
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let (colon, op) = if ch == ':' {
                    (true, self.next_char())
                } else {
                    (false, Some(ch))
                };
                let modifier = || {
                    let mut m = String::new();
                    if colon {
                        m.push(':');
                    }
                    m.push(op.unwrap_or(char::REPLACEMENT_CHARACTER));
                    m
                };
                let trims = matches!(op, Some('#' | '%'));
                if colon && trims {
                    return Err(ExpandError::new(
                        ExpandErrorKind::UnsupportedModifier {
                            modifier: modifier(),
                        },
                        dollar,
                        self.pos,
                    ));
                }
                let word = self.modifier_word('}', trims, dollar, ExpandErrorKind::MissingBrace)?;
                let value = self.lookup(name);
                if value.is_none() && self.lexer.keep_unset {
                    out.push_str("${");
                    out.push_str(name);
                    out.push_str(&modifier());
                    out.push_str(&word);
                    out.push('}');
                    return Ok(());
                }
                let null = match value {
                    None => true,
                    Some(v) => colon && v.is_empty(),
                };
                match op {
                    Some('-') => out.push_str(if null {
                        word.as_str()
                    } else {
                        value.unwrap_or("")
                    }),
                    Some('+') => {
                        if !null {
                            out.push_str(&word);
                        }
                    }
                    Some('?') => match value {
                        Some(v) if !null => out.push_str(v),
                        _ => {
                            let message = if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".to_string()
                            } else {
                                "is not allowed to be empty".to_string()
                            };
                            return Err(ExpandError::new(
                                ExpandErrorKind::Required {
                                    name: name.to_string(),
                                    message,
                                },
                                dollar,
                                self.pos,
                            ));
                        }
                    },
                    Some(t @ ('#' | '%')) => {
                        let (pattern, longest) = match word.strip_prefix(t) {
                            Some(p) => (p, true),
                            None => (word.as_str(), false),
                        };
                        let value = value.unwrap_or("");
                        let trimmed = if t == '#' {
                            trim_prefix(pattern, value, longest)
                        } else {
                            trim_suffix(pattern, value, longest)
                        };
                        match trimmed {
                            Ok(v) => out.push_str(&v),
                            Err(reason) => {
                                return Err(ExpandError::new(
                                    ExpandErrorKind::InvalidPattern {
                                        pattern: pattern.to_string(),
                                        reason,
                                    },
                                    dollar,
                                    self.pos,
                                ))
                            }
                        }
                    }
                    _ => {
                        return Err(ExpandError::new(
                            ExpandErrorKind::UnsupportedModifier {
                                modifier: modifier(),
                            },
                            dollar,
                            self.pos,
                        ))
                    }
                }
                Ok(())
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pattern =
                    self.modifier_word('/', true, dollar, ExpandErrorKind::MissingSlash)?;
                let replacement =
                    self.modifier_word('}', true, dollar, ExpandErrorKind::MissingBrace)?;
                let value = self.lookup(name);
                if value.is_none() && self.lexer.keep_unset {
                    // BuildKit writes the single-slash form back even for `//`.
                    out.push_str("${");
                    out.push_str(name);
                    out.push('/');
                    out.push_str(&pattern);
                    out.push('/');
                    out.push_str(&replacement);
                    out.push('}');
                    return Ok(());
                }
                match replace(&pattern, value.unwrap_or(""), &replacement, all) {
                    Ok(v) => {
                        out.push_str(&v);
                        Ok(())
                    }
                    Err(reason) => Err(ExpandError::new(
                        ExpandErrorKind::InvalidPattern { pattern, reason },
                        dollar,
                        self.pos,
                    )),
                }
            }
            other => {
                let mut modifier = String::new();
                modifier.push(other);
                Err(ExpandError::new(
                    ExpandErrorKind::UnsupportedModifier { modifier },
                    dollar,
                    self.pos,
                ))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shell patterns for `#`, `%` and `/`.

/// One instruction of a compiled shell pattern (a tiny Thompson program).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// Consume exactly this character.
    Char(char),
    /// Consume any character but a newline.
    Any,
    /// Try `first`, then `second` (priority order).
    Split(usize, usize),
    Jump(usize),
    Match,
}

/// Compile a shell pattern as BuildKit converts it to a Go regular expression: `*` is any run
/// of non-newline characters (longest-first when `greedy`, else shortest-first), `?` any one
/// non-newline character, `\*` `\?` `\\` literals, `\}` `\/` the delimiter itself.
fn compile_pattern(pattern: &str, greedy: bool) -> Result<Vec<Inst>, String> {
    let pattern = pattern.strip_prefix('\u{FEFF}').unwrap_or(pattern);
    let mut prog = Vec::with_capacity(pattern.len() + 1);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                let at = prog.len();
                if greedy {
                    prog.push(Inst::Split(at + 1, at + 3));
                } else {
                    prog.push(Inst::Split(at + 3, at + 1));
                }
                prog.push(Inst::Any);
                prog.push(Inst::Jump(at));
            }
            '?' => prog.push(Inst::Any),
            '\\' => match chars.peek().copied() {
                // Only protects the delimiter; the character itself is handled next round.
                Some('}' | '/') => {}
                Some(e @ ('*' | '?' | '\\')) => {
                    chars.next();
                    prog.push(Inst::Char(e));
                }
                Some(e) => return Err(format!("invalid escape '\\{e}'")),
                None => return Err("invalid escape '\\' at end of pattern".to_string()),
            },
            _ => prog.push(Inst::Char(c)),
        }
    }
    prog.push(Inst::Match);
    Ok(prog)
}

/// A priority-ordered thread list for the Pike VM.
struct Threads {
    seen: Vec<bool>,
    marked: Vec<usize>,
    list: Vec<(usize, usize)>,
    stack: Vec<usize>,
}

impl Threads {
    fn new(len: usize) -> Self {
        Threads {
            seen: vec![false; len],
            marked: Vec::new(),
            list: Vec::new(),
            stack: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for pc in self.marked.drain(..) {
            if let Some(s) = self.seen.get_mut(pc) {
                *s = false;
            }
        }
        self.list.clear();
    }

    /// Add the thread at `pc` (started at `start`) and everything it reaches without
    /// consuming input, preferred alternatives first.
    fn add(&mut self, prog: &[Inst], pc: usize, start: usize) {
        self.stack.push(pc);
        while let Some(pc) = self.stack.pop() {
            match self.seen.get_mut(pc) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            self.marked.push(pc);
            match prog.get(pc) {
                Some(Inst::Jump(to)) => self.stack.push(*to),
                Some(Inst::Split(first, second)) => {
                    self.stack.push(*second);
                    self.stack.push(*first);
                }
                Some(_) => self.list.push((pc, start)),
                None => {}
            }
        }
    }
}

/// Leftmost-first search (Go `regexp` semantics) of `prog` in `text`, starting at byte `from`;
/// `anchored` only tries a match starting at `from`. Returns the byte range of the match.
fn find(prog: &[Inst], text: &str, from: usize, anchored: bool) -> Option<(usize, usize)> {
    let mut current = Threads::new(prog.len());
    let mut next = Threads::new(prog.len());
    let mut matched = None;
    let mut pos = from;
    loop {
        if matched.is_none() && (!anchored || pos == from) {
            current.add(prog, 0, pos);
        }
        if current.list.is_empty() {
            break;
        }
        let c = text.get(pos..).and_then(|t| t.chars().next());
        let after = pos + c.map_or(0, char::len_utf8);
        for i in 0..current.list.len() {
            let Some(&(pc, start)) = current.list.get(i) else {
                break;
            };
            match prog.get(pc) {
                Some(Inst::Match) => {
                    matched = Some((start, pos));
                    break; // lower-priority threads lose
                }
                Some(Inst::Char(x)) if c == Some(*x) => next.add(prog, pc + 1, start),
                Some(Inst::Any) if c.is_some_and(|c| c != '\n') => next.add(prog, pc + 1, start),
                _ => {}
            }
        }
        if c.is_none() {
            break;
        }
        pos = after;
        std::mem::swap(&mut current, &mut next);
        next.clear();
    }
    matched
}

/// `${v#p}` / `${v##p}`: drop the shortest (longest) prefix of `value` matching `pattern`.
fn trim_prefix(pattern: &str, value: &str, longest: bool) -> Result<String, String> {
    let prog = compile_pattern(pattern, longest)?;
    Ok(match find(&prog, value, 0, true) {
        Some((_, end)) => value.get(end..).unwrap_or("").to_string(),
        None => value.to_string(),
    })
}

/// `${v%p}` / `${v%%p}`: BuildKit reverses both the pattern (keeping each `\x` pair in order)
/// and the value, then trims a prefix.
fn trim_suffix(pattern: &str, value: &str, longest: bool) -> Result<String, String> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, longest)?;
    Ok(trimmed.chars().rev().collect())
}

fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pieces: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let width = if chars.get(i) == Some(&'\\') && i + 1 < chars.len() {
            2
        } else {
            1
        };
        if let Some(piece) = chars.get(i..i + width) {
            pieces.push(piece);
        }
        i += width;
    }
    pieces.iter().rev().flat_map(|p| p.iter()).collect()
}

/// `${v/p/r}` and `${v//p/r}`.
fn replace(pattern: &str, value: &str, replacement: &str, all: bool) -> Result<String, String> {
    let prog = compile_pattern(pattern, true)?;
    if !all {
        return Ok(match find(&prog, value, 0, false) {
            Some((s, e)) => {
                let mut out = String::with_capacity(value.len() + replacement.len());
                out.push_str(value.get(..s).unwrap_or(""));
                out.push_str(replacement);
                out.push_str(value.get(e..).unwrap_or(""));
                out
            }
            None => value.to_string(),
        });
    }
    // Go's Regexp.ReplaceAllString: non-overlapping matches left to right; an empty match
    // right after a previous match is not replaced; always advance by at least one character.
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some((s, e)) = find(&prog, value, search, false) else {
            break;
        };
        out.push_str(value.get(last_end..s).unwrap_or(""));
        if e > last_end || s == 0 {
            expand_template(replacement, value.get(s..e).unwrap_or(""), &mut out);
        }
        last_end = e;
        let width = value
            .get(search..)
            .and_then(|t| t.chars().next())
            .map_or(0, char::len_utf8);
        search = if search + width > e {
            search + width
        } else if search + 1 > e {
            search + 1
        } else {
            e
        };
    }
    out.push_str(value.get(last_end..).unwrap_or(""));
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without groups: `$$` is `$`, `$0`/`${0}` the match, any
/// other `$name`/`${name}` nothing, a malformed reference a literal `$`.
fn expand_template(template: &str, matched: &str, out: &mut String) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(rest.get(..at).unwrap_or(""));
        rest = rest.get(at + 1..).unwrap_or("");
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len: usize = body
            .chars()
            .take_while(|c| is_letter(*c) || is_digit(*c) || *c == '_')
            .map(char::len_utf8)
            .sum();
        let name = body.get(..name_len).unwrap_or("");
        let after_name = body.get(name_len..).unwrap_or("");
        let tail = if name.is_empty() {
            None
        } else if braced {
            after_name.strip_prefix('}')
        } else {
            Some(after_name)
        };
        match tail {
            Some(tail) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = tail;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str, v: &str, longest: bool) -> String {
        trim_prefix(p, v, longest).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn pattern_trims_shortest_and_longest_prefix() {
        let cases: &[(&str, &str, bool, &str)] = &[
            ("*", "abc", false, "abc"),
            ("*", "abc", true, ""),
            ("a*", "abcabc", false, "bcabc"),
            ("*b", "abcabc", false, "cabc"),
            ("*b", "abcabc", true, "c"),
            ("?", "héllo", false, "éllo"),
            ("??", "héllo", false, "llo"),
            ("x", "abc", false, "abc"),
            ("", "abc", true, "abc"),
            ("\\*", "*a", false, "a"),
            ("\\?", "?a", false, "a"),
            ("\\\\", "\\a", false, "a"),
            ("\\}", "}a", false, "a"),
            ("\\/", "/a", false, "a"),
            ("*", "ab\ncd", true, "\ncd"),
            ("?", "\nab", false, "\nab"),
            ("a*c*e", "abcdecde", false, "cde"),
            ("a*c*e", "abcdecde", true, ""),
        ];
        for (p, v, longest, want) in cases {
            assert_eq!(prefix(p, v, *longest), *want, "pattern {p:?} on {v:?}");
        }
    }

    #[test]
    fn pattern_rejects_bad_escapes() {
        for p in ["\\", "a\\", "\\x", "\\$", "\\\\\\"] {
            assert!(trim_prefix(p, "abc", false).is_err(), "{p:?}");
        }
    }

    #[test]
    fn pattern_reversal_keeps_escape_pairs() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
        assert_eq!(reverse_pattern("日\\本語"), "語\\本日");
    }

    #[test]
    fn replace_all_follows_go_empty_match_rules() {
        assert_eq!(replace("", "ab", "-", true).as_deref(), Ok("-a-b-"));
        assert_eq!(replace("*", "ab", "-", true).as_deref(), Ok("-"));
        assert_eq!(replace("b*", "abcb", "-", true).as_deref(), Ok("a-"));
        assert_eq!(
            replace("a", "banana", "<$0>", true).as_deref(),
            Ok("b<a>n<a>n<a>")
        );
        assert_eq!(
            replace("a", "banana", "<$0>", false).as_deref(),
            Ok("b<$0>nana")
        );
        assert_eq!(replace("?", "日本", ".", true).as_deref(), Ok(".."));
    }

    #[test]
    fn template_expansion_matches_go() {
        let cases = [
            ("$0", "[m]"),
            ("${0}", "[m]"),
            ("$$0", "$0"),
            ("$1", ""),
            ("$x", ""),
            ("$0x", ""),
            ("${0}x", "[m]x"),
            ("$", "$"),
            ("${", "${"),
            ("${0", "${0"),
            ("a$-b", "a$-b"),
            ("$00", ""),
        ];
        for (t, want) in cases {
            let mut out = String::new();
            expand_template(t, "[m]", &mut out);
            assert_eq!(out, want, "template {t:?}");
        }
    }
}
