//! Store blobs, atomicity, concurrency, layout, cache, state and layer forms.

use crate::store_support;

use std::io::{Read, Write};
use std::sync::Arc;

use kiln_runtime::oci::{Compression, Descriptor, Digest, MEDIA_TYPE_OCI_LAYER_GZIP};
use kiln_runtime::store::{Store, StoreError};
use serde_json::json;
use store_support::*;

fn blob_files(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Files (not directories or session locks) under tmp/.
fn tmp_files(store: &Store) -> Vec<String> {
    walkdir::WalkDir::new(store.root().join("tmp"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().ends_with(".lock"))
        .map(|e| e.path().display().to_string())
        .collect()
}

#[test]
fn layout_is_versioned_and_content_addressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("new/store")).unwrap();
    assert_eq!(
        std::fs::read_to_string(store.root().join("version")).unwrap(),
        "kiln-store 1\n"
    );
    assert_eq!(
        std::fs::read(store.root().join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let d = store.put_blob(b"hello").unwrap();
    assert_eq!(d, Digest::of_bytes(b"hello"));
    assert_eq!(
        store.blob_path(&d),
        store.root().join("blobs/sha256").join(d.hex())
    );
    assert!(store.has_blob(&d));
    assert_eq!(store.read_blob(&d).unwrap(), b"hello");
    let mut s = String::new();
    store.open_blob(&d).unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    assert_eq!(store.blob_size(&d).unwrap(), 5);
    let missing = Digest::of_bytes(b"missing");
    assert!(matches!(
        store.read_blob(&missing),
        Err(StoreError::MissingBlob { .. })
    ));
    drop(store);
    // Reopening works and sees the same blob.
    let again = Store::open(dir.path().join("new/store")).unwrap();
    assert!(again.has_blob(&d));
}

#[test]
fn refuses_foreign_directories_and_other_versions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    assert!(!dir.path().join("version").exists());

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("version"), "kiln-store 99\n").unwrap();
    let err = Store::open(other.path()).unwrap_err();
    assert!(err.to_string().contains("kiln-store 99"), "{err}");
}

#[test]
fn writer_dropped_without_commit_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = listing(dir.path());
    {
        let mut w = store.blob_writer().unwrap();
        w.write_all(&vec![7u8; 300_000]).unwrap();
        assert_eq!(w.size(), 300_000);
        assert!(
            !tmp_files(&store).is_empty(),
            "the data is staged in tmp while written"
        );
    }
    assert!(blob_files(&store).is_empty());
    assert!(tmp_files(&store).is_empty());
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn commit_with_the_wrong_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"actual").unwrap();
    let wrong = Digest::of_bytes(b"expected");
    let err = w.commit(Some(&wrong)).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(blob_files(&store).is_empty());
    assert!(tmp_files(&store).is_empty());

    let mut w = store.blob_writer().unwrap();
    w.write_all(b"actual").unwrap();
    let (d, n) = w.commit(Some(&Digest::of_bytes(b"actual"))).unwrap();
    assert_eq!((d.hex().len(), n), (64, 6));
    assert_eq!(blob_files(&store), vec![d.hex().to_string()]);
}

#[test]
fn concurrent_writers_in_several_stores_on_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = Arc::new(dir.path().to_path_buf());
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                // Each thread opens its own Store, as separate processes would.
                let store = Store::open(root.as_path()).unwrap();
                let mut digests = Vec::new();
                for i in 0..20u32 {
                    // Half the blobs are shared by every thread, half are this thread's own.
                    let content = if i % 2 == 0 {
                        format!("shared {i}").repeat(5000)
                    } else {
                        format!("thread {t} blob {i}").repeat(3000)
                    };
                    let mut w = store.blob_writer().unwrap();
                    for chunk in content.as_bytes().chunks(4096) {
                        w.write_all(chunk).unwrap();
                    }
                    let (d, _) = w.commit(None).unwrap();
                    assert_eq!(d, Digest::of_bytes(content.as_bytes()));
                    digests.push((d, content));
                }
                digests
            })
        })
        .collect();
    let store = Store::open(root.as_path()).unwrap();
    let mut expected = std::collections::BTreeSet::new();
    for t in threads {
        for (d, content) in t.join().unwrap() {
            assert_eq!(store.read_blob(&d).unwrap(), content.as_bytes());
            expected.insert(d.hex().to_string());
        }
    }
    assert_eq!(blob_files(&store), expected.into_iter().collect::<Vec<_>>());
    assert_eq!(expected_len(&store), 10 + 6 * 10);
    assert!(tmp_files(&store).is_empty());
}

fn expected_len(store: &Store) -> usize {
    blob_files(store).len()
}

#[test]
fn concurrent_tagging_keeps_every_tag() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let image = {
        let store = Store::open(&root).unwrap();
        make_image(&store, &[&[("f", b"x")]], "sh", &[])
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let root = root.clone();
            let digest = image.manifest_digest.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                for i in 0..10 {
                    let name =
                        kiln_runtime::image::ImageName::parse(&format!("app{t}:v{i}")).unwrap();
                    store.set_ref(&name, &digest).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(&root).unwrap();
    assert_eq!(store.list_refs().unwrap().len(), 40);
}

#[test]
fn stale_tmp_sessions_are_removed_when_the_next_session_is_made() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let tmp = dir.path().join("tmp");
    // A Store that only reads makes no session.
    let reader = Store::open(dir.path()).unwrap();
    assert!(reader.list_refs().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    drop(reader);
    // What a killed kiln leaves: a session lock nobody holds and its directory with a
    // half-written blob.
    std::fs::create_dir(tmp.join("4242-1")).unwrap();
    std::fs::write(tmp.join("4242-1/t-half"), vec![1u8; 1000]).unwrap();
    std::fs::write(tmp.join("4242-1.lock"), b"").unwrap();
    let live = Store::open(dir.path()).unwrap();
    assert!(tmp.join("4242-1.lock").exists());
    let mut w = live.blob_writer().unwrap();
    assert!(!tmp.join("4242-1").exists());
    assert!(!tmp.join("4242-1.lock").exists());
    // A live session is never removed by another session's birth.
    w.write_all(b"in progress").unwrap();
    let other = Store::open(dir.path()).unwrap();
    other.put_blob(b"another writer").unwrap();
    let (d, _) = w.commit(None).unwrap();
    assert!(other.has_blob(&d));
}

#[test]
fn cache_entries_and_state_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get_cache("k1").unwrap(), None);
    let layer = store.put_blob(b"layer bytes").unwrap();
    let value = json!({"layer": layer.to_string(), "size": 11});
    store.put_cache("k1", &value).unwrap();
    assert_eq!(store.get_cache("k1").unwrap(), Some(value.clone()));
    store.put_cache("k1", &json!({"other": 1})).unwrap();
    assert_eq!(store.get_cache("k1").unwrap(), Some(json!({"other": 1})));
    // An entry whose blob is gone is a miss.
    let gone = Digest::of_bytes(b"never stored");
    store.put_cache("k2", &json!([gone.to_string()])).unwrap();
    assert_eq!(store.get_cache("k2").unwrap(), None);

    assert_eq!(store.read_state("ctx-stat").unwrap(), None);
    store.write_state("ctx-stat", b"one").unwrap();
    store.write_state("ctx-stat", b"two").unwrap();
    assert_eq!(store.read_state("ctx-stat").unwrap(), Some(b"two".to_vec()));
    for bad in ["", "..", "a/b", "../x", "x y"] {
        assert!(
            matches!(
                store.write_state(bad, b""),
                Err(StoreError::InvalidStateName { .. })
            ),
            "{bad}"
        );
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn uncompressed_layer_of_a_gzip_layer_is_made_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tar = layer_tar(&[("etc/hostname", b"kiln\n")]);
    let diff_id = Digest::of_bytes(&tar);
    let gz = gzip(&tar);
    let blob = store.put_blob(&gz).unwrap();
    let layer = Descriptor::new(MEDIA_TYPE_OCI_LAYER_GZIP, blob.clone(), gz.len() as u64);
    let image = store
        .save_image(&config_for(vec![diff_id.clone()], "sh"), &[layer], &[])
        .unwrap();
    assert_eq!(image.manifest.layers[0].digest, blob);
    assert!(!store.has_blob(&diff_id));
    let path = store.uncompressed_layer(&diff_id).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), tar);
    assert_eq!(path, store.blob_path(&diff_id));
    let unknown = Digest::of_bytes(b"no such layer");
    assert!(matches!(
        store.uncompressed_layer(&unknown),
        Err(StoreError::UnknownLayer { .. })
    ));

    // kiln's own compression of a layer is cached: the same blob twice.
    let z1 = store.compressed_layer(&diff_id, Compression::Zstd).unwrap();
    let z2 = store.compressed_layer(&diff_id, Compression::Zstd).unwrap();
    assert_eq!(z1, z2);
    assert!(store.has_blob(&z1.digest));
}

#[test]
fn save_image_refuses_inconsistent_images() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tar = layer_tar(&[("a", b"1")]);
    let layer = put_layer(&store, &tar);
    // Two diff_ids, one layer.
    let config = config_for(vec![layer.digest.clone(), layer.digest.clone()], "sh");
    let err = store
        .save_image(&config, std::slice::from_ref(&layer), &[])
        .unwrap_err();
    assert!(err.to_string().contains("2 diff_ids"), "{err}");
    // A layer that is not stored.
    let ghost = Descriptor::new(
        kiln_runtime::oci::MEDIA_TYPE_OCI_LAYER,
        Digest::of_bytes(b"ghost"),
        5,
    );
    let err = store
        .save_image(&config_for(vec![ghost.digest.clone()], "sh"), &[ghost], &[])
        .unwrap_err();
    assert!(matches!(err, StoreError::MissingBlob { .. }), "{err}");
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn prune_keeps_what_images_need_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = make_image(&store, &[&[("a", b"kept layer")]], "sh", &["kept:1"]);
    let gone = make_image(&store, &[&[("b", b"removed layer")]], "sh", &["gone:1"]);
    let stray = store.put_blob(&vec![9u8; 4096]).unwrap();
    store
        .put_cache(
            "live",
            &json!({"layer": kept.manifest.layers[0].digest.to_string()}),
        )
        .unwrap();
    store
        .put_cache(
            "dead",
            &json!({"layer": gone.manifest.layers[0].digest.to_string()}),
        )
        .unwrap();
    store
        .put_cache("meta-only", &json!({"env": ["A=1"]}))
        .unwrap();
    store.remove("gone:1").unwrap();

    // Another kiln process has the store open: prune refuses rather than racing it.
    let other = Store::open(dir.path()).unwrap();
    assert!(matches!(store.prune(), Err(StoreError::Busy { .. })));
    drop(other);

    let report = store.prune().unwrap();
    // gone's manifest, config and layer, and the stray blob.
    assert_eq!(report.blobs_removed, 4);
    assert_eq!(report.cache_entries_removed, 1);
    assert!(report.bytes_freed >= 4096);
    assert!(!store.has_blob(&stray));
    assert!(!store.has_blob(&gone.manifest.layers[0].digest));
    assert!(store.get_cache("dead").unwrap().is_none());
    assert!(store.get_cache("live").unwrap().is_some());
    assert!(store.get_cache("meta-only").unwrap().is_some());
    let image = store.image("kept:1").unwrap();
    for layer in &image.manifest.layers {
        assert!(store.has_blob(&layer.digest));
    }
    // Nothing more to do the second time.
    let again = store.prune().unwrap();
    assert_eq!((again.blobs_removed, again.cache_entries_removed), (0, 0));
}
