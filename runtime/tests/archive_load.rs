//! `load`: round trips, every archive format, and refused input leaving the store unchanged.

use crate::store_support;

use std::io::Write;

use kiln_runtime::archive::{load, save, LoadError};
use kiln_runtime::image::{ImageName, ImageRef};
use kiln_runtime::oci::{
    self, Compression, Descriptor, Digest, Index, Manifest, MEDIA_TYPE_OCI_CONFIG,
};
use kiln_runtime::store::Store;
use store_support::*;

fn refs(names: &[&str]) -> Vec<ImageRef> {
    names.iter().map(|n| ImageRef::parse(n).unwrap()).collect()
}

/// A tarball of (path, bytes) regular files, in the order given.
fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    layer_tar(files)
}

/// A docker 20.10 style archive (`<id>/layer.tar`, `<id>/json`, `<id>/VERSION`,
/// `<config>.json`, `manifest.json`, `repositories`) of one image with these layers. The
/// second occurrence of a repeated layer is a symlink, as docker writes it.
fn legacy_archive(
    layers: &[Vec<u8>],
    tags: &[&str],
    manifest_layers: Option<Vec<String>>,
) -> (Vec<u8>, Digest) {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of_bytes(l)).collect();
    let config = oci::to_canonical_json(&config_for(diff_ids.clone(), "sh"));
    let config_digest = Digest::of_bytes(&config);
    let mut out = Vec::new();
    let mut paths = Vec::new();
    let mut first_dir_of: std::collections::BTreeMap<Digest, String> = Default::default();
    for (i, (layer, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        let v1 = Digest::of_bytes(format!("v1 {i}").as_bytes());
        let dir = v1.hex().to_string();
        out.extend(raw_entry(&format!("{dir}/"), b'5', "", b""));
        out.extend(raw_entry(&format!("{dir}/VERSION"), b'0', "", b"1.0"));
        out.extend(raw_entry(
            &format!("{dir}/json"),
            b'0',
            "",
            format!("{{\"id\":\"{dir}\"}}").as_bytes(),
        ));
        match first_dir_of.get(diff_id) {
            Some(first) => out.extend(raw_entry(
                &format!("{dir}/layer.tar"),
                b'2',
                &format!("../{first}/layer.tar"),
                b"",
            )),
            None => {
                out.extend(raw_entry(&format!("{dir}/layer.tar"), b'0', "", layer));
                first_dir_of.insert(diff_id.clone(), dir.clone());
            }
        }
        paths.push(format!("{dir}/layer.tar"));
    }
    out.extend(raw_entry(
        &format!("{}.json", config_digest.hex()),
        b'0',
        "",
        &config,
    ));
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", config_digest.hex()),
        "RepoTags": tags,
        "Layers": manifest_layers.unwrap_or(paths.clone()),
    }]);
    out.extend(raw_entry(
        "manifest.json",
        b'0',
        "",
        manifest.to_string().as_bytes(),
    ));
    let top = paths
        .last()
        .map(|p| p.split('/').next().unwrap().to_string())
        .unwrap_or_default();
    let repos = serde_json::json!({"legacy": {"1": top}});
    out.extend(raw_entry(
        "repositories",
        b'0',
        "",
        repos.to_string().as_bytes(),
    ));
    (raw_end(out), config_digest)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn save_then_load_keeps_every_digest() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let one = make_image(
        &store,
        &[&[("bin/a", b"a")], &[("etc/b", b"b")]],
        "a",
        &["app:1.0", "app:latest"],
    );
    let two = make_image(
        &store,
        &[&[("bin/a", b"a")], &[("srv/c", b"c")]],
        "c",
        &["registry.example:5000/team/svc:2"],
    );
    let three = make_image(&store, &[&[("d", b"d")]], "d", &[]);
    let tar = save(
        &store,
        &refs(&[
            "app:1.0",
            "app:latest",
            "registry.example:5000/team/svc:2",
            three.id().short(),
        ]),
        Vec::new(),
        Compression::None,
    )
    .unwrap();

    let b = tempfile::tempdir().unwrap();
    let fresh = Store::open(b.path()).unwrap();
    let loaded = load(&fresh, PipeLike(&tar[..])).unwrap();
    assert_eq!(loaded.len(), 3);
    for original in [&one, &two, &three] {
        let got = fresh.image(&original.manifest_digest.to_string()).unwrap();
        assert_eq!(got.manifest_digest, original.manifest_digest);
        assert_eq!(got.id(), original.id());
        assert_eq!(got.manifest, original.manifest);
        assert_eq!(got.tags, original.tags);
        for layer in &got.manifest.layers {
            assert_eq!(
                fresh.read_blob(&layer.digest).unwrap(),
                store.read_blob(&layer.digest).unwrap()
            );
        }
    }
    let untagged = loaded.iter().find(|l| l.image.id() == three.id()).unwrap();
    assert!(untagged.tags.is_empty());
    // Saving again from the new store gives the same tarball.
    let again = save(
        &fresh,
        &refs(&[
            "app:1.0",
            "app:latest",
            "registry.example:5000/team/svc:2",
            three.id().short(),
        ]),
        Vec::new(),
        Compression::None,
    )
    .unwrap();
    assert_eq!(again, tar);
    // Loading the same tarball twice changes nothing.
    let before = listing(b.path());
    load(&fresh, &tar[..]).unwrap();
    assert_eq!(listing(b.path()), before);
}

#[test]
fn loads_a_docker_20_10_archive_with_symlinked_layers() {
    let l1 = layer_tar(&[("bin/sh", b"shell")]);
    let l2 = layer_tar(&[("etc/motd", b"hello")]);
    let (tar, config) = legacy_archive(&[l1.clone(), l2.clone(), l1.clone()], &["legacy:1"], None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let loaded = load(&store, &tar[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    let image = &loaded[0].image;
    assert_eq!(*image.id(), config);
    assert_eq!(loaded[0].tags, vec![ImageName::parse("legacy:1").unwrap()]);
    let digests: Vec<&Digest> = image.manifest.layers.iter().map(|l| &l.digest).collect();
    assert_eq!(
        digests,
        [
            &Digest::of_bytes(&l1),
            &Digest::of_bytes(&l2),
            &Digest::of_bytes(&l1)
        ]
    );
    assert_eq!(
        image.manifest.layers[0].media_type,
        oci::MEDIA_TYPE_OCI_LAYER
    );
    assert_eq!(
        store.image("legacy:1").unwrap().manifest_digest,
        image.manifest_digest
    );
    // The same archive loads to the same manifest in any store.
    let other = tempfile::tempdir().unwrap();
    let again = load(&Store::open(other.path()).unwrap(), &tar[..]).unwrap();
    assert_eq!(again[0].image.manifest_digest, image.manifest_digest);
}

/// An OCI archive: `./`-prefixed paths, a nested index with two platforms, gzip layers, the
/// name only in `org.opencontainers.image.ref.name` (as skopeo writes it).
fn oci_archive(layer: &[u8]) -> (Vec<u8>, Digest, Digest) {
    let gz = gzip(layer);
    let layer_desc = Descriptor::new(
        oci::MEDIA_TYPE_OCI_LAYER_GZIP,
        Digest::of_bytes(&gz),
        gz.len() as u64,
    );
    let config = oci::to_canonical_json(&config_for(vec![Digest::of_bytes(layer)], "sh"));
    let config_desc = Descriptor::new(
        MEDIA_TYPE_OCI_CONFIG,
        Digest::of_bytes(&config),
        config.len() as u64,
    );
    let manifest = oci::to_canonical_json(&Manifest::oci(config_desc, vec![layer_desc]));
    let manifest_digest = Digest::of_bytes(&manifest);
    let mut host = Descriptor::new(
        oci::MEDIA_TYPE_OCI_MANIFEST,
        manifest_digest.clone(),
        manifest.len() as u64,
    );
    host.platform = Some(oci::Platform::host());
    let mut foreign = Descriptor::new(
        oci::MEDIA_TYPE_OCI_MANIFEST,
        Digest::of_bytes(b"not here"),
        8,
    );
    foreign.platform = Some(oci::Platform {
        architecture: "s390x".into(),
        os: "linux".into(),
        ..Default::default()
    });
    let nested = oci::to_canonical_json(&Index::new(vec![foreign, host]));
    let mut top = Descriptor::new(
        oci::MEDIA_TYPE_OCI_INDEX,
        Digest::of_bytes(&nested),
        nested.len() as u64,
    );
    top.annotations
        .insert(oci::ANNOTATION_REF_NAME.into(), "ociapp:3".into());
    let index = oci::to_canonical_json(&Index::new(vec![top]));
    let blob = |b: &[u8]| format!("./blobs/sha256/{}", Digest::of_bytes(b).hex());
    let tar = tarball(&[
        ("./oci-layout", oci::OCI_LAYOUT_FILE),
        ("./index.json", &index),
        (&blob(&nested), &nested),
        (&blob(&manifest), &manifest),
        (&blob(&config), &config),
        (&blob(&gz), &gz),
    ]);
    (tar, manifest_digest, Digest::of_bytes(&config))
}

#[test]
fn loads_an_oci_archive_with_a_nested_index_and_gzip_layers() {
    let layer = layer_tar(&[("usr/bin/app", b"binary")]);
    let (tar, manifest_digest, config) = oci_archive(&layer);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let loaded = load(&store, &tar[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].image.manifest_digest, manifest_digest);
    assert_eq!(*loaded[0].image.id(), config);
    assert_eq!(loaded[0].tags, vec![ImageName::parse("ociapp:3").unwrap()]);
    // The gzip layer is kept as it was; its tar is made on demand.
    assert_eq!(
        loaded[0].image.manifest.layers[0].media_type,
        oci::MEDIA_TYPE_OCI_LAYER_GZIP
    );
    let path = store.uncompressed_layer(&Digest::of_bytes(&layer)).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), layer);
}

#[test]
fn loads_several_images_and_compressed_tarballs() {
    let l1 = layer_tar(&[("one", b"1")]);
    let (legacy, _) = legacy_archive(&[l1], &["first:1", "first:2"], None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let loaded = load(&store, &gzip(&legacy)[..]).unwrap();
    assert_eq!(loaded[0].tags.len(), 2);

    // A kiln save of several images, compressed with zstd as a whole.
    let src = tempfile::tempdir().unwrap();
    let s = Store::open(src.path()).unwrap();
    make_image(&s, &[&[("a", b"a")]], "a", &["a:1"]);
    make_image(&s, &[&[("b", b"b")]], "b", &["b:1"]);
    let tar = save(&s, &refs(&["a:1", "b:1"]), Vec::new(), Compression::Gzip).unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let loaded = load(&store, &zst[..]).unwrap();
    let mut names: Vec<String> = loaded
        .iter()
        .flat_map(|l| l.tags.iter().map(|t| t.familiar()))
        .collect();
    names.sort();
    assert_eq!(names, ["a:1", "b:1"]);
    assert_eq!(store.images().unwrap().len(), 3);
}

/// Loads `input` into a store holding one image and checks it is refused with a message
/// containing every `needles`, and that the store directory is exactly as before.
fn assert_refused(input: &[u8], needles: &[&str]) -> LoadError {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    make_image(&store, &[&[("present", b"p")]], "sh", &["present:1"]);
    let before = listing(dir.path());
    let err = load(&store, PipeLike(input)).unwrap_err();
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "`{text}` should mention `{needle}`");
    }
    assert_eq!(
        listing(dir.path()),
        before,
        "the store changed after: {text}"
    );
    assert!(
        miette::Diagnostic::help(&err).is_some(),
        "no help line for {text}"
    );
    err
}

#[test]
fn refuses_a_truncated_tarball() {
    let src = tempfile::tempdir().unwrap();
    let s = Store::open(src.path()).unwrap();
    make_image(&s, &[&[("big", &[3u8; 20_000])]], "sh", &["t:1"]);
    let tar = save(&s, &refs(&["t:1"]), Vec::new(), Compression::None).unwrap();
    for cut in [tar.len() / 2, 700, 512 + 100] {
        let err = assert_refused(&tar[..cut], &["truncated"]);
        assert!(matches!(err, LoadError::Truncated { .. }), "{err:?}");
    }
}

/// Flips the byte at the first occurrence of `marker` in `tar`.
fn flip_at(tar: &[u8], marker: &[u8]) -> Vec<u8> {
    let at = tar
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker in tarball");
    let mut bad = tar.to_vec();
    bad[at] ^= 0x01;
    bad
}

#[test]
fn refuses_a_flipped_byte_in_a_layer() {
    // Docker archive: the layer's diff_id no longer matches the config.
    let layer = layer_tar(&[("etc/marker", b"FLIP-ME-PLEASE")]);
    let (tar, _) = legacy_archive(&[layer], &["flip:1"], None);
    let err = assert_refused(
        &flip_at(&tar, b"FLIP-ME-PLEASE"),
        &["layer 0", "layer.tar", "diff_id"],
    );
    assert!(matches!(err, LoadError::DiffIdMismatch { .. }), "{err:?}");

    // Combined layout: the blob's digest no longer matches its name.
    let src = tempfile::tempdir().unwrap();
    let s = Store::open(src.path()).unwrap();
    let image = make_image(
        &s,
        &[&[("etc/marker", b"FLIP-ME-PLEASE")]],
        "sh",
        &["flip:1"],
    );
    let tar = save(&s, &refs(&["flip:1"]), Vec::new(), Compression::None).unwrap();
    let layer_hex = image.manifest.layers[0].digest.hex().to_string();
    let err = assert_refused(&flip_at(&tar, b"FLIP-ME-PLEASE"), &[&layer_hex, "digest"]);
    assert!(
        matches!(err, LoadError::BlobDigestMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn refuses_a_manifest_naming_a_missing_blob() {
    let layer = layer_tar(&[("a", b"a")]);
    let (tar, _) = legacy_archive(&[layer], &["m:1"], Some(vec!["0000/layer.tar".into()]));
    let err = assert_refused(
        &tar,
        &["0000/layer.tar", "manifest.json", "not in the tarball"],
    );
    assert!(matches!(err, LoadError::MissingFile { .. }), "{err:?}");

    // An OCI index naming a manifest that is not there.
    let src = tempfile::tempdir().unwrap();
    let s = Store::open(src.path()).unwrap();
    let image = make_image(&s, &[&[("a", b"a")]], "sh", &["m:1"]);
    let tar = save(&s, &refs(&["m:1"]), Vec::new(), Compression::None).unwrap();
    let files: Vec<(String, Vec<u8>)> = tar_files(&tar)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(image.manifest_digest.hex()) && p != "manifest.json")
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    assert_refused(
        &tarball(&borrowed),
        &[image.manifest_digest.hex(), "not in the tarball"],
    );
}

#[test]
fn refuses_entries_escaping_the_root() {
    // In the tarball itself.
    let mut outer = raw_entry("../../etc/x", b'0', "", b"pwned");
    outer.extend(raw_entry("manifest.json", b'0', "", b"[]"));
    let err = assert_refused(&raw_end(outer), &["../../etc/x", "escapes"]);
    assert!(matches!(err, LoadError::EntryEscapes { .. }), "{err:?}");

    // Inside a layer.
    let evil = raw_end(raw_entry("../../etc/x", b'0', "", b"pwned"));
    let (tar, _) = legacy_archive(&[evil], &["evil:1"], None);
    let err = assert_refused(&tar, &["../../etc/x"]);
    assert!(matches!(err, LoadError::BadLayer { .. }), "{err:?}");

    // Through a symlink of the same layer.
    let mut through = raw_entry("etc", b'2', "/etc", b"");
    through.extend(raw_entry("etc/passwd", b'0', "", b"root::0:0::/:/bin/sh\n"));
    let (tar, _) = legacy_archive(&[raw_end(through)], &["evil:2"], None);
    assert_refused(&tar, &["etc/passwd", "symlink"]);

    // A hardlink to outside.
    let link = raw_end(raw_entry("shadow", b'1', "../../etc/shadow", b""));
    let (tar, _) = legacy_archive(&[link], &["evil:3"], None);
    assert_refused(&tar, &["../../etc/shadow"]);
}

#[test]
fn refuses_things_that_are_not_image_archives() {
    let err = assert_refused(
        &tarball(&[("hello.txt", b"hi")]),
        &["neither manifest.json nor index.json"],
    );
    assert!(matches!(err, LoadError::NotAnImageArchive), "{err:?}");
    assert_refused(
        &tarball(&[("manifest.json", b"{not json")]),
        &["manifest.json"],
    );
    assert_refused(b"", &["neither"]);
    let err = assert_refused(&[0x55u8; 4096], &["not a tar archive"]);
    assert!(matches!(err, LoadError::NotATar), "{err:?}");
}
