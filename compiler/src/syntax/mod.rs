//! Dockerfile syntax: text to [`Dockerfile`] tree, at the level of BuildKit's parser package.
//!
//! Owns directives, line continuations, flags, exec/shell form, per-instruction argument
//! splitting and heredocs. Must not: expand variables, validate instruction names or flags
//! (that is `crate::dockerfile`), or read files.

pub mod ast;
pub mod json;
mod parser;

pub use ast::*;
pub(crate) use parser::is_whole_line_heredoc;
pub use parser::{parse, ParseError};
