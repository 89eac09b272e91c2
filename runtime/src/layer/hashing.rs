//! A writer that computes the sha256 and length of everything written through it.
//!
//! Owns: the `sha256:<hex>` digest spelling used for diff_ids and blob digests, and hashing
//! on a helper thread so that hashing overlaps reading sources and writing the output (the
//! layer writer is on the build's hot path; sha2 uses the CPU's SHA extensions when present).
//! Must not: buffer the inner writer; wrap a buffered writer when small writes are expected.

use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes gathered before they are handed to the hashing thread.
const HASH_CHUNK: usize = 1 << 20;
/// Chunks in flight between the writer and the hashing thread.
const CHUNKS_IN_FLIGHT: usize = 4;

pub(crate) struct HashingWriter<W: Write> {
    inner: W,
    written: u64,
    pending: Vec<u8>,
    to_hasher: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    hasher: Option<JoinHandle<String>>,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> io::Result<Self> {
        let (to_hasher, chunks) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let (give_back, recycled) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
        let hasher = std::thread::Builder::new()
            .name("kiln-sha256".to_string())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in chunks {
                    hasher.update(&chunk);
                    // The writer may have finished and stopped taking buffers back.
                    let _ = give_back.try_send(chunk);
                }
                hex::encode(hasher.finalize())
            })?;
        Ok(HashingWriter {
            inner,
            written: 0,
            pending: Vec::with_capacity(HASH_CHUNK),
            to_hasher: Some(to_hasher),
            recycled,
            hasher: Some(hasher),
        })
    }

    fn ship_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let fresh = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HASH_CHUNK));
        let chunk = std::mem::replace(&mut self.pending, fresh);
        self.pending.clear();
        let sent = self.to_hasher.as_ref().map(|tx| tx.send(chunk));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(io::Error::other("the hashing thread stopped")),
        }
    }

    /// Flushes the inner writer and returns (`sha256:<hex>`, bytes written, inner writer).
    pub(crate) fn finish(mut self) -> io::Result<(String, u64, W)> {
        self.inner.flush()?;
        self.ship_pending()?;
        self.to_hasher = None; // ends the hashing thread's loop
        let hex = match self.hasher.take().map(JoinHandle::join) {
            Some(Ok(hex)) => hex,
            _ => return Err(io::Error::other("the hashing thread failed")),
        };
        let HashingWriter { inner, written, .. } = self;
        Ok((format!("sha256:{hex}"), written, inner))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut accepted = buf.get(..n).unwrap_or(buf);
        self.written += accepted.len() as u64;
        while !accepted.is_empty() {
            let room = HASH_CHUNK - self.pending.len();
            let (now, later) = accepted.split_at(room.min(accepted.len()));
            self.pending.extend_from_slice(now);
            if self.pending.len() >= HASH_CHUNK {
                self.ship_pending()?;
            }
            accepted = later;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_one_shot_sha256_across_chunk_boundaries() {
        let data: Vec<u8> = (0..(3 * HASH_CHUNK + 12345))
            .map(|i| (i % 253) as u8)
            .collect();
        let mut w = HashingWriter::new(Vec::new()).unwrap();
        for piece in data.chunks(HASH_CHUNK / 3 + 7) {
            w.write_all(piece).unwrap();
        }
        let (digest, written, inner) = w.finish().unwrap();
        assert_eq!(inner, data);
        assert_eq!(written, data.len() as u64);
        assert_eq!(
            digest,
            format!("sha256:{}", hex::encode(Sha256::digest(&data)))
        );
    }

    #[test]
    fn empty_input_has_the_empty_digest() {
        let (digest, written, _) = HashingWriter::new(Vec::new()).unwrap().finish().unwrap();
        assert_eq!(written, 0);
        assert_eq!(
            digest,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
