//! The outer tarball of `save`: ustar entries with every header field fixed (mtime 0,
//! uid/gid 0, no user or group names, mode 0755 for directories and 0644 for files), in the
//! order the caller gives (save gives them sorted), ended by exactly two zero blocks.
//!
//! Headers come from the tar crate, set field by field; file data is copied with
//! `std::io::copy` straight from the blob file so the kernel can move it (copy_file_range or
//! sendfile) when the output is a file or a pipe. Must not: write layer tars (that is
//! `layer::write_layer`).

use std::fs::File;
use std::io::{self, Read, Write};

const BLOCK: u64 = 512;
const ZEROS: [u8; 1024] = [0; 1024];

pub(crate) struct TarOut<W: Write> {
    out: W,
}

impl<W: Write> TarOut<W> {
    pub fn new(out: W) -> Self {
        TarOut { out }
    }

    fn header(&mut self, path: &str, kind: tar::EntryType, mode: u32, size: u64) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h.set_cksum();
        self.out.write_all(h.as_bytes())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK) as usize;
        if rem != 0 {
            self.out
                .write_all(ZEROS.get(..BLOCK as usize - rem).unwrap_or(&[]))?;
        }
        Ok(())
    }

    /// A directory entry (`path` ends with `/`).
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        self.header(path, tar::EntryType::Directory, 0o755, 0)
    }

    pub fn file_bytes(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.header(path, tar::EntryType::Regular, 0o644, bytes.len() as u64)?;
        self.out.write_all(bytes)?;
        self.pad(bytes.len() as u64)
    }

    /// A file whose `size` bytes come from `file`; fails if the file has fewer.
    pub fn file_from(&mut self, path: &str, file: File, size: u64) -> io::Result<()> {
        self.header(path, tar::EntryType::Regular, 0o644, size)?;
        let copied = io::copy(&mut file.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path} shrank while being written ({copied} of {size} bytes)"),
            ));
        }
        self.pad(size)
    }

    /// Writes the end-of-archive marker and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&ZEROS)?;
        self.out.flush()?;
        Ok(self.out)
    }
}
