//! The parser proper. (Being written: see the parser task.)
use super::ast::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    #[label("{label}")]
    pub span: Span,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

/// Parse Dockerfile text. The text must already be valid UTF-8 (callers decode and report
/// bad bytes themselves). Never panics.
pub fn parse(_text: &str) -> Result<Dockerfile, ParseError> {
    unimplemented!("parser task")
}
