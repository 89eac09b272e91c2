//! Reading layers back: metadata, offsets, whiteouts, foreign encodings, escape refusals,
//! and no panics on junk.

use crate::layer_support;

use kiln_runtime::layer::{scan_layer, write_layer, LayerError, ScannedKind};
use layer_support::*;
use proptest::prelude::*;
use std::process::Command;

#[test]
fn written_layer_scans_back_and_rewrites_identically() {
    let long = format!("deep/{}", "x".repeat(200));
    let entries = vec![
        dir("deep"),
        file(&long, b"long-named"),
        file("a", b"alpha"),
        hardlink("b", "a"),
        symlink("s", "/etc/passwd"),
        whiteout("gone"),
        opaque("opq"),
        entry(
            "tty",
            kiln_runtime::layer::EntryKind::CharDevice { major: 5, minor: 0 },
            0o620,
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("l.tar");
    let (bytes, digest) = write(entries);
    std::fs::write(&tar_path, &bytes).unwrap();

    let scanned = scan_layer(&bytes[..]).unwrap();
    let kinds: Vec<(&str, &ScannedKind)> =
        scanned.iter().map(|s| (s.path.as_str(), &s.kind)).collect();
    assert!(kinds.contains(&("gone", &ScannedKind::Whiteout)));
    assert!(kinds.contains(&("opq", &ScannedKind::OpaqueDir)));
    assert!(kinds.contains(&("opq", &ScannedKind::Dir)));
    assert!(kinds.contains(&(
        "b",
        &ScannedKind::Hardlink {
            target: "a".to_string()
        }
    )));
    let file_a = scanned.iter().find(|s| s.path == "a").unwrap();
    let ScannedKind::File { size, data_offset } = file_a.kind else {
        panic!("a is not a file")
    };
    assert_eq!(&bytes[data_offset as usize..][..size as usize], b"alpha");
    assert_eq!(file_a.mtime, MTIME);
    assert!(scanned.iter().any(|s| s.path == long));

    // Whiteouts map back to writer entries; the opaque directory is its directory entry
    // (which carries the metadata) written as an OpaqueDir.
    let again: Vec<_> = scanned
        .iter()
        .filter(|s| s.kind != ScannedKind::OpaqueDir)
        .map(|s| {
            let mut e = s.to_entry(&tar_path);
            if e.path == "opq" {
                e.kind = kiln_runtime::layer::EntryKind::OpaqueDir;
            }
            e
        })
        .collect();
    let mut rewritten = Vec::new();
    let digest2 = write_layer(again, &mut rewritten).unwrap();
    assert_eq!(digest2, digest);
    assert_eq!(rewritten, bytes);
}

#[test]
fn gnu_and_pax_long_names_from_gnu_tar_are_read() {
    if !gnu_tar_available() {
        eprintln!("GNU tar not installed; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let long_dir = "dir-".repeat(30);
    std::fs::create_dir_all(src.join(&long_dir)).unwrap();
    std::fs::write(src.join(&long_dir).join("file.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink("t/".repeat(70), src.join("longlink")).unwrap();
    for format in ["gnu", "pax"] {
        let tar_path = tmp.path().join(format!("{format}.tar"));
        let status = Command::new("tar")
            .arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&tar_path)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = std::fs::read(&tar_path).unwrap();
        let scanned = scan_layer(&bytes[..]).unwrap();
        let wanted = format!("{long_dir}/file.txt");
        let found = scanned.iter().find(|s| s.path == wanted);
        let Some(ScannedKind::File { size, data_offset }) = found.map(|s| &s.kind) else {
            panic!("{format}: {wanted} missing in {scanned:?}")
        };
        assert_eq!(&bytes[*data_offset as usize..][..*size as usize], b"hello");
        let link = scanned.iter().find(|s| s.path == "longlink").unwrap();
        assert_eq!(
            link.kind,
            ScannedKind::Symlink {
                target: "t/".repeat(70)
            }
        );
        assert!(scanned
            .iter()
            .all(|s| !s.path.is_empty() && !s.path.starts_with('.')));
    }
}

fn escape_of(bytes: &[u8]) -> String {
    match scan_layer(bytes) {
        Err(LayerError::Escape { entry, .. }) => entry,
        other => panic!("expected an escape error, got {other:?}"),
    }
}

#[test]
fn dot_dot_escapes_are_refused_and_named() {
    assert_eq!(
        escape_of(&raw_tar(&[("../../etc/x", b'0', "", b"x")])),
        "../../etc/x"
    );
    assert_eq!(
        escape_of(&raw_tar(&[("a/../../x", b'0', "", b"")])),
        "a/../../x"
    );
}

#[test]
fn absolute_paths_are_made_relative_like_docker() {
    let scanned = scan_layer(&raw_tar(&[("/abs/file", b'0', "", b"1")])[..]).unwrap();
    assert_eq!(scanned[0].path, "abs/file");
    let scanned = scan_layer(&raw_tar(&[("./a/./b/../c", b'0', "", b"")])[..]).unwrap();
    assert_eq!(scanned[0].path, "a/c");
}

#[test]
fn entries_through_a_symlink_of_the_same_layer_are_refused() {
    let tar = raw_tar(&[
        ("link", b'2', "/etc", b""),
        ("link/passwd", b'0', "", b"root"),
    ]);
    assert_eq!(escape_of(&tar), "link/passwd");
    // Replacing the symlink by a directory first does not make it acceptable.
    let tar = raw_tar(&[
        ("link", b'2', "../../..", b""),
        ("link", b'5', "", b""),
        ("link/x", b'0', "", b""),
    ]);
    assert_eq!(escape_of(&tar), "link/x");
}

#[test]
fn hardlinks_outside_or_through_symlinks_are_refused() {
    assert_eq!(escape_of(&raw_tar(&[("h", b'1', "../x", b"")])), "h");
    assert_eq!(
        escape_of(&raw_tar(&[
            ("s", b'2', "/", b""),
            ("h", b'1', "s/etc/shadow", b"")
        ])),
        "h"
    );
    // An absolute hardlink target means the root of the image, like docker.
    let scanned =
        scan_layer(&raw_tar(&[("a", b'0', "", b"x"), ("h", b'1', "/a", b"")])[..]).unwrap();
    assert_eq!(
        scanned[1].kind,
        ScannedKind::Hardlink {
            target: "a".to_string()
        }
    );
}

#[test]
fn symlink_targets_may_point_anywhere() {
    let scanned = scan_layer(&raw_tar(&[("s", b'2', "../../../../etc", b"")])[..]).unwrap();
    assert_eq!(
        scanned[0].kind,
        ScannedKind::Symlink {
            target: "../../../../etc".to_string()
        }
    );
}

#[test]
fn whiteout_names_are_interpreted() {
    let tar = raw_tar(&[
        ("./", b'5', "", b""),
        ("d/", b'5', "", b""),
        ("d/.wh..wh..opq", b'0', "", b""),
        ("d/.wh.old", b'0', "", b""),
        (".wh..wh.plnk", b'5', "", b""),
        (".wh.top", b'0', "", b""),
    ]);
    let scanned = scan_layer(&tar[..]).unwrap();
    let got: Vec<(&str, &ScannedKind)> =
        scanned.iter().map(|s| (s.path.as_str(), &s.kind)).collect();
    assert_eq!(
        got,
        [
            ("d", &ScannedKind::Dir),
            ("d", &ScannedKind::OpaqueDir),
            ("d/old", &ScannedKind::Whiteout),
            ("top", &ScannedKind::Whiteout),
        ]
    );
    assert!(scan_layer(&raw_tar(&[("a/.wh..", b'0', "", b"")])[..]).is_err());
}

#[test]
fn truncated_and_corrupt_archives_are_errors() {
    let (bytes, _) = write(vec![file("f", &[7u8; 3000])]);
    assert!(matches!(
        scan_layer(&bytes[..1000]),
        Err(LayerError::Malformed { .. })
    ));
    let mut corrupt = bytes.clone();
    corrupt[10] ^= 0x55; // breaks the header checksum
    assert!(matches!(
        scan_layer(&corrupt[..]),
        Err(LayerError::Malformed { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = scan_layer(&bytes[..]);
    }

    #[test]
    fn mutated_layers_never_panic(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
        let (mut bytes, _) = write(vec![
            dir("d"),
            file("d/f", b"some data"),
            symlink("d/s", "f"),
            hardlink("d/h", "d/f"),
            file(&"n".repeat(150), b"pax"),
        ]);
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at % len] = value;
        }
        let _ = scan_layer(&bytes[..]);
    }
}
