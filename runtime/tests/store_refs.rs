//! Tags, reference normalisation, resolving what users type, rmi.

use crate::store_support;

use kiln_runtime::image::ImageName;
use kiln_runtime::oci::{Index, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use kiln_runtime::store::{Store, StoreError};
use store_support::*;

fn name(s: &str) -> ImageName {
    ImageName::parse(s).unwrap()
}

#[test]
fn tags_are_normalised_like_docker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let image = make_image(&store, &[&[("a", b"1")]], "sh", &["app"]);
    let d = Some(image.manifest_digest.clone());
    assert_eq!(store.get_ref(&name("app:latest")).unwrap(), d);
    assert_eq!(store.get_ref(&name("docker.io/library/app")).unwrap(), d);
    assert_eq!(
        store
            .get_ref(&name("docker.io/library/app:latest"))
            .unwrap(),
        d
    );
    assert_eq!(store.get_ref(&name("app:1.0")).unwrap(), None);
    store
        .set_ref(&name("docker.io/library/app:1.0"), &image.manifest_digest)
        .unwrap();
    assert_eq!(store.get_ref(&name("app:1.0")).unwrap(), d);
    assert_eq!(
        store.image("app:1.0").unwrap().manifest_digest,
        image.manifest_digest
    );

    // The index keeps the full name and the tag, as the annotations docker writes.
    let index: Index =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let names: Vec<(&str, &str)> = index
        .manifests
        .iter()
        .map(|m| {
            (
                m.annotations[ANNOTATION_IMAGE_NAME].as_str(),
                m.annotations[ANNOTATION_REF_NAME].as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("docker.io/library/app:1.0", "1.0"),
            ("docker.io/library/app:latest", "latest")
        ]
    );
    let refs: Vec<String> = store
        .list_refs()
        .unwrap()
        .iter()
        .map(|(n, _)| n.familiar())
        .collect();
    assert_eq!(refs, vec!["app:1.0", "app:latest"]);
}

#[test]
fn resolves_names_ids_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = make_image(&store, &[&[("a", b"1")]], "a", &["app:1", "team/app:2"]);
    let b = make_image(&store, &[&[("b", b"2")]], "b", &["localhost:5000/other"]);
    let untagged = make_image(&store, &[&[("c", b"3")]], "c", &[]);
    let hex = a.id().hex().to_string();
    for reference in [
        "app:1".to_string(),
        "docker.io/library/app:1".to_string(),
        "team/app:2".to_string(),
        a.id().to_string(),
        hex.clone(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
        a.manifest_digest.to_string(),
        format!("app@{}", a.manifest_digest),
    ] {
        assert_eq!(
            store.image(&reference).unwrap().manifest_digest,
            a.manifest_digest,
            "{reference}"
        );
    }
    assert_eq!(
        store.image("localhost:5000/other").unwrap().manifest_digest,
        b.manifest_digest
    );
    assert_eq!(
        store.image(untagged.id().short()).unwrap().manifest_digest,
        untagged.manifest_digest
    );
    assert_eq!(
        store.image("app:1").unwrap().tags,
        vec![name("app:1"), name("team/app:2")]
    );

    let err = store.image("app").unwrap_err();
    assert!(matches!(err, StoreError::NoSuchImage { .. }), "{err}");
    assert_eq!(err.to_string(), "no such image: app:latest");
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(
        help.contains("kiln images") && help.contains(&dir.path().display().to_string()),
        "{help}"
    );
    assert!(matches!(
        store.image("Bad:Name"),
        Err(StoreError::Reference(_))
    ));
}

#[test]
fn ambiguous_short_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Make images until two IDs share a first hex digit.
    let mut seen: std::collections::BTreeMap<char, String> = Default::default();
    for i in 0..40 {
        let image = make_image(&store, &[&[("f", format!("{i}").as_bytes())]], "sh", &[]);
        let first = image.id().hex().chars().next().unwrap();
        if seen.insert(first, image.id().to_string()).is_some() {
            let err = store.image(&first.to_string()).unwrap_err();
            assert!(matches!(err, StoreError::AmbiguousId { .. }), "{err}");
            return;
        }
    }
    panic!("40 images without two IDs starting alike");
}

#[test]
fn moving_a_tag_leaves_the_old_image_untagged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old = make_image(&store, &[&[("v", b"1")]], "sh", &["app:1"]);
    let new = make_image(&store, &[&[("v", b"2")]], "sh", &["app:1"]);
    assert_eq!(
        store.image("app:1").unwrap().manifest_digest,
        new.manifest_digest
    );
    let images = store.images().unwrap();
    assert_eq!(images.len(), 2);
    let dangling = images
        .iter()
        .find(|i| i.manifest_digest == old.manifest_digest)
        .unwrap();
    assert!(dangling.tags.is_empty());
    // Tagging it again takes it out of the untagged list.
    store.tag(old.id().short(), &name("app:old")).unwrap();
    let index: Index =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests.len(), 2);
    assert!(index.manifests.iter().all(|m| !m.annotations.is_empty()));
}

#[test]
fn rmi_untags_and_deletes_like_docker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let image = make_image(&store, &[&[("a", b"1")]], "sh", &["app:1", "app:2"]);
    // By ID with two tags: refused.
    let err = store.remove(image.id().short()).unwrap_err();
    assert!(matches!(err, StoreError::ImageHasTags { .. }), "{err}");
    // By tag: untags only.
    let r = store.remove("app:1").unwrap();
    assert_eq!(r.untagged, vec![name("app:1")]);
    assert_eq!(r.deleted, None);
    assert_eq!(store.images().unwrap().len(), 1);
    // Last tag: the image goes.
    let r = store.remove("app:2").unwrap();
    assert_eq!(r.deleted.as_ref(), Some(image.id()));
    assert!(store.images().unwrap().is_empty());
    assert!(matches!(
        store.remove("app:2"),
        Err(StoreError::NoSuchImage { .. })
    ));
    // Blobs stay until prune.
    assert!(store.has_blob(&image.manifest_digest));

    let untagged = make_image(&store, &[&[("b", b"2")]], "sh", &[]);
    let r = store.remove(&untagged.id().to_string()).unwrap();
    assert!(r.untagged.is_empty());
    assert_eq!(r.deleted.as_ref(), Some(untagged.id()));
    // remove_ref is the library form of untagging.
    let tagged = make_image(&store, &[&[("c", b"3")]], "sh", &["x:1"]);
    assert_eq!(
        store.remove_ref(&name("x:1")).unwrap(),
        Some(tagged.manifest_digest)
    );
    assert_eq!(store.remove_ref(&name("x:1")).unwrap(), None);
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn index_is_written_deterministically() {
    let make = |order: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for t in order {
            make_image(&store, &[&[("a", t.as_bytes())]], "sh", &[t]);
        }
        std::fs::read(dir.path().join("index.json")).unwrap()
    };
    assert_eq!(make(&["a:1", "b:1", "c:1"]), make(&["c:1", "a:1", "b:1"]));
}

/// An index over two images: stored with its bytes, registered only when its children are
/// in, resolved to the host's platform, its children kept by prune while it is tagged and
/// deleted once it is removed.
#[test]
fn an_index_keeps_its_children_and_resolves_to_the_host_platform() {
    use kiln_runtime::oci::{Descriptor, Digest, Platform, MEDIA_TYPE_OCI_INDEX};
    use kiln_runtime::store::Stored;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let host = make_image(&store, &[&[("h", b"host")]], "sh", &[]);
    let other = make_image(&store, &[&[("o", b"other")]], "sh", &[]);
    let child = |image: &kiln_runtime::store::Image, p: Platform| {
        let mut d = image.manifest_descriptor();
        d.platform = Some(p);
        d
    };
    let s390x = Platform {
        os: "linux".into(),
        architecture: "s390x".into(),
        ..Platform::default()
    };
    let manifests = vec![
        child(&other, s390x.clone()),
        child(&host, Platform::host_default()),
    ];
    // Not canonical JSON (spaces): the index keeps the bytes it came with.
    let bytes = serde_json::to_vec_pretty(&Index::new(manifests.clone())).unwrap();
    let digest = store.put_blob(&bytes).unwrap();
    assert_eq!(digest, Digest::of_bytes(&bytes));

    // An index naming a manifest the store lacks is refused and leaves index.json alone.
    let before = std::fs::read(dir.path().join("index.json")).unwrap();
    let missing = Descriptor::new(
        kiln_runtime::oci::MEDIA_TYPE_OCI_MANIFEST,
        Digest::of_bytes(b"no such manifest"),
        16,
    );
    let broken = serde_json::to_vec(&Index::new(vec![missing])).unwrap();
    let broken = store.put_blob(&broken).unwrap();
    assert!(store.register_index(&broken, &[name("broken:1")]).is_err());
    assert_eq!(
        std::fs::read(dir.path().join("index.json")).unwrap(),
        before
    );

    // The children leave the index as images of their own; the index holds them.
    store.remove(&host.manifest_digest.to_string()).unwrap();
    store.remove(&other.manifest_digest.to_string()).unwrap();
    let stored = store.register_index(&digest, &[name("multi:1")]).unwrap();
    assert_eq!(stored.media_type, MEDIA_TYPE_OCI_INDEX);
    assert!(store.images().unwrap().is_empty());
    assert_eq!(store.indexes().unwrap().len(), 1);
    let resolved = store.image("multi:1").unwrap();
    assert_eq!(resolved.manifest_digest, host.manifest_digest);
    assert_eq!(resolved.tags, vec![name("multi:1")]);
    assert!(matches!(
        store.lookup(&kiln_runtime::image::ImageRef::parse("multi:1").unwrap()),
        Ok(Stored::Index(x)) if x.digest == digest
    ));
    // By digest and by image ID, a child is found (a plan names its manifest digest).
    assert_eq!(
        store
            .image(&other.manifest_digest.to_string())
            .unwrap()
            .manifest_digest,
        other.manifest_digest
    );
    assert_eq!(
        store
            .image(&other.id().to_string())
            .unwrap()
            .manifest_digest,
        other.manifest_digest
    );
    // A child alone cannot be removed.
    assert!(matches!(
        store.remove(&other.manifest_digest.to_string()),
        Err(StoreError::PartOfIndex { .. })
    ));
    // No image for a platform the index lacks.
    let err = store.index_image(
        &stored,
        &Platform {
            architecture: "riscv64".into(),
            ..Platform::host_default()
        },
    );
    assert!(matches!(err, Err(StoreError::NoPlatform { .. })), "{err:?}");

    store.prune().unwrap();
    for d in [
        &digest,
        &host.manifest_digest,
        &other.manifest_digest,
        other.id(),
    ]
    .into_iter()
    .chain(other.manifest.layers.iter().map(|l| &l.digest))
    {
        assert!(store.has_blob(d), "prune deleted {d} of a tagged index");
    }
    assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), bytes);

    let removed = store.remove("multi:1").unwrap();
    assert_eq!(removed.deleted, Some(digest.clone()));
    store.prune().unwrap();
    for d in [
        &digest,
        &host.manifest_digest,
        &other.manifest_digest,
        other.id(),
    ] {
        assert!(!store.has_blob(d), "prune kept {d} of a removed index");
    }
}
