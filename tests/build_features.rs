//! Build features docker's differential cases cannot cover here: `--squash` (dockerd 20.10
//! needs experimental mode for it), `ADD` of an http URL (served on loopback by the test), a
//! failing `RUN` step reported with its command, exit code and output, and a stack of more
//! layers than docker's 125.

use crate::common;

use std::path::Path;

use common::{read_saved_image, stderr_text, temp_dir, write_file, FsKind, KilnStore};

fn context(dir: &Path, dockerfile: &str, files: &[(&str, &[u8])]) {
    write_file(&dir.join("Dockerfile"), dockerfile.as_bytes(), 0o644);
    for (name, body) in files {
        write_file(&dir.join(name), body, 0o644);
    }
}

#[test]
fn squash_merges_this_builds_layers_into_one_with_the_same_tree() {
    let store = KilnStore::with_busybox();
    let ctx = temp_dir();
    let df = "FROM busybox:test\nCOPY a.txt /data/a.txt\nCOPY b.txt /data/b.txt\nWORKDIR /srv/app\nCOPY a.txt /data/a.txt\n";
    context(
        ctx.path(),
        df,
        &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")],
    );
    let ctx_arg = ctx.path().to_str().unwrap();
    store.kiln_ok(["build", "-t", "plain:1", ctx_arg]);
    store.kiln_ok(["build", "--squash", "-t", "squashed:1", ctx_arg]);
    let out = temp_dir();
    let (p, s) = (
        out.path().join("plain.tar"),
        out.path().join("squashed.tar"),
    );
    store.save("plain:1", &p);
    store.save("squashed:1", &s);
    let (plain, squashed) = (read_saved_image(&p), read_saved_image(&s));
    let base_layers = 1;
    assert_eq!(
        plain.diff_ids().len(),
        base_layers + 4,
        "one layer per COPY and the WORKDIR"
    );
    assert_eq!(
        squashed.diff_ids().len(),
        base_layers + 1,
        "the build's layers become one"
    );
    assert_eq!(
        plain.diff_ids()[0],
        squashed.diff_ids()[0],
        "the base layer passes through"
    );
    assert_eq!(
        plain.fs(),
        squashed.fs(),
        "squashing must not change the file tree"
    );
    assert_eq!(plain.runtime_config(), squashed.runtime_config());
    let history = squashed.config["history"].as_array().unwrap();
    let non_empty = history
        .iter()
        .filter(|h| h["empty_layer"].as_bool() != Some(true))
        .count();
    assert_eq!(
        non_empty,
        squashed.diff_ids().len(),
        "history matches the layers one to one"
    );
}

#[test]
fn add_url_downloads_verifies_checksum_and_sets_mode_0600() {
    const BODY: &[u8] = b"downloaded bytes\n";
    let url = common::serve(BODY, 2);
    let good = format!("sha256:{}", common::sha256_hex(BODY));
    let store = KilnStore::new();
    let ctx = temp_dir();
    let df = format!("FROM scratch\nADD --checksum={good} {url}/files/tool.txt /opt/\n");
    context(ctx.path(), &df, &[]);
    store.kiln_ok(["build", "-t", "dl:1", ctx.path().to_str().unwrap()]);
    let out = temp_dir();
    let tar = out.path().join("dl.tar");
    store.save("dl:1", &tar);
    let fs = read_saved_image(&tar).fs();
    let file = fs
        .get("opt/tool.txt")
        .expect("the download is at /opt/tool.txt");
    assert_eq!(file.kind, FsKind::File);
    assert_eq!(file.mode, 0o600);
    assert_eq!(
        file.sha256.as_deref(),
        Some(common::sha256_hex(BODY).as_str())
    );

    // A wrong checksum fails the build and names both digests.
    let bad = format!("sha256:{}", "0".repeat(64));
    let df = format!("FROM scratch\nADD --checksum={bad} {url}/files/tool.txt /opt/\n");
    context(ctx.path(), &df, &[]);
    let failed = store.kiln(["build", ctx.path().to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
    let err = stderr_text(&failed);
    assert!(
        err.contains("checksum mismatch") && err.contains(&good),
        "{err}"
    );
}

#[test]
fn a_failing_run_step_shows_its_command_exit_code_and_last_output() {
    let store = KilnStore::with_busybox();
    let ctx = temp_dir();
    context(
        ctx.path(),
        "FROM busybox:test\nRUN echo first-line && echo the-last-words >&2 && exit 3\n",
        &[],
    );
    let out = store.kiln([
        "build",
        "--progress",
        "plain",
        "--network",
        "none",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(err.contains("echo first-line"), "{err}");
    assert!(err.contains("the-last-words"), "{err}");
}

#[test]
fn independent_stages_build_and_meet_in_the_final_stage() {
    let store = KilnStore::new();
    let ctx = temp_dir();
    let df = "FROM scratch AS a\nCOPY a.txt /a\nFROM scratch AS b\nCOPY b.txt /b\nFROM scratch AS unused\nCOPY missing.txt /x\nFROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    context(ctx.path(), df, &[("a.txt", b"a\n"), ("b.txt", b"b\n")]);
    // The unused stage names a missing file: --target pruning means it is never looked at.
    store.kiln_ok(["build", "-t", "par:1", ctx.path().to_str().unwrap()]);
    let out = temp_dir();
    let tar = out.path().join("par.tar");
    store.save("par:1", &tar);
    let fs = read_saved_image(&tar).fs();
    assert!(fs.contains_key("a") && fs.contains_key("b") && !fs.contains_key("x"));
}

#[test]
fn a_cached_rebuild_with_another_source_date_epoch_matches_a_fresh_build() {
    let ctx = temp_dir();
    context(
        ctx.path(),
        "FROM scratch\nWORKDIR /srv/app\nCOPY a.txt .\n",
        &[("a.txt", b"a\n")],
    );
    let ctx_arg = ctx.path().to_str().unwrap();
    let build = |store: &KilnStore, epoch: &str| {
        let out = common::run(
            store
                .cmd()
                .env("SOURCE_DATE_EPOCH", epoch)
                .args(["build", "-t", "sde:1", ctx_arg]),
        );
        common::assert_success("kiln build", &out);
    };
    // Same store, first epoch 0 then another: every layer whose bytes carry the epoch must be
    // rebuilt, not taken from the cache.
    let reused = KilnStore::new();
    build(&reused, "0");
    build(&reused, "1700000000");
    let fresh = KilnStore::new();
    build(&fresh, "1700000000");
    let out = temp_dir();
    let (a, b) = (out.path().join("reused.tar"), out.path().join("fresh.tar"));
    reused.save("sde:1", &a);
    fresh.save("sde:1", &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

/// 150 layers (docker refuses more than 125): more than the mount data holds by path, so the
/// sandbox names them by descriptor. A RUN on top of them sees every layer, and so does a
/// container of the image; no descriptor of theirs reaches the payload.
#[test]
fn a_stack_of_150_layers_builds_and_runs() {
    if !common::can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let ctx = temp_dir();
    let mut df = String::from("FROM busybox:test\n");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 1..150 {
        df.push_str(&format!("COPY f{i} /layers/f{i}\n"));
        files.push((format!("f{i}"), format!("{i}\n").into_bytes()));
    }
    df.push_str("RUN cat /layers/f1 /layers/f149 > /seen && ls /proc/self/fd | wc -l > /fds\n");
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    context(ctx.path(), &df, &files);
    store.kiln_ok(["build", "-t", "deep:1", ctx.path().to_str().unwrap()]);
    let layers = store.kiln_ok(["image", "inspect", "-f", "{{len .RootFS.Layers}}", "deep:1"]);
    assert_eq!(String::from_utf8_lossy(&layers.stdout).trim(), "151");
    let out = store.kiln_ok([
        "run",
        "--rm",
        "deep:1",
        "sh",
        "-c",
        "cat /seen; cat /fds; ls /layers | wc -l; ls /proc/self/fd | wc -l",
    ]);
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>();
    // /seen, then the RUN's descriptor count (0, 1, 2 and the one ls opened), the files,
    // and the container's count.
    assert_eq!(text, ["1", "149", "4", "149", "4"], "{}", stderr_text(&out));
}
