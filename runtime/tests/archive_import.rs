//! `import`: root filesystem tarballs (any compression) and directories as one-layer images.

use crate::store_support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_runtime::archive::{import, ImportError};
use kiln_runtime::image::ImageName;
use kiln_runtime::oci::Digest;
use kiln_runtime::store::Store;
use store_support::*;

/// A compressor by name.
type Compressor = (&'static str, Box<dyn Fn(&[u8]) -> Vec<u8>>);

fn compressors() -> Vec<Compressor> {
    vec![
        ("plain", Box::new(|b: &[u8]| b.to_vec())),
        (
            "gzip",
            Box::new(|b: &[u8]| {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(b).unwrap();
                e.finish().unwrap()
            }),
        ),
        (
            "bzip2",
            Box::new(|b: &[u8]| {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                e.write_all(b).unwrap();
                e.finish().unwrap()
            }),
        ),
        (
            "xz",
            Box::new(|b: &[u8]| {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(b).unwrap();
                e.finish().unwrap()
            }),
        ),
        ("zstd", Box::new(|b: &[u8]| zstd::encode_all(b, 3).unwrap())),
    ]
}

#[test]
fn imports_tarballs_in_every_compression_as_the_same_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let rootfs = layer_tar(&[
        ("bin/sh", b"not really a shell"),
        ("etc/os-release", b"ID=test\n"),
    ]);
    let mut ids = Vec::new();
    for (name, compress) in compressors() {
        let path = dir.path().join(format!("rootfs.{name}"));
        std::fs::write(&path, compress(&rootfs)).unwrap();
        let tag = ImageName::parse(&format!("imported:{name}")).unwrap();
        let image = import(&store, &path, Some(&tag), 1_700_000_000).unwrap();
        // The tar is the layer, byte for byte.
        assert_eq!(
            image.config.rootfs.diff_ids,
            vec![Digest::of_bytes(&rootfs)],
            "{name}"
        );
        assert_eq!(
            store.read_blob(&image.manifest.layers[0].digest).unwrap(),
            rootfs
        );
        assert_eq!(image.config.os, "linux");
        assert_eq!(
            image.config.architecture,
            kiln_runtime::oci::Platform::host().architecture
        );
        assert_eq!(
            image.config.created.as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(image.config.history.len(), 1);
        assert!(!image.config.history[0].empty_layer);
        assert!(image.tags.contains(&tag), "{name}: {:?}", image.tags);
        ids.push(image.id().clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every compression gives the same image");

    // The timestamp is the only other input.
    let path = dir.path().join("rootfs.plain");
    let epoch0 = import(&store, &path, None, 0).unwrap();
    assert_eq!(
        epoch0.config.created.as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    assert_ne!(epoch0.id(), &ids[0]);
    assert!(epoch0.tags.is_empty());
}

fn write_tree(root: &Path, order_reversed: bool) {
    let files: Vec<(&str, &[u8], u32)> = vec![
        ("bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        ("etc/conf", b"key=value\n", 0o644),
        ("etc/secret", b"s3cret\n", 0o600),
        ("usr/share/doc/readme", b"docs\n", 0o644),
    ];
    let mut files = files;
    if order_reversed {
        files.reverse();
    }
    for (path, data, mode) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::symlink("/etc/conf", root.join("etc/link")).unwrap();
    for d in ["bin", "etc", "usr", "usr/share", "usr/share/doc"] {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn imports_directories_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    write_tree(&a, false);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write_tree(&b, true);
    let first = import(&store, &a, None, 0).unwrap();
    let second = import(&store, &b, None, 0).unwrap();
    assert_eq!(
        first.id(),
        second.id(),
        "same tree, other mtimes and creation order"
    );

    let tar = store.read_blob(&first.manifest.layers[0].digest).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path == "etc/link" {
            assert!(h.entry_type().is_symlink());
            assert_eq!(
                e.link_name().unwrap().unwrap().to_string_lossy(),
                "/etc/conf"
            );
        }
        if path == "etc/secret" {
            assert_eq!(h.mode().unwrap() & 0o7777, 0o600);
        }
        seen.push(path.trim_end_matches('/').to_string());
    }
    assert!(
        seen.contains(&"usr/share/doc/readme".to_string()),
        "{seen:?}"
    );
    assert!(tar.ends_with(&[0u8; 1024]));
}

#[test]
fn refuses_unsafe_or_broken_tarballs_and_leaves_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let before = listing(&dir.path().join("store"));
    let evil = dir.path().join("evil.tar");
    std::fs::write(&evil, raw_end(raw_entry("../../etc/x", b'0', "", b"pwned"))).unwrap();
    let err = import(&store, &evil, None, 0).unwrap_err();
    assert!(matches!(err, ImportError::BadTarball { .. }), "{err:?}");
    assert!(err.to_string().contains("../../etc/x"), "{err}");

    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![b'x'; 2000]).unwrap();
    assert!(import(&store, &junk, None, 0).is_err());

    let missing = dir.path().join("missing.tar");
    let err = import(&store, &missing, None, 0).unwrap_err();
    assert!(matches!(err, ImportError::Read { .. }), "{err:?}");
    assert_eq!(listing(&dir.path().join("store")), before);
}
