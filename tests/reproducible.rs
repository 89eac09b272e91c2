//! Reproducibility of whole builds: the same context built twice under different host
//! conditions gives `cmp`-identical `kiln save` tarballs, SOURCE_DATE_EPOCH is honoured, and
//! a golden test pins the exact bytes kiln writes for a fixed input.
//!
//! What varies between the two builds, and why that is sound: the context is copied to two
//! different directories with *explicit* file modes (modes in the context are content, so
//! both copies have the same ones; only the umask of the copying must not matter, which
//! `copy_fixture` guarantees by setting every mode). Then everything that is not content
//! differs: the directory paths, every file's and directory's mtime (`touch -d`), the host
//! owner of the files (when run as root), the umask kiln itself runs under (022 vs 077: it
//! decides the modes of directories and files kiln creates, which must never reach the
//! image), `RAYON_NUM_THREADS` (1 vs 2), and the store.
//!
//! Must not: depend on docker or any other peer (only the busybox binary for the base).

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// How one build runs.
struct Host<'a> {
    umask: &'a str,
    threads: &'a str,
    mtime: &'a str,
    owner: Option<&'a str>,
    source_date_epoch: Option<&'a str>,
}

const HOST_A: Host = Host {
    umask: "022",
    threads: "1",
    mtime: "2001-02-03 04:05:06",
    owner: None,
    source_date_epoch: None,
};
const HOST_B: Host = Host {
    umask: "077",
    threads: "2",
    mtime: "2024-12-31 23:59:59",
    owner: Some("1234:4321"),
    source_date_epoch: None,
};

/// kiln under `sh -c 'umask U; exec kiln …'`, with the thread count and epoch of `host`.
fn kiln_as(store: &KilnStore, host: &Host, args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(format!("umask {} && exec \"$0\" \"$@\"", host.umask))
        .arg(kiln_bin())
        .arg("--root")
        .arg(store.root())
        .args(args)
        .env("RAYON_NUM_THREADS", host.threads)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("KILN_ROOT");
    if let Some(e) = host.source_date_epoch {
        c.env("SOURCE_DATE_EPOCH", e);
    }
    let out = run(&mut c);
    assert_success(&format!("kiln {args:?} (umask {})", host.umask), &out);
    out
}

/// A copy of the repro fixture plus a generated tarball for ADD, with the host's mtimes and
/// owner applied to everything.
fn make_context(dir: &Path, host: &Host) -> std::path::PathBuf {
    let ctx = dir.join("some/where/context");
    copy_fixture(&fixture("repro"), &ctx);
    let bundle = TarBuilder::new()
        .dir("lib/", 0o755, 0, 0)
        .file("lib/a.so", b"\x7fELF fake", 0o755, 0, 0)
        .symlink("lib/a.so.1", "a.so")
        .file("share/doc.txt", b"doc\n", 0o644, 1000, 1000)
        .finish();
    write_file(&ctx.join("bundle.tar"), &bundle, 0o644);
    let touched = run(Command::new("find")
        .arg(&ctx)
        .args(["-exec", "touch", "-h", "-d", host.mtime, "{}", "+"]));
    assert_success("touch the context", &touched);
    let am_root = running_as_root();
    if let (Some(owner), true) = (host.owner, am_root) {
        run_ok(Command::new("chown").args(["-hR", owner]).arg(&ctx));
    }
    ctx
}

/// Import the base, build the repro context, save; returns (image ID, tarball bytes).
fn build_and_save(host: &Host, extra_build_args: &[&str]) -> (String, Vec<u8>) {
    let work = temp_dir();
    let store = KilnStore::new();
    let bb = busybox();
    kiln_as(
        &store,
        host,
        &["import".as_ref(), bb.tarball.as_os_str(), BUSYBOX.as_ref()],
    );
    let ctx = make_context(work.path(), host);
    let iid = work.path().join("iid");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        "repro:1".as_ref(),
        "--iidfile".as_ref(),
        iid.as_os_str(),
    ];
    for a in extra_build_args {
        args.push("--build-arg".as_ref());
        args.push(a.as_ref());
    }
    args.push(ctx.as_os_str());
    kiln_as(&store, host, &args);
    let out = work.path().join("out/image.tar");
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir out");
    kiln_as(
        &store,
        host,
        &[
            "save".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
            "repro:1".as_ref(),
        ],
    );
    let id = std::fs::read_to_string(&iid).expect("read iidfile");
    (
        id.trim().to_string(),
        std::fs::read(&out).expect("read saved tarball"),
    )
}

/// The first differing byte and the tar entries, to make a mismatch readable.
fn explain_difference(a: &[u8], b: &[u8]) -> String {
    let first = a.iter().zip(b).position(|(x, y)| x != y);
    let names = |bytes: &[u8]| OuterTar::from_bytes(bytes).names;
    format!(
        "sizes {} vs {}, first difference at byte {first:?}\nentries A: {:?}\nentries B: {:?}",
        a.len(),
        b.len(),
        names(a),
        names(b)
    )
}

#[test]
fn two_checkouts_two_hosts_give_identical_tarballs() {
    require_peer!("busybox");
    let (id_a, tar_a) = build_and_save(&HOST_A, &[]);
    let (id_b, tar_b) = build_and_save(&HOST_B, &[]);
    assert_eq!(id_a, id_b, "image IDs differ");
    assert!(
        tar_a == tar_b,
        "kiln save tarballs differ: {}",
        explain_difference(&tar_a, &tar_b)
    );
    // The image is not trivially empty: the copied files are there with their modes.
    let dir = temp_dir();
    let path = dir.path().join("a.tar");
    std::fs::write(&path, &tar_a).expect("write");
    let fs = read_saved_image(&path).fs();
    let start = fs.get("opt/app/start.sh").expect("start.sh copied");
    assert_eq!(start.mode, 0o755);
    assert_eq!(start.uid, 0, "context file owners must not reach the image");
    let conf = fs.get("etc/app/app.conf").expect("app.conf copied");
    assert_eq!((conf.uid, conf.gid), (1000, 50), "--chown=app:staff");
    assert_eq!(fs.get("etc/app-private.conf").map(|e| e.mode), Some(0o640));
    let state = fs.get("var/lib/app/state").expect("WORKDIR created");
    assert_eq!(
        state.mode, 0o755,
        "WORKDIR under umask 077 must still be 0755"
    );
}

#[test]
fn source_date_epoch_is_reproducible_and_used() {
    require_peer!("busybox");
    let epoch = "1700000000"; // 2023-11-14T22:13:20Z
    let with_a = Host {
        source_date_epoch: Some(epoch),
        ..HOST_A
    };
    let with_b = Host {
        source_date_epoch: Some(epoch),
        ..HOST_B
    };
    let (id_a, tar_a) = build_and_save(&with_a, &[]);
    let (id_b, tar_b) = build_and_save(&with_b, &[]);
    assert_eq!(id_a, id_b);
    assert!(
        tar_a == tar_b,
        "with SOURCE_DATE_EPOCH the tarballs differ: {}",
        explain_difference(&tar_a, &tar_b)
    );
    let (id_unset, tar_unset) = build_and_save(&HOST_A, &[]);
    assert_ne!(id_a, id_unset, "SOURCE_DATE_EPOCH did not change the image");
    assert_ne!(tar_a, tar_unset);

    // --build-arg SOURCE_DATE_EPOCH=… is the same as the environment variable.
    let (id_arg, tar_arg) = build_and_save(&HOST_A, &[&format!("SOURCE_DATE_EPOCH={epoch}")]);
    assert_eq!(
        id_arg, id_a,
        "--build-arg SOURCE_DATE_EPOCH differs from the env var"
    );
    assert!(tar_arg == tar_a);

    // The epoch is where the checklist says: config/history `created` and the mtime of
    // every entry of the layers this build wrote (the base layer passes through as is),
    // except what ADD unpacked from bundle.tar: archive entries keep their own mtimes (0
    // here), as docker does, never later than the epoch.
    let dir = temp_dir();
    let path = dir.path().join("a.tar");
    std::fs::write(&path, &tar_a).expect("write");
    let image = read_saved_image(&path);
    assert_eq!(image.config["created"], "2023-11-14T22:13:20Z");
    for h in image.config["history"].as_array().expect("history") {
        let created = h["created"].as_str().unwrap_or_default();
        assert!(
            created == "2023-11-14T22:13:20Z" || created == "1970-01-01T00:00:00Z",
            "history entry created {created:?}"
        );
    }
    let layers = image.layers();
    assert!(layers.len() > 1);
    for (i, layer) in layers.iter().enumerate().skip(1) {
        let mut ar = tar::Archive::new(layer.as_slice());
        for e in ar.entries().expect("entries") {
            let e = e.expect("entry");
            let mtime = e.header().mtime().expect("mtime");
            let path = normalize(&e.path().expect("path").to_string_lossy());
            let from_archive = [
                "opt/bundle/lib",
                "opt/bundle/lib/a.so",
                "opt/bundle/lib/a.so.1",
                "opt/bundle/share/doc.txt",
            ];
            let want = if from_archive.contains(&path.as_str()) {
                0
            } else {
                1_700_000_000
            };
            assert_eq!(mtime, want, "layer {i} entry {path:?} has mtime {mtime}");
        }
    }
}

// Golden digests of the fixture `tests/fixtures/golden` built FROM scratch with
// SOURCE_DATE_EPOCH=0. They catch drift in kiln's tar, JSON and gzip encodings (a crate
// update, a changed header field, a different compressor backend). When a change of the
// encoding is deliberate, run
//     cargo test --test reproducible golden -- --nocapture
// read the new values from the failure message, check that the change is intended (and
// explain it in the commit message), and paste them here.
// The values hold for linux/amd64 (the config records the host architecture).
const GOLDEN_IMAGE_ID: &str =
    "sha256:f168a175b9cf7055a7c9a3ffe1c7fcc29d4f9a1a3d0867f4562b128983b070d5";
const GOLDEN_SAVE_SHA256: &str = "55fb9f819818072fc183fe6555534eeb17d2f01fe34a857deca6dbaf3b35a2f1";
const GOLDEN_SAVE_GZIP_SHA256: &str =
    "a01d417541495bbeafb5f24839ee912dd6f1a04ac95c825607a13b32ee69904b";

#[test]
fn golden_digests_of_a_fixed_build() {
    if std::env::consts::ARCH != "x86_64" {
        skip_or_fail(
            "an x86_64 host",
            "the golden digests are recorded for linux/amd64",
        );
        return;
    }
    let work = temp_dir();
    let ctx = work.path().join("context");
    copy_fixture(&fixture("golden"), &ctx);
    let store = KilnStore::new();
    let iid = work.path().join("iid");
    run_ok(
        store
            .cmd()
            .env("SOURCE_DATE_EPOCH", "0")
            .args([
                "build",
                "--progress",
                "plain",
                "-t",
                "golden:1",
                "--iidfile",
            ])
            .arg(&iid)
            .arg(&ctx),
    );
    let id = std::fs::read_to_string(&iid).expect("iidfile");
    let plain = work.path().join("plain.tar");
    store.save("golden:1", &plain);
    let gzip = work.path().join("gzip.tar");
    store.kiln_ok([
        "save".as_ref(),
        "--compression".as_ref(),
        "gzip".as_ref(),
        "-o".as_ref(),
        gzip.as_os_str(),
        "golden:1".as_ref(),
    ]);
    let got = (
        id.trim().to_string(),
        sha256_file(&plain),
        sha256_file(&gzip),
    );
    let want = (
        GOLDEN_IMAGE_ID.to_string(),
        GOLDEN_SAVE_SHA256.to_string(),
        GOLDEN_SAVE_GZIP_SHA256.to_string(),
    );
    assert_eq!(
        got, want,
        "golden digests changed (image ID, save sha256, gzip save sha256); see the comment above GOLDEN_IMAGE_ID"
    );
}

/// The bytes `kiln save` writes follow docs/spec's OCI checklist: layout files, blob names
/// and digests, manifest.json, config, and deterministic layer and outer tar encodings.
#[test]
fn saved_tarball_follows_the_output_checklist() {
    let work = temp_dir();
    let ctx = work.path().join("context");
    copy_fixture(&fixture("golden"), &ctx);
    let store = KilnStore::new();
    store.kiln_ok([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        "app:1.0".as_ref(),
        ctx.as_os_str(),
    ]);
    let path = work.path().join("app.tar");
    store.save("app:1.0", &path);
    let bytes = std::fs::read(&path).expect("read");
    let outer = OuterTar::from_bytes(&bytes);

    // 1, 2, 5: oci-layout and index.json.
    assert_eq!(
        outer.get("oci-layout"),
        Some(&br#"{"imageLayoutVersion":"1.0.0"}"#[..])
    );
    let index = outer.json("index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "one image, one tag: one index entry");
    let desc = &manifests[0];
    assert_eq!(
        desc["annotations"]["io.containerd.image.name"],
        "docker.io/library/app:1.0"
    );
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        "1.0"
    );

    // 3: every blob is named by its sha256, and descriptors carry the right sizes.
    for name in &outer.names {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            if hex.is_empty() {
                continue;
            }
            assert_eq!(hex.len(), 64);
            assert!(hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            let blob = outer.get(name).expect("blob");
            assert_eq!(sha256_hex(blob), hex, "blob {name} does not match its name");
        }
    }
    let check_desc = |d: &serde_json::Value| {
        let digest = d["digest"].as_str().expect("digest");
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let blob = outer
            .get(&format!("blobs/sha256/{hex}"))
            .unwrap_or_else(|| panic!("descriptor {digest} has no blob"));
        assert_eq!(
            d["size"].as_u64(),
            Some(blob.len() as u64),
            "size of {digest}"
        );
    };
    check_desc(desc);
    let manifest_hex = desc["digest"].as_str().expect("digest")["sha256:".len()..].to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        outer
            .get(&format!("blobs/sha256/{manifest_hex}"))
            .expect("manifest blob"),
    )
    .expect("manifest JSON");
    check_desc(&manifest["config"]);
    for l in manifest["layers"].as_array().expect("layers") {
        check_desc(l);
    }

    // 4: manifest.json for docker load.
    let image = read_saved_image(&path);
    assert_eq!(image.manifest["RepoTags"], serde_json::json!(["app:1.0"]));
    assert_eq!(
        image.manifest["Config"],
        format!("blobs/sha256/{}", &image.id()["sha256:".len()..])
    );

    // 6, 7: config and diff_ids.
    let cfg = &image.config;
    assert_eq!(cfg["os"], "linux");
    assert!(cfg["architecture"].is_string());
    assert_eq!(cfg["rootfs"]["type"], "layers");
    let layers = image.layers();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    assert_eq!(image.diff_ids(), diff_ids);
    let non_empty = cfg["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["empty_layer"] != serde_json::Value::Bool(true))
        .count();
    assert_eq!(non_empty, diff_ids.len(), "history and diff_ids disagree");

    // 7, 9, 10, 11: each layer tar.
    for (i, layer) in layers.iter().enumerate() {
        check_tar_encoding(&format!("layer {i}"), layer);
    }
    // 21: the outer tarball.
    check_tar_encoding("outer tarball", &bytes);
}

/// Sorted entries with parents first, mtime 0 (SOURCE_DATE_EPOCH unset), no user or group
/// names, no PAX atime/ctime, and exactly 1024 zero bytes after the last entry.
fn check_tar_encoding(what: &str, bytes: &[u8]) {
    let mut ar = tar::Archive::new(bytes);
    let mut paths: Vec<String> = Vec::new();
    let mut end = 0u64;
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let h = e.header();
        let path = e.path().expect("path").to_string_lossy().into_owned();
        assert_eq!(h.mtime().expect("mtime"), 0, "{what}: {path} mtime");
        assert_eq!(
            h.username_bytes().unwrap_or_default(),
            b"",
            "{what}: {path} uname"
        );
        assert_eq!(
            h.groupname_bytes().unwrap_or_default(),
            b"",
            "{what}: {path} gname"
        );
        if let Ok(Some(pax)) = e.pax_extensions() {
            for ext in pax {
                let key = ext
                    .expect("pax record")
                    .key()
                    .unwrap_or_default()
                    .to_string();
                assert!(
                    key != "atime" && key != "ctime" && key != "mtime",
                    "{what}: {path} has a PAX {key} record"
                );
            }
        }
        let size = e.header().entry_size().expect("size");
        end = e.raw_file_position() + size.div_ceil(512) * 512;
        paths.push(path.trim_end_matches('/').to_string());
    }
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "{what}: entries are not sorted bytewise");
    for (i, p) in paths.iter().enumerate() {
        if let Some((parent, _)) = p.rsplit_once('/') {
            if let Some(j) = paths.iter().position(|q| q == parent) {
                assert!(j < i, "{what}: {p} comes before its parent");
            }
        }
    }
    assert_eq!(
        bytes.len() as u64 - end,
        1024,
        "{what}: the end-of-archive padding is not exactly 1024 zero bytes"
    );
    assert!(bytes[end as usize..].iter().all(|b| *b == 0));
}
