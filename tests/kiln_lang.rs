//! The kiln language end to end: a `.kiln` program and a Dockerfile that describe the same
//! image build to the same image ID (config, history and layers byte for byte), from scratch,
//! across stages, and over the busybox base with RUN steps; `kiln check` reports every error
//! and exits 1; `kiln build` selects exported targets by name.

use crate::common;

use std::path::Path;

use common::{stderr_text, temp_dir, write_file, KilnStore};

/// Build `-f FILE` in `ctx` (with `--target` when given) and return the image ID.
fn build(store: &KilnStore, ctx: &Path, file: &str, target: Option<&str>) -> String {
    build_with(store, ctx, file, target, &[])
}

/// [`build`] with more flags (`--build-arg K=V`).
fn build_with(
    store: &KilnStore,
    ctx: &Path,
    file: &str,
    target: Option<&str>,
    flags: &[&str],
) -> String {
    let iid = ctx.join(format!("{file}.iid"));
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.splice(
        0..0,
        [
            "build".to_string(),
            "--progress".into(),
            "plain".into(),
            "--network".into(),
            "none".into(),
            "--iidfile".into(),
            iid.display().to_string(),
            "-f".into(),
            ctx.join(file).display().to_string(),
        ],
    );
    if let Some(t) = target {
        args.push("--target".into());
        args.push(t.into());
    }
    args.push(ctx.display().to_string());
    store.kiln_ok(&args);
    let id = std::fs::read_to_string(&iid).unwrap().trim().to_string();
    std::fs::remove_file(&iid).unwrap();
    id
}

/// A context holding both descriptions and the files; `.dockerignore` keeps the iidfiles
/// out of it.
fn pair(dockerfile: &str, program: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let ctx = temp_dir();
    write_file(&ctx.path().join("Dockerfile"), dockerfile.as_bytes(), 0o644);
    write_file(&ctx.path().join("build.kiln"), program.as_bytes(), 0o644);
    write_file(&ctx.path().join(".dockerignore"), b"*.iid\n", 0o644);
    for (name, body) in files {
        write_file(&ctx.path().join(name), body, 0o644);
    }
    ctx
}

#[test]
fn a_program_and_its_dockerfile_build_the_same_image() {
    let store = KilnStore::new();
    let ctx = pair(
        "FROM scratch\nCOPY package.json package-lock.json /app/\nENV NODE_ENV=production\nCOPY --exclude=node_modules . /app/\nWORKDIR /app\nEXPOSE 3000\nCMD [\"node\", \"server.js\"]\n",
        r#"fn node_app(src: Files, port: Int = 3000) -> Image {
  scratch()
    |> copy(src.only(["package.json", "package-lock.json"]), to: "/app/")
    |> env(NODE_ENV: "production")
    |> copy(src.except(["node_modules"]), to: "/app/")
    |> workdir("/app")
    |> expose(port)
    |> cmd(["node", "server.js"])
}
export app = node_app(context("."))
"#,
        &[
            ("package.json", b"{\"name\":\"demo\"}\n"),
            ("package-lock.json", b"{}\n"),
            ("server.js", b"console.log('hi')\n"),
            ("node_modules/x/index.js", b"x\n"),
        ],
    );
    let a = build(&store, ctx.path(), "Dockerfile", None);
    let b = build(&store, ctx.path(), "build.kiln", None);
    assert_eq!(a, b);
}

#[test]
fn a_multi_stage_program_builds_the_dockerfiles_image() {
    let store = KilnStore::new();
    let ctx = pair(
        "FROM scratch AS build\nCOPY src /src\nWORKDIR /src\nENV A=1\n\nFROM scratch\nCOPY --from=build /src /app\nLABEL a=b\nUSER 1000\nENTRYPOINT [\"/app/x\"]\n",
        r#"let build = scratch() |> copy(context("src"), to: "/src") |> workdir("/src") |> env(A: "1")
export builder = build
export app = scratch()
  |> copy(files(build, "/src"), to: "/app")
  |> label(a: "b")
  |> user("1000")
  |> entrypoint(["/app/x"])
"#,
        &[("src/x", b"#!/bin/sh\n"), ("src/lib/y.txt", b"y\n")],
    );
    let a = build(&store, ctx.path(), "Dockerfile", None);
    let b = build(&store, ctx.path(), "build.kiln", Some("app"));
    assert_eq!(a, b);
    // The other export is another image: the builder stage.
    let c = build(&store, ctx.path(), "build.kiln", Some("builder"));
    assert_ne!(b, c);
}

/// A Dockerfile whose final stage declares a global ARG again and a RUN step reads it, and
/// the same image in the kiln language.
const ARG_DOCKERFILE: &str = "ARG VERSION=1.0\nFROM busybox:test\nARG VERSION\nRUN echo \"version $VERSION\" > /version\nCMD [\"cat\", \"/version\"]\n";
const ARG_PROGRAM: &str = r#"let version = arg("VERSION", default: "1.0")
export app = image("busybox:test")
  |> build_arg("VERSION", global: version)
  |> run("echo \"version $VERSION\" > /version")
  |> cmd(["cat", "/version"])
"#;

/// A stage's build argument used by a RUN step: `build_arg()` and the Dockerfile's stage
/// `ARG` give the step the same environment ($VERSION), history and key, so one image ID,
/// with the global default and with `--build-arg`; the step's output shows the value.
#[test]
fn a_build_arg_read_by_run_builds_the_dockerfiles_image() {
    let store = KilnStore::with_busybox();
    let ctx = pair(ARG_DOCKERFILE, ARG_PROGRAM, &[]);
    let mut ids = Vec::new();
    for (flags, want) in [
        (&[][..], "version 1.0\n"),
        (&["--build-arg", "VERSION=2.5"][..], "version 2.5\n"),
    ] {
        let a = build_with(&store, ctx.path(), "Dockerfile", None, flags);
        let b = build_with(&store, ctx.path(), "build.kiln", None, flags);
        assert_eq!(a, b, "{flags:?}");
        let out = store.kiln_ok(["run", "--rm", "--network", "none", b.as_str()]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        ids.push(b);
    }
    assert_ne!(
        ids[0], ids[1],
        "the build argument is in the RUN step's key"
    );
}

/// The program with `build_arg()` against `docker build` of the Dockerfile: the same files,
/// config and history after the base's (`ARG VERSION`, `RUN |1 VERSION=... /bin/sh -c ...`;
/// the CMD entry's text is dockerd 20.10's own), with and without `--build-arg`.
#[test]
fn a_build_arg_program_gives_the_image_docker_builds() {
    require_peer!("docker", "busybox");
    common::docker_busybox();
    let store = KilnStore::with_busybox();
    let ctx = pair(ARG_DOCKERFILE, ARG_PROGRAM, &[]);
    let work = temp_dir();
    let base_len = |image: &common::SavedImage| {
        common::history_fields(&image.config)
            .iter()
            .take_while(|(created_by, _)| !created_by.starts_with("ARG "))
            .count()
    };
    for flags in [&[][..], &["--build-arg", "VERSION=2.5"][..]] {
        let tag = "kiln-e2e/lang-build-arg:1";
        common::run_ok(
            common::docker()
                .args(["build", "--network", "none", "-q", "-t", tag])
                .args(flags)
                .arg(ctx.path()),
        );
        let docker_tar = work.path().join("docker.tar");
        common::docker_save(tag, &docker_tar);
        common::docker_rmi(tag);
        let id = build_with(&store, ctx.path(), "build.kiln", None, flags);
        let kiln_tar = work.path().join("kiln.tar");
        store.save(&id, &kiln_tar);
        let (d, k) = (
            common::read_saved_image(&docker_tar),
            common::read_saved_image(&kiln_tar),
        );
        let found = common::diff_images("docker", &d, base_len(&d), "kiln", &k, base_len(&k));
        // dockerd 20.10's BuildKit writes a CMD's history as Go prints a list; kiln writes
        // the JSON current BuildKit writes (tests/differential_run.rs lists such
        // differences the same way). Nothing else may differ.
        let cmd_text = "history[+2]: docker has \"CMD [\\\"cat\\\" \\\"/version\\\"]\" empty_layer=true, kiln has \"CMD [\\\"cat\\\",\\\"/version\\\"]\" empty_layer=true";
        let others: Vec<&String> = found.iter().filter(|p| p.as_str() != cmd_text).collect();
        assert!(others.is_empty(), "{flags:?}: {found:#?}");
        let history = common::history_fields(&k.config);
        assert_eq!(history[base_len(&k)].0, "ARG VERSION");
    }
}

#[test]
fn run_steps_over_a_base_image_build_the_dockerfiles_image() {
    let store = KilnStore::with_busybox();
    let ctx = pair(
        "FROM busybox:test\nRUN echo hi > /greeting\nWORKDIR /srv\nRUN [\"/bin/sh\", \"-c\", \"cp /greeting ./copy\"]\nCMD cat /srv/copy\n",
        r#"export app = image("busybox:test")
  |> run("echo hi > /greeting")
  |> workdir("/srv")
  |> run(["/bin/sh", "-c", "cp /greeting ./copy"])
  |> cmd("cat /srv/copy")
"#,
        &[],
    );
    let a = build(&store, ctx.path(), "Dockerfile", None);
    let b = build(&store, ctx.path(), "build.kiln", None);
    assert_eq!(a, b);
}

#[test]
fn kiln_check_reports_every_error_and_fails() {
    let store = KilnStore::new();
    let dir = temp_dir();
    let prog = dir.path().join("build.kiln");
    write_file(
        &prog,
        b"import std.users\nexport app = scratch() |> expose(\"80\") |> users.runtime_usr()\nexport web = scratch() |> copy(context())\n",
        0o644,
    );
    let out = store.kiln(["check".as_ref(), prog.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(err.contains("3 errors in the kiln program"), "{err}");
    assert!(err.contains("did you mean runtime_user?"), "{err}");
    assert!(err.contains("expected Int, found String"), "{err}");
    assert!(err.contains("missing argument to: Path"), "{err}");

    write_file(
        &prog,
        b"import std.users\nexport app = scratch() |> users.runtime_user()\n",
        0o644,
    );
    let out = store.kiln(["check".as_ref(), dir.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    assert!(stderr_text(&out).contains("ok (2 files, exported target: app)"));
    assert!(stderr_text(&out).contains("app: hermetic"));

    // Lowering every export finds what only evaluation can, and each target's purity.
    write_file(
        &prog,
        b"export a = scratch() |> copy(text(\"x\"), to: \"/x\", mode: \"99z\")\nexport b = image(\"alpine:3\") |> run(\"true\", mounts: [tmpfs(\"rel\")])\n",
        0o644,
    );
    let out = store.kiln(["check".as_ref(), prog.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(err.contains("2 errors in the kiln program"), "{err}");
    assert!(err.contains("invalid chmod value \"99z\""), "{err}");
    assert!(
        err.contains("mount target \"rel\" is not absolute"),
        "{err}"
    );
    write_file(
        &prog,
        b"export b = image(\"alpine:3\") |> run(\"true\", network: false)\n",
        0o644,
    );
    let out = store.kiln(["check".as_ref(), prog.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out)
            .contains("b: not hermetic: base image alpine:3 is named without a digest"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn build_hermetic_refuses_an_impure_target_and_names_the_chain() {
    let store = KilnStore::with_busybox();
    let ctx = temp_dir();
    write_file(
        &ctx.path().join("impure.kiln"),
        b"export app = image(\"busybox:test\") |> run(\"echo hi > /x\", network: false) |> env(A: \"1\")\n",
        0o644,
    );
    write_file(
        &ctx.path().join("pure.kiln"),
        b"export app = scratch() |> copy(text(\"hi\\n\"), to: \"/greeting\") |> env(A: \"1\")\n",
        0o644,
    );
    let run = |file: &str| {
        store.kiln([
            "build".as_ref(),
            "--hermetic".as_ref(),
            "--progress".as_ref(),
            "plain".as_ref(),
            "-f".as_ref(),
            ctx.path().join(file).as_os_str(),
            ctx.path().as_os_str(),
        ])
    };
    let out = run("impure.kiln");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(err.contains("the target is not hermetic"), "{err}");
    assert!(
        err.contains("base image busybox:test is named without a"),
        "{err}"
    );
    // From the target's image down to the base image, through the steps on it.
    let image = err.find("image (stage app)").unwrap();
    let env = err.find("ENV A=1").unwrap();
    let base = err.find("FROM busybox:test").unwrap();
    assert!(image < env && env < base, "{err}");
    let out = run("pure.kiln");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}

#[test]
fn plan_json_shows_hermeticity_per_node_of_a_program() {
    let store = KilnStore::new();
    let ctx = temp_dir();
    write_file(&ctx.path().join("a.txt"), b"a\n", 0o644);
    write_file(
        &ctx.path().join("build.kiln"),
        b"export app = scratch()\n  |> copy(context().only([\"a.txt\"]), to: \"/a.txt\")\n  |> run([\"/fetch\"], network: true)\n  |> env(A: \"1\")\n",
        0o644,
    );
    let out = store.kiln_ok([
        "plan".as_ref(),
        "--json".as_ref(),
        "-f".as_ref(),
        ctx.path().join("build.kiln").as_os_str(),
        ctx.path().as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let by_kind = |kind: &str| {
        nodes
            .iter()
            .find(|n| n["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} node: {v}"))
    };
    for pure in ["scratch", "context", "copy"] {
        assert_eq!(by_kind(pure)["hermetic"], true, "{pure}: {v}");
        assert_eq!(by_kind(pure)["reasons"], serde_json::json!([]), "{pure}");
    }
    let run = by_kind("run");
    assert_eq!(run["hermetic"], false);
    let reasons = run["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("network")),
        "{run}"
    );
    // Everything built on the networked step is impure through it.
    let config = by_kind("config");
    assert_eq!(config["hermetic"], false, "{config}");
    assert_eq!(by_kind("image")["hermetic"], false);
}

/// Every example under examples/ built from its Dockerfile and from its build.kiln to one
/// image ID, then run. The base is examples/hello/make-base.sh's (the machine's busybox,
/// `kiln-example/busybox:1`). The Node.js and Python examples name registry images
/// (`node:20-alpine`, `node:14.16.1`, `python:3.12-slim`) and need node, npm and python:
/// installing those (a Debian base and apt) would take the network and minutes, so here those
/// names are that busybox base with stub `node`, `npm` and `python` scripts (each prints its
/// arguments and the first line of the script it is given; the `npm install` stub writes
/// node_modules/.installed). The build and the image's wiring (files, workdir, user,
/// entrypoint and command, environment) are the examples' own; only the interpreter is a stub.
/// tests/runtimes.rs runs the Node.js and Python examples on real interpreters (a Debian
/// base, with the network).
#[test]
fn every_example_builds_one_image_from_both_files_and_runs() {
    require_peer!("busybox");
    let store = KilnStore::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut base = std::process::Command::new("sh");
    base.arg(repo.join("examples/hello/make-base.sh"))
        .env("KILN", common::kiln_bin())
        .env("KILN_ROOT", store.root());
    common::run_ok(&mut base);
    let stubs = temp_dir();
    let stub = "#!/bin/sh\necho \"$(basename \"$0\") stub in $(pwd) as $(id -u): $*\"\n[ -f \"$1\" ] && head -n 1 \"$1\"\ntrue\n";
    write_file(
        &stubs.path().join("Dockerfile"),
        b"FROM kiln-example/busybox:1\nCOPY node npm python /usr/local/bin/\n",
        0o644,
    );
    for name in ["node", "python"] {
        write_file(&stubs.path().join(name), stub.as_bytes(), 0o755);
    }
    write_file(
        &stubs.path().join("npm"),
        b"#!/bin/sh\nmkdir -p node_modules && echo \"$*\" > node_modules/.installed\n",
        0o755,
    );
    store.kiln_ok([
        "build".as_ref(),
        "--network".as_ref(),
        "none".as_ref(),
        "-t".as_ref(),
        "kiln-stub/interpreters:1".as_ref(),
        stubs.path().as_os_str(),
    ]);
    for name in ["node:20-alpine", "node:14.16.1", "python:3.12-slim"] {
        store.kiln_ok(["tag", "kiln-stub/interpreters:1", name]);
    }
    // (example, arguments to kiln run after the image, what it prints)
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "hello",
            &[],
            "hello from kiln: 2 files in /srv/www, checksummed at build time\n",
        ),
        ("multi-stage", &["kiln"], "hello, kiln (greet 1.0)\n"),
        (
            "node-web",
            &[],
            "node stub in /app as 0: server.js\n// A page on port 80 greeting WHO (default: World); no dependencies beyond Node itself.\n",
        ),
        (
            "countdown",
            &["timers/countdowntimer.js"],
            "node stub in / as 0: timers/countdowntimer.js\n// Counts down once a second from 10 to COUNT_DOWN_TO (default 1), then exits.\n",
        ),
        (
            "python-script",
            &[],
            "python stub in /app as 65534: rng.py\n\"\"\"Ask for a range and print a random number in it.\"\"\"\n",
        ),
    ];
    let mut dirs: Vec<String> = std::fs::read_dir(repo.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut tested: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    tested.sort();
    assert_eq!(dirs, tested, "an example without a case here");
    for (name, args, want) in cases {
        let src = repo.join("examples").join(name);
        assert!(src.join("build.kiln").is_file(), "{name} has no build.kiln");
        // A copy, so the iidfiles are not written into the source tree.
        let ctx = temp_dir();
        common::copy_fixture(&src, ctx.path());
        let ignore = ctx.path().join(".dockerignore");
        let mut rules = std::fs::read_to_string(&ignore).unwrap_or_default();
        rules.push_str("\n*.iid\n");
        write_file(&ignore, rules.as_bytes(), 0o644);
        let a = build(&store, ctx.path(), "Dockerfile", None);
        let b = build(&store, ctx.path(), "build.kiln", None);
        assert_eq!(
            a, b,
            "{name}: the Dockerfile and build.kiln give different images"
        );
        for id in [&a, &b] {
            let mut run: Vec<&str> = vec!["run", "--rm", "--network", "none", id.as_str()];
            run.extend(args.iter());
            let out = store.kiln_ok(&run);
            assert_eq!(String::from_utf8_lossy(&out.stdout), *want, "{name}");
        }
        if *name == "node-web" {
            // The install step ran in the build, before the sources: its output is there.
            let out = store.kiln_ok([
                "run",
                "--rm",
                "--network",
                "none",
                a.as_str(),
                "cat",
                "/app/node_modules/.installed",
            ]);
            assert_eq!(String::from_utf8_lossy(&out.stdout), "install\n");
        }
    }
}

#[test]
fn kiln_fmt_rewrites_a_program_and_check_says_whether_it_is_formatted() {
    let store = KilnStore::new();
    let dir = temp_dir();
    let prog = dir.path().join("build.kiln");
    write_file(
        &prog,
        b"# the app\nexport app=scratch()|>env(A:\"1\") |> cmd([\"/x\"])\n",
        0o640,
    );
    let check = |p: &Path| store.kiln(["fmt".as_ref(), "--check".as_ref(), p.as_os_str()]);
    let out = check(&prog);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_text(&out).contains("is not formatted"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&prog).unwrap(),
        "# the app\nexport app=scratch()|>env(A:\"1\") |> cmd([\"/x\"])\n",
        "--check writes nothing"
    );
    // A directory means its build.kiln.
    store.kiln_ok(["fmt".as_ref(), dir.path().as_os_str()]);
    assert_eq!(
        std::fs::read_to_string(&prog).unwrap(),
        "# the app\nexport app = scratch()\n  |> env(A: \"1\")\n  |> cmd([\"/x\"])\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&prog).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the file keeps its mode");
    let out = check(&prog);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    // A file that does not parse is left alone, with the syntax error.
    write_file(&prog, b"export app = scratch(\n", 0o644);
    let out = store.kiln(["fmt".as_ref(), prog.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_text(&out).contains("syntax error"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&prog).unwrap(),
        "export app = scratch(\n"
    );
}

/// `fetch(url, sha256)` downloads once from a loopback server, verified, as ADD does: the
/// program and `ADD --checksum` build one image ID, and a wrong digest fails the build.
#[test]
fn fetch_downloads_a_pinned_file_as_add_checksum_does() {
    const BODY: &[u8] = b"fetched bytes\n";
    let url = common::serve(BODY, 3);
    let hex = common::sha256_hex(BODY);
    let store = KilnStore::new();
    let ctx = pair(
        &format!("FROM scratch\nADD --checksum=sha256:{hex} {url}/tool.txt /opt/tool.txt\n"),
        &format!(
            "export app = scratch() |> copy(fetch(\"{url}/tool.txt\", sha256: \"{hex}\"), to: \"/opt/tool.txt\")\n"
        ),
        &[],
    );
    let a = build(&store, ctx.path(), "Dockerfile", None);
    let b = build(&store, ctx.path(), "build.kiln", None);
    assert_eq!(a, b);
    write_file(
        &ctx.path().join("bad.kiln"),
        format!(
            "export app = scratch() |> copy(fetch(\"{url}/tool.txt\", sha256: \"{}\"), to: \"/x\")\n",
            "0".repeat(64)
        )
        .as_bytes(),
        0o644,
    );
    let out = store.kiln([
        "build".as_ref(),
        "-f".as_ref(),
        ctx.path().join("bad.kiln").as_os_str(),
        ctx.path().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_text(&out).contains("checksum mismatch"),
        "{}",
        stderr_text(&out)
    );
}

/// A bind mount of a context directory in run(): the step reads it, the layer holds only
/// what the step wrote, and the Dockerfile's `--mount=type=bind` builds the same image ID.
#[test]
fn a_bind_mount_builds_the_dockerfiles_image() {
    let store = KilnStore::with_busybox();
    let ctx = pair(
        "FROM busybox:test\nRUN --network=none --mount=type=bind,source=conf,target=/mnt/conf cat /mnt/conf/a.txt > /copied\n",
        "export app = image(\"busybox:test\")\n  |> run(\"cat /mnt/conf/a.txt > /copied\", network: false, mounts: [bind(\"/mnt/conf\", context(\"conf\"))])\n",
        &[("conf/a.txt", b"bound\n")],
    );
    let a = build(&store, ctx.path(), "Dockerfile", None);
    let b = build(&store, ctx.path(), "build.kiln", None);
    assert_eq!(a, b);
    let out = store.kiln_ok([
        "run",
        "--rm",
        "--network",
        "none",
        a.as_str(),
        "cat",
        "/copied",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bound\n");
    // The mount point is not in the layer.
    store.kiln_ok([
        "run",
        "--rm",
        "--network",
        "none",
        a.as_str(),
        "sh",
        "-c",
        "test ! -e /mnt/conf",
    ]);
}

/// `run(pin:)`: a networked step pinned by its layer's diff_id is hermetic itself (its
/// network is no reason) and fails the build when its output differs from the pin.
#[test]
fn a_pinned_networked_step_is_hermetic_and_fails_when_its_output_differs() {
    let store = KilnStore::with_busybox();
    let ctx = temp_dir();
    let prog = |pin: &str, text: &str| {
        format!(
            "export app = image(\"busybox:test\") |> run(\"echo {text} > /fetched\", network: true{pin})\n"
        )
    };
    write_file(
        &ctx.path().join("unpinned.kiln"),
        prog("", "v1").as_bytes(),
        0o644,
    );
    let id = build(&store, ctx.path(), "unpinned.kiln", None);
    let out = store.kiln_ok(["inspect", id.as_str()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    let layers = v["RootFS"]["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    let diff_id = layers.last().unwrap().as_str().unwrap().to_string();

    let pinned = |text: &str| prog(&format!(", pin: \"{diff_id}\""), text);
    write_file(
        &ctx.path().join("pinned.kiln"),
        pinned("v1").as_bytes(),
        0o644,
    );
    write_file(
        &ctx.path().join("changed.kiln"),
        pinned("v2").as_bytes(),
        0o644,
    );
    // The plan: the pinned step is hermetic, the unpinned one is not.
    let plan = |file: &str| {
        let out = store.kiln_ok([
            "plan".as_ref(),
            "--json".as_ref(),
            "-f".as_ref(),
            ctx.path().join(file).as_os_str(),
            ctx.path().as_os_str(),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == "run")
            .unwrap()
            .clone()
    };
    // (The base is named by tag, so both are impure through it; only the step's own
    // network reason goes away with the pin.)
    let own_network = |run: &serde_json::Value| {
        run["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("network"))
    };
    assert!(own_network(&plan("unpinned.kiln")));
    let run = plan("pinned.kiln");
    assert!(!own_network(&run), "{run}");
    assert_eq!(
        run["reasons"],
        serde_json::json!(["input #0 is not hermetic"])
    );
    assert_eq!(build(&store, ctx.path(), "pinned.kiln", None).len(), 71);
    let out = store.kiln([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-f".as_ref(),
        ctx.path().join("changed.kiln").as_os_str(),
        ctx.path().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(
        err.contains("pinned step") && err.contains(&diff_id),
        "{err}"
    );
}

/// `dockerfile(path, target:, args:)`: a program that takes one Dockerfile stage as its base
/// and copies a file out of another stage (built with a build argument) gives the image the
/// Dockerfile alone gives, and it runs.
#[test]
fn dockerfile_stages_as_values_build_the_dockerfiles_image() {
    let store = KilnStore::with_busybox();
    let ctx = pair(
        "FROM busybox:test AS base\nRUN echo base > /base.txt\nENV A=1\n\nFROM base AS build\nARG GREETING=hi\nRUN mkdir /out && echo \"$GREETING from $A\" > /out/greeting\n\nFROM base\nCOPY --from=build /out/greeting /greeting\nCOPY app.txt /app/\nCMD [\"cat\", \"/greeting\", \"/app/app.txt\"]\n",
        r#"let base = dockerfile("docker/../Dockerfile", target: "base")
let build = dockerfile("Dockerfile", target: "build", args: {GREETING: "hello"})
export app = base
  |> copy(files(build, "/out/greeting"), to: "/greeting")
  |> copy(context(".").only(["app.txt"]), to: "/app/")
  |> cmd(["cat", "/greeting", "/app/app.txt"])
"#,
        &[("app.txt", b"app\n"), ("docker/.keep", b"")],
    );
    let iid = ctx.path().join("df.iid");
    store.kiln_ok([
        "build",
        "--progress",
        "plain",
        "--network",
        "none",
        "--build-arg",
        "GREETING=hello",
        "--iidfile",
        &iid.display().to_string(),
        &ctx.path().display().to_string(),
    ]);
    let a = std::fs::read_to_string(&iid).unwrap().trim().to_string();
    std::fs::remove_file(&iid).unwrap();
    let b = build(&store, ctx.path(), "build.kiln", None);
    assert_eq!(a, b, "the program and the Dockerfile give different images");
    // The stage taken whole is the Dockerfile's target of that name.
    write_file(
        &ctx.path().join("stage.kiln"),
        b"export s = dockerfile(\"Dockerfile\", target: \"build\", args: {GREETING: \"hello\"})\n",
        0o644,
    );
    let s = build(&store, ctx.path(), "stage.kiln", None);
    store.kiln_ok([
        "build",
        "--progress",
        "plain",
        "--network",
        "none",
        "--target",
        "build",
        "--build-arg",
        "GREETING=hello",
        "--iidfile",
        &iid.display().to_string(),
        &ctx.path().display().to_string(),
    ]);
    let t = std::fs::read_to_string(&iid).unwrap().trim().to_string();
    assert_eq!(s, t);
    let out = store.kiln_ok(["run", "--rm", "--network", "none", b.as_str()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from 1\napp\n");
}

/// The build checks of a Dockerfile that `dockerfile()` reads are printed as building the
/// Dockerfile prints them (the rule, its message, the Dockerfile's file and line): its
/// syntax rules and what lowering the stage found; its `# check=error=true` fails the build.
#[test]
fn dockerfile_stage_warnings_are_printed_as_the_dockerfiles_build_prints_them() {
    let store = KilnStore::new();
    let ctx = pair(
        "FROM scratch AS base\nENV A 1\nLABEL x=$NOPE\n\nfrom scratch\n",
        "export app = dockerfile(\"Dockerfile\", target: \"base\") |> env(B: \"2\")\n",
        &[(
            "strict.Dockerfile",
            b"# check=error=true\nFROM scratch\nENV A 1\n",
        )],
    );
    let warnings = |args: &[&str]| {
        let mut full: Vec<String> = ["build", "--progress", "plain"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        full.extend(args.iter().map(|a| a.to_string()));
        full.push(ctx.path().display().to_string());
        let out = store.kiln(&full);
        let err = stderr_text(&out);
        // The checks come before the build's progress lines.
        let checks: String = err
            .lines()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        (out.status.code(), checks, err)
    };
    let dockerfile = ctx.path().join("Dockerfile").display().to_string();
    let (code, from_dockerfile, err) = warnings(&["-f", &dockerfile, "--target", "base"]);
    assert_eq!(code, Some(0), "{err}");
    let program = ctx.path().join("build.kiln").display().to_string();
    let (code, from_program, err) = warnings(&["-f", &program]);
    assert_eq!(code, Some(0), "{err}");
    for rule in [
        "LegacyKeyValueFormat",
        "UndefinedVar",
        "ConsistentInstructionCasing",
    ] {
        assert!(from_program.contains(rule), "{rule} is not printed:\n{err}");
    }
    assert!(
        from_program.contains(&format!("{dockerfile}:3:10")),
        "{from_program}"
    );
    assert_eq!(from_program, from_dockerfile);

    write_file(
        &ctx.path().join("strict.kiln"),
        b"export app = dockerfile(\"strict.Dockerfile\")\n",
        0o644,
    );
    let strict = ctx.path().join("strict.kiln").display().to_string();
    let (code, _, err) = warnings(&["-f", &strict]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("LegacyKeyValueFormat"), "{err}");
    assert!(err.contains("strict.Dockerfile:1:"), "{err}");
}

/// dockerfile() errors are diagnostics: a missing file and an unknown stage at the call,
/// a Dockerfile's own error at its line in the Dockerfile; a Dockerfile outside the build
/// context is refused by the build.
#[test]
fn dockerfile_errors_point_at_the_call_or_into_the_dockerfile() {
    let store = KilnStore::new();
    let ctx = pair(
        "FROM scratch AS one\nCOPY a /a\n",
        "export a = dockerfile(\"Dockerfile\", target: \"onee\")\nexport b = dockerfile(\"bad.Dockerfile\")\nexport c = dockerfile(\"nope/Dockerfile\")\n",
        &[("a", b"a\n"), ("bad.Dockerfile", b"FROM scratch\nCOPY --frobnicate=1 a /a\n")],
    );
    let out = store.kiln(["check".as_ref(), ctx.path().join("build.kiln").as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(err.contains("3 errors in the kiln program"), "{err}");
    assert!(err.contains("could not be found"), "{err}");
    assert!(err.contains("did you mean \"one\"?"), "{err}");
    assert!(err.contains("frobnicate"), "{err}");
    // The Dockerfile's error is shown in the Dockerfile's text.
    assert!(err.contains("bad.Dockerfile:2:6"), "{err}");
    assert!(err.contains("cannot read Dockerfile"), "{err}");

    let outside = temp_dir();
    write_file(&outside.path().join("Dockerfile"), b"FROM scratch\n", 0o644);
    let inner = ctx.path().join("inner");
    write_file(
        &inner.join("build.kiln"),
        format!(
            "export a = dockerfile({:?})\n",
            outside.path().join("Dockerfile").display().to_string()
        )
        .as_bytes(),
        0o644,
    );
    let out = store.kiln([
        "build".as_ref(),
        "-f".as_ref(),
        inner.join("build.kiln").as_os_str(),
        inner.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_text(&out).contains("outside the build context: Dockerfile"),
        "{}",
        stderr_text(&out)
    );
}

/// Twenty independent errors of different kinds, in the program and in a module it imports,
/// are all reported by one `kiln check` (and no build step runs: check never builds).
#[test]
fn kiln_check_reports_twenty_independent_errors_at_once() {
    let store = KilnStore::new();
    let dir = temp_dir();
    write_file(
        &dir.path().join("lib.kiln"),
        b"fn base(port: Int) -> Image { scratch() |> expose(port) }\nfn bad_return() -> Image { \"not an image\" }\n",
        0o644,
    );
    let lines = [
        (
            "import std.nope",
            "no standard-library module named std.nope",
        ),
        (
            "let e1 = scratch() |> expose(\"80\")",
            "argument port of expose: expected Int, found String",
        ),
        (
            "let e2 = scratch() |> copy(context())",
            "missing argument to: Path in this call of copy",
        ),
        (
            "let e3 = scratch() |> cmd([\"x\"], shell: true)",
            "cmd has no parameter shell",
        ),
        (
            "let e4 = scratch() |> cmd([\"x\", 1])",
            "list items must have one type: expected String, found Int",
        ),
        ("let e5 = bsae", "unknown name bsae"),
        (
            "let e6 = scratch() |> user(1000)",
            "argument name of user: expected String, found Int",
        ),
        (
            "let e7 = lib.base(\"80\")",
            "argument port of base: expected Int, found String",
        ),
        (
            "let e8 = lib.base()",
            "missing argument port: Int in this call of base",
        ),
        ("let e9 = users.runtime_usr()", "has no runtime_usr"),
        (
            "let e10 = scratch() |> workdir(42)",
            "argument path of workdir: expected Path, found Int",
        ),
        (
            "let e11 = scratch() |> env(A: 1)",
            "argument A of env: expected String, found Int",
        ),
        (
            "let e12 = image([\"alpine\"])",
            "argument ref of image: expected String, found [String]",
        ),
        (
            "let e13 = scratch() |> run(\"true\", network: \"yes\")",
            "argument network of run: expected Bool?, found String",
        ),
        (
            "let e14 = context(\".\").only(\"a\")",
            "argument patterns of only: expected [String], found String",
        ),
        (
            "let e15 = scratch() |> label(a: true)",
            "argument a of label: expected String?, found Bool",
        ),
        (
            "let e16 = scratch() |> healthcheck(retries: \"3\")",
            "argument retries of healthcheck: expected Int, found String",
        ),
        (
            "let e17 = dockerfile(1)",
            "argument path of dockerfile: expected Path, found Int",
        ),
        (
            "let dup = scratch()\nlet dup = scratch()",
            "dup is defined twice in this file",
        ),
    ];
    let mut program = String::from("import std.users\nimport \"./lib.kiln\"\n");
    for (line, _) in &lines {
        program.push_str(line);
        program.push('\n');
    }
    program.push_str("export app = scratch()\n");
    write_file(&dir.path().join("build.kiln"), program.as_bytes(), 0o644);
    let out = store.kiln(["check".as_ref(), dir.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(err.contains("20 errors in the kiln program"), "{err}");
    for (_, message) in &lines {
        assert!(err.contains(message), "{message:?} is not reported:\n{err}");
    }
    // The twentieth, in the imported module: its body is not its declared type.
    assert!(err.contains("lib.kiln:2:"), "{err}");
    assert!(err.contains("expected Image, found String"), "{err}");
    assert!(err.contains("help: port takes an Int"), "{err}");
}
