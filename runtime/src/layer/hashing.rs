//! A writer that computes the sha256 and length of everything written through it.
//!
//! Owns: the `sha256:<hex>` digest spelling used for diff_ids and blob digests.
//! Must not: buffer; wrap a buffered writer when small writes are expected.

use sha2::{Digest, Sha256};
use std::io::{self, Write};

pub(crate) struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Flushes the inner writer and returns (`sha256:<hex>`, bytes written, inner writer).
    pub(crate) fn finish(mut self) -> io::Result<(String, u64, W)> {
        self.inner.flush()?;
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok((digest, self.written, self.inner))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let accepted = buf.get(..n).unwrap_or(buf);
        self.hasher.update(accepted);
        self.written += accepted.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
