//! Helpers shared by the store and archive integration tests: test layers and images made
//! through the store API, store listings, tar inspection, and the peer-tool skip rule.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_runtime::image::ImageName;
use kiln_runtime::oci::{
    self, Descriptor, Digest, History, ImageConfig, RootFs, MEDIA_TYPE_OCI_LAYER,
};
use kiln_runtime::store::{Image, Store};

/// A layer tar (tar crate, fixed metadata) with these regular files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A raw tar entry header block for `path`, written by hand (so even paths the tar crate
/// refuses to write, like `../../etc/x`, can be made).
pub fn raw_entry(path: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..path.len()].copy_from_slice(path.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Ends a hand-made tar.
pub fn raw_end(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// Stores `tar` as an uncompressed layer blob.
pub fn put_layer(store: &Store, tar: &[u8]) -> Descriptor {
    let digest = store.put_blob(tar).unwrap();
    Descriptor::new(MEDIA_TYPE_OCI_LAYER, digest, tar.len() as u64)
}

/// A config for these layers (by diff_id), with one history entry per layer plus one
/// metadata-only entry.
pub fn config_for(diff_ids: Vec<Digest>, cmd: &str) -> ImageConfig {
    let mut config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        created: Some(oci::time::format_rfc3339(0)),
        rootfs: RootFs {
            diff_ids: diff_ids.clone(),
            ..RootFs::default()
        },
        ..ImageConfig::default()
    };
    for (i, _) in diff_ids.iter().enumerate() {
        config.history.push(History {
            created: Some(oci::time::format_rfc3339(0)),
            created_by: Some(format!("COPY layer{i} /")),
            ..History::default()
        });
    }
    config.config.cmd = Some(vec![cmd.to_string()]);
    config.history.push(History {
        created: Some(oci::time::format_rfc3339(0)),
        created_by: Some(format!("CMD [\"{cmd}\"]")),
        empty_layer: true,
        ..History::default()
    });
    config
}

/// An image with one uncompressed layer per entry of `layers`, tagged `tags`.
pub fn make_image(store: &Store, layers: &[&[(&str, &[u8])]], cmd: &str, tags: &[&str]) -> Image {
    let descs: Vec<Descriptor> = layers
        .iter()
        .map(|files| put_layer(store, &layer_tar(files)))
        .collect();
    let config = config_for(descs.iter().map(|d| d.digest.clone()).collect(), cmd);
    let tags: Vec<ImageName> = tags.iter().map(|t| ImageName::parse(t).unwrap()).collect();
    store.save_image(&config, &descs, &tags).unwrap()
}

/// Every file under `root` with its size and sha256 (directories listed with no content),
/// to compare a store before and after an operation. A Store's session (its directory and
/// lock under tmp/, made at its first write) is left out; anything staged in one is not.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, Option<(u64, Digest)>> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
        let session = rel.parent() == Some(Path::new("tmp"))
            && (entry.file_type().is_dir() || rel.extension() == Some("lock".as_ref()));
        if session {
            continue;
        }
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            out.insert(rel, Some((bytes.len() as u64, Digest::of_bytes(&bytes))));
        } else {
            out.insert(rel, None);
        }
    }
    out
}

/// (path, bytes) of every regular file of a tarball, in archive order.
pub fn tar_files(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((path, data));
        }
    }
    out
}

pub fn tar_file(tar: &[u8], path: &str) -> Vec<u8> {
    tar_files(tar)
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("{path} not in the tarball"))
        .1
}

/// A reader that only implements `Read` and hands out small, uneven pieces (like a pipe).
pub struct PipeLike<R>(pub R);
impl<R: Read> Read for PipeLike<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7919);
        self.0.read(&mut buf[..n])
    }
}

/// Whether a peer tool can be used. Prints why not and returns false (skip) when missing;
/// fails instead when `CI=true`.
pub fn peer_available(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let why = format!("`{tool} {}` does not work here", probe.join(" "));
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}, and CI=true requires it");
        }
        eprintln!("SKIPPED: {why}");
    }
    ok
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Layer tars that are broken in structure, each with the entry a refusal must name:
/// truncated inside a file's data, a header whose size runs far past the end, a hardlink to
/// a missing entry, a hardlink to a symlink.
pub fn hostile_layers() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let whole = raw_end(raw_entry("big", b'0', "", &[7u8; 5000]));
    let truncated = whole[..512 + 1000].to_vec();
    let mut past_end = raw_end(raw_entry("huge", b'0', "", b"small"));
    past_end[124..135].copy_from_slice(format!("{:011o}", 1u64 << 32).as_bytes());
    past_end[148..156].copy_from_slice(b"        ");
    let sum: u32 = past_end[..512].iter().map(|&b| u32::from(b)).sum();
    past_end[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut to_missing = raw_entry("a", b'0', "", b"x");
    to_missing.extend(raw_entry("link", b'1', "nothere", b""));
    let mut to_symlink = raw_entry("s", b'2', "/etc/passwd", b"");
    to_symlink.extend(raw_entry("link", b'1', "s", b""));
    vec![
        ("truncated", truncated, "big"),
        ("size past the end", past_end, "huge"),
        ("hardlink to a missing entry", raw_end(to_missing), "link"),
        ("hardlink to a symlink", raw_end(to_symlink), "link"),
    ]
}
