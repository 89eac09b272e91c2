//! `kiln diff`: pairs of images built to differ in exactly one thing (one file's content,
//! one file's mode, one config field, one added layer) are reported as exactly that, with the
//! history entry that created the file; the same image compares equal whether it is named in
//! the store or read from docker-archive, OCI, compressed or uncompressed tarballs; exit
//! statuses 0 equal, 1 different, 2 error.
//!
//! Must not: need a peer, except the skopeo case (skips locally without skopeo).

use std::io::{Read, Write};
use std::path::Path;

use crate::common::*;
use serde_json::Value;

/// A FROM scratch context: Dockerfile plus two files.
fn context(dir: &Path, dockerfile: &str, a_txt: &[u8], mode: u32) {
    write_file(&dir.join("Dockerfile"), dockerfile.as_bytes(), 0o644);
    write_file(&dir.join("a.txt"), a_txt, mode);
    write_file(&dir.join("b.bin"), &[7u8; 5000], 0o644);
    write_file(&dir.join("extra"), b"extra\n", 0o644);
}

const DOCKERFILE: &str =
    "FROM scratch\nCOPY a.txt b.bin /data/\nLABEL version=1\nCMD [\"/data/a.txt\"]\n";

fn build(store: &KilnStore, tag: &str, dockerfile: &str, a_txt: &[u8], mode: u32) {
    let work = temp_dir();
    context(work.path(), dockerfile, a_txt, mode);
    store.kiln_ok([
        "build".as_ref(),
        "-t".as_ref(),
        tag.as_ref(),
        work.path().as_os_str(),
    ]);
}

/// `kiln diff --json A B`: exit status and the parsed JSON.
fn diff_json(store: &KilnStore, a: &str, b: &str) -> (i32, Value) {
    let out = store.kiln(["diff", "--json", a, b]);
    let code = out.status.code().unwrap_or(-1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kiln diff --json {a} {b} is not JSON ({e}): {}\n{}",
            stdout_text(&out),
            stderr_text(&out)
        )
    });
    (code, v)
}

fn merged_paths(v: &Value) -> Vec<String> {
    v["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        f["change"].as_str().unwrap_or(""),
                        f["path"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn one_file_content_differs() {
    let store = KilnStore::new();
    build(&store, "d:1", DOCKERFILE, b"one\ntwo\nthree\n", 0o644);
    build(&store, "d:2", DOCKERFILE, b"one\nTWO\nthree\n", 0o644);
    let (code, v) = diff_json(&store, "d:1", "d:2");
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["equal"], false);
    assert_eq!(merged_paths(&v), ["changed data/a.txt"], "{v}");
    let f = &v["files"][0];
    assert_eq!(f["differs"], serde_json::json!(["content"]), "{f}");
    assert_eq!(
        f["a"]["content"],
        format!("sha256:{}", sha256_hex(b"one\ntwo\nthree\n"))
    );
    assert_eq!(
        f["b"]["content"],
        format!("sha256:{}", sha256_hex(b"one\nTWO\nthree\n"))
    );
    let text = f["text_diff"].as_str().unwrap_or_default();
    assert!(text.contains("-two\n") && text.contains("+TWO\n"), "{text}");
    // The layer that wrote it, with its history entry.
    assert_eq!(f["a_layer"], 0);
    let layer = &v["layers"][0];
    assert_eq!(layer["equal"], false);
    assert!(
        layer["b"]["created_by"]
            .as_str()
            .unwrap_or("")
            .contains("COPY a.txt b.bin /data/"),
        "{layer}"
    );
    // Only the rootfs and nothing else of the config differs (rootfs is left out).
    assert_eq!(v["config"], serde_json::json!([]), "{v}");

    // The text rendering names the file, the step and the change.
    let out = store.kiln(["diff", "d:1", "d:2"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout_text(&out);
    assert!(text.contains("changed /data/a.txt"), "{text}");
    assert!(text.contains("COPY a.txt b.bin /data/"), "{text}");
    assert!(text.contains("content: sha256:"), "{text}");
    assert!(text.contains("+TWO"), "{text}");
}

#[test]
fn one_mode_differs() {
    let store = KilnStore::new();
    build(&store, "m:1", DOCKERFILE, b"same\n", 0o644);
    build(&store, "m:2", DOCKERFILE, b"same\n", 0o755);
    let (code, v) = diff_json(&store, "m:1", "m:2");
    assert_eq!(code, 1, "{v}");
    assert_eq!(merged_paths(&v), ["changed data/a.txt"], "{v}");
    let f = &v["files"][0];
    assert_eq!(f["differs"], serde_json::json!(["mode"]), "{f}");
    assert_eq!(f["a"]["mode"], "0644");
    assert_eq!(f["b"]["mode"], "0755");
}

#[test]
fn one_config_field_differs() {
    let store = KilnStore::new();
    build(&store, "c:1", DOCKERFILE, b"same\n", 0o644);
    build(
        &store,
        "c:2",
        &DOCKERFILE.replace("version=1", "version=2"),
        b"same\n",
        0o644,
    );
    let (code, v) = diff_json(&store, "c:1", "c:2");
    assert_eq!(code, 1, "{v}");
    let fields: Vec<&str> = v["config"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["field"].as_str()).collect())
        .unwrap_or_default();
    // The label, and the history entry of the LABEL step that set it.
    assert!(fields.contains(&"config.Labels.version"), "{v}");
    assert!(
        fields
            .iter()
            .all(|f| *f == "config.Labels.version" || f.starts_with("history[")),
        "{v}"
    );
    let label = v["config"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["field"] == "config.Labels.version"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(label["a"], "1");
    assert_eq!(label["b"], "2");
    assert_eq!(v["files"], serde_json::json!([]), "same files: {v}");
    assert!(
        v["layers"]
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["equal"] == true)),
        "{v}"
    );
}

#[test]
fn one_added_layer() {
    let store = KilnStore::new();
    build(&store, "l:1", DOCKERFILE, b"same\n", 0o644);
    build(
        &store,
        "l:2",
        &format!("{DOCKERFILE}COPY extra /extra\n"),
        b"same\n",
        0o644,
    );
    let (code, v) = diff_json(&store, "l:1", "l:2");
    assert_eq!(code, 1, "{v}");
    assert_eq!(merged_paths(&v), ["added extra"], "{v}");
    assert_eq!(v["files"][0]["b_layer"], 1);
    let layers = v["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), 2, "{v}");
    assert_eq!(layers[0]["equal"], true, "the common layer is skipped: {v}");
    assert_eq!(layers[0]["files"], serde_json::json!([]));
    assert!(layers[1]["a"].is_null(), "{v}");
    assert!(
        layers[1]["b"]["created_by"]
            .as_str()
            .unwrap_or("")
            .contains("COPY extra /extra"),
        "{v}"
    );
}

/// Rewrites the outer tarball of `kiln save`, keeping only the entries `keep` accepts.
fn filter_tar(src: &Path, dst: &Path, keep: impl Fn(&str) -> bool) {
    let bytes = std::fs::read(src).unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if !keep(&path) {
            continue;
        }
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.append_data(&mut header, &path, &data[..]).unwrap();
    }
    std::fs::write(dst, out.into_inner().unwrap()).unwrap();
}

#[test]
fn the_same_image_is_equal_across_store_and_tarball_forms() {
    let store = KilnStore::new();
    build(&store, "t:1", DOCKERFILE, b"same\n", 0o644);
    let work = temp_dir();
    let combined = work.path().join("combined.tar");
    store.save("t:1", &combined);
    // docker-archive only (manifest.json, no index.json), and OCI only (no manifest.json).
    let docker = work.path().join("docker.tar");
    filter_tar(&combined, &docker, |p| {
        !matches!(p, "index.json" | "oci-layout")
    });
    let oci = work.path().join("oci.tar");
    filter_tar(&combined, &oci, |p| {
        !matches!(p, "manifest.json" | "repositories")
    });
    // gzip layers inside, and the whole OCI tarball gzip-compressed.
    let gz_layers = work.path().join("gz-layers.tar");
    store.kiln_ok([
        "save".as_ref(),
        "--compression".as_ref(),
        "gzip".as_ref(),
        "-o".as_ref(),
        gz_layers.as_os_str(),
        "t:1".as_ref(),
    ]);
    let oci_gz = work.path().join("oci.tar.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&oci_gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&std::fs::read(&oci).unwrap()).unwrap();
        enc.finish().unwrap();
    }
    let paths = [&docker, &oci, &gz_layers, &oci_gz];
    for p in paths {
        let p = p.to_str().unwrap();
        let (code, v) = diff_json(&store, "t:1", p);
        assert_eq!(code, 0, "t:1 vs {p}: {v}");
        assert_eq!(v["equal"], true);
    }
    let (code, v) = diff_json(&store, docker.to_str().unwrap(), oci_gz.to_str().unwrap());
    assert_eq!(code, 0, "docker-archive vs gzip OCI: {v}");
    // Reading tarballs never adds to the user's store.
    let images = stdout_text(&store.kiln_ok(["images", "-q"]));
    assert_eq!(images.lines().count(), 1, "{images}");

    // A different image in a tarball is compared file by file, not just by ID.
    build(&store, "t:2", DOCKERFILE, b"other\n", 0o644);
    let other = work.path().join("other.tar");
    store.save("t:2", &other);
    let (code, v) = diff_json(&store, oci_gz.to_str().unwrap(), other.to_str().unwrap());
    assert_eq!(code, 1, "{v}");
    assert_eq!(merged_paths(&v), ["changed data/a.txt"], "{v}");
}

#[test]
fn an_oci_archive_written_by_skopeo_equals_the_image() {
    require_peer!("skopeo");
    let store = KilnStore::new();
    build(&store, "s:1", DOCKERFILE, b"same\n", 0o644);
    let work = temp_dir();
    let saved = work.path().join("saved.tar");
    store.save("s:1", &saved);
    let oci = work.path().join("skopeo-oci.tar");
    run_ok(std::process::Command::new("skopeo").args([
        "copy".to_string(),
        format!("docker-archive:{}", saved.display()),
        format!("oci-archive:{}:s:1", oci.display()),
    ]));
    let (code, v) = diff_json(&store, "s:1", oci.to_str().unwrap());
    assert_eq!(code, 0, "{v}");
}

#[test]
fn errors_exit_with_status_2() {
    let store = KilnStore::new();
    build(&store, "e:1", DOCKERFILE, b"same\n", 0o644);
    let out = store.kiln(["diff", "e:1", "no-such-image:1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains("no-such-image"),
        "{}",
        stderr_text(&out)
    );
    let work = temp_dir();
    let junk = work.path().join("junk.tar");
    write_file(&junk, b"not a tarball at all", 0o644);
    let out = store.kiln(["diff".as_ref(), "e:1".as_ref(), junk.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_text(&out));
    let out = store.kiln(["diff", "e:1", "e:1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}
