//! The merged view of three layers: whiteouts, opaque dirs, replacement, symlinks, copies.

use crate::layer_support;

use kiln_runtime::layer::{write_layer, Entry, FsView, LayerError, ViewKind};
use layer_support::*;
use std::path::PathBuf;

const PASSWD_1: &[u8] = b"root:x:0:0::/root:/bin/sh\n";
const PASSWD_3: &[u8] = b"root:x:0:0::/root:/bin/sh\nkiln:x:1000:1000::/home/kiln:/bin/sh\n";

fn layers(dir: &std::path::Path) -> Vec<PathBuf> {
    let stack: Vec<Vec<Entry>> = vec![
        vec![
            dir_e("etc"),
            file("etc/passwd", PASSWD_1),
            dir_e("app"),
            file("app/a.txt", b"a1"),
            dir_e("app/sub"),
            file("app/sub/x", b"x"),
            dir_e("usr"),
            dir_e("usr/lib"),
            file("usr/lib/libc.so", b"libc"),
            symlink("lib", "usr/lib"),
            dir_e("data"),
            file("data/keep", b"k"),
            dir_e("old"),
            file("old/file", b"o"),
        ],
        vec![
            whiteout("app/a.txt"),
            opaque("data"),
            file("data/new", b"n"),
            file("app/sub", b"now a file"),
            whiteout("old"),
            file("lib/libfoo.so", b"foo"),
        ],
        vec![
            file("etc/passwd", PASSWD_3),
            hardlink("app/pw", "etc/passwd"),
            symlink("loop1", "loop2"),
            symlink("loop2", "loop1"),
            symlink("abs", "/usr/lib"),
            symlink("up", "../../../../usr/lib/libc.so"),
            symlink("etc/pw", "passwd"),
            file("new/deep/file", b"deep"),
        ],
    ];
    stack
        .into_iter()
        .enumerate()
        .map(|(i, entries)| {
            let path = dir.join(format!("layer{i}.tar"));
            write_layer(entries, std::fs::File::create(&path).unwrap()).unwrap();
            path
        })
        .collect()
}

fn dir_e(path: &str) -> Entry {
    layer_support::dir(path)
}

fn view() -> (tempfile::TempDir, FsView) {
    let tmp = tempfile::tempdir().unwrap();
    let paths = layers(tmp.path());
    let view = FsView::from_layers(&paths).unwrap();
    (tmp, view)
}

#[test]
fn whiteouts_opaque_dirs_and_replacements_apply() {
    let (_tmp, view) = view();
    assert!(view.get("app/a.txt").is_none());
    assert!(matches!(
        view.get("app/sub").map(|e| &e.kind),
        Some(ViewKind::File { .. })
    ));
    assert!(view.get("app/sub/x").is_none());
    assert!(view.get("data/keep").is_none());
    assert!(view.get("data/new").is_some());
    assert!(view.get("data").is_some_and(|e| e.is_dir()));
    assert!(view.get("old").is_none() && view.get("old/file").is_none());
    let new_dir = view.get("new/deep").unwrap();
    assert!(new_dir.is_dir());
    assert_eq!(new_dir.mode, 0o755);
}

#[test]
fn an_omitted_parent_replaces_a_lower_symlink_like_overlay2() {
    let (_tmp, view) = view();
    assert!(view.get("lib").is_some_and(|e| e.is_dir()));
    assert_eq!(view.read_file("lib/libfoo.so").unwrap(), b"foo");
    assert!(view.get("usr/lib/libfoo.so").is_none());
    assert!(view.get("lib/libc.so").is_none());
}

#[test]
fn files_are_read_through_symlinks_and_hardlinks() {
    let (_tmp, view) = view();
    assert_eq!(view.read_file("/etc/passwd").unwrap(), PASSWD_3);
    assert_eq!(view.read_file("etc/pw").unwrap(), PASSWD_3);
    assert_eq!(view.read_file("app/pw").unwrap(), PASSWD_3);
    assert_eq!(view.read_file("up").unwrap(), b"libc");
    assert_eq!(view.read_file("abs/libc.so").unwrap(), b"libc");
    assert!(matches!(
        view.read_file("app"),
        Err(LayerError::NotAFile { .. })
    ));
    assert!(matches!(
        view.read_file("nope"),
        Err(LayerError::NotFound { .. })
    ));
    assert!(matches!(
        view.read_file("loop1"),
        Err(LayerError::NotFound { .. })
    ));
}

#[test]
fn resolution_is_clamped_and_loop_limited() {
    let (_tmp, view) = view();
    assert_eq!(view.resolve("loop1", true), None);
    assert_eq!(view.resolve("loop1", false).as_deref(), Some("loop1"));
    assert_eq!(view.resolve("abs", true).as_deref(), Some("usr/lib"));
    assert_eq!(view.resolve("abs", false).as_deref(), Some("abs"));
    assert_eq!(view.resolve("etc/pw", true).as_deref(), Some("etc/passwd"));
    assert_eq!(view.resolve("abs/..", true).as_deref(), Some("usr"));
    assert_eq!(view.resolve("/abs/../etc", true), None);
    assert_eq!(
        view.resolve("../../etc/passwd", false).as_deref(),
        Some("etc/passwd")
    );
    assert_eq!(view.resolve("/", true).as_deref(), Some(""));
    assert_eq!(view.resolve("etc/passwd/x", true), None);
}

#[test]
fn walk_is_sorted_and_limited_to_the_directory() {
    let (_tmp, view) = view();
    let under_usr: Vec<&str> = view.walk("usr").map(|(p, _)| p).collect();
    assert_eq!(under_usr, ["usr/lib", "usr/lib/libc.so"]);
    let all: Vec<&str> = view.walk("/").map(|(p, _)| p).collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), view.len());
    assert!(all.contains(&"app/pw") && all.contains(&"data/new"));
}

#[test]
fn view_entries_copy_into_a_new_layer() {
    let (tmp, view) = view();
    let mut entries = vec![dir_e("copy")];
    for (path, entry) in view.walk("usr") {
        entries.push(view.to_entry(entry, format!("copy/{path}")));
    }
    // Both names of one file in the view become one file and one hardlink.
    for path in ["etc/passwd", "app/pw"] {
        let e = view.get(path).unwrap();
        entries.push(view.to_entry(e, format!("copy/{}", path.replace('/', "-"))));
    }
    let out = tmp.path().join("copy.tar");
    write_layer(entries, std::fs::File::create(&out).unwrap()).unwrap();
    let listed = list(&std::fs::read(&out).unwrap());
    let find = |p: &str| listed.iter().find(|l| l.path == p).unwrap().clone();
    assert_eq!(find("copy/usr/lib/libc.so").data, b"libc");
    assert_eq!(find("copy/app-pw").data, PASSWD_3);
    assert_eq!(find("copy/etc-passwd").kind, '1');
    assert_eq!(find("copy/etc-passwd").link.as_deref(), Some("copy/app-pw"));
}

#[test]
fn broken_layers_are_reported_with_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.tar");
    std::fs::write(&bad, raw_tar(&[("../x", b'0', "", b"")])).unwrap();
    let err = FsView::from_layers(std::slice::from_ref(&bad)).unwrap_err();
    assert!(
        matches!(&err, LayerError::InLayer { layer, .. } if *layer == bad),
        "{err}"
    );
    let dangling = tmp.path().join("dangling.tar");
    std::fs::write(&dangling, raw_tar(&[("h", b'1', "missing", b"")])).unwrap();
    assert!(FsView::from_layers(&[dangling]).is_err());
}
