//! The Dockerfile syntax tree: what the parser produces and everything later reads.
//!
//! It mirrors BuildKit's parser `Node` so the two can be compared field by field
//! (`cmd`, `sub_cmd`, `json`, `flags`, `value`, lines, heredocs), and adds byte spans so
//! every later diagnostic can point at the exact text. It holds no meaning: variables are
//! not expanded, flags are not interpreted, instruction names are not validated.

use serde::Serialize;

pub use kiln_plan::span::Span;

/// A parser directive (`# syntax=...`, `# escape=...`, `# check=...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lower-cased name.
    pub name: String,
    pub value: String,
    pub span: Span,
}

/// A heredoc attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// `3<<EOF` gives 3; 0 when no descriptor was written.
    pub file_descriptor: u32,
    /// The body lines as written, each with its line ending (so it ends with `\n`; a CRLF
    /// file keeps its `\r\n`), as BuildKit's parse tree keeps it: for `<<-` the leading tabs
    /// are still there (see [`Heredoc::body`] for the text an instruction uses).
    pub content: String,
    /// False when the delimiter was quoted: no variable expansion in the body.
    pub expand: bool,
    /// True for `<<-`: leading tabs stripped from every body line.
    pub chomp: bool,
    /// The body lines and the terminator line.
    pub span: Span,
    /// The marker word in the instruction line (`<<EOF`, `3<<-"EOF"`).
    pub word_span: Span,
}

impl Heredoc {
    /// The body as RUN and COPY use it: for `<<-` every line's leading tabs removed (Go's
    /// `(?m)^\t+` removal, BuildKit's `ChompHeredocContent`), else the content as written.
    pub fn body(&self) -> std::borrow::Cow<'_, str> {
        if !self.chomp {
            return std::borrow::Cow::Borrowed(&self.content);
        }
        std::borrow::Cow::Owned(
            self.content
                .split_inclusive('\n')
                .map(|l| l.trim_start_matches('\t'))
                .collect(),
        )
    }
}

/// One flag word as written, e.g. `--from=build` (raw, unexpanded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub raw: String,
    pub span: Span,
}

/// One instruction (a BuildKit `Node` child of the root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// Instruction name upper-cased (`RUN`), or for unknown ones the upper-cased word.
    pub cmd: String,
    /// Span of the instruction keyword as written.
    pub cmd_span: Span,
    /// For ONBUILD: the inner instruction (its own cmd, flags, value, ...). Else None.
    pub sub: Option<Box<Instruction>>,
    /// True when the arguments were a JSON array of strings (exec form).
    pub json: bool,
    /// Leading `--k=v` words.
    pub flags: Vec<Flag>,
    /// Arguments, split exactly as BuildKit's parser splits them for this instruction (its
    /// node's `Next` chain): for an unknown instruction and for ONBUILD with an inner
    /// instruction that is one empty string, as in BuildKit.
    pub value: Vec<String>,
    /// Span of the argument text after the flags (continuations joined in the source, so
    /// this range may cover several lines).
    pub args_span: Span,
    pub heredocs: Vec<Heredoc>,
    /// 1-based, continuation and heredoc lines included.
    pub start_line: usize,
    pub end_line: usize,
    /// Whole instruction, keyword to last line (heredoc bodies included).
    pub span: Span,
    /// The instruction line as BuildKit's `original`: continuation lines joined.
    pub original: String,
    /// The comment lines right before the instruction (BuildKit's `PrevComment`), each
    /// without its `#` and trimmed; an empty `#` line starts the list afresh, directives are
    /// not in it. Empty for ONBUILD's inner instruction.
    pub comments: Vec<String>,
}

impl Instruction {
    /// The span of the first occurrence of `needle` inside this instruction's argument text,
    /// falling back to the argument span, then to the keyword. Used to point diagnostics at
    /// one word of an argument.
    pub fn span_of(&self, source: &str, needle: &str) -> Span {
        let region = source
            .get(self.args_span.start..self.args_span.end)
            .unwrap_or("");
        if !needle.is_empty() {
            if let Some(i) = region.find(needle) {
                let start = self.args_span.start + i;
                return Span::new(start, start + needle.len());
            }
        }
        if !self.args_span.is_empty() {
            self.args_span
        } else {
            self.cmd_span
        }
    }
}

/// A non-fatal finding of the parser (e.g. an empty line inside a continuation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseWarning {
    pub message: String,
    pub span: Span,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    pub directives: Vec<Directive>,
    /// `\\` unless an `escape` directive chose `` ` ``.
    pub escape: char,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<ParseWarning>,
}
