//! Interop with the real peers: a kiln-built image, saved with `kiln save`, is accepted by
//! `docker load` + `docker run`, `podman load` + `podman run`, `skopeo inspect` (both the
//! oci-archive and docker-archive views of the one tarball) and `umoci unpack`; an image
//! `docker save`d loads into kiln and `kiln save` gives back the same config and layer
//! digests. Containers run only with `--network none`.
//!
//! Podman in this VM: runc cannot raise RLIMIT_NOFILE/RLIMIT_NPROC to podman's defaults
//! ("error setting rlimit type 7: operation not permitted"), so `podman run` is given explicit
//! `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`; with them containers run.
//!
//! Must not: touch docker or podman images other than the `kiln-e2e/*` tags it makes.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const HELLO_OUTPUT: &str = "hello from kiln\nmessage: built by kiln\n";

/// Build the hello image (FROM busybox:test, a COPY'd script, exec-form CMD) in the shared
/// store under `tag`, and save it to `<dir>/<file>` with the given compression.
fn build_hello(tag: &str, dir: &Path, compression: &str) -> PathBuf {
    let ctx = dir.join("context");
    write_file(
        &ctx.join("Dockerfile"),
        b"FROM busybox:test\nCOPY hello.sh /hello.sh\nCOPY msg/ /etc/msg/\nCMD [\"/bin/sh\", \"/hello.sh\"]\n",
        0o644,
    );
    write_file(
        &ctx.join("hello.sh"),
        b"echo \"hello from kiln\"\necho \"message: $(cat /etc/msg/text)\"\n",
        0o755,
    );
    write_file(&ctx.join("msg/text"), b"built by kiln\n", 0o644);
    let store = shared_store();
    store.kiln_ok([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        tag.as_ref(),
        ctx.as_os_str(),
    ]);
    let out = dir.join("image.tar");
    store.kiln_ok([
        "save".as_ref(),
        "--compression".as_ref(),
        compression.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        tag.as_ref(),
    ]);
    out
}

/// Removes a docker tag when dropped, so a failing test leaves nothing behind.
struct DockerTag(String);
impl Drop for DockerTag {
    fn drop(&mut self) {
        docker_rmi(&self.0);
    }
}

/// Removes a podman image when dropped.
struct PodmanImage(String);
impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = run(std::process::Command::new("podman").args(["rmi", "-f", &self.0]));
    }
}

fn docker_load_and_run(tarball: &Path, tag: &str) {
    let _cleanup = DockerTag(tag.to_string());
    let loaded = run_ok(docker().arg("load").arg("-i").arg(tarball));
    assert!(
        stdout_text(&loaded).contains(tag),
        "docker load did not name {tag}: {}",
        stdout_text(&loaded)
    );
    let ran = run_ok(docker().args(["run", "--rm", "--network", "none", tag]));
    assert_eq!(
        stdout_text(&ran),
        HELLO_OUTPUT,
        "output of the image's CMD under docker"
    );
}

#[test]
fn kiln_image_loads_and_runs_in_docker() {
    require_peer!("docker", "busybox");
    let dir = temp_dir();
    let tag = "kiln-e2e/interop-docker:1.0";
    let tarball = build_hello(tag, dir.path(), "none");
    docker_load_and_run(&tarball, tag);
}

#[test]
fn kiln_gzip_save_loads_and_runs_in_docker() {
    require_peer!("docker", "busybox");
    let dir = temp_dir();
    let tag = "kiln-e2e/interop-gzip:1.0";
    let tarball = build_hello(tag, dir.path(), "gzip");
    let image = read_saved_image(&tarball);
    assert!(!image.layer_blobs.is_empty());
    for (i, blob) in image.layer_blobs.iter().enumerate() {
        assert!(
            blob.starts_with(&[0x1f, 0x8b]),
            "layer {i} of a --compression gzip save is not gzip"
        );
    }
    // The diff_ids still name the uncompressed layers.
    let diff_ids: Vec<String> = image
        .layers()
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    assert_eq!(image.diff_ids(), diff_ids);
    docker_load_and_run(&tarball, tag);
}

#[test]
fn podman_loads_and_runs_kiln_image() {
    require_peer!("podman", "busybox");
    let dir = temp_dir();
    let tag = "kiln-e2e/interop-podman:1.0";
    let tarball = build_hello(tag, dir.path(), "none");
    let loaded = run_ok(
        std::process::Command::new("podman")
            .args(["load", "-i"])
            .arg(&tarball),
    );
    let text = stdout_text(&loaded);
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix("Loaded image(s): "))
        })
        .unwrap_or_else(|| panic!("podman load did not name an image: {text}"))
        .trim()
        .to_string();
    let _cleanup = PodmanImage(name.clone());
    assert!(name.ends_with(tag), "podman loaded {name}, expected …{tag}");
    let inspect = run_ok(std::process::Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        &name,
    ]));
    assert_eq!(stdout_text(&inspect).trim(), r#"["/bin/sh","/hello.sh"]"#);
    let ran = run_ok(std::process::Command::new("podman").args([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        &name,
    ]));
    assert_eq!(
        stdout_text(&ran),
        HELLO_OUTPUT,
        "output of the image's CMD under podman"
    );
}

#[test]
fn skopeo_reads_both_archive_views() {
    require_peer!("skopeo", "busybox");
    let dir = temp_dir();
    let tag = "kiln-e2e/interop-skopeo:1.0";
    let tarball = build_hello(tag, dir.path(), "none");
    let outer = OuterTar::read(&tarball);
    let index = outer.json("index.json");
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("index.json names a manifest")
        .to_string();
    let image = read_saved_image(&tarball);
    let layer_digests: Vec<Value> = image
        .layer_blobs
        .iter()
        .map(|b| Value::from(format!("sha256:{}", sha256_hex(b))))
        .collect();

    let oci = run_ok(
        std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", tarball.display())),
    );
    let oci: Value = serde_json::from_slice(&oci.stdout).expect("skopeo prints JSON");
    assert_eq!(oci["Digest"], Value::from(manifest_digest.clone()));
    assert_eq!(oci["Layers"], Value::Array(layer_digests.clone()));
    assert_eq!(oci["Os"], "linux");

    let docker = run_ok(
        std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", tarball.display())),
    );
    let docker: Value = serde_json::from_slice(&docker.stdout).expect("skopeo prints JSON");
    assert_eq!(docker["Layers"], Value::Array(layer_digests));
    assert_eq!(docker["Env"], image.config["config"]["Env"]);

    // skopeo's config view agrees with the config blob.
    let cfg = run_ok(
        std::process::Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci-archive:{}", tarball.display())),
    );
    let cfg: Value = serde_json::from_slice(&cfg.stdout).expect("skopeo prints JSON");
    assert_eq!(cfg["config"]["Cmd"], image.config["config"]["Cmd"]);
    assert_eq!(cfg["rootfs"], image.config["rootfs"]);
}

#[test]
fn umoci_unpacks_kiln_image() {
    require_peer!("umoci", "busybox");
    let dir = temp_dir();
    let tag = "kiln-e2e/interop-umoci:1.0";
    let tarball = build_hello(tag, dir.path(), "none");
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).expect("mkdir layout");
    run_ok(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&layout),
    );
    let bundle = dir.path().join("bundle");
    let am_root = running_as_root();
    run_ok(
        std::process::Command::new("umoci")
            .arg("unpack")
            .args(if am_root {
                &[][..]
            } else {
                &["--rootless"][..]
            })
            .arg("--image")
            .arg(format!("{}:1.0", layout.display()))
            .arg(&bundle),
    );
    let script = std::fs::read(bundle.join("rootfs/hello.sh")).expect("hello.sh unpacked");
    assert!(script.starts_with(b"echo \"hello from kiln\""));
    let text = std::fs::read(bundle.join("rootfs/etc/msg/text")).expect("msg unpacked");
    assert_eq!(text, b"built by kiln\n");
    assert!(
        bundle.join("rootfs/bin/busybox").is_file(),
        "the base layer is unpacked too"
    );
    let config: Value = serde_json::from_slice(
        &std::fs::read(bundle.join("config.json")).expect("runtime config.json"),
    )
    .expect("config.json is JSON");
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/bin/sh", "/hello.sh"])
    );
}

/// The same rootfs tarball imported into docker and into kiln gives the same layer: both
/// keep the tarball's bytes.
#[test]
fn busybox_base_is_the_same_layer_in_docker_and_kiln() {
    require_peer!("docker", "busybox");
    docker_busybox();
    let dir = temp_dir();
    let docker_tar = dir.path().join("docker.tar");
    docker_save(BUSYBOX, &docker_tar);
    let kiln_tar = dir.path().join("kiln.tar");
    shared_store().save(BUSYBOX, &kiln_tar);
    let d = read_saved_image(&docker_tar);
    let k = read_saved_image(&kiln_tar);
    assert_eq!(d.diff_ids(), k.diff_ids());
    assert_eq!(
        k.diff_ids(),
        vec![format!("sha256:{}", sha256_file(&busybox().tarball))]
    );
    let problems = diff_trees("docker", &d.fs(), "kiln", &k.fs());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `docker save` of a docker-built image loads into kiln; `kiln save` of it keeps the
/// config (so the image ID) and every layer, byte for byte.
#[test]
fn docker_saved_image_round_trips_through_kiln() {
    require_peer!("docker", "busybox");
    docker_busybox();
    let dir = temp_dir();
    let ctx = dir.path().join("context");
    write_file(
        &ctx.join("Dockerfile"),
        b"FROM busybox:test\nCOPY app /opt/app\nCOPY conf.txt /etc/app.conf\nENV APP=1\nCMD [\"/bin/sh\", \"-c\", \"cat /etc/app.conf\"]\n",
        0o644,
    );
    write_file(&ctx.join("app/run.sh"), b"#!/bin/sh\necho app\n", 0o755);
    write_file(&ctx.join("app/data/x"), b"x\n", 0o600);
    write_file(&ctx.join("conf.txt"), b"conf\n", 0o644);
    let tag = "kiln-e2e/from-docker:1.0";
    let _cleanup = DockerTag(tag.to_string());
    run_ok(
        docker()
            .args(["build", "--network", "none", "-q", "-t", tag])
            .arg(&ctx),
    );
    let docker_tar = dir.path().join("docker.tar");
    docker_save(tag, &docker_tar);

    let store = KilnStore::new();
    store.kiln_ok(["load".as_ref(), "-i".as_ref(), docker_tar.as_os_str()]);
    let kiln_tar = dir.path().join("kiln.tar");
    store.save(tag, &kiln_tar);

    let d = read_saved_image(&docker_tar);
    let k = read_saved_image(&kiln_tar);
    assert_eq!(k.id(), d.id(), "the config blob (image ID) changed");
    assert_eq!(k.config_bytes, d.config_bytes);
    assert_eq!(k.diff_ids(), d.diff_ids());
    let digests = |img: &SavedImage| -> Vec<String> {
        img.layer_blobs
            .iter()
            .map(|b| format!("sha256:{}", sha256_hex(b)))
            .collect()
    };
    assert_eq!(digests(&k), digests(&d), "layer blobs changed");
    // docker 20.10 saves uncompressed layers, so each blob digest is its diff_id.
    assert_eq!(digests(&d), d.diff_ids());
    assert_eq!(store.image_id(tag), d.id());

    // And docker takes kiln's copy back: same ID.
    docker_rmi(tag);
    let loaded = run_ok(docker().arg("load").arg("-i").arg(&kiln_tar));
    assert!(stdout_text(&loaded).contains(tag));
    let id = run_ok(docker().args(["image", "inspect", "--format", "{{.Id}}", tag]));
    assert_eq!(stdout_text(&id).trim(), d.id());
}

/// `docker save | kiln load` (standard input) works like `-i`.
#[test]
fn kiln_load_reads_standard_input() {
    require_peer!("docker", "busybox");
    docker_busybox();
    let dir = temp_dir();
    let docker_tar = dir.path().join("docker.tar");
    docker_save(BUSYBOX, &docker_tar);
    let store = KilnStore::new();
    let bytes = std::fs::read(&docker_tar).expect("read docker.tar");
    let out = run_with_stdin(store.cmd().arg("load"), &bytes);
    assert_success("kiln load < docker.tar", &out);
    let d = read_saved_image(&docker_tar);
    assert_eq!(store.image_id(BUSYBOX), d.id());
}
