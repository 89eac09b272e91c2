//! extract_layer: layer tars to overlayfs lowerdirs, metadata round trips, hostile tars.

use crate::layer_support;

use kiln_runtime::layer::{extract_layer, EntryKind, FileSource, LayerError};
use layer_support::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: extraction sets owners and makes device nodes, which needs root");
        false
    }
}

/// Writes `tar` to a file and extracts it into a new directory.
fn extract(tar: &[u8]) -> (tempfile::TempDir, Result<(), LayerError>) {
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("layer.tar");
    fs::write(&tar_path, tar).unwrap();
    let dest = dir.path().join("root");
    fs::create_dir(&dest).unwrap();
    let result = extract_layer(&tar_path, &dest);
    (dir, result)
}

fn root_of(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("root")
}

fn escape_reason(result: Result<(), LayerError>) -> String {
    match result {
        Err(LayerError::InLayer { source, .. }) => match *source {
            LayerError::Escape { reason, .. } => reason,
            other => panic!("expected an escape error, got {other:?}"),
        },
        other => panic!("expected an error in the layer, got {other:?}"),
    }
}

fn inner(result: Result<(), LayerError>) -> LayerError {
    match result {
        Err(LayerError::InLayer { source, .. }) => *source,
        other => panic!("expected an error in the layer, got {other:?}"),
    }
}

fn owned(
    mut e: kiln_runtime::layer::Entry,
    mode: u32,
    uid: u64,
    gid: u64,
) -> kiln_runtime::layer::Entry {
    e.mode = mode;
    e.uid = uid;
    e.gid = gid;
    e
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            e.path().strip_prefix(dir).unwrap().display().to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn round_trip_of_a_written_layer() {
    if !is_root() {
        return;
    }
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let mut cap = file("app/bin/ping", b"ping");
    cap.mode = 0o755;
    cap.xattrs = vec![(
        "security.capability".to_string(),
        vec![
            1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    )];
    let mut link = symlink("app/current", "bin/ping");
    link.uid = 7;
    link.gid = 8;
    let entries = vec![
        owned(dir("app"), 0o750, 1000, 1001),
        dir("app/bin"),
        cap,
        owned(file("app/bin/su", b"su"), 0o4755, 0, 0),
        owned(file("app/bin/wall", b"wall"), 0o2711, 0, 5),
        owned(dir("app/tmp"), 0o1777, 0, 0),
        file("app/big", &big),
        link,
        hardlink("app/bin/ping-again", "app/bin/ping"),
        dir("dev"),
        entry(
            "dev/null",
            EntryKind::CharDevice { major: 1, minor: 3 },
            0o666,
        ),
        entry(
            "dev/sda",
            EntryKind::BlockDevice { major: 8, minor: 0 },
            0o660,
        ),
        entry("dev/fifo", EntryKind::Fifo, 0o600),
        whiteout("app/removed"),
        whiteout("gone"),
        opaque("cache"),
        file("cache/fresh", b"new"),
        file("implicit/parents/file", b"x"),
    ];
    let (tar, _) = write(entries);
    let (tmp, result) = extract(&tar);
    result.unwrap();
    let root = root_of(&tmp);
    let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();

    let app = meta("app");
    assert!(app.is_dir());
    assert_eq!(
        (app.mode() & 0o7777, app.uid(), app.gid()),
        (0o750, 1000, 1001)
    );
    assert_eq!(
        app.mtime(),
        MTIME as i64,
        "directory mtime set after its children"
    );
    assert_eq!(meta("app/bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(
        (
            meta("app/bin/wall").mode() & 0o7777,
            meta("app/bin/wall").gid()
        ),
        (0o2711, 5)
    );
    assert_eq!(meta("app/tmp").mode() & 0o7777, 0o1777);
    assert_eq!(fs::read(root.join("app/big")).unwrap(), big);
    assert_eq!(meta("app/big").mtime(), MTIME as i64);
    assert_eq!(
        xattr::get(root.join("app/bin/ping"), "security.capability")
            .unwrap()
            .unwrap()[..4],
        [1, 0, 0, 2]
    );
    let current = meta("app/current");
    assert!(current.file_type().is_symlink());
    assert_eq!((current.uid(), current.gid()), (7, 8));
    assert_eq!(
        current.mtime(),
        MTIME as i64,
        "symlink mtime set without following it"
    );
    assert_eq!(
        fs::read_link(root.join("app/current")).unwrap(),
        Path::new("bin/ping")
    );
    assert_eq!(meta("app/bin/ping").ino(), meta("app/bin/ping-again").ino());
    assert_eq!(meta("app/bin/ping").nlink(), 2);

    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let sda = meta("dev/sda");
    assert!(sda.file_type().is_block_device());
    assert_eq!(
        (sda.rdev(), sda.mode() & 0o7777),
        (nix::sys::stat::makedev(8, 0), 0o660)
    );
    assert!(meta("dev/fifo").file_type().is_fifo());
    assert_eq!(meta("dev/fifo").mode() & 0o7777, 0o600);

    for gone in ["app/removed", "gone"] {
        let w = meta(gone);
        assert!(
            w.file_type().is_char_device(),
            "{gone} is a whiteout device"
        );
        assert_eq!(w.rdev(), 0);
    }
    assert_eq!(
        xattr::get(root.join("cache"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    let names = listing(&root);
    assert!(names.iter().all(|n| !n.contains(".wh.")), "{names:?}");
    assert!(names.contains(&"cache/fresh".to_string()));

    let implicit = meta("implicit/parents");
    assert_eq!(
        (implicit.mode() & 0o7777, implicit.uid(), implicit.gid()),
        (0o755, 0, 0)
    );
    assert_eq!(implicit.mtime(), 0);
}

#[test]
fn pax_xattrs_are_applied_except_overlay_ones() {
    if !is_root() {
        return;
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([
            ("SCHILY.xattr.user.comment", &b"hello"[..]),
            ("SCHILY.xattr.trusted.note", &b"t"[..]),
            ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
            ("SCHILY.xattr.user.overlay.opaque", &b"y"[..]),
        ])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_mtime(5);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, "f", &b"hi"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let (tmp, result) = extract(&tar);
    result.unwrap();
    let f = root_of(&tmp).join("f");
    assert_eq!(
        xattr::get(&f, "user.comment").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        xattr::get(&f, "trusted.note").unwrap().as_deref(),
        Some(&b"t"[..])
    );
    assert_eq!(xattr::get(&f, "trusted.overlay.redirect").unwrap(), None);
    assert_eq!(xattr::get(&f, "user.overlay.opaque").unwrap(), None);
    assert_eq!(fs::symlink_metadata(&f).unwrap().mtime(), 5);
}

#[test]
fn later_entries_replace_earlier_ones() {
    if !is_root() {
        return;
    }
    let tar = raw_tar(&[
        ("d/", b'5', "", b""),
        ("d/x", b'0', "", b"x"),
        ("d", b'0', "", b"now a file"),
        ("e", b'0', "", b"file first"),
        ("e/", b'5', "", b""),
        ("e/y", b'0', "", b"y"),
        ("f", b'0', "", b"one"),
        ("f", b'0', "", b"two"),
        ("g/", b'5', "", b""),
        ("g/kept", b'0', "", b"k"),
        ("g/", b'5', "", b""),
        ("s", b'2', "f", b""),
        ("s", b'0', "", b"not a link"),
        ("h/inner", b'0', "", b"i"),
        ("w", b'0', "", b"kept"),
        (".wh.w", b'0', "", b""),
        (".wh.v", b'0', "", b""),
        ("v", b'0', "", b"replaces the whiteout"),
    ]);
    let (tmp, result) = extract(&tar);
    result.unwrap();
    let root = root_of(&tmp);
    assert_eq!(fs::read(root.join("d")).unwrap(), b"now a file");
    assert_eq!(fs::read(root.join("e/y")).unwrap(), b"y");
    assert_eq!(fs::read(root.join("f")).unwrap(), b"two");
    assert_eq!(fs::read(root.join("g/kept")).unwrap(), b"k");
    assert!(fs::symlink_metadata(root.join("s")).unwrap().is_file());
    assert_eq!(fs::read(root.join("w")).unwrap(), b"kept");
    assert_eq!(fs::read(root.join("v")).unwrap(), b"replaces the whiteout");
    assert_eq!(
        listing(&root),
        ["d", "e", "e/y", "f", "g", "g/kept", "h", "h/inner", "s", "v", "w"]
    );
}

#[test]
fn a_directory_entry_after_its_children_sets_its_metadata() {
    if !is_root() {
        return;
    }
    let mut late_dir = tar::Header::new_ustar();
    late_dir.set_entry_type(tar::EntryType::Directory);
    late_dir.set_mode(0o700);
    late_dir.set_uid(33);
    late_dir.set_gid(34);
    late_dir.set_mtime(12345);
    late_dir.set_size(0);
    let mut builder = tar::Builder::new(Vec::new());
    let mut child = tar::Header::new_ustar();
    child.set_entry_type(tar::EntryType::Regular);
    child.set_mode(0o644);
    child.set_uid(0);
    child.set_gid(0);
    child.set_mtime(1);
    child.set_size(1);
    builder
        .append_data(&mut child, "late/child", &b"c"[..])
        .unwrap();
    builder
        .append_data(&mut late_dir, "late/", &b""[..])
        .unwrap();
    let (tmp, result) = extract(&builder.into_inner().unwrap());
    result.unwrap();
    let late = fs::symlink_metadata(root_of(&tmp).join("late")).unwrap();
    assert_eq!(
        (late.mode() & 0o7777, late.uid(), late.gid(), late.mtime()),
        (0o700, 33, 34, 12345)
    );
}

#[test]
fn a_symlink_is_never_written_through() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().display().to_string();
    for items in [
        // The classic: a symlink to a host directory, then a file below it.
        vec![
            ("a", b'2', target.as_str(), &b""[..]),
            ("a/passwd", b'0', "", &b"pwned"[..]),
        ],
        // Relative climbing symlink as parent.
        vec![
            ("b", b'2', "../../../../../../..", &b""[..]),
            ("b/tmp/x", b'0', "", &b"x"[..]),
        ],
        // The symlink replaced by a directory before the write does not make it safe.
        vec![
            ("c", b'2', target.as_str(), &b""[..]),
            ("c/", b'5', "", &b""[..]),
            ("c/f", b'0', "", &b"x"[..]),
        ],
        // A hardlink through a symlink parent.
        vec![
            ("d", b'2', "/etc", &b""[..]),
            ("h", b'1', "d/passwd", &b""[..]),
        ],
    ] {
        let (tmp, result) = extract(&raw_tar(&items));
        let reason = escape_reason(result);
        assert!(reason.contains("symlink"), "{reason}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(
            listing(&root_of(&tmp)).is_empty(),
            "a refused tar writes nothing"
        );
    }
}

#[test]
fn paths_climbing_out_are_refused() {
    for name in ["../x", "a/../../x", "./../../etc/x"] {
        let (tmp, result) = extract(&raw_tar(&[("ok", b'0', "", b""), (name, b'0', "", b"x")]));
        escape_reason(result);
        assert!(!tmp.path().join("x").exists());
        assert!(listing(&root_of(&tmp)).is_empty());
    }
}

#[test]
fn absolute_paths_land_inside() {
    if !is_root() {
        return;
    }
    let marker = format!("kiln-extract-test-{}", std::process::id());
    let name = format!("/tmp/{marker}/f");
    let (tmp, result) = extract(&raw_tar(&[(name.as_str(), b'0', "", b"in")]));
    result.unwrap();
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert_eq!(
        fs::read(root_of(&tmp).join("tmp").join(marker).join("f")).unwrap(),
        b"in"
    );
}

#[test]
fn hardlinks_to_outside_or_to_non_files_are_refused() {
    let passwd_links = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    // Climbing target.
    let (_tmp, result) = extract(&raw_tar(&[("h", b'1', "../../../../etc/passwd", b"")]));
    escape_reason(result);
    if !is_root() {
        return;
    }
    // An absolute target is inside the root: there is no `etc/passwd` there.
    let (_tmp, result) = extract(&raw_tar(&[("h", b'1', "/etc/passwd", b"")]));
    assert!(matches!(inner(result), LayerError::HardlinkTarget { .. }));
    // A hardlink to a symlink pointing outside.
    let (tmp, result) = extract(&raw_tar(&[
        ("s", b'2', "/etc/passwd", b""),
        ("h", b'1', "s", b""),
    ]));
    assert!(matches!(inner(result), LayerError::HardlinkTarget { .. }));
    assert!(!root_of(&tmp).join("h").exists());
    // To a directory and to a fifo.
    for items in [
        vec![("d/", b'5', "", &b""[..]), ("h", b'1', "d", &b""[..])],
        vec![("pipe", b'6', "", &b""[..]), ("h", b'1', "pipe", &b""[..])],
    ] {
        let (_tmp, result) = extract(&raw_tar(&items));
        let err = inner(result);
        assert!(matches!(err, LayerError::HardlinkTarget { .. }), "{err:?}");
    }
    assert_eq!(
        fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
        passwd_links
    );
}

#[test]
fn whiteout_and_device_names_are_checked() {
    for (name, flag) in [
        (".wh..", b'0'),
        ("d/.wh.", b'0'),
        ("d/.wh...", b'0'),
        ("../dev/x", b'3'),
    ] {
        let (tmp, result) = extract(&raw_tar(&[(name, flag, "", b"")]));
        escape_reason(result);
        assert!(listing(&root_of(&tmp)).is_empty());
    }
    if !is_root() {
        return;
    }
    // A whiteout in a missing directory makes its parents.
    let (tmp, result) = extract(&raw_tar(&[("deep/dir/.wh.gone", b'0', "", b"")]));
    result.unwrap();
    let root = root_of(&tmp);
    assert_eq!(listing(&root), ["deep", "deep/dir", "deep/dir/gone"]);
    assert!(fs::symlink_metadata(root.join("deep/dir/gone"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn destination_must_be_empty() {
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("layer.tar");
    fs::write(&tar_path, raw_tar(&[("f", b'0', "", b"x")])).unwrap();
    let dest = dir.path().join("root");
    fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink("/etc", dest.join("f")).unwrap();
    let err = inner(extract_layer(&tar_path, &dest));
    assert!(matches!(err, LayerError::NotEmpty { .. }), "{err:?}");
}

#[test]
fn truncated_data_is_an_error() {
    if !is_root() {
        return;
    }
    let mut tar = raw_tar(&[("f", b'0', "", &[7u8; 4096])]);
    tar.truncate(512 + 1000);
    let (_tmp, result) = extract(&tar);
    assert!(matches!(inner(result), LayerError::Malformed { .. }));
}

#[test]
fn no_descriptor_leaks() {
    if !is_root() {
        return;
    }
    let count = || fs::read_dir("/proc/self/fd").unwrap().count();
    let (tar, _) = write(vec![
        dir("a"),
        dir("a/b"),
        file("a/b/f", b"x"),
        whiteout("a/gone"),
        opaque("o"),
        entry("p", EntryKind::Fifo, 0o600),
        entry(
            "big",
            EntryKind::File {
                size: 3,
                source: FileSource::Bytes(Arc::from(&b"abc"[..])),
            },
            0o644,
        ),
    ]);
    let hostile = raw_tar(&[
        ("d/", b'5', "", b""),
        ("d", b'0', "", b"x"),
        ("h", b'1', "nope", b""),
    ]);
    let before = count();
    for _ in 0..40 {
        extract(&tar).1.unwrap();
        assert!(extract(&hostile).1.is_err());
    }
    // Other tests run in parallel and open descriptors too; a leak would add 40 or more.
    let after = count();
    assert!(
        after < before + 20,
        "descriptors: {before} before, {after} after"
    );
}
