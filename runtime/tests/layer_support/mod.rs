//! Helpers shared by the layer_* integration tests: entry constructors and tar listings.
#![allow(dead_code)]

use kiln_runtime::layer::{write_layer, Entry, EntryKind, FileSource, LayerDigest};
use std::sync::Arc;

pub const MTIME: u64 = 1_700_000_000;

pub fn entry(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: path.to_string(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: MTIME,
        xattrs: Vec::new(),
    }
}

pub fn dir(path: &str) -> Entry {
    entry(path, EntryKind::Dir, 0o755)
}

pub fn file(path: &str, body: &[u8]) -> Entry {
    entry(
        path,
        EntryKind::File {
            size: body.len() as u64,
            source: FileSource::Bytes(Arc::from(body)),
        },
        0o644,
    )
}

pub fn symlink(path: &str, target: &str) -> Entry {
    entry(
        path,
        EntryKind::Symlink {
            target: target.to_string(),
        },
        0o777,
    )
}

pub fn hardlink(path: &str, target: &str) -> Entry {
    entry(
        path,
        EntryKind::Hardlink {
            target: target.to_string(),
        },
        0o644,
    )
}

pub fn whiteout(path: &str) -> Entry {
    entry(path, EntryKind::Whiteout, 0)
}

pub fn opaque(path: &str) -> Entry {
    entry(path, EntryKind::OpaqueDir, 0o755)
}

pub fn write(entries: Vec<Entry>) -> (Vec<u8>, LayerDigest) {
    let mut out = Vec::new();
    let digest = write_layer(entries, &mut out).expect("write_layer");
    (out, digest)
}

/// One entry as the `tar` crate reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub kind: char,
    pub size: u64,
    pub link: Option<String>,
    pub mode: u32,
    pub uid: u64,
    pub data: Vec<u8>,
}

pub fn list(tar_bytes: &[u8]) -> Vec<Listed> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for item in archive.entries().expect("entries") {
        let mut e = item.expect("entry");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).expect("data");
        out.push(Listed {
            path: String::from_utf8(e.path_bytes().into_owned()).expect("utf8 path"),
            kind: e.header().entry_type().as_byte() as char,
            size: e.size(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).expect("utf8 link")),
            mode: e.header().mode().expect("mode"),
            uid: e.header().uid().expect("uid"),
            data,
        });
    }
    out
}

pub fn gnu_tar_available() -> bool {
    std::process::Command::new("tar")
        .arg("--version")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GNU tar"))
        .unwrap_or(false)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A tar built header by header with raw names, for archives kiln's writer would refuse
/// to produce (escaping paths, symlink tricks). Each item: (name, typeflag, link name, data).
pub fn raw_tar(items: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, flag, link, data) in items {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(tar::EntryType::new(*flag));
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
