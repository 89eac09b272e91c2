//! The kiln command line as a user meets it: exit codes (0 ok, 1 user error or failed build,
//! 2 bad usage) with useful diagnostics, the JSON shapes of `parse`, `plan` and `--progress
//! json`, `check` warnings, `build -f -`, `--iidfile`, `-o`, the layer cache, the image
//! commands (images, inspect, history, tag, rmi, prune), `import`, and `load` refusing
//! broken or hostile tarballs without changing the store.
//!
//! Must not: need docker or any other peer (only the busybox binary for the base image).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

/// A context directory with a Dockerfile and files.
fn context(dir: &Path, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = dir.join("context");
    write_file(&ctx.join("Dockerfile"), dockerfile.as_bytes(), 0o644);
    for (name, content) in files {
        write_file(&ctx.join(name), content.as_bytes(), 0o644);
    }
    ctx
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        stdout_text(out),
        stderr_text(out)
    );
}

/// A kiln command outside any store (parse/check/plan need none; `--root` keeps a stray
/// default store out of $HOME anyway).
fn kiln_plain(args: &[&std::ffi::OsStr]) -> Output {
    let store = KilnStore::new();
    store.kiln(args)
}

// ---------------------------------------------------------------------------------------
// Exit codes and diagnostics.

#[test]
fn misspelled_instruction_fails_with_a_suggestion() {
    let dir = temp_dir();
    let ctx = context(dir.path(), "FROM scratch\nRUNN echo hi\n", &[]);
    let store = KilnStore::new();
    let out = store.kiln(["build".as_ref(), ctx.as_os_str()]);
    assert_exit(&out, 1, "build with RUNN");
    let err = stderr_text(&out);
    assert!(err.contains("did you mean RUN"), "no suggestion in:\n{err}");
    assert!(err.contains("RUNN"), "the bad word is not shown:\n{err}");
    // `kiln parse` accepts unknown instructions, as BuildKit's parser does; `check`
    // validates them.
    let out = kiln_plain(&["check".as_ref(), ctx.join("Dockerfile").as_os_str()]);
    assert_exit(&out, 1, "check");
    assert!(stderr_text(&out).contains("did you mean RUN"));
}

#[test]
fn missing_dockerfile_fails() {
    let dir = temp_dir();
    let missing = dir.path().join("nope/Dockerfile");
    for cmd in ["parse", "check"] {
        let out = kiln_plain(&[cmd.as_ref(), missing.as_os_str()]);
        assert_exit(&out, 1, cmd);
        // miette wraps long lines, so look for the path without whitespace.
        let err: String = stderr_text(&out)
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '│')
            .collect();
        assert!(
            err.contains("nope/Dockerfile"),
            "{cmd}: the path is not named:\n{}",
            stderr_text(&out)
        );
    }
    let ctx = dir.path().join("empty-context");
    std::fs::create_dir(&ctx).expect("mkdir");
    let store = KilnStore::new();
    let out = store.kiln(["build".as_ref(), ctx.as_os_str()]);
    assert_exit(&out, 1, "build of a context without a Dockerfile");
    let out = store.kiln(["build".as_ref(), dir.path().join("no-context").as_os_str()]);
    assert_exit(&out, 1, "build of a missing context");
}

#[test]
fn directory_as_dockerfile_fails() {
    let dir = temp_dir();
    let out = kiln_plain(&["parse".as_ref(), dir.path().as_os_str()]);
    assert_exit(&out, 1, "parse of a directory");
    assert!(stderr_text(&out).contains("directory"));
}

#[test]
fn non_utf8_dockerfile_fails() {
    let dir = temp_dir();
    let path = dir.path().join("Dockerfile");
    write_file(&path, b"FROM scratch\nLABEL a=\xff\xfe\n", 0o644);
    let out = kiln_plain(&["parse".as_ref(), path.as_os_str()]);
    assert_exit(&out, 1, "parse of non-UTF-8 bytes");
    assert!(stderr_text(&out).contains("UTF-8"));
}

/// A file over kiln's 10 MiB limit is refused with exit 1.
#[test]
fn dockerfile_over_ten_megabytes_fails() {
    let dir = temp_dir();
    let path = dir.path().join("Dockerfile");
    let mut content = b"FROM scratch\nLABEL big=".to_vec();
    content.resize(10 * 1024 * 1024 + 1, b'a');
    content.push(b'\n');
    write_file(&path, &content, 0o644);
    let out = kiln_plain(&["parse".as_ref(), path.as_os_str()]);
    assert_exit(&out, 1, "parse of a Dockerfile over 10 MiB");
    assert!(
        out.stderr.len() < 64 * 1024,
        "the diagnostic is {} bytes long",
        out.stderr.len()
    );
}

/// A 9.5 MB file of one enormous line that is no instruction: exit 1, and the diagnostic
/// does not echo the megabytes back to the terminal.
#[test]
fn huge_line_gives_a_short_diagnostic() {
    let dir = temp_dir();
    let path = dir.path().join("Dockerfile");
    let content = vec![b'a'; 9_500_000];
    write_file(&path, &content, 0o644);
    for cmd in ["parse", "check"] {
        let out = kiln_plain(&[cmd.as_ref(), path.as_os_str()]);
        assert_exit(&out, 1, &format!("{cmd} of a 9.5 MB line"));
        assert!(
            out.stderr.len() < 64 * 1024,
            "{cmd}: the diagnostic is {} bytes long",
            out.stderr.len()
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    let store = KilnStore::new();
    for args in [
        vec!["build", "--no-such-flag", "."],
        vec!["build"],
        vec!["no-such-command"],
        vec!["build", "--progress", "fancy", "."],
        vec!["save"],
        vec!["save", "--compression", "brotli", "x"],
    ] {
        let out = store.kiln(&args);
        assert_exit(&out, 2, &format!("kiln {}", args.join(" ")));
        assert!(!stderr_text(&out).is_empty());
    }
}

/// Two COPY forms docker 20.10 accepts but later BuildKit refuses (and so does kiln).
#[test]
fn a_bad_source_date_epoch_is_an_error_naming_the_variable() {
    let dir = temp_dir();
    let ctx = context(dir.path(), "FROM scratch\nCOPY a /a\n", &[("a", "a")]);
    let rootfs = dir.path().join("rootfs");
    write_file(&rootfs.join("etc/hostname"), b"x\n", 0o644);
    let store = KilnStore::new();
    for (how, value) in [
        ("environment", " 5"),
        ("environment", "-1"),
        ("build-arg", "1.5"),
    ] {
        let mut build = store.cmd();
        build.arg("build").arg(&ctx);
        match how {
            "environment" => {
                build.env("SOURCE_DATE_EPOCH", value);
            }
            _ => {
                build
                    .arg("--build-arg")
                    .arg(format!("SOURCE_DATE_EPOCH={value}"));
            }
        }
        let out = build.output().unwrap();
        assert_exit(
            &out,
            1,
            &format!("build with SOURCE_DATE_EPOCH={value:?} ({how})"),
        );
        let err = stderr_text(&out);
        assert!(
            err.contains("SOURCE_DATE_EPOCH") && err.contains(&format!("{value:?}")),
            "{how} {value:?}:\n{err}"
        );
    }
    // `kiln import` reads the same variable through the same parser.
    let out = store
        .cmd()
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .args(["import".as_ref(), rootfs.as_os_str(), "base:1".as_ref()])
        .output()
        .unwrap();
    assert_exit(&out, 1, "import with a bad SOURCE_DATE_EPOCH");
    let err = stderr_text(&out);
    assert!(
        err.contains("invalid SOURCE_DATE_EPOCH \"yesterday\" from the environment"),
        "{err}"
    );
}

#[test]
fn copy_mistakes_fail_the_build() {
    require_peer!("busybox");
    let dir = temp_dir();
    let store = KilnStore::with_busybox();
    let cases = [
        (
            "FROM scratch\nCOPY a b /dst\n",
            "several sources into a destination without a trailing slash",
        ),
        (
            "FROM busybox:test\nCOPY --chown=nobody a /a\n",
            "a --chown user missing from the image's /etc/passwd",
        ),
    ];
    for (i, (dockerfile, what)) in cases.iter().enumerate() {
        let ctx = context(
            &dir.path().join(i.to_string()),
            dockerfile,
            &[("a", "a\n"), ("b", "b\n")],
        );
        let out = store.kiln(["build".as_ref(), ctx.as_os_str()]);
        assert_exit(&out, 1, what);
    }
}

// ---------------------------------------------------------------------------------------
// JSON shapes and checks.

#[test]
fn parse_json_has_buildkit_shape() {
    let dir = temp_dir();
    let path = dir.path().join("Dockerfile");
    write_file(
        &path,
        b"FROM busybox:test AS base\nCOPY --chown=1:1 a \\\n  /a\nCMD [\"sh\", \"-c\"]\nONBUILD RUN x\n",
        0o644,
    );
    let out = kiln_plain(&["parse".as_ref(), "--json".as_ref(), path.as_os_str()]);
    assert_exit(&out, 0, "parse --json");
    let v: Value = serde_json::from_slice(&out.stdout).expect("parse --json prints JSON");
    let list = v
        .as_array()
        .expect("a JSON array, one object per instruction");
    assert_eq!(list.len(), 4);
    for i in list {
        for key in [
            "cmd",
            "sub_cmd",
            "json",
            "flags",
            "value",
            "start_line",
            "end_line",
            "heredocs",
        ] {
            assert!(i.get(key).is_some(), "instruction without {key}: {i}");
        }
    }
    assert_eq!(
        list[0]["value"],
        serde_json::json!(["busybox:test", "AS", "base"])
    );
    assert_eq!(list[1]["flags"], serde_json::json!(["--chown=1:1"]));
    assert_eq!(list[1]["value"], serde_json::json!(["a", "/a"]));
    assert_eq!(
        (list[1]["start_line"].as_u64(), list[1]["end_line"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(list[2]["json"], true);
    assert_eq!(list[2]["value"], serde_json::json!(["sh", "-c"]));
    assert_eq!(
        list[3]["sub_cmd"].as_str().map(str::to_uppercase),
        Some("RUN".into())
    );
    assert_eq!(list[3]["value"], serde_json::json!(["x"]));
}

#[test]
fn check_reports_build_check_warnings() {
    let dir = temp_dir();
    let path = dir.path().join("Dockerfile");
    write_file(&path, b"FROM scratch AS Build\nCMD echo hi\n", 0o644);
    let out = kiln_plain(&["check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 0, "check with warnings");
    let err = stderr_text(&out);
    assert!(err.contains("StageNameCasing"), "{err}");
    assert!(err.contains("JSONArgsRecommended"), "{err}");
    assert!(err.contains("2 warnings"), "{err}");

    let clean = dir.path().join("Clean");
    write_file(&clean, b"FROM scratch AS build\nCMD [\"x\"]\n", 0o644);
    let out = kiln_plain(&["check".as_ref(), clean.as_os_str()]);
    assert_exit(&out, 0, "check of a clean file");
    let err = stderr_text(&out);
    assert!(!err.contains("StageNameCasing") && !err.contains("JSONArgsRecommended"));
    assert!(err.contains("0 warnings"), "{err}");
}

#[test]
fn check_directive_skips_rules_and_error_true_fails() {
    let dir = temp_dir();
    let path = dir.path().join("Dockerfile");
    // Quotes are removed before WorkdirRelativePath looks at the path.
    write_file(
        &path,
        b"FROM scratch\nWORKDIR \"/shared-dir-1\"\nEXPOSE 80/TcP\n",
        0o644,
    );
    let out = kiln_plain(&["check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 0, "check with a warning");
    let err = stderr_text(&out);
    assert!(!err.contains("WorkdirRelativePath"), "{err}");
    assert!(err.contains("ExposeProtoCasing"), "{err}");
    assert!(err.contains("1 warning"), "{err}");

    write_file(
        &path,
        b"# check=skip=ExposeProtoCasing;error=true\nFROM scratch\nEXPOSE 80/TcP\n",
        0o644,
    );
    let out = kiln_plain(&["check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 0, "check with the only rule skipped");
    assert!(stderr_text(&out).contains("0 warnings"));

    // CopyIgnoredFile reads the .dockerignore beside the Dockerfile; error=true fails.
    write_file(
        &path,
        b"# check=error=true\nFROM scratch\nCOPY secret.txt /\n",
        0o644,
    );
    write_file(&dir.path().join(".dockerignore"), b"secret.txt\n", 0o644);
    let out = kiln_plain(&["check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 1, "check with error=true and a finding");
    let err = stderr_text(&out);
    assert!(err.contains("CopyIgnoredFile"), "{err}");
    assert!(
        err.contains("lint violation found for rules: CopyIgnoredFile"),
        "{err}"
    );

    write_file(&path, b"# check=nonsense\nFROM scratch\n", 0o644);
    let out = kiln_plain(&["check".as_ref(), path.as_os_str()]);
    assert_exit(&out, 1, "check with a malformed directive");
    assert!(
        stderr_text(&out).contains("failed to parse check options"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn plan_json_has_nodes_with_keys() {
    let dir = temp_dir();
    let ctx = context(
        dir.path(),
        "FROM scratch\nCOPY a /a\nENV X=1\nWORKDIR /w\n",
        &[("a", "a\n")],
    );
    let out = kiln_plain(&["plan".as_ref(), "--json".as_ref(), ctx.as_os_str()]);
    assert_exit(&out, 0, "plan --json");
    let v: Value = serde_json::from_slice(&out.stdout).expect("plan --json prints JSON");
    let nodes = v["nodes"].as_array().expect("nodes array");
    assert!(
        nodes.len() >= 5,
        "scratch, context, copy, config, mkdir (+image): {v}"
    );
    let mut kinds = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["id"].as_u64(), Some(i as u64), "ids are positions");
        for key in ["kind", "inputs", "key", "hermetic", "reasons"] {
            assert!(n.get(key).is_some(), "node without {key}: {n}");
        }
        let kind = n["kind"].as_str().expect("kind is a string").to_string();
        if kind != "scratch" {
            assert!(
                n.get("definition").is_some(),
                "{kind} node without definition"
            );
        }
        let key = n["key"].as_str().expect("key is a string");
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        for input in n["inputs"].as_array().expect("inputs array") {
            assert!(
                input.as_u64().expect("input is an id") < i as u64,
                "inputs come first"
            );
        }
        assert!(n["hermetic"].is_boolean());
        assert!(n["reasons"].is_array());
        kinds.push(kind);
    }
    for k in ["scratch", "context", "copy", "config", "mkdir"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} node in {kinds:?}");
    }
    let keys: std::collections::BTreeSet<&str> =
        nodes.iter().filter_map(|n| n["key"].as_str()).collect();
    assert_eq!(keys.len(), nodes.len(), "cache keys are distinct");

    // Same plan again: same keys. Context content changed: the copy key changes.
    let again = kiln_plain(&["plan".as_ref(), "--json".as_ref(), ctx.as_os_str()]);
    assert_eq!(again.stdout, out.stdout, "plan is deterministic");
    write_file(&ctx.join("a"), b"changed\n", 0o644);
    let changed = kiln_plain(&["plan".as_ref(), "--json".as_ref(), ctx.as_os_str()]);
    assert_ne!(
        changed.stdout, out.stdout,
        "a changed file must change the keys"
    );
}

// ---------------------------------------------------------------------------------------
// Building.

fn build_id(store: &KilnStore, args: &[&std::ffi::OsStr], dir: &Path) -> String {
    let iid = dir.join(format!("iid-{}", std::process::id()));
    let _ = std::fs::remove_file(&iid);
    let mut full: Vec<&std::ffi::OsStr> =
        vec!["build".as_ref(), "--iidfile".as_ref(), iid.as_os_str()];
    full.extend_from_slice(args);
    store.kiln_ok(&full);
    std::fs::read_to_string(&iid)
        .expect("iidfile written")
        .trim()
        .to_string()
}

#[test]
fn build_reads_dockerfile_from_stdin() {
    require_peer!("busybox");
    let dir = temp_dir();
    let dockerfile = "FROM busybox:test\nCOPY a /a\nCMD [\"/bin/cat\", \"/a\"]\n";
    let ctx = context(
        dir.path(),
        "FROM scratch\n# not this one\n",
        &[("a", "from stdin\n")],
    );
    let store = KilnStore::with_busybox();
    let out = run_with_stdin(
        store
            .cmd()
            .args(["build", "-f", "-", "-t", "stdin:1", "--progress", "plain"])
            .arg(&ctx),
        dockerfile.as_bytes(),
    );
    assert_success("kiln build -f - <Dockerfile", &out);
    let inspect: Value = serde_json::from_slice(&store.kiln_ok(["inspect", "stdin:1"]).stdout)
        .expect("inspect JSON");
    let first = if inspect.is_array() {
        &inspect[0]
    } else {
        &inspect
    };
    assert_eq!(
        first["Config"]["Cmd"],
        serde_json::json!(["/bin/cat", "/a"])
    );

    // The same Dockerfile from a file elsewhere gives the same image.
    let file = dir.path().join("elsewhere/Dockerfile.app");
    write_file(&file, dockerfile.as_bytes(), 0o644);
    let id = build_id(
        &store,
        &["-f".as_ref(), file.as_os_str(), ctx.as_os_str()],
        dir.path(),
    );
    assert_eq!(id, store.image_id("stdin:1"));
}

#[test]
fn iidfile_names_the_built_image() {
    let dir = temp_dir();
    let ctx = context(dir.path(), "FROM scratch\nCOPY a /a\n", &[("a", "a\n")]);
    let store = KilnStore::new();
    let id = build_id(
        &store,
        &["-t".as_ref(), "iid:1".as_ref(), ctx.as_os_str()],
        dir.path(),
    );
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "iidfile holds {id:?}"
    );
    assert_eq!(store.image_id("iid:1"), id);
    let listed = stdout_text(&store.kiln_ok(["images", "-q"]));
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert!(
        listed.lines().any(|l| l.trim() == short),
        "images -q does not list {short}:\n{listed}"
    );
    // The ID is the sha256 of the config kiln saves.
    let tar = dir.path().join("iid.tar");
    store.save("iid:1", &tar);
    assert_eq!(read_saved_image(&tar).id(), id);
}

#[test]
fn quiet_build_prints_only_the_image_id() {
    let dir = temp_dir();
    let ctx = context(dir.path(), "FROM scratch\nCOPY a /a\n", &[("a", "a\n")]);
    let store = KilnStore::new();
    let out = store.kiln_ok([
        "build".as_ref(),
        "-q".as_ref(),
        "-t".as_ref(),
        "quiet:1".as_ref(),
        ctx.as_os_str(),
    ]);
    assert_eq!(
        stdout_text(&out),
        format!("{}\n", store.image_id("quiet:1")),
        "docker build -q prints the image ID and nothing else on stdout"
    );
    assert_eq!(stderr_text(&out), "", "no progress with -q");
}

#[test]
fn build_output_flag_writes_the_saved_tarball() {
    let dir = temp_dir();
    let ctx = context(dir.path(), "FROM scratch\nCOPY a /a\n", &[("a", "a\n")]);
    let store = KilnStore::new();
    let out = dir.path().join("out.tar");
    store.kiln_ok([
        "build".as_ref(),
        "-t".as_ref(),
        "out:1".as_ref(),
        "-o".as_ref(),
        format!("type=docker,dest={}", out.display()).as_ref(),
        ctx.as_os_str(),
    ]);
    let saved = dir.path().join("saved.tar");
    store.save("out:1", &saved);
    assert!(
        std::fs::read(&out).expect("-o wrote the file") == std::fs::read(&saved).expect("saved"),
        "build -o and kiln save wrote different tarballs"
    );
}

/// A second build hits the cache for every step and gives the same image; --no-cache
/// rebuilds and still gives the same image.
#[test]
fn second_build_is_cached_and_identical() {
    require_peer!("busybox");
    let dir = temp_dir();
    let ctx = context(
        dir.path(),
        "FROM busybox:test\nCOPY a /a\nWORKDIR /w\nCOPY b /w/b\nENV X=1\n",
        &[("a", "a\n"), ("b", "b\n")],
    );
    let store = KilnStore::with_busybox();
    let build = |extra: &[&str]| -> Value {
        let mut args = vec!["build", "--progress", "json"];
        args.extend_from_slice(extra);
        let ctx_s = ctx.to_string_lossy().into_owned();
        args.push(&ctx_s);
        let out = store.kiln_ok(&args);
        let text = stdout_text(&out);
        let last = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "image")
            .unwrap_or_else(|| panic!("no image event in --progress json output:\n{text}"));
        last
    };
    let first = build(&[]);
    assert_eq!(first["cached"], 0, "first build: {first}");
    let steps = first["steps"].as_u64().expect("steps");
    assert!(steps >= 3);
    let second = build(&[]);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(
        second["cached"].as_u64(),
        second["steps"].as_u64(),
        "second build: {second}"
    );
    let third = build(&["--no-cache"]);
    assert_eq!(third["id"], first["id"]);
    assert_eq!(third["cached"], 0, "--no-cache: {third}");
    // Changing a file invalidates the steps from its COPY on.
    write_file(&ctx.join("b"), b"changed\n", 0o644);
    let fourth = build(&[]);
    assert_ne!(fourth["id"], first["id"]);
    assert!(fourth["cached"].as_u64() < fourth["steps"].as_u64());
}

// ---------------------------------------------------------------------------------------
// Image commands.

#[test]
fn images_inspect_history_tag_rmi_prune() {
    require_peer!("busybox");
    let dir = temp_dir();
    let ctx = context(
        dir.path(),
        "FROM busybox:test\nCOPY a /a\nENV X=1\nLABEL l=v\n",
        &[("a", "a\n")],
    );
    let store = KilnStore::with_busybox();
    store.kiln_ok([
        "build".as_ref(),
        "-t".as_ref(),
        "app:1.0".as_ref(),
        ctx.as_os_str(),
    ]);
    let id = store.image_id("app:1.0");

    let images = stdout_text(&store.kiln_ok(["images"]));
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("app ") && l.contains("1.0")),
        "kiln images:\n{images}"
    );
    assert!(images
        .lines()
        .any(|l| l.starts_with("busybox ") && l.contains("test")));

    let inspect: Value =
        serde_json::from_slice(&store.kiln_ok(["inspect", "app:1.0"]).stdout).expect("JSON");
    let first = if inspect.is_array() {
        &inspect[0]
    } else {
        &inspect
    };
    assert_eq!(first["Id"], id.as_str());
    assert_eq!(first["Config"]["Labels"]["l"], "v");
    assert_eq!(first["Layers"].as_array().map(|l| l.len()), Some(2));
    // By ID and by short ID too.
    assert_eq!(store.image_id(&id), id);
    assert_eq!(
        store.image_id(&id["sha256:".len().."sha256:".len() + 12]),
        id
    );

    let history = stdout_text(&store.kiln_ok(["history", "--no-trunc", "app:1.0"]));
    for text in ["COPY a /a", "ENV X=1", "LABEL l=v"] {
        assert!(history.contains(text), "history lacks {text}:\n{history}");
    }

    store.kiln_ok(["tag", "app:1.0", "app:latest"]);
    assert_eq!(store.image_id("app:latest"), id);
    let out = store.kiln(["tag", "nosuch:1", "x:1"]);
    assert_exit(&out, 1, "tag of a missing image");

    store.kiln_ok(["rmi", "app:1.0"]);
    assert!(!store.kiln(["inspect", "app:1.0"]).status.success());
    assert_eq!(
        store.image_id("app:latest"),
        id,
        "the other tag still resolves"
    );
    let out = store.kiln(["rmi", "app:1.0"]);
    assert_exit(&out, 1, "rmi of a removed tag");
    store.kiln_ok(["rmi", "app:latest"]);

    // The image's own layer is now garbage; the base's is not.
    let before = store.snapshot();
    let pruned = store.kiln_ok(["prune"]);
    let after = store.snapshot();
    assert!(
        after.len() < before.len(),
        "prune removed nothing:\n{}",
        stdout_text(&pruned)
    );
    let tar = dir.path().join("bb.tar");
    store.save(BUSYBOX, &tar);
    assert_eq!(
        read_saved_image(&tar).diff_ids(),
        vec![format!("sha256:{}", sha256_file(&busybox().tarball))]
    );
    let again = store.kiln_ok(["prune"]);
    assert_eq!(
        store.snapshot(),
        after,
        "a second prune changed the store: {}",
        stdout_text(&again)
    );
}

#[test]
fn import_of_directory_matches_import_of_tarball() {
    require_peer!("busybox");
    let store = KilnStore::new();
    let bb = busybox();
    store.kiln_ok([
        "import".as_ref(),
        bb.tarball.as_os_str(),
        "from-tar:1".as_ref(),
    ]);
    store.kiln_ok([
        "import".as_ref(),
        bb.rootfs.as_os_str(),
        "from-dir:1".as_ref(),
    ]);
    let dir = temp_dir();
    let a = dir.path().join("a.tar");
    let b = dir.path().join("b.tar");
    store.save("from-tar:1", &a);
    store.save("from-dir:1", &b);
    let problems = diff_trees(
        "tarball import",
        &read_saved_image(&a).fs(),
        "directory import",
        &read_saved_image(&b).fs(),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Loading refuses bad input and leaves the store as it was.

/// A store with busybox imported, and a snapshot of it.
fn store_and_snapshot() -> (KilnStore, std::collections::BTreeMap<String, String>) {
    let store = KilnStore::with_busybox();
    let snap = store.snapshot();
    (store, snap)
}

fn assert_load_refused(
    store: &KilnStore,
    before: &std::collections::BTreeMap<String, String>,
    tarball: &Path,
    what: &str,
) {
    let out = store.kiln(["load".as_ref(), "-i".as_ref(), tarball.as_os_str()]);
    assert_exit(&out, 1, what);
    assert!(
        !stderr_text(&out).trim().is_empty(),
        "{what}: no diagnostic"
    );
    let after = store.snapshot();
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| format!("changed or removed: {k}"))
        .chain(
            after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .map(|k| format!("added: {k}")),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: the store changed\n{}",
        changed.join("\n")
    );
}

/// A saved image: the busybox base plus one small layer, as `kiln save` writes it.
fn saved_image(dir: &Path) -> Vec<u8> {
    let store = KilnStore::with_busybox();
    let ctx = context(dir, "FROM busybox:test\nCOPY a /a\n", &[("a", "payload\n")]);
    store.kiln_ok([
        "build".as_ref(),
        "-t".as_ref(),
        "victim:1".as_ref(),
        ctx.as_os_str(),
    ]);
    let tar = dir.join("victim.tar");
    store.save("victim:1", &tar);
    std::fs::read(&tar).expect("read")
}

#[test]
fn load_refuses_truncated_tarball() {
    require_peer!("busybox");
    let dir = temp_dir();
    let bytes = saved_image(dir.path());
    // Cuts inside an entry: in the middle of the big layer, inside manifest.json's data,
    // and inside the first header. (A cut that drops only the optional trailing
    // `repositories` entry and the end-of-archive blocks leaves every blob verifiable.)
    let manifest_json = bytes
        .windows(br#"[{"Config":"#.len())
        .rposition(|w| w == br#"[{"Config":"#)
        .expect("manifest.json data in the tarball");
    let (store, before) = store_and_snapshot();
    for (i, len) in [bytes.len() / 2, manifest_json + 10, 700]
        .into_iter()
        .enumerate()
    {
        let path = dir.path().join(format!("truncated-{i}.tar"));
        std::fs::write(&path, &bytes[..len]).expect("write");
        assert_load_refused(
            &store,
            &before,
            &path,
            &format!(
                "load of a tarball cut at {len} of {} (manifest.json data at {manifest_json})",
                bytes.len()
            ),
        );
    }
}

#[test]
fn load_refuses_flipped_byte_in_a_layer() {
    require_peer!("busybox");
    let dir = temp_dir();
    let bytes = saved_image(dir.path());
    // Flip a byte inside the busybox binary, the largest blob's data.
    let outer = OuterTar::from_bytes(&bytes);
    let image = outer.images().remove(0);
    let biggest = image
        .layer_blobs
        .iter()
        .max_by_key(|b| b.len())
        .expect("a layer");
    let needle = &biggest[biggest.len() / 2..biggest.len() / 2 + 64];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("layer bytes inside the tarball");
    let mut flipped = bytes.clone();
    flipped[at + 10] ^= 0x01;
    let path = dir.path().join("flipped.tar");
    std::fs::write(&path, &flipped).expect("write");
    let (store, before) = store_and_snapshot();
    assert_load_refused(
        &store,
        &before,
        &path,
        "load with a flipped byte in a layer",
    );
}

/// A docker-archive whose single layer holds `../../etc/x`, with every digest correct.
fn escaping_layer_archive() -> Vec<u8> {
    let layer = TarBuilder::new()
        .file("ok.txt", b"fine\n", 0o644, 0, 0)
        .raw_file(b"../../etc/x", b"escaped\n")
        .finish();
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hostile"}]
    }))
    .expect("config JSON");
    let config_name = format!("{}.json", sha256_hex(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["hostile:1"],
        "Layers": ["layer/layer.tar"]
    }]))
    .expect("manifest JSON");
    TarBuilder::new()
        .file(&config_name, &config, 0o644, 0, 0)
        .dir("layer/", 0o755, 0, 0)
        .file("layer/layer.tar", &layer, 0o644, 0, 0)
        .file("manifest.json", &manifest, 0o644, 0, 0)
        .finish()
}

#[test]
fn load_refuses_layer_entry_escaping_the_root() {
    require_peer!("busybox");
    let dir = temp_dir();
    let path = dir.path().join("hostile.tar");
    std::fs::write(&path, escaping_layer_archive()).expect("write");
    let (store, before) = store_and_snapshot();
    let escape_target = store.root().join("../../etc/x");
    assert_load_refused(&store, &before, &path, "load of a layer with ../../etc/x");
    assert!(
        !escape_target.exists(),
        "{} was written",
        escape_target.display()
    );
    assert!(!store.kiln(["inspect", "hostile:1"]).status.success());
}

#[test]
fn load_refuses_archive_entry_escaping_the_root() {
    require_peer!("busybox");
    let dir = temp_dir();
    let mut bytes = saved_image(dir.path());
    // Append a hostile entry to a valid archive (before its end-of-archive blocks).
    let hostile = TarBuilder::new()
        .raw_file(b"../../etc/x", b"escaped\n")
        .finish();
    let end = bytes.len() - 1024;
    bytes.truncate(end);
    bytes.extend_from_slice(&hostile);
    let path = dir.path().join("hostile-outer.tar");
    std::fs::write(&path, &bytes).expect("write");
    let (store, before) = store_and_snapshot();
    let cwd = dir.path().join("a/b");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let out = run(store
        .cmd()
        .current_dir(&cwd)
        .args(["load", "-i"])
        .arg(&path));
    assert_exit(&out, 1, "load of an archive with a ../../etc/x entry");
    assert_eq!(store.snapshot(), before, "the store changed");
    assert!(!dir.path().join("etc/x").exists());
    assert!(!store.root().join("../../etc/x").exists());
}

// ---------------------------------------------------------------------------------------
// Hostile input.

/// 30 levels of ARGs that double the previous one: a clear error at the level that crosses
/// the bound, quickly, instead of gigabytes of memory.
#[test]
fn hostile_doubling_args_stop_at_the_bound() {
    let dir = temp_dir();
    let mut dockerfile = String::from("FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n");
    for level in 1..=30 {
        let prev = level - 1;
        dockerfile.push_str(&format!("ARG A{level}=${{A{prev}}}${{A{prev}}}\n"));
    }
    let ctx = context(dir.path(), &dockerfile, &[]);
    let started = std::time::Instant::now();
    let out = kiln_plain(&["check".as_ref(), ctx.join("Dockerfile").as_os_str()]);
    assert_exit(&out, 1, "check of doubling ARGs");
    let err = stderr_text(&out);
    assert!(err.contains("more than 1 MiB"), "{err}");
    // A16 is exactly 1 MiB; A17 (line 19) crosses the bound.
    assert!(err.contains("Dockerfile:19:"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// A build whose outputs cannot be written leaves no tag, and the message names the path.
#[test]
fn hostile_failed_outputs_leave_no_tag() {
    let dir = temp_dir();
    let ctx = context(dir.path(), "FROM scratch\nCOPY a /a\n", &[("a", "a")]);
    let store = KilnStore::new();
    let missing = dir.path().join("no/such/dir/iid");
    let out = store.kiln([
        "build".as_ref(),
        "-t".as_ref(),
        "hostile:iid".as_ref(),
        "--iidfile".as_ref(),
        missing.as_os_str(),
        ctx.as_os_str(),
    ]);
    assert_exit(&out, 1, "build with --iidfile in a missing directory");
    // miette wraps long lines: compare without the line breaks and frame characters.
    let flat = |text: String| text.replace(['\n', '│'], "").replace("  ", "");
    let err = flat(stderr_text(&out));
    assert!(
        err.contains("kiln::build::iidfile") && err.contains("such/dir/iid"),
        "{err}"
    );
    let dest = format!("type=docker,dest={}", dir.path().display());
    let out = store.kiln([
        "build".as_ref(),
        "-t".as_ref(),
        "hostile:dest".as_ref(),
        "-o".as_ref(),
        dest.as_ref(),
        ctx.as_os_str(),
    ]);
    assert_exit(&out, 1, "build with -o naming a directory");
    let err = flat(stderr_text(&out));
    assert!(
        err.contains("kiln::save::destination") && err.contains("directory"),
        "{err}"
    );
    let images = stdout_text(&store.kiln_ok(["images"]));
    assert!(
        !images.contains("hostile"),
        "a failed build left a tag:\n{images}"
    );
}

#[test]
fn completion_scripts_and_man_pages_come_from_the_cli() {
    let bash = stdout_text(&kiln_plain(&["completion".as_ref(), "bash".as_ref()]));
    for word in [
        "_kiln()",
        "build",
        "verify-provenance",
        "--iidfile",
        "--cache-from",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word:?}");
    }
    let fish = stdout_text(&kiln_plain(&["completion".as_ref(), "fish".as_ref()]));
    assert!(
        fish.contains("complete -c kiln"),
        "fish completion:\n{fish}"
    );
    let bad = kiln_plain(&["completion".as_ref(), "tcsh".as_ref()]);
    assert_exit(&bad, 2, "an unknown shell is bad usage");

    let page = stdout_text(&kiln_plain(&["man".as_ref()]));
    assert!(
        page.contains(".TH kiln 1") && page.contains(".SH NAME"),
        "kiln(1):\n{page}"
    );
    let dir = temp_dir();
    let pages = dir.path().join("man1");
    let wrote = kiln_plain(&["man".as_ref(), "--dir".as_ref(), pages.as_os_str()]);
    assert_exit(&wrote, 0, "kiln man --dir");
    let help = stdout_text(&kiln_plain(&["--help".as_ref()]));
    // Every command `kiln --help` lists has its page, and the page documents its flags.
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 20, "commands from --help: {commands:?}");
    for c in &commands {
        let path = pages.join(format!("kiln-{c}.1"));
        assert!(path.is_file(), "no page {}", path.display());
    }
    let build = std::fs::read_to_string(pages.join("kiln-build.1")).expect("kiln-build.1");
    assert!(
        build.contains(".TH kiln-build 1") && build.contains("iidfile"),
        "{build}"
    );
}
