//! ADD of an http(s) URL: download into the build's scratch directory, verify `--checksum`.
//! The file gets mode 0600 and the build's mtime (not the server's Last-Modified, which would
//! make the layer depend on the server's clock). Must not: unpack what it downloads (ADD never
//! unpacks URLs).

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::oci::DigestWriter;

use super::BuildError;

pub struct Download {
    pub path: PathBuf,
    pub size: u64,
    /// The last path segment of the URL, for `ADD URL /dir/`.
    pub file_name: Option<String>,
}

/// Download `url` into `scratch`, checking `checksum` (`sha256:<hex>`) when given.
pub fn download(
    url: &str,
    checksum: Option<&str>,
    scratch: &Path,
    n: usize,
) -> Result<Download, BuildError> {
    let fail = |what: String| BuildError::Fetch {
        url: url.to_string(),
        reason: what,
    };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let path = scratch.join(format!("download-{n}"));
    let file = std::fs::File::create(&path)
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    let mut reader = response.into_reader();
    let mut out = DigestWriter::new(BufWriter::with_capacity(1 << 16, file));
    std::io::copy(&mut reader, &mut out).map_err(|e| fail(e.to_string()))?;
    let (_, got, size) = out.finish().map_err(|e| fail(e.to_string()))?;
    let got = got.to_string();
    if let Some(want) = checksum {
        if !want.starts_with("sha256:") {
            return Err(BuildError::Unsupported(format!(
                "ADD --checksum={want} (only sha256: digests)"
            )));
        }
        if want != got {
            return Err(BuildError::Checksum {
                url: url.to_string(),
                want: want.to_string(),
                got,
            });
        }
    }
    let file_name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .filter(|s| !s.is_empty() && !s.contains(':'))
        .map(str::to_string);
    Ok(Download {
        path,
        size,
        file_name,
    })
}
