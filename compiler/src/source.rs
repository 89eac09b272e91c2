//! PLACEHOLDER until the parser branch lands: reading a Dockerfile into text.
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SourceText {
    pub name: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot read {path}")]
pub struct SourceError {
    pub path: PathBuf,
}

pub fn read_dockerfile(path: &Path) -> Result<SourceText, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|_| SourceError {
        path: path.to_path_buf(),
    })?;
    Ok(SourceText {
        name: path.display().to_string(),
        text,
    })
}
