//! Real peers: `docker save` tarballs load into kiln, and kiln's tarballs load into docker and
//! podman and are read by skopeo and umoci. A missing peer skips its test with a message,
//! except under CI=true, where it fails.

use crate::store_support;

use std::path::Path;
use std::process::Command;

use kiln_runtime::archive::{load, save_to_path};
use kiln_runtime::image::ImageRef;
use kiln_runtime::oci::Compression;
use kiln_runtime::store::{Image, Store};
use store_support::*;

/// A name no other user of the shared docker daemon has.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("kiln-test-store-{prefix}-{}-{nanos}", std::process::id())
}

/// Removes docker images by name when dropped.
struct DockerCleanup(Vec<String>);
impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", name]).output();
        }
    }
}

/// An image with real files (two layers), saved by kiln to `dir/kiln.tar`.
fn kiln_tarball(
    dir: &Path,
    tag: &str,
    compression: Compression,
) -> (Store, Image, std::path::PathBuf) {
    let store = Store::open(dir.join("store")).unwrap();
    let image = make_image(
        &store,
        &[
            &[("etc/greeting", b"hello from kiln\n")],
            &[("srv/data.bin", &[42u8; 10_000])],
        ],
        "/bin/sh",
        &[tag],
    );
    let out = dir.join("kiln.tar");
    save_to_path(&store, &[ImageRef::parse(tag).unwrap()], &out, compression).unwrap();
    (store, image, out)
}

#[test]
fn docker_save_loads_into_kiln() {
    if !peer_available("docker", &["info"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs.tar");
    std::fs::write(
        &rootfs,
        layer_tar(&[
            ("bin/tool", b"#!/bin/sh\n"),
            ("etc/os-release", b"ID=kiln-test\n"),
        ]),
    )
    .unwrap();
    let name = format!("{}:src", unique("dsave"));
    let _cleanup = DockerCleanup(vec![name.clone()]);
    run(Command::new("docker").arg("import").arg(&rootfs).arg(&name));
    let docker_id = run(Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &name]));
    let saved = dir.path().join("docker.tar");
    run(Command::new("docker")
        .args(["save", &name, "-o"])
        .arg(&saved));

    let store = Store::open(dir.path().join("store")).unwrap();
    let loaded = load(&store, std::fs::File::open(&saved).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].image.id().to_string(), docker_id.trim());
    assert_eq!(loaded[0].tags[0].familiar(), name);
    let resolved = store.image(&name).unwrap();
    assert_eq!(resolved.manifest_digest, loaded[0].image.manifest_digest);
    // The layer is the tar docker stored, byte for byte, and the diff_id matches.
    assert_eq!(
        resolved.manifest.layers[0].digest,
        resolved.config.rootfs.diff_ids[0]
    );
}

#[test]
fn kiln_save_loads_into_docker() {
    if !peer_available("docker", &["info"]) {
        return;
    }
    for compression in [Compression::None, Compression::Gzip] {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{}:{}", unique("kload"), compression.name());
        let _cleanup = DockerCleanup(vec![name.clone()]);
        let (_store, image, tar) = kiln_tarball(dir.path(), &name, compression);
        let out = run(Command::new("docker").arg("load").arg("-i").arg(&tar));
        assert!(out.contains(&format!("Loaded image: {name}")), "{out}");
        let docker_id =
            run(Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &name]));
        assert_eq!(docker_id.trim(), image.id().to_string());
        // docker saves it back in its own format; kiln loads that to the same image ID.
        let back = dir.path().join("back.tar");
        run(Command::new("docker")
            .args(["save", &name, "-o"])
            .arg(&back));
        let other = Store::open(dir.path().join("other")).unwrap();
        let loaded = load(&other, std::fs::File::open(&back).unwrap()).unwrap();
        assert_eq!(loaded[0].image.id(), image.id());
    }
}

#[test]
fn podman_loads_a_kiln_save() {
    if !peer_available("podman", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_store, image, tar) = kiln_tarball(dir.path(), "kiln-peer/podman:1", Compression::None);
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(dir.path().join("proot"))
            .arg("--runroot")
            .arg(dir.path().join("prun"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    };
    let tar = tar.to_string_lossy().into_owned();
    let out = run(&mut podman(&["load", "-i", &tar]));
    assert!(out.contains("kiln-peer/podman:1"), "{out}");
    let ids = run(&mut podman(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.ID}}",
    ]));
    assert!(ids.contains(image.id().hex()), "{ids}");
    // podman's oci-archive transport needs exactly one index entry.
    run(&mut podman(&["pull", &format!("oci-archive:{tar}")]));
}

#[test]
fn skopeo_reads_a_kiln_save_as_oci_and_docker_archive() {
    if !peer_available("skopeo", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_store, image, tar) = kiln_tarball(dir.path(), "kiln-peer/skopeo:1", Compression::Gzip);
    let tar = tar.to_string_lossy().into_owned();
    let oci: serde_json::Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", &format!("oci-archive:{tar}")])
    ))
    .unwrap();
    let layers = oci["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let raw: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci-archive:{tar}"),
    ])))
    .unwrap();
    assert_eq!(
        raw["rootfs"]["diff_ids"][0],
        image.config.rootfs.diff_ids[0].to_string()
    );
    // The docker-archive view, picking the image by the name in manifest.json's RepoTags.
    let docker: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        &format!("docker-archive:{tar}:kiln-peer/skopeo:1"),
    ])))
    .unwrap();
    assert_eq!(docker["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn umoci_unpacks_a_kiln_save() {
    if !peer_available("umoci", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_store, _image, tar) = kiln_tarball(dir.path(), "kiln-peer/umoci:1", Compression::None);
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(&tar));
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/greeting")).unwrap(),
        b"hello from kiln\n"
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/srv/data.bin"))
            .unwrap()
            .len(),
        10_000
    );
}
