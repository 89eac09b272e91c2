//! The tar header encoding of kiln layers, set field by field (not through the tar crate's
//! header modes, whose "deterministic" output has changed across versions; the policy is in
//! `docs/reproducibility.md`, Layer tars).
//!
//! Owns: the byte layout of one entry's header block(s): a POSIX ustar block, preceded by a
//! PAX extended header (`x`) only when a value does not fit ustar.
//! Must not: choose entry order, read file data, or decide which entries exist.
//!
//! Encoding decisions (these are the format; changing one changes every diff_id):
//! - ustar magic `ustar\0`, version `00`; the `prefix` field is never used.
//! - name: the path (directories get a trailing `/`) when it is ASCII and at most 100 bytes;
//!   otherwise a PAX `path` record, and the name field holds the path's ASCII bytes cut to
//!   100. Same rule for the link name (`linkpath` record, 100 bytes).
//! - mode: the 12 permission bits only, 7 octal digits + NUL.
//! - uid/gid: 7 octal digits + NUL; a value above 0o7777777 goes to a PAX `uid`/`gid`
//!   record and the field holds 0. uname/gname are empty (all NUL).
//! - size/mtime: 11 octal digits + NUL; larger values go to PAX `size`/`mtime` records.
//! - devmajor/devminor: 7 octal digits + NUL, zero except for device nodes.
//! - xattrs: only `security.capability`, as `SCHILY.xattr.<name>` PAX records.
//! - PAX records are sorted by key; the PAX header block is named `././@PaxHeader`, mode 0644,
//!   uid/gid 0, mtime 0; its records are padded to 512 bytes with zeros.
//! - checksum: 6 octal digits, NUL, space (as POSIX and GNU tar write it).
//! - no atime/ctime anywhere.

use super::LayerError;
use std::collections::BTreeMap;

pub const BLOCK: usize = 512;

/// Extended attributes that are written to layers; all others are dropped.
pub const ALLOWED_XATTRS: &[&str] = &["security.capability"];

const NAME_LEN: usize = 100;
const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";

/// Typeflag values used by kiln.
pub mod typeflag {
    pub const FILE: u8 = b'0';
    pub const HARDLINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const PAX: u8 = b'x';
}

/// The header of one tar entry, before encoding.
pub struct TarHeader<'a> {
    /// The name as stored (directories end with `/`).
    pub name: &'a str,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub linkname: &'a str,
    /// (major, minor) for device nodes, `None` for everything else.
    pub device: Option<(u32, u32)>,
    pub xattrs: &'a [(String, Vec<u8>)],
}

/// Field offsets and lengths of a ustar header block.
mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..263;
    pub const VERSION: Range<usize> = 263..265;
    pub const DEVMAJOR: Range<usize> = 329..337;
    pub const DEVMINOR: Range<usize> = 337..345;
}

/// The plain ustar values of one block; every field not listed here is zero.
struct UstarFields<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: &'a [u8],
    devmajor: u32,
    devminor: u32,
}

impl TarHeader<'_> {
    /// Appends the encoded header block(s) of this entry to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), LayerError> {
        let overflow = |field| LayerError::FieldOverflow {
            path: self.name.to_string(),
            field,
        };
        if self.mode > 0o7777 {
            return Err(LayerError::InvalidEntry {
                path: self.name.to_string(),
                reason: format!(
                    "mode {:o} has bits beyond the 12 permission bits",
                    self.mode
                ),
            });
        }
        let (devmajor, devminor) = self.device.unwrap_or((0, 0));
        if u64::from(devmajor) > MAX_OCTAL_7 {
            return Err(overflow("device major number"));
        }
        if u64::from(devminor) > MAX_OCTAL_7 {
            return Err(overflow("device minor number"));
        }

        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let name = fitting_text(self.name, "path", &mut pax);
        let linkname = fitting_text(self.linkname, "linkpath", &mut pax);
        let uid = fitting_number(self.uid, MAX_OCTAL_7, "uid", &mut pax);
        let gid = fitting_number(self.gid, MAX_OCTAL_7, "gid", &mut pax);
        let size = fitting_number(self.size, MAX_OCTAL_11, "size", &mut pax);
        let mtime = fitting_number(self.mtime, MAX_OCTAL_11, "mtime", &mut pax);
        for (key, value) in self.xattrs {
            if ALLOWED_XATTRS.contains(&key.as_str()) {
                pax.insert(format!("SCHILY.xattr.{key}"), value.clone());
            }
        }

        if !pax.is_empty() {
            let mut records = Vec::new();
            for (key, value) in &pax {
                append_pax_record(&mut records, key, value);
            }
            let pax_size = records.len() as u64;
            if pax_size > MAX_OCTAL_11 {
                return Err(overflow("PAX header"));
            }
            out.extend_from_slice(&ustar_block(&UstarFields {
                name: PAX_HEADER_NAME,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: pax_size,
                mtime: 0,
                typeflag: typeflag::PAX,
                linkname: b"",
                devmajor: 0,
                devminor: 0,
            }));
            out.extend_from_slice(&records);
            out.resize(out.len() + padding(pax_size), 0);
        }

        out.extend_from_slice(&ustar_block(&UstarFields {
            name: &name,
            mode: self.mode,
            uid,
            gid,
            size,
            mtime,
            typeflag: self.typeflag,
            linkname: &linkname,
            devmajor,
            devminor,
        }));
        Ok(())
    }
}

/// Number of zero bytes that pad `len` bytes of data to a whole block.
pub fn padding(len: u64) -> usize {
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// The bytes to put in a 100-byte text field; records a PAX value when the text does not fit.
fn fitting_text(text: &str, pax_key: &str, pax: &mut BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    if text.is_ascii() && text.len() <= NAME_LEN {
        return text.as_bytes().to_vec();
    }
    pax.insert(pax_key.to_string(), text.as_bytes().to_vec());
    text.bytes().filter(u8::is_ascii).take(NAME_LEN).collect()
}

/// The value to put in a numeric field; records a PAX value (and returns 0) when it is too big.
fn fitting_number(value: u64, max: u64, pax_key: &str, pax: &mut BTreeMap<String, Vec<u8>>) -> u64 {
    if value <= max {
        return value;
    }
    pax.insert(pax_key.to_string(), value.to_string().into_bytes());
    0
}

/// Appends one `"<len> <key>=<value>\n"` record, where `<len>` counts the whole record.
fn append_pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut total = body + decimal_digits(body);
    if decimal_digits(total) + body != total {
        total = body + decimal_digits(total);
    }
    out.extend_from_slice(total.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn decimal_digits(n: usize) -> usize {
    n.to_string().len()
}

fn ustar_block(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    put_bytes(&mut block, field::NAME, f.name);
    put_octal(&mut block, field::MODE, u64::from(f.mode));
    put_octal(&mut block, field::UID, f.uid);
    put_octal(&mut block, field::GID, f.gid);
    put_octal(&mut block, field::SIZE, f.size);
    put_octal(&mut block, field::MTIME, f.mtime);
    block[field::TYPEFLAG] = f.typeflag;
    put_bytes(&mut block, field::LINKNAME, f.linkname);
    put_bytes(&mut block, field::MAGIC, b"ustar\0");
    put_bytes(&mut block, field::VERSION, b"00");
    // uname, gname and prefix stay empty (all NUL).
    put_octal(&mut block, field::DEVMAJOR, u64::from(f.devmajor));
    put_octal(&mut block, field::DEVMINOR, u64::from(f.devminor));
    put_bytes(&mut block, field::CHKSUM, b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    put_bytes(
        &mut block,
        field::CHKSUM,
        format!("{sum:06o}\0 ").as_bytes(),
    );
    block
}

/// Copies `bytes` into the field; callers guarantee they fit (text is cut to the field).
fn put_bytes(block: &mut [u8; BLOCK], range: std::ops::Range<usize>, bytes: &[u8]) {
    for (dst, src) in block[range].iter_mut().zip(bytes) {
        *dst = *src;
    }
}

/// Writes `value` as zero-padded octal filling the field but its last byte, which stays NUL.
/// Callers guarantee the value fits (checked against MAX_OCTAL_*).
fn put_octal(block: &mut [u8; BLOCK], range: std::ops::Range<usize>, value: u64) {
    let digits = range.len() - 1;
    let text = format!("{value:0digits$o}");
    put_bytes(block, range, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(name: &'a str) -> TarHeader<'a> {
        TarHeader {
            name,
            typeflag: typeflag::FILE,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 5,
            mtime: 1,
            linkname: "",
            device: None,
            xattrs: &[],
        }
    }

    #[test]
    fn plain_header_fields() {
        let mut out = Vec::new();
        header("a.txt").encode(&mut out).unwrap();
        assert_eq!(out.len(), 512);
        assert_eq!(&out[0..6], b"a.txt\0");
        assert_eq!(&out[100..108], b"0000644\0");
        assert_eq!(&out[124..136], b"00000000005\0");
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert_eq!(&out[329..345], b"0000000\x000000000\x00");
        let parsed = tar::Header::from_byte_slice(&out);
        assert_eq!(parsed.cksum().unwrap(), {
            let mut copy = out.clone();
            copy[148..156].copy_from_slice(b"        ");
            copy.iter().map(|&b| u32::from(b)).sum::<u32>()
        });
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value_len in [0usize, 1, 5, 6, 7, 90, 91, 92, 95, 96, 97, 990, 995, 996] {
            let mut out = Vec::new();
            let value = vec![b'v'; value_len];
            append_pax_record(&mut out, "path", &value);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                out.len(),
                "value_len {value_len}"
            );
        }
    }

    #[test]
    fn long_name_uses_pax() {
        let long = "d/".repeat(60) + "file";
        let mut out = Vec::new();
        header(&long).encode(&mut out).unwrap();
        assert_eq!(out.len(), 512 * 3);
        assert_eq!(out[156], b'x');
        let text = String::from_utf8_lossy(&out[512..1024]);
        assert!(text.contains(&format!(" path={long}\n")));
    }

    #[test]
    fn mode_with_type_bits_is_refused() {
        let mut h = header("x");
        h.mode = 0o100644;
        assert!(h.encode(&mut Vec::new()).is_err());
    }
}
