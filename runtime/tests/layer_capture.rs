//! capture_upper: overlay upper directories as layer entries, against a real overlay mount.

use crate::layer_support;

use kiln_runtime::layer::{
    capture_upper, extract_layer, write_layer, Entry, EntryKind, FileSource, FsView,
};
use layer_support::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const EPOCH: u64 = 1_234_567;

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: overlay mounts, trusted xattrs and whiteout devices need root");
        false
    }
}

fn by_path(entries: Vec<Entry>) -> BTreeMap<String, Entry> {
    let mut map = BTreeMap::new();
    for entry in entries {
        let path = entry.path.clone();
        assert!(map.insert(path.clone(), entry).is_none(), "{path} twice");
    }
    map
}

fn write_tar(path: &Path, entries: Vec<Entry>) {
    let (bytes, _) = write(entries);
    fs::write(path, bytes).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Unmounts when dropped, also when the test panics while the overlay is mounted.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if nix::mount::umount(&self.0).is_err() {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The lower layers of the scenario, as tars (lowest first).
fn lower_layers(dir: &Path) -> Vec<PathBuf> {
    let one = dir.join("one.tar");
    write_tar(
        &one,
        vec![
            dir_entry("etc"),
            file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            file("etc/hosts", b"127.0.0.1 localhost\n"),
            dir_entry("usr"),
            dir_entry("usr/bin"),
            owned_mode(file("usr/bin/tool", b"#!/bin/sh\n"), 0o755),
            dir_entry("data"),
            file("data/a", b"a"),
            dir_entry("data/sub"),
            file("data/sub/c", b"c"),
            dir_entry("keep"),
            file("keep/x", b"x"),
            dir_entry("touched"),
            file("touched/y", b"y"),
            dir_entry("modes"),
            file("modes/f", b"f"),
        ],
    );
    let two = dir.join("two.tar");
    write_tar(
        &two,
        vec![
            dir_entry("etc"),
            file("etc/motd", b"welcome\n"),
            dir_entry("usr"),
            dir_entry("usr/bin"),
            file("usr/bin/other", b"other"),
        ],
    );
    vec![one, two]
}

fn dir_entry(path: &str) -> Entry {
    dir(path)
}

fn owned_mode(mut e: Entry, mode: u32) -> Entry {
    e.mode = mode;
    e
}

/// Extracts the lower layers, mounts the overlay, makes the scenario's changes, unmounts,
/// and captures the upper directory. Returns the entries, the view of the lower layers,
/// and the layer bytes the writer makes of them.
fn run_scenario(work: &Path) -> (BTreeMap<String, Entry>, Vec<u8>, Vec<PathBuf>) {
    let tars = lower_layers(work);
    let mut lowers = Vec::new();
    for (i, tar) in tars.iter().enumerate() {
        let dir = work.join(format!("lower{i}"));
        fs::create_dir(&dir).unwrap();
        extract_layer(tar, &dir).unwrap();
        lowers.push(dir);
    }
    let (upper, workdir, merged) = (work.join("upper"), work.join("work"), work.join("merged"));
    for d in [&upper, &workdir, &merged] {
        fs::create_dir(d).unwrap();
    }
    let lowerdir: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={},index=off,metacopy=off,redirect_dir=off",
        lowerdir.join(":"),
        upper.display(),
        workdir.display()
    );
    // The overlay lives in a private mount namespace of a thread of its own, so nothing
    // outside the test sees it; the guard unmounts it in any case.
    let merged_in_thread = merged.clone();
    std::thread::spawn(move || {
        let merged = merged_in_thread;
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_ok() {
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make mounts private");
        }
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .expect("mount overlay");
        let _mounted = Mounted(merged.clone());
        let m = |p: &str| merged.join(p);
        // Create, modify, delete.
        fs::write(m("new.txt"), b"new\n").unwrap();
        fs::write(m("etc/hosts"), b"127.0.0.1 localhost kiln\n").unwrap();
        fs::remove_file(m("etc/passwd")).unwrap();
        // `rm -rf` a lower directory and make it again: an opaque directory.
        fs::remove_dir_all(m("data")).unwrap();
        fs::create_dir(m("data")).unwrap();
        fs::write(m("data/fresh"), b"fresh").unwrap();
        // chmod a directory and a file.
        chmod(&m("modes"), 0o700);
        chmod(&m("usr/bin/tool"), 0o700);
        // Hardlinks: between new files, and to a lower file (copied up, then linked).
        fs::hard_link(m("new.txt"), m("new-link")).unwrap();
        fs::hard_link(m("etc/motd"), m("etc/motd.link")).unwrap();
        // A new file deep below a lower directory.
        fs::create_dir_all(m("keep/sub/deep")).unwrap();
        fs::write(m("keep/sub/deep/file"), b"deep").unwrap();
        // A lower directory copied up for a file that is gone again.
        fs::write(m("touched/tmp"), b"t").unwrap();
        fs::remove_file(m("touched/tmp")).unwrap();
        // A capability on a new file.
        fs::write(m("ping"), b"ping").unwrap();
        let cap = [
            1u8, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        xattr::set(m("ping"), "security.capability", &cap).unwrap();
        xattr::set(m("new.txt"), "user.note", b"not kept").unwrap();
    })
    .join()
    .expect("overlay changes");

    let view = FsView::from_layers(&tars).unwrap();
    let entries = capture_upper(&upper, &view, EPOCH).unwrap();
    let mut bytes = Vec::new();
    write_layer(entries.clone(), &mut bytes).unwrap();
    (by_path(entries), bytes, tars)
}

#[test]
fn overlay_changes_become_layer_entries() {
    if !is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (entries, bytes, mut tars) = run_scenario(work.path());
    let paths: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "data",
            "data/fresh",
            "etc",
            "etc/hosts",
            "etc/motd",
            "etc/motd.link",
            "etc/passwd",
            "keep",
            "keep/sub",
            "keep/sub/deep",
            "keep/sub/deep/file",
            "modes",
            "new-link",
            "new.txt",
            "ping",
            "usr",
            "usr/bin",
            "usr/bin/tool",
        ],
        "`touched` was only copied up and is left out"
    );
    let kind = |p: &str| &entries[p].kind;
    assert_eq!(kind("etc/passwd"), &EntryKind::Whiteout);
    assert_eq!(kind("data"), &EntryKind::OpaqueDir);
    assert_eq!(kind("modes"), &EntryKind::Dir);
    assert_eq!(entries["modes"].mode, 0o700);
    assert_eq!(entries["usr/bin/tool"].mode, 0o700);
    for entry in entries.values() {
        assert_eq!(entry.mtime, EPOCH, "{}", entry.path);
        assert!(
            entry.xattrs.iter().all(|(k, _)| k == "security.capability"),
            "{}: {:?}",
            entry.path,
            entry.xattrs
        );
    }
    assert_eq!(entries["ping"].xattrs.len(), 1);
    let link_id = |p: &str| match kind(p) {
        EntryKind::File {
            source: FileSource::Host { link_id, .. },
            ..
        } => *link_id,
        other => panic!("{p} is {other:?}"),
    };
    assert!(link_id("new.txt").is_some());
    assert_eq!(link_id("new.txt"), link_id("new-link"));
    assert_eq!(link_id("etc/motd"), link_id("etc/motd.link"));
    assert_eq!(link_id("etc/hosts"), None);

    // The writer makes hardlinks of them, whiteouts and the opaque marker.
    let listed = list(&bytes);
    let find = |name: &str| {
        listed
            .iter()
            .find(|l| l.path == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(find("new.txt").kind, '1');
    assert_eq!(find("new.txt").link.as_deref(), Some("new-link"));
    assert_eq!(find("etc/motd.link").kind, '1');
    assert_eq!(find("etc/.wh.passwd").kind, '0');
    assert_eq!(find("data/.wh..wh..opq").kind, '0');

    // The three layers together are the changed filesystem.
    let third = work.path().join("three.tar");
    fs::write(&third, &bytes).unwrap();
    tars.push(third);
    let view = FsView::from_layers(&tars).unwrap();
    assert!(view.get("etc/passwd").is_none());
    assert!(view.get("data/a").is_none() && view.get("data/sub").is_none());
    assert_eq!(view.read_file("data/fresh").unwrap(), b"fresh");
    assert_eq!(
        view.read_file("etc/hosts").unwrap(),
        b"127.0.0.1 localhost kiln\n"
    );
    assert_eq!(view.read_file("touched/y").unwrap(), b"y");
    assert_eq!(view.read_file("usr/bin/other").unwrap(), b"other");
}

#[test]
fn identical_changes_give_identical_layers() {
    if !is_root() {
        return;
    }
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let (_, a, _) = run_scenario(first.path());
    let (_, b, _) = run_scenario(second.path());
    assert_eq!(sha256_hex(&a), sha256_hex(&b));
    assert!(a == b);
}

#[test]
fn upper_dirs_made_by_hand() {
    if !is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("lower.tar");
    write_tar(
        &tar,
        vec![
            dir("same"),
            owned_mode(dir("chmod"), 0o755),
            dir("owner"),
            dir("was-file-dir"),
        ],
    );
    let view = FsView::from_layers(&[tar]).unwrap();
    let upper = work.path().join("upper");
    let u = |p: &str| upper.join(p);
    fs::create_dir(&upper).unwrap();
    fs::create_dir(u("same")).unwrap();
    chmod(&u("same"), 0o755);
    fs::create_dir(u("chmod")).unwrap();
    chmod(&u("chmod"), 0o750);
    fs::create_dir(u("owner")).unwrap();
    chmod(&u("owner"), 0o755);
    std::os::unix::fs::chown(u("owner"), Some(1000), Some(1000)).unwrap();
    fs::create_dir(u("new-empty")).unwrap();
    fs::create_dir(u("user-opaque")).unwrap();
    xattr::set(u("user-opaque"), "user.overlay.opaque", b"y").unwrap();
    fs::create_dir(u("not-opaque")).unwrap();
    xattr::set(u("not-opaque"), "trusted.overlay.opaque", b"n").unwrap();
    fs::write(u("origin"), b"o").unwrap();
    xattr::set(u("origin"), "trusted.overlay.origin", b"junk").unwrap();
    nix::sys::stat::mknod(
        &u("gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        nix::sys::stat::makedev(0, 0),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &u("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    chmod(&u("null"), 0o666);
    std::os::unix::fs::symlink("../target", u("link")).unwrap();
    let entries = by_path(capture_upper(&upper, &view, 9).unwrap());
    let paths: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "chmod",
            "gone",
            "link",
            "new-empty",
            "not-opaque",
            "null",
            "origin",
            "owner",
            "user-opaque"
        ]
    );
    assert_eq!(entries["gone"].kind, EntryKind::Whiteout);
    assert_eq!(
        entries["null"].kind,
        EntryKind::CharDevice { major: 1, minor: 3 }
    );
    assert_eq!(entries["null"].mode, 0o666);
    assert_eq!(entries["user-opaque"].kind, EntryKind::OpaqueDir);
    assert_eq!(entries["not-opaque"].kind, EntryKind::Dir);
    assert_eq!((entries["owner"].uid, entries["owner"].gid), (1000, 1000));
    assert!(entries["origin"].xattrs.is_empty());
    assert_eq!(
        entries["link"].kind,
        EntryKind::Symlink {
            target: "../target".to_string()
        }
    );
    // The entries are writer input as they are.
    write_layer(entries.into_values().collect(), std::io::sink()).unwrap();
}
