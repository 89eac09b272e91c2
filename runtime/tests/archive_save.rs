//! `save`: the combined layout, determinism, compression, and what it selects.

use crate::store_support;

use kiln_runtime::archive::{load, save};
use kiln_runtime::image::ImageRef;
use kiln_runtime::oci::{Compression, Digest, Index, Manifest};
use kiln_runtime::store::{Image, Store};
use store_support::*;

fn refs(names: &[&str]) -> Vec<ImageRef> {
    names.iter().map(|n| ImageRef::parse(n).unwrap()).collect()
}

fn save_bytes(store: &Store, names: &[&str], compression: Compression) -> Vec<u8> {
    save(store, &refs(names), Vec::new(), compression).unwrap()
}

fn two_layer_image(store: &Store, tags: &[&str]) -> Image {
    make_image(
        store,
        &[
            &[
                ("bin/tool", b"#!/bin/sh\necho hi\n"),
                ("etc/conf", b"a=1\n"),
            ],
            &[("app/data", &[5u8; 3000])],
        ],
        "tool",
        tags,
    )
}

#[test]
fn writes_the_combined_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let image = two_layer_image(&store, &["app:1.0"]);
    let tar = save_bytes(&store, &["app:1.0"], Compression::None);

    // Outer tar: sorted, mtime 0, uid/gid 0, fixed modes, two zero blocks at the end.
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username().unwrap(), Some(""));
        let mode = h.mode().unwrap();
        if h.entry_type().is_dir() {
            assert_eq!(mode, 0o755);
        } else {
            assert_eq!(mode, 0o644);
        }
        names.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(tar.len() % 512, 0);
    assert!(tar[tar.len() - 1024..].iter().all(|&b| b == 0));

    assert_eq!(
        tar_file(&tar, "oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    // Every blob's name is its digest.
    for (path, bytes) in tar_files(&tar) {
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(Digest::of_bytes(&bytes).hex(), hex);
        }
    }
    let index: Index = serde_json::from_slice(&tar_file(&tar, "index.json")).unwrap();
    assert_eq!(index.schema_version, 2);
    assert_eq!(
        index.media_type.as_deref(),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(index.manifests.len(), 1);
    let entry = &index.manifests[0];
    assert_eq!(entry.digest, image.manifest_digest);
    assert_eq!(
        entry.annotations["io.containerd.image.name"],
        "docker.io/library/app:1.0"
    );
    assert_eq!(
        entry.annotations["org.opencontainers.image.ref.name"],
        "1.0"
    );
    let manifest_bytes = tar_file(&tar, &format!("blobs/sha256/{}", entry.digest.hex()));
    assert_eq!(entry.size, manifest_bytes.len() as u64);
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest, image.manifest);

    let docker: serde_json::Value =
        serde_json::from_slice(&tar_file(&tar, "manifest.json")).unwrap();
    let layers: Vec<String> = image
        .manifest
        .layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
        .collect();
    assert_eq!(
        docker,
        serde_json::json!([{
            "Config": format!("blobs/sha256/{}", image.id().hex()),
            "RepoTags": ["app:1.0"],
            "Layers": layers,
        }])
    );
    let repositories: serde_json::Value =
        serde_json::from_slice(&tar_file(&tar, "repositories")).unwrap();
    assert_eq!(
        repositories,
        serde_json::json!({"app": {"1.0": image.manifest.layers[1].digest.hex()}})
    );
}

#[test]
fn same_images_give_the_same_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let store_a = Store::open(a.path()).unwrap();
    let store_b = Store::open(b.path()).unwrap();
    // Same images made in a different order, in two stores.
    two_layer_image(&store_a, &["app:1.0"]);
    make_image(&store_a, &[&[("x", b"other")]], "x", &["other:2"]);
    make_image(&store_b, &[&[("x", b"other")]], "x", &["other:2"]);
    two_layer_image(&store_b, &["app:1.0"]);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let first = save_bytes(&store_a, &["app:1.0", "other:2"], compression);
        assert_eq!(
            first,
            save_bytes(&store_a, &["app:1.0", "other:2"], compression)
        );
        assert_eq!(
            first,
            save_bytes(&store_b, &["other:2", "app:1.0"], compression)
        );
    }
}

#[test]
fn compressed_saves_convert_layers_and_keep_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let image = two_layer_image(&store, &["app:1.0"]);
    for (compression, magic) in [
        (Compression::Gzip, &[0x1f, 0x8b][..]),
        (Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd][..]),
    ] {
        let blobs_before = store.list_blobs().unwrap().len();
        let tar = save_bytes(&store, &["app:1.0"], compression);
        // The compressed layers were cached in the store: one new blob per layer.
        assert_eq!(store.list_blobs().unwrap().len(), blobs_before + 2);
        let index: Index = serde_json::from_slice(&tar_file(&tar, "index.json")).unwrap();
        let manifest: Manifest = serde_json::from_slice(&tar_file(
            &tar,
            &format!("blobs/sha256/{}", index.manifests[0].digest.hex()),
        ))
        .unwrap();
        assert_eq!(manifest.config.digest, *image.id());
        assert_ne!(index.manifests[0].digest, image.manifest_digest);
        for layer in &manifest.layers {
            assert_eq!(
                Compression::of_layer_media_type(&layer.media_type),
                Some(compression)
            );
            let blob = tar_file(&tar, &format!("blobs/sha256/{}", layer.digest.hex()));
            assert!(blob.starts_with(magic));
        }
        // A second save reuses the cached blobs: same bytes, no new blobs.
        assert_eq!(tar, save_bytes(&store, &["app:1.0"], compression));
        assert_eq!(store.list_blobs().unwrap().len(), blobs_before + 2);

        // Loading it elsewhere gives the same image ID and diff_ids.
        let other = tempfile::tempdir().unwrap();
        let other_store = Store::open(other.path()).unwrap();
        let loaded = load(&other_store, &tar[..]).unwrap();
        assert_eq!(loaded[0].image.id(), image.id());
        assert_eq!(loaded[0].image.manifest_digest, index.manifests[0].digest);
        // And its save with the same compression passes the layers through byte for byte.
        assert_eq!(save_bytes(&other_store, &["app:1.0"], compression), tar);
    }
}

#[test]
fn saving_by_id_and_by_repository() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let image = two_layer_image(&store, &["app:1.0", "app:2.0"]);
    make_image(&store, &[&[("o", b"o")]], "o", &["other:1"]);

    let tar = save_bytes(&store, &[image.id().short()], Compression::None);
    let index: Index = serde_json::from_slice(&tar_file(&tar, "index.json")).unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert!(index.manifests[0].annotations.is_empty());
    let docker: serde_json::Value =
        serde_json::from_slice(&tar_file(&tar, "manifest.json")).unwrap();
    assert_eq!(docker[0]["RepoTags"], serde_json::Value::Null);
    assert!(tar_files(&tar).iter().all(|(p, _)| p != "repositories"));

    // `app` without a tag: every tag of app, one index entry per tag, one manifest.json entry.
    let tar = save_bytes(&store, &["app"], Compression::None);
    let index: Index = serde_json::from_slice(&tar_file(&tar, "index.json")).unwrap();
    let names: Vec<&str> = index
        .manifests
        .iter()
        .map(|m| m.annotations["io.containerd.image.name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["docker.io/library/app:1.0", "docker.io/library/app:2.0"]
    );
    let docker: serde_json::Value =
        serde_json::from_slice(&tar_file(&tar, "manifest.json")).unwrap();
    assert_eq!(docker.as_array().unwrap().len(), 1);
    assert_eq!(
        docker[0]["RepoTags"],
        serde_json::json!(["app:1.0", "app:2.0"])
    );

    let err = save(&store, &refs(&["nope"]), Vec::new(), Compression::None).unwrap_err();
    assert!(err.to_string().contains("no such image: nope"), "{err}");
}

#[test]
fn save_to_path_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    two_layer_image(&store, &["app:1.0"]);
    let out = dir.path().join("app.tar");
    kiln_runtime::archive::save_to_path(&store, &refs(&["app:1.0"]), &out, Compression::None)
        .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        save_bytes(&store, &["app:1.0"], Compression::None)
    );
    let missing = dir.path().join("missing.tar");
    assert!(kiln_runtime::archive::save_to_path(
        &store,
        &refs(&["nope:1"]),
        &missing,
        Compression::None
    )
    .is_err());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}
