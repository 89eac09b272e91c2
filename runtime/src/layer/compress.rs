//! Compression of layer blobs (deterministic) and detection/decompression of streams.
//!
//! Owns: the exact compressor settings of kiln's layer blobs (fixed and pinned so that a
//! compressed blob's digest is reproducible; `docs/reproducibility.md`, Compression) and
//! recognising compressed streams by their magic bytes.
//! Must not: re-compress base-image layers (a base layer already in the requested form passes
//! through byte for byte, so its digest never changes); that is the caller's rule, this
//! module only offers the encoders.
//!
//! Settings (changing one changes every compressed digest; the golden test catches drift):
//! - gzip: flate2 with its pure-Rust backend (miniz_oxide) only, level 6, header mtime 0,
//!   no file name, no comment, no extra field, OS byte 255 ("unknown").
//! - zstd: the bundled libzstd pinned by Cargo.lock (zstd-sys), level 3, checksum flag on,
//!   content-size flag off (the size is not known up front), single-threaded, no
//!   long-distance matching.
//! - Input is fed to the encoders in whole 1 MiB chunks, so output never depends on how the
//!   source happened to return its reads.

use super::LayerError;
use crate::oci::{Digest, DigestWriter};
use std::io::{BufWriter, Cursor, Read, Write};

/// How kiln writes a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    Uncompressed,
    Gzip,
    Zstd,
}

/// What a byte stream turned out to be, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    Plain,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Digest and size of a written blob: `digest` is the sha256 of the bytes written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDigest {
    pub digest: Digest,
    pub size: u64,
}

pub const GZIP_LEVEL: u32 = 6;
pub const GZIP_OS_UNKNOWN: u8 = 255;
pub const ZSTD_LEVEL: i32 = 3;
const CHUNK: usize = 1 << 20;

/// Compresses everything `reader` yields into `writer` and returns the digest of the output.
pub fn compress<R: Read, W: Write>(
    kind: LayerCompression,
    mut reader: R,
    writer: W,
) -> Result<BlobDigest, LayerError> {
    let out = DigestWriter::new(BufWriter::with_capacity(CHUNK, writer));
    let werr = |e| LayerError::io("writing compressed layer", e);
    let out = match kind {
        LayerCompression::Uncompressed => {
            let mut out = out;
            feed_chunks(&mut reader, &mut out)?;
            out
        }
        LayerCompression::Gzip => {
            let mut encoder = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(GZIP_OS_UNKNOWN)
                .write(out, flate2::Compression::new(GZIP_LEVEL));
            feed_chunks(&mut reader, &mut encoder)?;
            encoder.finish().map_err(werr)?
        }
        LayerCompression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(werr)?;
            encoder.include_checksum(true).map_err(werr)?;
            encoder.include_contentsize(false).map_err(werr)?;
            encoder.long_distance_matching(false).map_err(werr)?;
            feed_chunks(&mut reader, &mut encoder)?;
            encoder.finish().map_err(werr)?
        }
    };
    let (_, digest, size) = out.finish().map_err(werr)?;
    Ok(BlobDigest { digest, size })
}

/// Copies `reader` to `writer` in whole chunks of `CHUNK` bytes (the last may be shorter).
fn feed_chunks<R: Read, W: Write>(reader: &mut R, writer: &mut W) -> Result<(), LayerError> {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let filled = fill(reader, &mut buffer)
            .map_err(|e| LayerError::io("reading layer to compress", e))?;
        if filled == 0 {
            return Ok(());
        }
        writer
            .write_all(buffer.get(..filled).unwrap_or(&buffer))
            .map_err(|e| LayerError::io("writing compressed layer", e))?;
        if filled < buffer.len() {
            return Ok(());
        }
    }
}

/// Reads until `buffer` is full or the reader ends; returns the number of bytes read.
fn fill<R: Read>(reader: &mut R, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buffer.get_mut(filled..).filter(|r| !r.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Recognises a stream by its first bytes (at least 6 are needed to tell all formats apart).
pub fn detect_format(prefix: &[u8]) -> StreamFormat {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        StreamFormat::Gzip
    } else if prefix.starts_with(b"BZh") {
        StreamFormat::Bzip2
    } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        StreamFormat::Xz
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        StreamFormat::Zstd
    } else {
        StreamFormat::Plain
    }
}

/// Length of the longest magic number `detect_format` looks at.
pub const MAGIC_LEN: usize = 6;

/// Detects the stream's format from its first bytes and returns it with a reader of the
/// decompressed bytes (the stream itself when it is plain). Concatenated gzip/bzip2/xz/zstd
/// members are all read.
pub fn decompress_auto<'a, R: Read + Send + 'a>(
    mut reader: R,
) -> Result<(StreamFormat, Box<dyn Read + Send + 'a>), LayerError> {
    let mut prefix = vec![0u8; MAGIC_LEN];
    let got = fill(&mut reader, &mut prefix)
        .map_err(|e| LayerError::io("reading the start of a stream", e))?;
    prefix.truncate(got);
    let format = detect_format(&prefix);
    let whole = Cursor::new(prefix).chain(reader);
    let decoded: Box<dyn Read + Send + 'a> = match format {
        StreamFormat::Plain => Box::new(whole),
        StreamFormat::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        StreamFormat::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(whole)),
        StreamFormat::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(whole)),
        StreamFormat::Zstd => Box::new(
            zstd::stream::read::Decoder::new(whole)
                .map_err(|e| LayerError::io("starting zstd decompression", e))?,
        ),
    };
    Ok((format, decoded))
}

/// Decompresses `blob` (any `StreamFormat`, detected) into `out` and returns the detected
/// format with the sha256 and size of the decompressed bytes: for a layer blob that is its
/// diff_id, to compare with the config's `rootfs.diff_ids` (a layer whose diff_id differs is
/// refused).
pub fn decompress_into<R: Read + Send, W: Write>(
    blob: R,
    out: W,
) -> Result<(StreamFormat, BlobDigest), LayerError> {
    let (format, mut reader) = decompress_auto(blob)?;
    let mut out = DigestWriter::new(BufWriter::with_capacity(CHUNK, out));
    std::io::copy(&mut reader, &mut out).map_err(|e| LayerError::io("decompressing a layer", e))?;
    let (_, digest, size) = out
        .finish()
        .map_err(|e| LayerError::io("writing a decompressed layer", e))?;
    Ok((format, BlobDigest { digest, size }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{write_layer, Entry, EntryKind, FileSource};
    use std::sync::Arc;

    fn golden_layer() -> Vec<u8> {
        let file = |path: &str, body: &[u8], mode| Entry {
            path: path.to_string(),
            kind: EntryKind::File {
                size: body.len() as u64,
                source: FileSource::Bytes(Arc::from(body)),
            },
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Vec::new(),
        };
        let dir = Entry {
            path: "app".to_string(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Vec::new(),
        };
        let body: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut tar = Vec::new();
        write_layer(
            vec![
                dir,
                file("app/hello.txt", b"hello, kiln\n", 0o644),
                file("app/data.bin", &body, 0o600),
            ],
            &mut tar,
        )
        .unwrap();
        tar
    }

    fn sha256(bytes: &[u8]) -> Digest {
        Digest::of_bytes(bytes)
    }

    /// Golden digests: computed once with the settings documented above. A change here means
    /// the tar encoding or a compressor's output drifted, which changes every image digest.
    #[test]
    fn golden_digests() {
        let tar = golden_layer();
        let plain = compress(LayerCompression::Uncompressed, &tar[..], Vec::new()).unwrap();
        let mut gz = Vec::new();
        let gzip = compress(LayerCompression::Gzip, &tar[..], &mut gz).unwrap();
        let mut zst = Vec::new();
        let zstd = compress(LayerCompression::Zstd, &tar[..], &mut zst).unwrap();
        assert_eq!(plain.digest, sha256(&tar));
        assert_eq!(gzip.digest, sha256(&gz));
        assert_eq!(zstd.digest, sha256(&zst));
        assert_eq!(gzip.size, gz.len() as u64);
        assert_eq!(
            [
                plain.digest.to_string(),
                gzip.digest.to_string(),
                zstd.digest.to_string()
            ],
            [GOLDEN_TAR, GOLDEN_GZIP, GOLDEN_ZSTD]
        );
    }

    const GOLDEN_TAR: &str =
        "sha256:892f22375fb67b77094761896ef2a784726201f3bbbaab3a935242a86429abd1";
    const GOLDEN_GZIP: &str =
        "sha256:3291ee6a3d48deee6a949362909d159c02664dbfb20da304e3c157fd98da3735";
    const GOLDEN_ZSTD: &str =
        "sha256:5de3c1c4a491fd24e7a2be217616167f2d7f3a6edbebf3fc4e18df909ae5d756";

    #[test]
    fn gzip_header_is_fixed() {
        let mut gz = Vec::new();
        compress(LayerCompression::Gzip, &b"abc"[..], &mut gz).unwrap();
        // magic, CM=8, FLG=0 (no name/comment/extra), MTIME=0, XFL=0, OS=255
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn round_trips_through_decompress_auto() {
        let tar = golden_layer();
        for (kind, format) in [
            (LayerCompression::Uncompressed, StreamFormat::Plain),
            (LayerCompression::Gzip, StreamFormat::Gzip),
            (LayerCompression::Zstd, StreamFormat::Zstd),
        ] {
            let mut blob = Vec::new();
            compress(kind, &tar[..], &mut blob).unwrap();
            let (found, mut reader) = decompress_auto(&blob[..]).unwrap();
            assert_eq!(found, format);
            let mut back = Vec::new();
            reader.read_to_end(&mut back).unwrap();
            assert_eq!(back, tar);
            let mut into = Vec::new();
            let (found, digest) = decompress_into(&blob[..], &mut into).unwrap();
            assert_eq!(
                (found, digest.digest.to_string(), into),
                (format, GOLDEN_TAR.to_string(), tar.clone())
            );
        }
    }

    #[test]
    fn detects_magic_bytes() {
        assert_eq!(detect_format(b"BZh91AY"), StreamFormat::Bzip2);
        assert_eq!(
            detect_format(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            StreamFormat::Xz
        );
        assert_eq!(detect_format(&[0xfd, b'7']), StreamFormat::Plain);
        assert_eq!(detect_format(b""), StreamFormat::Plain);
    }

    #[test]
    fn short_plain_stream_is_returned_whole() {
        let (format, mut reader) = decompress_auto(&b"hi"[..]).unwrap();
        assert_eq!(format, StreamFormat::Plain);
        let mut back = String::new();
        reader.read_to_string(&mut back).unwrap();
        assert_eq!(back, "hi");
    }
}
