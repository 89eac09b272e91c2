//! Path rules for layer entries: what a writer accepts, how a read path is cleaned.
//!
//! Owns: the spelling of entry paths (relative, `/`-separated, no `.`/`..`, no leading `/`),
//! the whiteout name prefixes, and lexical cleaning of paths read from archives.
//! Must not: touch the filesystem or know about symlinks (the reader tracks those).

use super::LayerError;

/// Prefix of a whiteout file name (`.wh.<name>` deletes `<name>`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// File name marking its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of AUFS metadata names (`.wh..wh.plnk` ...), skipped when reading.
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";

/// Checks a path given to the writer: non-empty, relative, no empty, `.` or `..` components,
/// no NUL byte, and no final component starting with `.wh.` (reserved for whiteouts).
pub fn check_entry_path(path: &str) -> Result<(), LayerError> {
    let invalid = |reason| LayerError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("empty path (the root is never an entry)"));
    }
    if path.starts_with('/') {
        return Err(invalid(
            "absolute path; entry paths are relative to the root",
        ));
    }
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(invalid("empty path component (`//` or trailing `/`)")),
            "." | ".." => return Err(invalid("`.` and `..` components are not allowed")),
            _ => {}
        }
    }
    if file_name(path).starts_with(WHITEOUT_PREFIX) {
        return Err(invalid(
            "names starting with `.wh.` are reserved for whiteouts",
        ));
    }
    Ok(())
}

/// Cleans a path read from an archive the way docker does: a leading `/` is dropped,
/// `.` and empty components vanish, `..` removes the previous component. Returns the empty
/// string for the root itself. A `..` that would climb above the root is an `Escape` error,
/// as is a path that is not UTF-8 (it could not be represented faithfully).
pub fn clean_archive_path(raw: &[u8]) -> Result<String, LayerError> {
    let text = std::str::from_utf8(raw).map_err(|_| LayerError::InvalidPath {
        path: String::from_utf8_lossy(raw).into_owned(),
        reason: "not valid UTF-8",
    })?;
    if text.contains('\0') {
        return Err(LayerError::InvalidPath {
            path: text.replace('\0', "\\0"),
            reason: "contains a NUL byte",
        });
    }
    // Most paths are clean already (at most a leading `/` or `./` and a trailing `/`):
    // return them without rebuilding, as rebuilding costs a copy per component.
    let trimmed = text
        .strip_prefix("./")
        .unwrap_or(text)
        .trim_start_matches('/')
        .trim_end_matches('/');
    // Substring searches, not a walk over the components: a path may have thousands.
    let wrapped_dot = |dots: &str| {
        trimmed == dots
            || trimmed.starts_with(&format!("{dots}/"))
            || trimmed.ends_with(&format!("/{dots}"))
            || trimmed.contains(&format!("/{dots}/"))
    };
    if !trimmed.is_empty() && !trimmed.contains("//") && !wrapped_dot(".") && !wrapped_dot("..") {
        return Ok(trimmed.to_string());
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(LayerError::Escape {
                        entry: text.to_string(),
                        reason: "`..` climbs above the root".to_string(),
                    });
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// The last component of a relative path (`a/b/c` -> `c`, `c` -> `c`).
pub fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The parent of a relative path (`a/b/c` -> `a/b`, `c` -> ``).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Joins a relative directory (possibly empty, the root) and a relative path.
pub fn join(dir: &str, rest: &str) -> String {
    match (dir.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => dir.to_string(),
        (false, false) => format!("{dir}/{rest}"),
    }
}

/// The proper ancestors of a relative path, shortest first (`a/b/c` -> `a`, `a/b`).
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .filter_map(move |(i, _)| path.get(..i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_paths() {
        assert!(check_entry_path("a/b").is_ok());
        for bad in [
            "",
            "/a",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            "a/.wh.b",
            ".wh..wh..opq",
        ] {
            assert!(check_entry_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean_archive_path(b"./a/b/").unwrap(), "a/b");
        assert_eq!(clean_archive_path(b"/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(clean_archive_path(b"a/../b").unwrap(), "b");
        assert_eq!(clean_archive_path(b"./").unwrap(), "");
        assert!(matches!(
            clean_archive_path(b"a/../../etc/x"),
            Err(LayerError::Escape { .. })
        ));
        assert!(clean_archive_path(b"../x").is_err());
        assert!(clean_archive_path(b"a\xffb").is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(file_name("a/b/c"), "c");
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("c"), "");
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a", "x"), "a/x");
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
    }
}
