//! Finding heredoc markers (`<<EOF`, `<<-"EOF"`, `3<<EOF`) in a RUN/COPY/ADD line the way
//! BuildKit v0.12.5 does.
//!
//! BuildKit splits the whole instruction line into words with its shell lexer (quotes and
//! escapes kept raw, `$` references left as written since no variable is set), matches each
//! word against `^(\d*)<<(-?)([^<]*)$`, and lexes the delimiter twice (with and without quote
//! removal) to learn its name and whether it was quoted. A lexing failure of the whole line
//! means "no heredocs"; a lexing failure of a delimiter is a parse error.
//!
//! Owns: that word splitting (a subset of BuildKit's shell lexer with an empty environment,
//! `\` as escape whatever the file's escape character) and the marker rules.
//! Must not: expand variables for real (that is `crate::shell`) or read heredoc bodies.

use super::go_text::{go_quote, is_go_digit, is_go_letter};

/// A heredoc marker found in an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeredocMarker {
    /// The delimiter with quotes removed.
    pub name: String,
    /// Go's `strconv.ParseUint` result: 0 when absent, `u64::MAX` when out of range.
    pub file_descriptor: u64,
    pub chomp: bool,
    pub expand: bool,
    /// Byte range of the marker word in the line.
    pub start: usize,
    pub end: usize,
}

/// The heredoc markers of `line` in order, or BuildKit's error message.
pub(super) fn heredoc_markers(line: &str) -> Result<Vec<HeredocMarker>, String> {
    let words = match Lexer::new(line, true, true).words() {
        Ok(words) => words,
        // BuildKit ignores a line it cannot lex: no heredocs.
        Err(_) => return Ok(Vec::new()),
    };
    let mut markers = Vec::new();
    for word in words {
        if let Some(marker) = marker_from_word(&word)? {
            markers.push(marker);
        }
    }
    Ok(markers)
}

/// `^(\d*)<<(-?)([^<]*)$` on one word, then the delimiter checks of `heredocFromMatch`.
fn marker_from_word(word: &Word) -> Result<Option<HeredocMarker>, String> {
    let text = word.text.as_str();
    let digits_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = text[digits_len..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let file_descriptor = if digits_len == 0 {
        0
    } else {
        text[..digits_len].parse::<u64>().unwrap_or(u64::MAX)
    };

    let unquoted = Lexer::new(rest, false, false)
        .words()
        .map_err(|e| failed_to_process(rest, &e))?;
    if unquoted.len() != 1 {
        return Ok(None);
    }
    let raw = Lexer::new(rest, true, false)
        .words()
        .map_err(|e| failed_to_process(rest, &e))?;
    let [name] = <[Word; 1]>::try_from(unquoted).map_err(|_| inconsistent(rest))?;
    let [raw] = <[Word; 1]>::try_from(raw).map_err(|_| inconsistent(rest))?;
    let quotes = |s: &str| s.bytes().filter(|&b| b == b'\'' || b == b'"').count();
    Ok(Some(HeredocMarker {
        expand: quotes(&name.text) == quotes(&raw.text),
        name: name.text,
        file_descriptor,
        chomp,
        start: word.start,
        end: word.end,
    }))
}

/// BuildKit's `MustParseHeredoc` on a whole RUN command line (`^(\d*)<<(-?)\s*([^<]*)$` with
/// a delimiter that lexes to one word): whether the line is nothing but one heredoc marker.
/// A lexing failure means "no" there too.
pub(crate) fn is_whole_line_heredoc(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = line[digits..].strip_prefix("<<") else {
        return false;
    };
    let after = after.strip_prefix('-').unwrap_or(after);
    // Go's `\s`: ASCII space, tab, newline, form feed, carriage return.
    let rest = after.trim_start_matches([' ', '\t', '\n', '\x0c', '\r']);
    if rest.is_empty() || rest.contains('<') {
        return false;
    }
    matches!(Lexer::new(rest, false, false).words(), Ok(w) if w.len() == 1)
}

fn failed_to_process(source: &str, err: &str) -> String {
    format!("failed to process {}: {}", go_quote(source), err)
}

fn inconsistent(rest: &str) -> String {
    format!("internal lexing of heredoc produced inconsistent results: {rest}")
}

/// One word and its byte range in the lexed text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    start: usize,
    end: usize,
}

/// BuildKit's `wordsStruct`: accumulates words, splitting on white space outside quotes.
#[derive(Default)]
struct WordsBuilder {
    word: String,
    in_word: bool,
    start: usize,
    words: Vec<Word>,
}

impl WordsBuilder {
    fn begin(&mut self, at: usize) {
        if !self.in_word {
            self.in_word = true;
            self.start = at;
        }
    }

    fn finish(&mut self, end: usize) {
        let text = std::mem::take(&mut self.word);
        self.words.push(Word {
            text,
            start: self.start,
            end,
        });
        self.in_word = false;
    }

    /// `addChar`: white space ends a non-empty word, other characters are added.
    fn add_char(&mut self, c: char, at: usize) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.finish(at);
            }
        } else {
            self.add_raw_char(c, at);
        }
    }

    fn add_raw_char(&mut self, c: char, at: usize) {
        self.begin(at);
        self.word.push(c);
    }

    fn add_string(&mut self, s: &str, at: usize) {
        for c in s.chars() {
            self.add_char(c, at);
        }
    }

    fn add_raw_string(&mut self, s: &str, at: usize) {
        self.begin(at);
        self.word.push_str(s);
    }

    fn into_words(mut self, end: usize) -> Vec<Word> {
        if !self.word.is_empty() {
            self.finish(end);
        }
        self.words
    }
}

/// The subset of BuildKit's shell lexer used for heredoc markers: escape `\`, no variables
/// set and unset ones kept as written (`SkipUnsetEnv`).
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
}

const ESCAPE: char = '\\';

impl<'a> Lexer<'a> {
    fn new(text: &'a str, raw_quotes: bool, raw_escapes: bool) -> Self {
        // Go's text/scanner skips a byte order mark at the very start.
        let pos = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
        Lexer {
            text,
            pos,
            raw_quotes,
            raw_escapes,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// `ProcessWords`: the words of the whole text, or the lexer's error message.
    fn words(mut self) -> Result<Vec<Word>, String> {
        self.process_stop_on(None).map(|(_, words)| words)
    }

    /// `processStopOn`: the processed text and its words up to `stop` (consumed) or the end.
    fn process_stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<Word>), String> {
        let mut result = String::new();
        let mut words = WordsBuilder::default();
        while let Some(c) = self.peek() {
            let at = self.pos;
            if Some(c) == stop {
                self.pos += c.len_utf8();
                return Ok((result, words.into_words(at)));
            }
            match c {
                '$' => {
                    let s = self.process_dollar()?;
                    result.push_str(&s);
                    words.add_string(&s, at);
                }
                '\'' => {
                    let s = self.process_single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s, at);
                }
                '"' => {
                    let s = self.process_double_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s, at);
                }
                _ => {
                    self.pos += c.len_utf8();
                    if c == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(c, at);
                            result.push(c);
                        }
                        let Some(escaped) = self.next_char() else {
                            break;
                        };
                        words.add_raw_char(escaped, at);
                        result.push(escaped);
                    } else {
                        words.add_char(c, at);
                        result.push(c);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        let end = self.pos;
        Ok((result, words.into_words(end)))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next_char();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next_char() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next_char();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let s = self.process_dollar()?;
                    out.push_str(&s);
                }
                Some(mut c) => {
                    self.pos += c.len_utf8();
                    if c == ESCAPE {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n @ ('"' | '$' | ESCAPE)) => {
                                self.pos += n.len_utf8();
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `processDollar` with no variable set: references come back as written.
    fn process_dollar(&mut self) -> Result<String, String> {
        self.next_char(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            return Ok(format!("${name}"));
        }
        self.next_char(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        // Go reads scanner.EOF as a rune and prints it as U+FFFD.
        let modifier = self.next_char();
        let mut modifiers = String::from(modifier.unwrap_or('\u{FFFD}'));
        match modifier {
            Some('}') => return Ok(format!("${{{name}}}")),
            Some(':') => modifiers.push(self.next_char().unwrap_or('\u{FFFD}')),
            Some('+' | '-' | '?') => {}
            _ => {
                return Err(format!(
                    "unsupported modifier ({modifiers}) in substitution"
                ))
            }
        }
        let word = match self.process_stop_on(Some('}')) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        Ok(format!("${{{name}{modifiers}{word}}}"))
    }

    /// `processName`: a run of digits, one special parameter character, or letters, digits
    /// and underscores.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_go_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_go_digit(d)) {
                    self.pos += d.len_utf8();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += c.len_utf8();
                name.push(c);
                return name;
            }
            if !is_go_letter(c) && !is_go_digit(c) && c != '_' {
                break;
            }
            self.pos += c.len_utf8();
            name.push(c);
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, u64, bool, bool)> {
        heredoc_markers(line)
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.file_descriptor, m.chomp, m.expand))
            .collect()
    }

    #[test]
    fn plain_quoted_and_fd_markers() {
        assert_eq!(names("RUN cat <<EOF"), vec![("EOF".into(), 0, false, true)]);
        assert_eq!(
            names(r#"RUN <<-"EOF""#),
            vec![("EOF".into(), 0, true, false)]
        );
        assert_eq!(
            names("RUN 3<<'X' 4<<Y"),
            vec![("X".into(), 3, false, false), ("Y".into(), 4, false, true)]
        );
        assert_eq!(names("RUN a<<EOF <<<x <<- <<\"\""), vec![]);
        assert_eq!(names(r"RUN <<\EOF"), vec![("EOF".into(), 0, false, true)]);
    }

    #[test]
    fn unlexable_line_has_no_markers_but_bad_delimiter_is_an_error() {
        assert_eq!(names("RUN cat <<EOF; echo 'x"), vec![]);
        assert_eq!(
            heredoc_markers("RUN cat <<${a:-b c}").unwrap_err(),
            "failed to process \"${a:-b\": syntax error: missing '}'"
        );
    }

    #[test]
    fn marker_ranges_point_at_the_word() {
        let line = "COPY <<A  3<<-B /dst";
        let m = heredoc_markers(line).unwrap();
        assert_eq!(&line[m[0].start..m[0].end], "<<A");
        assert_eq!(&line[m[1].start..m[1].end], "3<<-B");
    }
}
