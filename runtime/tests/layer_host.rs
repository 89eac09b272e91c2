//! Host files as entries: kinds, permission bits, hardlink identity, caller's owner/mtime.

use kiln_runtime::layer::{host_entry, EntryKind, FileSource};
use std::os::unix::fs::PermissionsExt;

#[test]
fn regular_files_keep_special_bits_and_take_the_callers_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("suid");
    std::fs::write(&path, b"12345").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o4751)).unwrap();
    let e = host_entry(&path, "bin/suid".to_string(), 10, 20, 30)
        .unwrap()
        .unwrap();
    assert_eq!(e.path, "bin/suid");
    assert_eq!((e.mode, e.uid, e.gid, e.mtime), (0o4751, 10, 20, 30));
    assert_eq!(
        e.kind,
        EntryKind::File {
            size: 5,
            source: FileSource::Host {
                path: path.clone(),
                link_id: None
            }
        }
    );
}

#[test]
fn directories_sticky_bit_symlinks_and_fifos() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("tmpdir");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let e = host_entry(&d, "tmp".to_string(), 0, 0, 0).unwrap().unwrap();
    assert_eq!((e.kind, e.mode), (EntryKind::Dir, 0o1777));

    let link = tmp.path().join("link");
    std::os::unix::fs::symlink("../somewhere/else", &link).unwrap();
    let e = host_entry(&link, "l".to_string(), 0, 0, 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        e.kind,
        EntryKind::Symlink {
            target: "../somewhere/else".to_string()
        }
    );

    let fifo = tmp.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = host_entry(&fifo, "f".to_string(), 0, 0, 0)
        .unwrap()
        .unwrap();
    assert_eq!((e.kind, e.mode), (EntryKind::Fifo, 0o640));
}

#[test]
fn devices_carry_major_and_minor() {
    let e = host_entry(
        std::path::Path::new("/dev/null"),
        "dev/null".to_string(),
        0,
        0,
        0,
    )
    .unwrap()
    .unwrap();
    assert_eq!(e.kind, EntryKind::CharDevice { major: 1, minor: 3 });
}

#[test]
fn sockets_are_skipped_and_missing_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert_eq!(host_entry(&sock, "s".to_string(), 0, 0, 0).unwrap(), None);
    assert!(host_entry(&tmp.path().join("missing"), "m".to_string(), 0, 0, 0).is_err());
}

#[test]
fn files_with_several_links_share_a_link_id() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    std::fs::write(&a, b"x").unwrap();
    std::fs::hard_link(&a, tmp.path().join("b")).unwrap();
    let id = |name: &str| match host_entry(&tmp.path().join(name), name.to_string(), 0, 0, 0)
        .unwrap()
        .unwrap()
        .kind
    {
        EntryKind::File {
            source: FileSource::Host { link_id, .. },
            ..
        } => link_id,
        other => panic!("not a host file: {other:?}"),
    };
    assert!(id("a").is_some());
    assert_eq!(id("a"), id("b"));
}

#[test]
fn only_the_capability_xattr_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ping");
    std::fs::write(&path, b"elf").unwrap();
    // cap_net_bind_service=+ep, vfs_cap_data revision 2.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    if let Err(e) = xattr::set(&path, "security.capability", &cap) {
        eprintln!("cannot set security.capability here ({e}); skipping");
        return;
    }
    let _ = xattr::set(&path, "user.note", b"dropped");
    let e = host_entry(&path, "ping".to_string(), 0, 0, 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        e.xattrs,
        vec![("security.capability".to_string(), cap.to_vec())]
    );
}
