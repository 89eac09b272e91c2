//! The Dockerfile parser: text to [`Dockerfile`], reproducing BuildKit v0.12.5's
//! `frontend/dockerfile/parser` (the version behind the conformance oracle) plus the `check`
//! directive of newer BuildKit.
//!
//! Owns the line-level structure: the 64 KiB line limit of Go's `bufio.Scanner`, the byte
//! order mark, parser directives, line continuations (with comment and empty lines inside
//! them), heredoc bodies, line numbers and byte spans. Argument splitting per instruction is in
//! `arguments`, exec-form JSON in `exec_json`, heredoc markers in `heredoc_words`.
//! Must not: expand variables, validate instruction names or flags, read files, or panic on
//! any input.

mod arguments;
mod exec_json;
mod go_text;
mod heredoc_words;

use std::borrow::Cow;

use super::ast::*;
use arguments::{split_instruction, Keyword, NodeParts};
use heredoc_words::heredoc_markers;
pub(crate) use heredoc_words::is_whole_line_heredoc;

/// A Dockerfile BuildKit's parser would reject, with the place to point at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct ParseError {
    /// BuildKit's own wording where BuildKit has one.
    pub message: String,
    #[label("{label}")]
    pub span: Span,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

impl ParseError {
    fn new(message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        ParseError {
            message: message.into(),
            span,
            label: label.into(),
            help: None,
        }
    }

    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Go's `bufio.MaxScanTokenSize`: BuildKit reads lines with a `bufio.Scanner`, which fails on
/// a line (newline included) longer than this.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Parse Dockerfile text. The text must already be valid UTF-8 (callers decode and report
/// bad bytes themselves). Never panics.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    Parser {
        text,
        lines: Lines {
            text,
            pos: 0,
            number: 0,
            too_long: None,
        },
        escape: '\\',
        directives: Vec::new(),
        directives_done: false,
        instructions: Vec::new(),
        warnings: Vec::new(),
        comments: Vec::new(),
    }
    .run()
}

/// One physical line: `[start, content_end)` is the text without its line ending
/// (BuildKit's `trimNewline` strips every trailing `\r` and `\n`), `end` is past the `\n`.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    content_end: usize,
    end: usize,
    number: usize,
}

/// The physical lines, stopping (as Go's scanner does) at the first line that is too long.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
    number: usize,
    /// Set when reading stopped at an over-long line: its number and where it starts.
    too_long: Option<(usize, usize)>,
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.pos >= self.text.len() || self.too_long.is_some() {
            return None;
        }
        let start = self.pos;
        let rest = self.text.get(start..)?;
        let (end, fits) = match rest.find('\n') {
            Some(i) => (start + i + 1, i < MAX_LINE_BYTES),
            // A last line without newline must leave the scanner's buffer not full.
            None => (self.text.len(), rest.len() < MAX_LINE_BYTES),
        };
        if !fits {
            self.too_long = Some((self.number + 1, start));
            return None;
        }
        let bytes = self.text.as_bytes();
        let mut content_end = end;
        while content_end > start && matches!(bytes.get(content_end - 1), Some(b'\n' | b'\r')) {
            content_end -= 1;
        }
        self.pos = end;
        self.number += 1;
        Some(Line {
            start,
            content_end,
            end,
            number: self.number,
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    lines: Lines<'a>,
    escape: char,
    directives: Vec<Directive>,
    /// Directives are only read before the first line that is not one.
    directives_done: bool,
    instructions: Vec<Instruction>,
    warnings: Vec<ParseWarning>,
    /// Comment lines since the last instruction (BuildKit's `PrevComment`).
    comments: Vec<String>,
}

/// Where the logical line of one instruction comes from: the source range of every piece
/// joined after removing line continuations, for mapping logical offsets back to the source.
struct PieceMap {
    pieces: Vec<(usize, usize)>,
}

impl PieceMap {
    /// The logical line: the pieces joined (borrowed when there is only one).
    fn join<'a>(&self, source: &'a str) -> Cow<'a, str> {
        match self.pieces.as_slice() {
            [(s, e)] => Cow::Borrowed(source.get(*s..*e).unwrap_or("")),
            pieces => {
                let mut joined = String::with_capacity(pieces.iter().map(|p| p.1 - p.0).sum());
                for &(s, e) in pieces {
                    joined.push_str(source.get(s..e).unwrap_or(""));
                }
                Cow::Owned(joined)
            }
        }
    }

    /// Source offset of the byte at logical offset `j` (or the end of the last piece).
    fn source_offset(&self, j: usize) -> usize {
        let mut acc = 0;
        for &(s, e) in &self.pieces {
            let len = e - s;
            if j < acc + len {
                return s + (j - acc);
            }
            acc += len;
        }
        self.pieces.last().map_or(0, |p| p.1)
    }

    /// Source span of the logical range `[s, e)`. A range crossing a continuation covers the
    /// continuation characters and skipped lines in between.
    fn span(&self, (s, e): (usize, usize)) -> Span {
        let start = self.source_offset(s);
        if e <= s {
            return Span::new(start, start);
        }
        Span::new(start, self.source_offset(e - 1) + 1)
    }
}

/// One instruction's lines before splitting: the source pieces to join, where it starts, and
/// the last physical line it took.
struct LogicalLine {
    pieces: Vec<(usize, usize)>,
    start: usize,
    start_line: usize,
    last: Line,
}

/// Which node of an instruction gets heredocs: RUN, COPY or ADD in shell form, directly or
/// as the instruction of an ONBUILD (BuildKit's `canContainHeredoc`).
fn heredoc_target(chain: &[NodeParts]) -> Option<usize> {
    let takes = |n: &NodeParts| n.keyword.is_some_and(|k| k.takes_heredocs()) && !n.json;
    match chain {
        [n, ..] if takes(n) => Some(0),
        [o, n, ..] if o.keyword == Some(Keyword::Onbuild) && takes(n) => Some(1),
        _ => None,
    }
}

/// BuildKit's directive pattern `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` (Go's `\s` is
/// `[\t\n\f\r ]`): the key as written and the value.
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let is_re_space = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let key_len = rest
        .bytes()
        .enumerate()
        .take_while(|&(i, b)| {
            if i == 0 {
                b.is_ascii_alphabetic()
            } else {
                b.is_ascii_alphanumeric()
            }
        })
        .count();
    if key_len == 0 {
        return None;
    }
    let key = &rest[..key_len];
    let after = rest[key_len..]
        .trim_start_matches(is_re_space)
        .strip_prefix('=')?;
    let trimmed = after.trim_start_matches(is_re_space);
    let value = if trimmed.is_empty() {
        // Only white space after `=`: the lazy `(.+?)` still takes its last character.
        after.get(after.len().checked_sub(1)?..)?
    } else {
        trimmed.trim_end_matches(is_re_space)
    };
    Some((key, value))
}

/// BuildKit's `lineContinuationRegex`: the escape character as the last non-blank (space or
/// tab) character continues the line, unless it is itself escaped. Returns the text with the
/// escape and trailing blanks removed, and whether the line ends the instruction.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

impl<'a> Parser<'a> {
    fn run(mut self) -> Result<Dockerfile, ParseError> {
        // Not a `for` loop: reading an instruction reads further lines itself.
        #[allow(clippy::while_let_on_iterator)]
        while let Some(line) = self.lines.next() {
            self.instruction_from(line)?;
        }
        if self.instructions.is_empty() {
            return Err(ParseError::new(
                "file with no instructions",
                Span::new(0, 0),
                "no instruction in this file",
            )
            .with_help("a Dockerfile needs at least one instruction, such as FROM"));
        }
        if let Some((number, start)) = self.lines.too_long {
            let first_char = self
                .text
                .get(start..)
                .and_then(|t| t.chars().next())
                .map_or(0, char::len_utf8);
            return Err(ParseError::new(
                format!(
                    "dockerfile line greater than max allowed size of {}",
                    MAX_LINE_BYTES - 1
                ),
                Span::new(start, start + first_char),
                format!("line {number} is longer than {} bytes", MAX_LINE_BYTES - 1),
            )
            .with_help("split the line with line continuations"));
        }
        Ok(Dockerfile {
            directives: self.directives,
            escape: self.escape,
            instructions: self.instructions,
            warnings: self.warnings,
        })
    }

    /// Handle one line read at instruction level: a directive, comment or blank line, or the
    /// start of an instruction (then read its continuation and heredoc lines too).
    fn instruction_from(&mut self, line: Line) -> Result<(), ParseError> {
        let Some(logical) = self.logical_line(line)? else {
            return Ok(());
        };
        let map = PieceMap {
            pieces: logical.pieces,
        };
        let joined = map.join(self.text);
        let instruction_start = |chain: &[NodeParts]| {
            chain
                .first()
                .and_then(|n| n.word_range)
                .filter(|r| r.0 < r.1)
                .map_or(logical.start, |r| map.source_offset(r.0))
        };
        let chain = split_instruction(&joined, self.escape).map_err(|e| ParseError {
            message: e.message,
            span: Span::new(
                logical.start.min(logical.last.content_end),
                logical.last.content_end,
            ),
            label: e.label.into(),
            help: e.help,
        })?;
        let start = instruction_start(&chain);

        // Heredocs: RUN/COPY/ADD (directly or right under ONBUILD) in shell form.
        let target = heredoc_target(&chain);
        let mut last = logical.last;
        let mut heredocs = Vec::new();
        if target.is_some() && joined.contains("<<") {
            let markers = heredoc_markers(&joined).map_err(|message| {
                ParseError::new(
                    message,
                    Span::new(start, last.content_end),
                    "cannot read this heredoc delimiter",
                )
            })?;
            for marker in markers {
                let word_span = map.span((marker.start, marker.end));
                let (heredoc, terminator) = self.heredoc_body(marker, word_span)?;
                heredocs.push(heredoc);
                last = terminator;
            }
        }

        // Build the instruction from the innermost ONBUILD level outwards.
        let span_end = last.content_end.max(start);
        let fallback = Span::new(start, span_end);
        let outer_args = chain
            .first()
            .and_then(|n| n.args_range)
            .map_or(fallback, |r| map.span(r));
        let mut built: Option<Instruction> = None;
        let mut line_text = Some(joined);
        for (level, node) in chain.into_iter().enumerate().rev() {
            let cmd_span = node.word_range.map_or(fallback, |r| map.span(r));
            let original = match node.inner_text {
                Some(t) => t,
                None => line_text.take().map(Cow::into_owned).unwrap_or_default(),
            };
            built = Some(Instruction {
                cmd: node.cmd,
                cmd_span,
                sub: built.take().map(Box::new),
                json: node.json,
                flags: node
                    .flags
                    .into_iter()
                    .map(|(raw, r)| Flag {
                        raw,
                        span: r.map_or(outer_args, |r| map.span(r)),
                    })
                    .collect(),
                value: node.value,
                args_span: node.args_range.map_or(outer_args, |r| map.span(r)),
                heredocs: if target == Some(level) {
                    std::mem::take(&mut heredocs)
                } else {
                    Vec::new()
                },
                start_line: logical.start_line,
                end_line: last.number,
                span: Span::new(cmd_span.start.min(span_end), span_end),
                original,
                comments: if level == 0 {
                    std::mem::take(&mut self.comments)
                } else {
                    Vec::new()
                },
            });
        }
        self.instructions.extend(built);
        Ok(())
    }

    /// Read one logical line starting at `line`: check it for a directive, skip it when it is
    /// blank or a comment, else follow its continuations (dropping comment lines and warning
    /// about empty ones). `None` when the line starts no instruction.
    fn logical_line(&mut self, line: Line) -> Result<Option<LogicalLine>, ParseError> {
        let text = self.text;
        let mut start = line.start;
        if line.number == 1 && text.get(start..).is_some_and(|t| t.starts_with('\u{FEFF}')) {
            start += '\u{FEFF}'.len_utf8();
        }
        let content = text.get(start..line.content_end).unwrap_or("");
        let stripped = content.trim_start();
        let stripped_start = line.content_end - stripped.len();
        if stripped.starts_with('#') {
            // BuildKit trims the text after the line's first byte: an indented comment keeps
            // its `#`. An empty comment ends the run.
            let comment = content
                .get(1..)
                .or_else(|| stripped.strip_prefix('#'))
                .unwrap_or("")
                .trim();
            if comment.is_empty() {
                self.comments.clear();
            } else {
                self.comments.push(comment.to_owned());
            }
        }
        if !self.directives_done {
            let before = self.directives.len();
            self.directive(stripped, Span::new(stripped_start, line.content_end))?;
            if self.directives.len() > before {
                self.comments.pop();
            }
        }
        let first = if stripped.starts_with('#') {
            ""
        } else {
            stripped
        };
        let (piece, mut ends) = trim_continuation(first, self.escape);
        if ends && piece.is_empty() {
            return Ok(None);
        }

        let mut last = line;
        let mut pieces = vec![(stripped_start, stripped_start + piece.len())];
        let mut empty_continuation: Option<Span> = None;
        while !ends {
            let Some(next) = self.lines.next() else {
                break;
            };
            last = next;
            let raw = text.get(next.start..next.content_end).unwrap_or("");
            if is_comment(raw) {
                continue;
            }
            if raw.trim_start().is_empty() {
                empty_continuation.get_or_insert(Span::new(next.start, next.content_end));
                continue;
            }
            let (piece, e) = trim_continuation(raw, self.escape);
            pieces.push((next.start, next.start + piece.len()));
            ends = e;
        }
        if let Some(span) = empty_continuation {
            self.warnings.push(ParseWarning {
                message: "empty continuation line".into(),
                span,
            });
        }
        Ok(Some(LogicalLine {
            pieces,
            start: stripped_start,
            start_line: line.number,
            last,
        }))
    }

    /// Check one top line for a parser directive; the first line that is not one ends them.
    fn directive(&mut self, line: &str, span: Span) -> Result<(), ParseError> {
        let Some((key, value)) = match_directive(line) else {
            self.directives_done = true;
            return Ok(());
        };
        let name = key.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        if self.directives.iter().any(|d| d.name == name) {
            return Err(ParseError::new(
                format!("only one {name} parser directive can be used"),
                span,
                "repeated parser directive",
            )
            .with_help(format!("keep a single `# {name}=...` line")));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::new(
                        format!("invalid escape token '{value}' does not match ` or \\"),
                        span,
                        "not a valid escape character",
                    )
                    .with_help("the escape character is \\ (the default) or ` (backtick)"))
                }
            };
        }
        self.directives.push(Directive {
            name,
            value: value.to_owned(),
            span,
        });
        Ok(())
    }

    /// Read the body of one heredoc up to its terminator line. Returns the heredoc and the
    /// last line read.
    fn heredoc_body(
        &mut self,
        marker: heredoc_words::HeredocMarker,
        word_span: Span,
    ) -> Result<(Heredoc, Line), ParseError> {
        let text = self.text;
        let mut content = String::new();
        let mut body_start: Option<usize> = None;
        for line in self.lines.by_ref() {
            body_start.get_or_insert(line.start);
            let mut candidate = text.get(line.start..line.content_end).unwrap_or("");
            if marker.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == marker.name {
                let heredoc = Heredoc {
                    name: marker.name,
                    file_descriptor: u32::try_from(marker.file_descriptor).unwrap_or(u32::MAX),
                    content,
                    expand: marker.expand,
                    chomp: marker.chomp,
                    span: Span::new(body_start.unwrap_or(line.start), line.content_end),
                    word_span,
                };
                return Ok((heredoc, line));
            }
            content.push_str(text.get(line.start..line.end).unwrap_or(""));
        }
        Err(ParseError::new(
            "unterminated heredoc",
            word_span,
            format!("no line `{}` ends this heredoc", marker.name),
        )
        .with_help(format!(
            "end the heredoc with a line containing exactly `{}`",
            marker.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, Vec<String>, usize, usize)> {
        parse(text)
            .unwrap()
            .instructions
            .into_iter()
            .map(|i| (i.cmd, i.value, i.start_line, i.end_line))
            .collect()
    }

    #[test]
    fn directives_stop_at_first_other_line() {
        let df =
            parse("# syntax=x\n#ESCAPE = `\n# check=skip=all\n\n# escape=\\\nRUN a `\n b").unwrap();
        assert_eq!(df.escape, '`');
        let names: Vec<&str> = df.directives.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["syntax", "escape", "check"]);
        assert_eq!(df.instructions[0].value, ["a  b"]);
        assert!(parse("# escape=x\nRUN a").is_err());
        assert!(parse("# syntax=a\n# syntax=b\nRUN a").is_err());
        assert!(parse("# escape=   \nRUN x").is_err());
    }

    #[test]
    fn continuations_comments_and_empty_lines() {
        let df = parse("RUN a \\\n# c\n\n  b \\  \n c\nRUN d \\\\\nRUN e").unwrap();
        assert_eq!(df.instructions[0].value, ["a   b  c"]);
        assert_eq!(
            (df.instructions[0].start_line, df.instructions[0].end_line),
            (1, 5)
        );
        assert_eq!(df.instructions[1].value, ["d \\\\"]);
        assert_eq!(df.warnings.len(), 1);
        assert_eq!(df.warnings[0].span, Span::new(12, 12));
    }

    #[test]
    fn empty_and_comment_only_files_fail() {
        assert_eq!(parse("").unwrap_err().message, "file with no instructions");
        assert_eq!(
            parse("# a\n\n  # b\n").unwrap_err().message,
            "file with no instructions"
        );
    }

    #[test]
    fn heredocs_and_lines() {
        let text = "FROM a\nRUN 3<<A cat <<-\"B\"\r\nx\r\nA\n\ty\n\tB\nRUN z";
        let df = parse(text).unwrap();
        let run = &df.instructions[1];
        assert_eq!((run.start_line, run.end_line), (2, 6));
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].content, "x\r\n");
        assert_eq!(run.heredocs[0].file_descriptor, 3);
        // The tree keeps `<<-` tabs as BuildKit's does; `body` removes them.
        assert_eq!(run.heredocs[1].content, "\ty\n");
        assert_eq!(run.heredocs[1].body(), "y\n");
        assert!(run.heredocs[1].chomp && !run.heredocs[1].expand);
        assert_eq!(
            &text[run.heredocs[1].word_span.start..run.heredocs[1].word_span.end],
            "<<-\"B\""
        );
        assert_eq!(values(text)[2].2, 7);
        assert!(parse("RUN <<EOF\nabc").is_err());
    }

    #[test]
    fn comments_before_an_instruction_are_kept() {
        let df = parse(
            "# check=skip=all\n# a\n  # b\n\nFROM x\n# c\n#\n# d\nRUN \\\n# not this\n y\nRUN z\n",
        )
        .unwrap();
        // The directive is not a comment; an indented one keeps its `#` as in BuildKit; an
        // empty `#` starts afresh; comments inside continuations belong to no list.
        assert_eq!(df.instructions[0].comments, ["a", "# b"]);
        assert_eq!(df.instructions[1].comments, ["d"]);
        assert!(df.instructions[2].comments.is_empty());
    }

    #[test]
    fn spans_point_into_the_source() {
        let text = "\u{FEFF}  copy --from=a \\\n  x \\\n # c\n  y";
        let df = parse(text).unwrap();
        let i = &df.instructions[0];
        assert_eq!(&text[i.cmd_span.start..i.cmd_span.end], "copy");
        assert_eq!(
            &text[i.flags[0].span.start..i.flags[0].span.end],
            "--from=a"
        );
        assert_eq!(&text[i.args_span.start..i.args_span.end], "x \\\n # c\n  y");
        assert_eq!(i.value, ["x", "y"]);
        assert_eq!(&text[i.span.start..i.span.end], &text[5..]);
    }

    #[test]
    fn too_long_lines_fail_like_go_scanner() {
        let ok = format!("RUN {}\n", "a".repeat(MAX_LINE_BYTES - 5));
        assert!(parse(&ok).is_ok());
        let long = format!("RUN {}\n", "a".repeat(MAX_LINE_BYTES - 4));
        assert!(parse(&long).is_err());
        let last_ok = format!("RUN {}", "a".repeat(MAX_LINE_BYTES - 5));
        assert!(parse(&last_ok).is_ok());
        let last_long = format!("RUN {}", "a".repeat(MAX_LINE_BYTES - 4));
        assert!(parse(&last_long).is_err());
    }
}
