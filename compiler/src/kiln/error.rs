//! The kiln language's diagnostics: one error type (message, file, span, label, help) and
//! the set of them a check returns, rendered by miette with every file's text attached.
//! Must not: decide what is an error (parse, check and lower do).

use crate::source::ClippedSource;
use crate::syntax::Span;

/// One problem in a kiln program, at a span of one of its files.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(kiln::language))]
pub struct KilnError {
    pub message: String,
    #[source_code]
    pub src: miette::NamedSource<ClippedSource>,
    #[label("{label}")]
    pub span: Span,
    pub label: String,
    #[help]
    pub help: Option<String>,
    /// The calls in other files that led here (innermost first): where a user's program called
    /// the standard-library or module function whose step failed.
    #[related]
    pub called_from: Vec<CallSite>,
}

/// A call that led to an error in another file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("called from {file_name}")]
#[diagnostic(severity(Advice))]
pub struct CallSite {
    pub file_name: String,
    #[source_code]
    pub src: miette::NamedSource<ClippedSource>,
    #[label("this call")]
    pub span: Span,
}

/// Every error a check found, reported at once.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{} error{} in the kiln program", errors.len(), if errors.len() == 1 { "" } else { "s" })]
#[diagnostic(
    code(kiln::check),
    help("no build step ran; fix these and run kiln check again")
)]
pub struct KilnErrors {
    #[related]
    pub errors: Vec<KilnError>,
}

/// An error before it is attached to its file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: usize,
    pub message: String,
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    /// A file outside the program the span is in (name, text): the Dockerfile a
    /// `dockerfile()` call read. None: the span is in the program's file `file`.
    pub outside: Option<Box<(String, String)>>,
    /// Call sites (file, span) in files other than the problem's, innermost first (boxed:
    /// most problems have none, and every lowering result carries this type).
    pub called_from: Option<Box<Vec<(usize, Span)>>>,
}

impl Problem {
    pub fn new(
        file: usize,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Problem {
            file,
            message: message.into(),
            span,
            label: label.into(),
            help: None,
            outside: None,
            called_from: None,
        }
    }

    /// Records the call at `span` of `file` that led to the problem, when the problem is in
    /// another file (a module's or the standard library's function failed in a step it made).
    pub fn called_from(mut self, file: usize, span: Span) -> Self {
        let innermost = self.called_from.as_ref().and_then(|c| c.last());
        if innermost.map_or(self.file, |(f, _)| *f) != file || self.outside.is_some() {
            self.called_from
                .get_or_insert_with(Default::default)
                .push((file, span));
        }
        self
    }

    /// The same problem, at a span of a file outside the program.
    pub fn outside(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.outside = Some(Box::new((name.into(), text.into())));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}
