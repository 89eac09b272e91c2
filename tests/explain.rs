//! Build records and what reads them: `kiln build --explain` and `kiln explain` name the
//! changed input (a context file with both content hashes, a build argument with both
//! values, a re-tagged base with both digests; "no earlier build" the first time), JSON
//! progress carries the same reason, `kiln prune` ages records out; `--depfile` drives a real
//! `make` on the bundled example; `--provenance` is deterministic and `kiln verify-provenance`
//! passes, and fails naming the context when a context file changed.
//!
//! Bases are small root filesystems made with the tar helper and `kiln import` (no registry,
//! no RUN), except for the make test, which builds the bundled example (RUN needs root).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const DOCKERFILE: &str = "FROM base:1\nARG NAME=one\nCOPY a.txt /a/\nCOPY b.txt /out/${NAME}.txt\n";

/// A small base image: one directory and one file whose content is `marker`.
fn import_base(store: &KilnStore, marker: &str) {
    let dir = temp_dir();
    let tar = dir.path().join("base.tar");
    let bytes = TarBuilder::new()
        .dir("etc/", 0o755, 0, 0)
        .file("etc/marker", marker.as_bytes(), 0o644, 0, 0)
        .finish();
    std::fs::write(&tar, bytes).unwrap();
    store.kiln_ok(["import".as_ref(), tar.as_os_str(), "base:1".as_ref()]);
}

struct Project {
    _dir: tempfile::TempDir,
    ctx: PathBuf,
}

fn project() -> Project {
    let dir = temp_dir();
    let ctx = dir.path().join("ctx");
    write_file(&ctx.join("Dockerfile"), DOCKERFILE.as_bytes(), 0o644);
    write_file(&ctx.join("a.txt"), b"a1\n", 0o644);
    write_file(&ctx.join("b.txt"), b"b1\n", 0o644);
    write_file(&ctx.join("unrelated.txt"), b"u\n", 0o644);
    Project { _dir: dir, ctx }
}

fn build(store: &KilnStore, ctx: &Path, extra: &[&str]) -> (String, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["build".as_ref(), "--progress".as_ref()];
    if extra.contains(&"json") {
        args.push("json".as_ref());
    } else {
        args.push("plain".as_ref());
    }
    for e in extra.iter().filter(|e| **e != "json") {
        args.push(e.as_ref());
    }
    args.push(ctx.as_os_str());
    let out = store.kiln_ok(args);
    (stdout_text(&out), stderr_text(&out))
}

fn short_blake3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..12].to_string()
}

#[test]
fn explain_names_the_first_build_an_edited_file_and_a_build_arg() {
    let store = KilnStore::new();
    import_base(&store, "one");
    let p = project();
    let (_, err) = build(&store, &p.ctx, &["--explain"]);
    assert!(
        err.contains("why: no earlier build of this target in this store"),
        "{err}"
    );

    write_file(&p.ctx.join("a.txt"), b"a2\n", 0o644);
    let (_, err) = build(&store, &p.ctx, &["--explain"]);
    let want = format!(
        "why:   a.txt: {} -> {}",
        short_blake3(b"a1\n"),
        short_blake3(b"a2\n")
    );
    assert!(err.contains("why: context file changed (1):"), "{err}");
    assert!(err.contains(&want), "{err}");
    assert!(!err.contains("unrelated.txt"), "{err}");

    // kiln explain says the same of the last build against the one before.
    let out = store.kiln_ok(["explain".as_ref(), p.ctx.as_os_str()]);
    let text = stdout_text(&out);
    assert!(text.contains(&want), "{text}");
    assert!(text.contains("COPY a.txt /a/ (line 3)"), "{text}");

    // A build argument: the step that reads it names it with both values; the COPY before
    // it stays cached.
    let (_, err) = build(&store, &p.ctx, &["--explain", "--build-arg", "NAME=two"]);
    assert!(
        err.contains("why: build arg NAME changed: \"one\" -> \"two\""),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("COPY a.txt /a/"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(lines[at + 1].ends_with("CACHED"), "{err}");

    // JSON progress carries the same reason on the step's events.
    write_file(&p.ctx.join("b.txt"), b"b2\n", 0o644);
    let (out, _) = build(
        &store,
        &p.ctx,
        &["--explain", "json", "--build-arg", "NAME=two"],
    );
    let start = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["event"] == "start")
        .unwrap_or_else(|| panic!("no start event: {out}"));
    let reason = start["reason"].as_str().unwrap();
    assert!(reason.contains("b.txt"), "{start}");
    assert_eq!(start["causes"][0]["kind"], "context_files", "{start}");
    assert_eq!(
        start["causes"][0]["files"][0]["new"]["hash"],
        blake3::hash(b"b2\n").to_hex().as_str()
    );
}

#[test]
fn explain_names_a_retagged_base() {
    let store = KilnStore::new();
    import_base(&store, "one");
    let p = project();
    build(&store, &p.ctx, &[]);
    import_base(&store, "two");
    let (_, err) = build(&store, &p.ctx, &["--explain"]);
    let line = err
        .lines()
        .find(|l| l.contains("why: base image base:1 changed: "))
        .unwrap_or_else(|| panic!("{err}"));
    let digests: Vec<&str> = line
        .split("changed: ")
        .nth(1)
        .unwrap()
        .split(" -> ")
        .collect();
    assert_eq!(digests.len(), 2, "{line}");
    assert!(digests.iter().all(|d| d.starts_with("sha256:")), "{line}");
    assert_ne!(digests[0], digests[1], "{line}");
}

fn record_files(store: &KilnStore) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(store.root().join("records/targets")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

fn chunk_count(store: &KilnStore) -> usize {
    std::fs::read_dir(store.root().join("records/chunks"))
        .unwrap()
        .count()
}

#[test]
fn prune_ages_records_out_but_keeps_the_two_newest() {
    let store = KilnStore::new();
    import_base(&store, "one");
    let p = project();
    for content in ["a1\n", "a2\n", "a3\n"] {
        write_file(&p.ctx.join("a.txt"), content.as_bytes(), 0o644);
        build(&store, &p.ctx, &[]);
    }
    let records = record_files(&store);
    assert_eq!(records.len(), 3, "one record per build: {records:?}");
    let chunks = chunk_count(&store);
    // Each build's a.txt listing is its own chunk; b.txt's is shared.
    assert_eq!(chunks, 4);

    let out = store.kiln_ok(["prune"]);
    assert!(!stdout_text(&out).contains("build record"), "{out:?}");
    assert_eq!(record_files(&store), records, "younger than 90 days: kept");

    let out = store.kiln_ok(["prune", "--records-max-age", "0s"]);
    let text = stdout_text(&out);
    assert!(
        text.contains("Deleted 1 build record and 1 listing chunk"),
        "{text}"
    );
    assert_eq!(record_files(&store), records[1..].to_vec());
    assert_eq!(chunk_count(&store), 3);
    // The two newest still explain the last build.
    let out = store.kiln_ok(["explain".as_ref(), p.ctx.as_os_str()]);
    let want = format!(
        "a.txt: {} -> {}",
        short_blake3(b"a2\n"),
        short_blake3(b"a3\n")
    );
    assert!(stdout_text(&out).contains(&want), "{out:?}");
}

fn provenance(store: &KilnStore, ctx: &Path, file: &Path) -> Vec<u8> {
    store.kiln_ok([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        "app:1".as_ref(),
        "--build-arg".as_ref(),
        "NAME=x".as_ref(),
        "--provenance".as_ref(),
        file.as_os_str(),
        ctx.as_os_str(),
    ]);
    std::fs::read(file).unwrap()
}

#[test]
fn provenance_is_deterministic_and_verifies() {
    let store = KilnStore::new();
    import_base(&store, "one");
    let p = project();
    let dir = temp_dir();
    let first = provenance(&store, &p.ctx, &dir.path().join("p1.json"));
    let again = provenance(&store, &p.ctx, &dir.path().join("p2.json"));
    assert_eq!(first, again, "a cached rebuild writes the same bytes");
    let other = KilnStore::new();
    import_base(&other, "one");
    let fresh = provenance(&other, &p.ctx, &dir.path().join("p3.json"));
    assert_eq!(first, fresh, "another store writes the same bytes");

    let st: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(st["subject"][0]["name"], "app:1");
    let params = &st["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(params["buildArgs"]["NAME"], "x");
    assert_eq!(params["sourceDateEpoch"], serde_json::Value::Null);
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(!text.contains("On\""), "no timestamps: {text}");
    let roles: Vec<&str> = st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["annotations"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["dockerfile", "context", "base-image"]);
    // The subject is the manifest digest of the image.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.root().join("index.json")).unwrap()).unwrap();
    let manifest = format!(
        "sha256:{}",
        st["subject"][0]["digest"]["sha256"].as_str().unwrap()
    );
    assert!(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["digest"] == manifest.as_str()),
        "{index}"
    );

    let verify = |file: &Path| {
        let mut c = store.cmd();
        c.args(["verify-provenance", "--progress", "plain"])
            .arg(file);
        run(&mut c)
    };
    let p1 = dir.path().join("p1.json");
    let out = verify(&p1);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    assert!(stderr_text(&out).contains("verified"), "{out:?}");

    // An edited context file: the context digest differs, and nothing is rebuilt.
    write_file(&p.ctx.join("b.txt"), b"changed\n", 0o644);
    let out = verify(&p1);
    let err = stderr_text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the context differs"), "{err}");
    assert!(!err.contains("Dockerfile differs"), "{err}");
    // A file the build does not read changes nothing.
    write_file(&p.ctx.join("b.txt"), b"b1\n", 0o644);
    write_file(&p.ctx.join("unrelated.txt"), b"changed\n", 0o644);
    let out = verify(&p1);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}

#[test]
fn provenance_with_source_date_epoch_records_it() {
    let store = KilnStore::new();
    import_base(&store, "one");
    let p = project();
    let dir = temp_dir();
    let file = dir.path().join("p.json");
    let mut c = store.cmd();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--progress", "plain", "--provenance"])
        .arg(&file)
        .arg(&p.ctx);
    run_ok(&mut c);
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        st["predicate"]["buildDefinition"]["externalParameters"]["sourceDateEpoch"],
        1700000000
    );
    assert!(st["subject"][0].get("name").is_none(), "untagged: {st}");
    // Verification uses the recorded epoch, not the environment's (which is unset here).
    let mut c = store.cmd();
    c.args(["verify-provenance", "--progress", "plain"])
        .arg(&file);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn the_depfile_drives_make_on_the_bundled_example() {
    require_peer!("make", "busybox");
    if !running_as_root() {
        skip_or_fail("root", "the bundled example's RUN steps need root");
        return;
    }
    let store = KilnStore::new();
    let dir = temp_dir();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_fixture(&repo.join("examples/hello"), &dir.path().join("hello"));
    copy_fixture(&repo.join("examples/make"), &dir.path().join("make"));
    let mut base = Command::new("sh");
    base.arg(dir.path().join("hello/make-base.sh"))
        .env("KILN", kiln_bin())
        .env("KILN_ROOT", store.root());
    run_ok(&mut base);
    let make = || {
        let mut c = Command::new("make");
        c.current_dir(dir.path().join("make"))
            .arg(format!("KILN={}", kiln_bin().display()))
            .env("KILN_ROOT", store.root())
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("MAKEFLAGS");
        let out = run_ok(&mut c);
        stdout_text(&out) + &stderr_text(&out)
    };
    let iid = dir.path().join("make/hello.iid");
    let text = make();
    assert!(text.contains("kiln build"), "{text}");
    let depfile = std::fs::read_to_string(dir.path().join("make/hello.d")).unwrap();
    assert!(depfile.starts_with("hello.iid: \\\n"), "{depfile}");
    assert!(depfile.contains("../hello/site/index.html"), "{depfile}");
    assert!(depfile.contains("../hello/Dockerfile"), "{depfile}");
    assert!(!depfile.contains("make-base.sh"), "{depfile}");
    let built = mtime(&iid);

    // Make compares times: let the clock move past the build's.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut touch = Command::new("touch");
    touch.arg(dir.path().join("hello/make-base.sh"));
    run_ok(&mut touch);
    let text = make();
    assert!(text.contains("is up to date"), "{text}");
    assert!(!text.contains("kiln build"), "{text}");
    assert_eq!(mtime(&iid), built);

    let page = dir.path().join("hello/site/index.html");
    let mut html = std::fs::read(&page).unwrap();
    html.extend_from_slice(b"<p>edited</p>\n");
    std::fs::write(&page, html).unwrap();
    let text = make();
    assert!(text.contains("kiln build"), "{text}");
    assert_ne!(mtime(&iid), built);
}
