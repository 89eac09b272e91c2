//! The one error type of the layer module.
//!
//! Owns: `LayerError`, its messages and miette codes.
//! Must not: decide policy; callers and the other layer files choose which variant applies.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LayerError {
    #[error("{context}: {source}")]
    #[diagnostic(code(kiln::layer::io))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("path `{path}` appears twice in one layer")]
    #[diagnostic(
        code(kiln::layer::duplicate_path),
        help("each path may have only one entry in a layer")
    )]
    DuplicatePath { path: String },

    #[error("invalid entry path `{path}`: {reason}")]
    #[diagnostic(code(kiln::layer::invalid_path))]
    InvalidPath { path: String, reason: &'static str },

    #[error("invalid entry `{path}`: {reason}")]
    #[diagnostic(code(kiln::layer::invalid_entry))]
    InvalidEntry { path: String, reason: String },

    #[error("hardlink `{path}` points at `{target}`, which is not a regular file of this layer")]
    #[diagnostic(code(kiln::layer::hardlink_target))]
    HardlinkTarget { path: String, target: String },

    #[error("`{}` changed while the layer was written: expected {expected} bytes, found {found}", source_path.display())]
    #[diagnostic(
        code(kiln::layer::source_changed),
        help("a build context file was modified during the build; run the build again")
    )]
    SourceChanged {
        source_path: PathBuf,
        expected: u64,
        found: u64,
    },

    #[error("{field} of `{path}` does not fit in a tar header")]
    #[diagnostic(code(kiln::layer::field_overflow))]
    FieldOverflow { path: String, field: &'static str },

    #[error("layer entry `{entry}` escapes the root: {reason}")]
    #[diagnostic(
        code(kiln::layer::escape),
        help(
            "the archive tries to write outside the directory it is unpacked into; it is refused"
        )
    )]
    Escape { entry: String, reason: String },

    #[error("malformed tar: {detail}")]
    #[diagnostic(code(kiln::layer::malformed))]
    Malformed { detail: String },

    #[error("in layer {}", layer.display())]
    #[diagnostic(code(kiln::layer::in_layer))]
    InLayer {
        layer: PathBuf,
        #[source]
        source: Box<LayerError>,
    },

    #[error("`{path}` does not exist in the image filesystem")]
    #[diagnostic(code(kiln::layer::not_found))]
    NotFound { path: String },

    #[error("{} is not empty", path.display())]
    #[diagnostic(
        code(kiln::layer::not_empty),
        help("layers are extracted into a new, empty directory")
    )]
    NotEmpty { path: PathBuf },

    #[error("`{path}` is not a regular file")]
    #[diagnostic(code(kiln::layer::not_a_file))]
    NotAFile { path: String },
}

impl LayerError {
    /// An I/O error with a sentence saying what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LayerError::Io {
            context: context.into(),
            source,
        }
    }
}
