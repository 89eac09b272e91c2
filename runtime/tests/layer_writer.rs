//! Layer tar writer: determinism, ordering, encoding and refusals.

use crate::layer_support;

use kiln_runtime::layer::{host_entry, write_layer, EntryKind, LayerError};
use layer_support::*;
use std::process::Command;

fn sample() -> Vec<kiln_runtime::layer::Entry> {
    vec![
        dir("app"),
        file("app/b.txt", b"bee\n"),
        file("app/a.txt", b"ay\n"),
        dir("app/sub"),
        file("app/sub/deep.txt", b"deep"),
        file("app-config", b"x"),
        whiteout("app/old"),
        whiteout("app/zzz-gone"),
        opaque("cache"),
        file("cache/fresh", b"new"),
        symlink("app/link", "a.txt"),
        hardlink("app/hl", "app/a.txt"),
        whiteout("top-gone"),
        entry(
            "dev-null",
            EntryKind::CharDevice { major: 1, minor: 3 },
            0o666,
        ),
        entry("pipe", EntryKind::Fifo, 0o600),
    ]
}

#[test]
fn same_entries_in_any_order_give_identical_bytes() {
    let base = sample();
    let (first, digest) = write(base.clone());
    assert_eq!(digest.diff_id, sha256_hex(&first));
    assert_eq!(digest.size, first.len() as u64);
    for rotation in 1..base.len() {
        let mut shuffled = base.clone();
        shuffled.rotate_left(rotation);
        if rotation % 2 == 0 {
            shuffled.reverse();
        }
        let (bytes, again) = write(shuffled);
        assert_eq!(again, digest, "rotation {rotation}");
        assert_eq!(bytes, first);
    }
}

#[test]
fn order_is_by_components_with_markers_first() {
    let (bytes, _) = write(sample());
    let names: Vec<String> = list(&bytes).into_iter().map(|l| l.path).collect();
    assert_eq!(
        names,
        [
            ".wh.top-gone",
            "app/",
            "app/.wh.old",
            "app/.wh.zzz-gone",
            "app/a.txt",
            "app/b.txt",
            "app/hl",
            "app/link",
            "app/sub/",
            "app/sub/deep.txt",
            "app-config",
            "cache/",
            "cache/.wh..wh..opq",
            "cache/fresh",
            "dev-null",
            "pipe",
        ]
        .map(String::from)
    );
}

#[test]
fn top_level_whiteouts_come_before_other_top_level_entries() {
    let (bytes, _) = write(vec![dir("a"), whiteout("z"), file("b", b"")]);
    let names: Vec<String> = list(&bytes).into_iter().map(|l| l.path).collect();
    assert_eq!(names, [".wh.z", "a/", "b"]);
}

#[test]
fn end_of_archive_is_exactly_1024_zero_bytes() {
    let (bytes, _) = write(vec![file("f", b"12345")]);
    // header + one data block + 2 zero blocks
    assert_eq!(bytes.len(), 512 + 512 + 1024);
    assert!(bytes[bytes.len() - 1024..].iter().all(|&b| b == 0));
    assert_eq!(&bytes[512..517], b"12345");
    assert!(bytes[517..1024].iter().all(|&b| b == 0));
    let (empty, _) = write(Vec::new());
    assert_eq!(empty, vec![0u8; 1024]);
}

#[test]
fn header_fields_are_explicit() {
    let mut e = file("f", b"");
    e.uid = 1000;
    e.gid = 2000;
    e.mode = 0o4755;
    e.mtime = 1234567890;
    let (bytes, _) = write(vec![e]);
    let h = &bytes[..512];
    assert_eq!(&h[100..108], b"0004755\0");
    assert_eq!(&h[108..116], b"0001750\0");
    assert_eq!(&h[116..124], b"0003720\0");
    assert_eq!(&h[136..148], b"11145401322\0");
    assert!(h[265..329].iter().all(|&b| b == 0), "uname/gname empty");
    assert!(h[345..512].iter().all(|&b| b == 0), "prefix unused");
    assert_eq!(&h[329..345], b"0000000\x000000000\x00");
}

#[test]
fn devices_carry_their_numbers() {
    let (bytes, _) = write(vec![entry(
        "null",
        EntryKind::BlockDevice {
            major: 8,
            minor: 17,
        },
        0o660,
    )]);
    assert_eq!(bytes[156], b'4');
    assert_eq!(&bytes[329..345], b"0000010\x000000021\x00");
}

#[test]
fn long_names_links_and_big_ids_use_pax() {
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(150));
    let long_target = "t/".repeat(150);
    let mut big = file("big-uid", b"z");
    big.uid = 5_000_000;
    let entries = vec![
        dir(&long_dir),
        file(&long_file, b"content"),
        symlink("short", &long_target),
        file("héllo", b"utf8"),
        big,
    ];
    let (bytes, _) = write(entries);
    let listed = list(&bytes);
    let find = |p: &str| listed.iter().find(|l| l.path == p).cloned();
    assert_eq!(find(&format!("{long_dir}/")).map(|l| l.kind), Some('5'));
    assert_eq!(find(&long_file).map(|l| l.data), Some(b"content".to_vec()));
    assert_eq!(
        find("short").and_then(|l| l.link),
        Some(long_target.clone())
    );
    assert_eq!(find("héllo").map(|l| l.data), Some(b"utf8".to_vec()));
    assert_eq!(find("big-uid").map(|l| l.uid), Some(5_000_000));
    // PAX only where needed: a plain entry has a single header block.
    let (plain, _) = write(vec![file("plain", b"")]);
    assert_eq!(plain.len(), 512 + 1024);
}

#[test]
fn xattrs_only_allow_listed_ones() {
    let mut e = file("cap", b"");
    e.xattrs = vec![
        ("user.junk".to_string(), b"no".to_vec()),
        ("security.capability".to_string(), vec![1, 0, 0, 2]),
    ];
    let (bytes, _) = write(vec![e]);
    let pax = String::from_utf8_lossy(&bytes[512..1024]).into_owned();
    assert!(pax.contains("SCHILY.xattr.security.capability="));
    assert!(!pax.contains("user.junk"));
}

#[test]
fn hardlink_groups_point_at_the_first_path() {
    // The explicit link sorts before its target: the first path carries the data.
    let (bytes, _) = write(vec![
        file("b/target", b"data"),
        hardlink("a/link", "b/target"),
    ]);
    let listed = list(&bytes);
    assert_eq!(listed[0].path, "a/link");
    assert_eq!(listed[0].kind, '0');
    assert_eq!(listed[0].data, b"data");
    assert_eq!(listed[1].path, "b/target");
    assert_eq!(listed[1].kind, '1');
    assert_eq!(listed[1].link.as_deref(), Some("a/link"));
    assert_eq!(listed[1].size, 0);
}

#[test]
fn host_hardlinks_become_tar_hardlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    std::fs::write(&one, b"shared bytes").unwrap();
    std::fs::hard_link(&one, tmp.path().join("two")).unwrap();
    std::fs::hard_link(&one, tmp.path().join("three")).unwrap();
    let entries: Vec<_> = [("z", "one"), ("m", "two"), ("q", "three")]
        .iter()
        .map(|(rel, name)| {
            host_entry(&tmp.path().join(name), rel.to_string(), 0, 0, 0)
                .unwrap()
                .unwrap()
        })
        .collect();
    let (bytes, _) = write(entries);
    let listed = list(&bytes);
    assert_eq!(
        listed
            .iter()
            .map(|l| (l.path.as_str(), l.kind, l.link.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("m", '0', None),
            ("q", '1', Some("m")),
            ("z", '1', Some("m"))
        ]
    );
    assert_eq!(listed[0].data, b"shared bytes");
}

#[test]
fn gnu_tar_reads_and_extracts_the_layer() {
    if !gnu_tar_available() {
        eprintln!("GNU tar not installed; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("layer.tar");
    let mut entries = sample();
    entries.retain(|e| !matches!(e.kind, EntryKind::CharDevice { .. }));
    let long = format!("app/{}", "n".repeat(180));
    entries.push(file(&long, b"long"));
    let mut setuid = file("app/suid", b"#!/bin/sh\n");
    setuid.mode = 0o4755;
    entries.push(setuid);
    let (bytes, _) = write(entries);
    std::fs::write(&tar_path, &bytes).unwrap();

    let listing = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains(&long), "{text}");
    assert!(text.contains("hrw-r--r-- 0/0"), "{text}");
    assert!(text.contains("app/hl link to app/a.txt"), "{text}");
    assert!(text.contains("-rwsr-xr-x 0/0"), "{text}");

    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let status = Command::new("tar")
        .args(["--same-permissions", "-xf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(out.join("app/hl")).unwrap(), b"ay\n");
    assert_eq!(std::fs::read(out.join(&long)).unwrap(), b"long");
    assert_eq!(
        std::fs::read_link(out.join("app/link")).unwrap().to_str(),
        Some("a.txt")
    );
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(out.join("app/a.txt")).unwrap();
    let hl = std::fs::metadata(out.join("app/hl")).unwrap();
    assert_eq!(a.ino(), hl.ino());
}

#[test]
fn duplicate_paths_are_refused() {
    let err = write_layer(vec![file("x", b"1"), whiteout("x")], Vec::new()).unwrap_err();
    assert!(
        matches!(err, LayerError::DuplicatePath { ref path } if path == "x"),
        "{err}"
    );
}

#[test]
fn invalid_input_is_refused() {
    let cases = vec![
        vec![file("/abs", b"")],
        vec![file("a/../b", b"")],
        vec![file("a/.wh.b", b"")],
        vec![hardlink("l", "missing")],
        vec![dir("d"), hardlink("l", "d")],
        vec![symlink("s", "")],
        vec![{
            let mut e = file("m", b"");
            e.mode = 0o100644;
            e
        }],
        vec![entry(
            "bad-size",
            EntryKind::File {
                size: 10,
                source: kiln_runtime::layer::FileSource::Bytes(std::sync::Arc::from(&b"short"[..])),
            },
            0o644,
        )],
    ];
    for entries in cases {
        let shown = format!("{:?}", entries.last().map(|e| &e.path));
        assert!(
            write_layer(entries, Vec::new()).is_err(),
            "accepted {shown}"
        );
    }
}

#[test]
fn host_file_that_changed_size_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    std::fs::write(&path, b"before").unwrap();
    let entry = host_entry(&path, "f".to_string(), 0, 0, 0)
        .unwrap()
        .unwrap();
    std::fs::write(&path, b"after, longer").unwrap();
    let err = write_layer(vec![entry], Vec::new()).unwrap_err();
    assert!(
        matches!(
            err,
            LayerError::SourceChanged {
                expected: 6,
                found: 13,
                ..
            }
        ),
        "{err}"
    );
}
