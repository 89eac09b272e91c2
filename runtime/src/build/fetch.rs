//! ADD of an http(s) URL: download into the build's scratch directory, verify `--checksum`.
//! The file gets mode 0600 and the build's mtime (not the server's Last-Modified, which would
//! make the layer depend on the server's clock). Must not: unpack what it downloads (ADD never
//! unpacks URLs).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

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
    let mut file = std::fs::File::create(&path)
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    let mut reader = response.into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| fail(e.to_string()))?;
        size += n as u64;
    }
    file.flush().map_err(|e| fail(e.to_string()))?;
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
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
