//! ADD of local archives: detection by content, entries under the destination, policies.

use crate::layer_support;

use kiln_runtime::layer::{
    archive_entries, compress, write_layer, ArchiveMtime, ArchiveOwner, EntryKind,
    LayerCompression, LayerError, UnpackOptions,
};
use layer_support::*;
use std::io::Write;
use std::path::{Path, PathBuf};

fn sample_tar() -> Vec<u8> {
    let mut owned = file("pkg/bin/tool", b"#!/bin/sh\necho hi\n");
    owned.mode = 0o755;
    owned.uid = 1000;
    owned.gid = 1001;
    owned.mtime = 2_000_000_000;
    let (bytes, _) = write(vec![
        dir("pkg"),
        dir("pkg/bin"),
        owned,
        file("pkg/README", b"read me"),
        hardlink("pkg/README.link", "pkg/README"),
        symlink("pkg/latest", "bin/tool"),
    ]);
    bytes
}

fn options(scratch: &Path) -> UnpackOptions {
    UnpackOptions {
        mtime: ArchiveMtime::Keep,
        owner: ArchiveOwner::Keep,
        scratch: scratch.to_path_buf(),
    }
}

fn compressed(kind: &str, tar: &[u8]) -> Vec<u8> {
    match kind {
        "tar" => tar.to_vec(),
        "tar.gz" => {
            let mut out = Vec::new();
            compress(LayerCompression::Gzip, tar, &mut out).unwrap();
            out
        }
        "tar.zst" => {
            let mut out = Vec::new();
            compress(LayerCompression::Zstd, tar, &mut out).unwrap();
            out
        }
        "tar.bz2" => {
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        "tar.xz" => {
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        other => panic!("unknown kind {other}"),
    }
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn every_supported_compression_unpacks_under_dest() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = sample_tar();
    for kind in ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst"] {
        // The name says nothing: detection is by content.
        let archive = put(
            tmp.path(),
            &format!("archive-{kind}.bin"),
            &compressed(kind, &tar),
        );
        let scratch = tmp.path().join(format!("scratch-{kind}"));
        std::fs::create_dir(&scratch).unwrap();
        let entries = archive_entries(&archive, "opt/x", &options(&scratch))
            .unwrap()
            .unwrap_or_else(|| panic!("{kind} not detected"));
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "opt/x/pkg",
                "opt/x/pkg/README",
                "opt/x/pkg/README.link",
                "opt/x/pkg/bin",
                "opt/x/pkg/bin/tool",
                "opt/x/pkg/latest"
            ],
            "{kind}"
        );
        let tool = &entries[4];
        assert_eq!(
            (tool.mode, tool.uid, tool.gid, tool.mtime),
            (0o755, 1000, 1001, 2_000_000_000)
        );
        assert_eq!(
            entries[2].kind,
            EntryKind::Hardlink {
                target: "opt/x/pkg/README".to_string()
            }
        );
        // Compressed archives are decompressed into the scratch directory, plain ones not.
        let scratch_files = std::fs::read_dir(&scratch).unwrap().count();
        assert_eq!(scratch_files, usize::from(kind != "tar"), "{kind}");

        let mut all = vec![dir("opt"), dir("opt/x")];
        all.extend(entries);
        let mut layer = Vec::new();
        write_layer(all, &mut layer).unwrap();
        let listed = list(&layer);
        let tool = listed
            .iter()
            .find(|l| l.path == "opt/x/pkg/bin/tool")
            .unwrap();
        assert_eq!(tool.data, b"#!/bin/sh\necho hi\n", "{kind}");
    }
}

#[test]
fn non_archives_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path();
    let mut gz_text = Vec::new();
    compress(
        LayerCompression::Gzip,
        &b"just text, gzipped"[..],
        &mut gz_text,
    )
    .unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello world\n".to_vec()),
        ("empty", Vec::new()),
        ("zeros", vec![0u8; 2048]),
        ("gzipped-text", gz_text),
        (
            "looks-like-bzip2",
            b"BZh this is not bzip2 at all, just text".to_vec(),
        ),
        ("bad-checksum", {
            let mut t = sample_tar();
            t[0] ^= 1;
            t
        }),
    ];
    for (name, bytes) in cases {
        let path = put(tmp.path(), name, &bytes);
        let found = archive_entries(&path, "dest", &options(scratch)).unwrap();
        assert!(found.is_none(), "{name} taken for an archive");
    }
}

#[test]
fn mtime_and_owner_policies_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = put(tmp.path(), "a.tar", &sample_tar());
    let mut opts = options(tmp.path());
    opts.mtime = ArchiveMtime::Clamp(1_800_000_000);
    opts.owner = ArchiveOwner::Fixed { uid: 7, gid: 8 };
    let entries = archive_entries(&archive, "", &opts).unwrap().unwrap();
    assert_eq!(entries[0].path, "pkg");
    let tool = entries.iter().find(|e| e.path == "pkg/bin/tool").unwrap();
    assert_eq!((tool.uid, tool.gid, tool.mtime), (7, 8, 1_800_000_000));
    let readme = entries.iter().find(|e| e.path == "pkg/README").unwrap();
    assert_eq!(readme.mtime, MTIME);
    opts.mtime = ArchiveMtime::Fixed(5);
    let entries = archive_entries(&archive, "", &opts).unwrap().unwrap();
    assert!(entries.iter().all(|e| e.mtime == 5));
}

#[test]
fn escaping_and_whiteout_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let escaping = put(
        tmp.path(),
        "evil.tar",
        &raw_tar(&[("../../etc/cron.d/x", b'0', "", b"x")]),
    );
    assert!(matches!(
        archive_entries(&escaping, "app", &options(tmp.path())),
        Err(LayerError::Escape { .. })
    ));
    let through_link = put(
        tmp.path(),
        "link.tar.gz",
        &compressed(
            "tar.gz",
            &raw_tar(&[("l", b'2', "/etc", b""), ("l/shadow", b'0', "", b"x")]),
        ),
    );
    assert!(matches!(
        archive_entries(&through_link, "app", &options(tmp.path())),
        Err(LayerError::Escape { .. })
    ));
    let whiteout = put(
        tmp.path(),
        "wh.tar",
        &raw_tar(&[(".wh.etc", b'0', "", b"")]),
    );
    assert!(archive_entries(&whiteout, "app", &options(tmp.path())).is_err());
}

#[test]
fn a_path_given_twice_keeps_the_last_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = put(
        tmp.path(),
        "dup.tar",
        &raw_tar(&[("f", b'0', "", b"first"), ("f", b'0', "", b"second")]),
    );
    let entries = archive_entries(&archive, "d", &options(tmp.path()))
        .unwrap()
        .unwrap();
    assert_eq!(entries.len(), 1);
    let mut layer = Vec::new();
    write_layer(entries, &mut layer).unwrap();
    assert_eq!(list(&layer)[0].data, b"second");
}
