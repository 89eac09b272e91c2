//! Content digests: the `sha256:<64 lowercase hex>` names of blobs, and hashing while
//! reading or writing.
//!
//! Owns parsing and validating digests and the one streaming sha256 (`DigestWriter`,
//! `DigestReader`): every blob, layer, diff_id and download digest is computed here and
//! handed out as a typed [`Digest`]. Must not: know where blobs live.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A sha256 content digest, always `sha256:` followed by 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum DigestError {
    #[error("unsupported digest algorithm in `{0}`")]
    #[diagnostic(
        code(kiln::digest::algorithm),
        help("kiln stores and verifies sha256 digests only")
    )]
    Algorithm(String),
    #[error("malformed digest `{0}`")]
    #[diagnostic(
        code(kiln::digest::malformed),
        help("a digest is `sha256:` followed by 64 lowercase hex digits")
    )]
    Malformed(String),
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// Parses 64 lowercase hex digits without the `sha256:` prefix (a blob file name).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        if is_sha256_hex(hex) {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(DigestError::Malformed(hex.to_string()))
        }
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as docker shows image IDs.
    pub fn short(&self) -> &str {
        self.hex.get(..12).unwrap_or(&self.hex)
    }
}

/// True when `s` is exactly 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        match s.split_once(':') {
            Some(("sha256", hex)) => {
                Digest::from_hex(hex).map_err(|_| DigestError::Malformed(s.to_string()))
            }
            Some((alg, _))
                if !alg.is_empty()
                    && alg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b)) =>
            {
                Err(DigestError::Algorithm(s.to_string()))
            }
            _ => Err(DigestError::Malformed(s.to_string())),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Bytes gathered before they are handed to the hashing thread.
const HASH_CHUNK: usize = 1 << 20;
/// Chunks in flight between the stream and the hashing thread.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The one streaming sha256 behind [`DigestWriter`] and [`DigestReader`]. Streams up to one
/// chunk (1 MiB) are hashed inline when they finish; longer ones are hashed on a helper
/// thread, started with the first full chunk, so hashing overlaps reading and writing (sha2
/// uses the CPU's SHA extensions when present).
struct Sha256Stream {
    size: u64,
    pending: Vec<u8>,
    worker: Option<HashWorker>,
}

struct HashWorker {
    to_hasher: SyncSender<Vec<u8>>,
    recycled: Receiver<Vec<u8>>,
    hasher: JoinHandle<Sha256>,
}

impl Sha256Stream {
    fn new() -> Sha256Stream {
        Sha256Stream {
            size: 0,
            pending: Vec::new(),
            worker: None,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = HASH_CHUNK - self.pending.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.pending.extend_from_slice(now);
            if self.pending.len() >= HASH_CHUNK {
                self.ship_pending()?;
            }
            bytes = later;
        }
        Ok(())
    }

    fn ship_pending(&mut self) -> io::Result<()> {
        if self.worker.is_none() {
            let (to_hasher, chunks) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
            let (give_back, recycled) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
            let hasher = std::thread::Builder::new()
                .name("kiln-sha256".to_string())
                .spawn(move || {
                    let mut hasher = Sha256::new();
                    for chunk in chunks {
                        hasher.update(&chunk);
                        // The stream may have finished and stopped taking buffers back.
                        let _ = give_back.try_send(chunk);
                    }
                    hasher
                })?;
            self.worker = Some(HashWorker {
                to_hasher,
                recycled,
                hasher,
            });
        }
        let Some(worker) = &self.worker else {
            return Err(io::Error::other("the hashing thread did not start"));
        };
        let fresh = worker
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HASH_CHUNK));
        let chunk = std::mem::replace(&mut self.pending, fresh);
        self.pending.clear();
        if worker.to_hasher.send(chunk).is_err() {
            return Err(io::Error::other("the hashing thread stopped"));
        }
        Ok(())
    }

    /// The digest and size of everything passed to [`Sha256Stream::update`].
    fn finish(self) -> io::Result<(Digest, u64)> {
        let Sha256Stream {
            size,
            pending,
            worker,
        } = self;
        let mut hasher = match worker {
            None => Sha256::new(),
            Some(HashWorker {
                to_hasher, hasher, ..
            }) => {
                drop(to_hasher); // ends the hashing thread's loop
                hasher
                    .join()
                    .map_err(|_| io::Error::other("the hashing thread failed"))?
            }
        };
        hasher.update(&pending);
        Ok((Digest::from_hasher(hasher), size))
    }
}

/// Counts and hashes the bytes written through it. Buffers nothing of the inner writer's:
/// wrap a buffered writer when small writes are expected.
pub struct DigestWriter<W> {
    inner: W,
    stream: Sha256Stream,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            stream: Sha256Stream::new(),
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.stream.size
    }

    /// Flushes the inner writer; returns it with the digest and size of everything written.
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.inner.flush()?;
        let DigestWriter { inner, stream } = self;
        let (digest, size) = stream.finish()?;
        Ok((inner, digest, size))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.stream.update(buf.get(..n).unwrap_or(buf))?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes the bytes read through it.
pub struct DigestReader<R> {
    inner: R,
    stream: Sha256Stream,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            stream: Sha256Stream::new(),
        }
    }

    /// Reads what is left to the end, then returns the digest and size of everything read.
    pub fn finish_to_end(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        self.stream.finish()
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.stream.update(buf.get(..n).unwrap_or(buf))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(d, Digest::of_bytes(b""));
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            "\"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""
        );
    }

    #[test]
    fn refuses_bad_digests() {
        for bad in [
            "",
            "sha256:",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(DigestError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "sha512:abcd".parse::<Digest>(),
            Err(DigestError::Algorithm(_))
        ));
    }

    #[test]
    fn writer_and_reader_agree() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello world").unwrap();
        let (bytes, d, n) = w.finish().unwrap();
        assert_eq!(n, 11);
        assert_eq!(d, Digest::of_bytes(b"hello world"));
        assert_eq!(
            DigestReader::new(&bytes[..]).finish_to_end().unwrap(),
            (d, 11)
        );
    }

    #[test]
    fn long_streams_hash_on_the_helper_thread_across_chunk_boundaries() {
        let data: Vec<u8> = (0..(3 * HASH_CHUNK + 12345))
            .map(|i| (i % 253) as u8)
            .collect();
        let mut w = DigestWriter::new(Vec::new());
        for piece in data.chunks(HASH_CHUNK / 3 + 7) {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.size(), data.len() as u64);
        let (inner, digest, written) = w.finish().unwrap();
        assert_eq!(inner, data);
        assert_eq!(written, data.len() as u64);
        assert_eq!(digest, Digest::of_bytes(&data));
        let exact: Vec<u8> = vec![7; HASH_CHUNK];
        let (read, size) = DigestReader::new(&exact[..]).finish_to_end().unwrap();
        assert_eq!((read, size), (Digest::of_bytes(&exact), HASH_CHUNK as u64));
    }

    #[test]
    fn empty_input_has_the_empty_digest() {
        let (_, digest, written) = DigestWriter::new(Vec::new()).finish().unwrap();
        assert_eq!(written, 0);
        assert_eq!(
            digest.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
