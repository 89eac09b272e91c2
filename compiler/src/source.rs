//! Reading a Dockerfile from disk or standard input into text, with a clear error for every
//! way that can fail (missing file, directory, unreadable, too large, not UTF-8, binary).
//!
//! Owns: the size limit and the text checks done before parsing. Must not: parse, or write
//! anything anywhere.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// Largest Dockerfile accepted: 10 MiB (real ones are a few KiB).
pub const MAX_DOCKERFILE_BYTES: u64 = 10 * 1024 * 1024;

/// The path meaning "standard input", as in `docker build -f -`.
pub const STDIN_PATH: &str = "-";

/// A Dockerfile's text and the name to show in diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    /// The path as given, or `<stdin>`.
    pub name: String,
    /// The whole file, valid UTF-8 (a leading byte order mark is kept; the parser skips it).
    pub text: String,
}

impl SourceText {
    /// The text for miette diagnostics: `Report::new(e).with_source_code(src.named_source())`.
    pub fn named_source(&self) -> miette::NamedSource<ClippedSource> {
        diagnostic_source(&self.name, &self.text)
    }
}

/// Where in the file a bad byte is (1-based line and column, byte offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BytePosition {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl BytePosition {
    fn of(bytes: &[u8], offset: usize) -> Self {
        let before = bytes.get(..offset).unwrap_or(bytes);
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        BytePosition {
            offset,
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            column: offset - line_start + 1,
        }
    }
}

impl fmt::Display for BytePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {} (byte {})",
            self.line, self.column, self.offset
        )
    }
}

/// Why a Dockerfile could not be read as text.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SourceError {
    #[error("Dockerfile not found: {path}")]
    #[diagnostic(
        code(kiln::dockerfile::not_found),
        help("check the path, or pass `-f <file>` (`-f -` reads standard input)")
    )]
    NotFound { path: String },

    #[error("{path} is a directory, not a Dockerfile")]
    #[diagnostic(
        code(kiln::dockerfile::is_directory),
        help("name the file inside it, e.g. {path}/Dockerfile")
    )]
    IsDirectory { path: String },

    #[error("cannot read {path}")]
    #[diagnostic(code(kiln::dockerfile::unreadable))]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("{path} is too large for a Dockerfile (more than {limit} bytes)")]
    #[diagnostic(
        code(kiln::dockerfile::too_large),
        help("a Dockerfile is a small text file; is this the right file?")
    )]
    TooLarge { path: String, limit: u64 },

    #[error("{path} is UTF-16 text; Dockerfiles must be UTF-8")]
    #[diagnostic(
        code(kiln::dockerfile::utf16),
        help("convert it, e.g. `iconv -f UTF-16 -t UTF-8`, or save it as UTF-8 in your editor")
    )]
    Utf16 { path: String },

    #[error("{path} looks like a binary file: NUL byte at {at}")]
    #[diagnostic(
        code(kiln::dockerfile::binary),
        help("a Dockerfile is a text file; is this the right file?")
    )]
    Binary { path: String, at: BytePosition },

    #[error("{path} is not valid UTF-8: bad byte at {at}")]
    #[diagnostic(
        code(kiln::dockerfile::not_utf8),
        help("Dockerfiles must be UTF-8; re-save the file as UTF-8")
    )]
    NotUtf8 { path: String, at: BytePosition },
}

/// Read a Dockerfile: `path` on disk, or standard input when `path` is `-`.
pub fn read_dockerfile(path: &Path) -> Result<SourceText, SourceError> {
    if path.as_os_str() == STDIN_PATH {
        return read_dockerfile_from_stdin();
    }
    let name = path.display().to_string();
    let io_error = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => SourceError::NotFound { path: name.clone() },
        _ => SourceError::Io {
            path: name.clone(),
            source,
        },
    };
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if meta.is_dir() {
        return Err(SourceError::IsDirectory { path: name });
    }
    if meta.is_file() && meta.len() > MAX_DOCKERFILE_BYTES {
        return Err(SourceError::TooLarge {
            path: name,
            limit: MAX_DOCKERFILE_BYTES,
        });
    }
    let file = std::fs::File::open(path).map_err(io_error)?;
    read_dockerfile_from_reader(&name, file)
}

/// Read a Dockerfile from standard input (named `<stdin>` in diagnostics).
pub fn read_dockerfile_from_stdin() -> Result<SourceText, SourceError> {
    read_dockerfile_from_reader("<stdin>", io::stdin().lock())
}

/// Read a Dockerfile from any reader, with the same limits and checks as a file.
pub fn read_dockerfile_from_reader(
    name: &str,
    reader: impl Read,
) -> Result<SourceText, SourceError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_DOCKERFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SourceError::Io {
            path: name.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(SourceError::TooLarge {
            path: name.to_owned(),
            limit: MAX_DOCKERFILE_BYTES,
        });
    }
    decode(name, bytes)
}

/// Check that the bytes are UTF-8 text and return them as a `SourceText`.
fn decode(name: &str, bytes: Vec<u8>) -> Result<SourceText, SourceError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(SourceError::Utf16 {
            path: name.to_owned(),
        });
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(SourceError::Binary {
            path: name.to_owned(),
            at: BytePosition::of(&bytes, offset),
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceText {
            name: name.to_owned(),
            text,
        }),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            Err(SourceError::NotUtf8 {
                path: name.to_owned(),
                at: BytePosition::of(e.as_bytes(), offset),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_and_keeps_bom() {
        let src = read_dockerfile_from_reader("x", &b"\xEF\xBB\xBFFROM a\n"[..]).unwrap();
        assert_eq!(src.text, "\u{FEFF}FROM a\n");
        assert_eq!(src.name, "x");
    }

    #[test]
    fn rejects_bad_text_with_positions() {
        let e = read_dockerfile_from_reader("x", &b"FROM a\nRUN \xFF\n"[..]).unwrap_err();
        match e {
            SourceError::NotUtf8 { at, .. } => {
                assert_eq!((at.line, at.column, at.offset), (2, 5, 11))
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = read_dockerfile_from_reader("x", &b"FROM\0"[..]).unwrap_err();
        assert!(matches!(
            e,
            SourceError::Binary {
                at: BytePosition {
                    line: 1,
                    column: 5,
                    ..
                },
                ..
            }
        ));
        let e = read_dockerfile_from_reader("x", &b"\xFF\xFEF\0"[..]).unwrap_err();
        assert!(matches!(e, SourceError::Utf16 { .. }));
    }

    #[test]
    fn rejects_too_large_input() {
        let big = io::repeat(b'a').take(MAX_DOCKERFILE_BYTES + 10);
        let e = read_dockerfile_from_reader("x", big).unwrap_err();
        assert!(matches!(e, SourceError::TooLarge { .. }));
    }

    #[test]
    fn file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_dockerfile(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(e, SourceError::NotFound { .. }));
        let e = read_dockerfile(dir.path()).unwrap_err();
        assert!(matches!(e, SourceError::IsDirectory { .. }));
        let big = dir.path().join("big");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_DOCKERFILE_BYTES + 1).unwrap();
        assert!(matches!(
            read_dockerfile(&big).unwrap_err(),
            SourceError::TooLarge { .. }
        ));
        let ok = dir.path().join("Dockerfile");
        std::fs::write(&ok, "FROM a\n").unwrap();
        assert_eq!(read_dockerfile(&ok).unwrap().text, "FROM a\n");
    }
}

/// Source text for diagnostics whose snippets never exceed [`SNIPPET_LIMIT`] bytes a line: a
/// label on a 9 MB line shows the neighbourhood of the label, not the megabytes around it.
#[derive(Debug, Clone)]
pub struct ClippedSource {
    text: String,
}

/// The widest stretch of one line a diagnostic snippet shows.
pub const SNIPPET_LIMIT: usize = 512;

/// A named source for miette that clips very long lines around the label.
pub fn diagnostic_source(name: &str, text: &str) -> miette::NamedSource<ClippedSource> {
    miette::NamedSource::new(
        name,
        ClippedSource {
            text: text.to_string(),
        },
    )
}

impl miette::SourceCode for ClippedSource {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let full = self.text.read_span(span, before, after)?;
        if full.data().len() <= SNIPPET_LIMIT * (before + after + 1) {
            return Ok(full);
        }
        // Show only the label's own line, cut to a window around the label.
        let text = self.text.as_str();
        let start = span.offset().min(text.len());
        let end = (start + span.len()).min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        let mut from = start.saturating_sub(SNIPPET_LIMIT / 2).max(line_start);
        let mut to = (end + SNIPPET_LIMIT / 2).min(line_end).max(from);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        while !text.is_char_boundary(to) {
            to += 1;
        }
        let line = text[..line_start].matches('\n').count();
        let column = text[line_start..from].chars().count();
        Ok(Box::new(miette::MietteSpanContents::new(
            &text.as_bytes()[from..to],
            (from, to - from).into(),
            line,
            column,
            1,
        )))
    }
}
