//! The one error type of Dockerfile semantics: a message, the offending span, a label on it,
//! and a help line when the fix is clear. Rendered by miette with the file's text attached
//! by the caller (`kiln_compiler::source`).

use crate::syntax::Span;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(kiln::dockerfile))]
pub struct DockerfileError {
    pub message: String,
    #[label("{label}")]
    pub span: Span,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

impl DockerfileError {
    pub fn at(message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        DockerfileError {
            message: message.into(),
            span,
            label: label.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}
