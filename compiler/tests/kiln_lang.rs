//! The kiln language front end: programs and Dockerfiles that describe the same image give
//! the same plan (every node's op and key), the checker reports every error at once with
//! file, span and help, and the standard library's modules plan what their pages say.

use std::fs;
use std::path::Path;

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend::{self, FrontendInput};
use kiln_compiler::kiln;
use kiln_compiler::plan::{BuildOptions, NoImages, Op, Plan};

fn write(dir: &Path, rel: &str, body: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, body).unwrap();
}

fn context(dir: &Path) {
    write(dir, "package.json", "{\"name\":\"demo\"}\n");
    write(dir, "package-lock.json", "{}\n");
    write(dir, "server.js", "console.log('hi')\n");
    write(dir, "node_modules/left-pad/index.js", "x\n");
    write(dir, "src/main.c", "int main(){return 0;}\n");
    write(dir, "app/run.sh", "#!/bin/sh\necho hi\n");
}

fn opts(target: Option<&str>) -> BuildOptions {
    BuildOptions {
        target: target.map(str::to_string),
        source_date_epoch: Some(1_700_000_000),
        ..Default::default()
    }
}

fn dockerfile_plan(dir: &Path, dockerfile: &str) -> Plan {
    dockerfile_plan_with(dir, dockerfile, &opts(None))
}

fn dockerfile_plan_with(dir: &Path, dockerfile: &str, o: &BuildOptions) -> Plan {
    write(dir, "Dockerfile", dockerfile);
    let input = FrontendInput {
        context: dir.to_path_buf(),
        dockerfile: Some(dir.join("Dockerfile")),
    };
    match frontend::plan(&input, o, &StatCache::default(), &NoImages) {
        Ok((_, l)) => l.plan,
        Err(e) => panic!("Dockerfile plan failed: {e:?}"),
    }
}

fn kiln_plan(dir: &Path, program: &str, target: Option<&str>) -> Plan {
    kiln_plan_with(dir, program, &opts(target))
}

fn kiln_plan_with(dir: &Path, program: &str, o: &BuildOptions) -> Plan {
    write(dir, "build.kiln", program);
    match frontend::plan_kiln(
        &dir.join("build.kiln"),
        dir,
        o,
        &StatCache::default(),
        &NoImages,
    ) {
        Ok((l, _)) => l.plan,
        Err(e) => panic!("kiln plan failed: {e:?}"),
    }
}

/// Every node's kind and key, in order.
fn keys(p: &Plan) -> Vec<(String, String)> {
    p.nodes
        .iter()
        .map(|n| {
            let kind = serde_json::to_value(&n.op).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string();
            (kind, n.key.to_hex())
        })
        .collect()
}

fn assert_same_plan(dockerfile: &str, program: &str, target: Option<&str>) {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    // Both files are in the context of both builds (a copy of `.` sees them).
    write(d.path(), "build.kiln", program);
    let a = dockerfile_plan(d.path(), dockerfile);
    let b = kiln_plan(d.path(), program, target);
    assert_eq!(keys(&a), keys(&b), "plans differ");
    assert_eq!(a.target_image().1, b.target_image().1);
}

/// An ARG declared again keeps its first place in a RUN's `|N` prefix and environment and
/// takes the new value; declared again without one, it keeps the old (current BuildKit's
/// dispatchArg and runCommandString), in both front ends.
#[test]
fn a_redeclared_arg_keeps_its_place_and_takes_the_new_value() {
    let dockerfile = "FROM scratch\nARG A=1\nARG B=2\nARG A=3\nARG B\nRUN true\n";
    let program = r#"
export app = scratch()
  |> build_arg("A", default: "1")
  |> build_arg("B", default: "2")
  |> build_arg("A", default: "3")
  |> build_arg("B")
  |> run("true")
"#;
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    write(d.path(), "build.kiln", program);
    let a = dockerfile_plan_with(d.path(), dockerfile, &opts(None));
    let b = kiln_plan_with(d.path(), program, &opts(None));
    assert_eq!(keys(&a), keys(&b), "plans differ");
    for plan in [&a, &b] {
        let history: Vec<&str> = plan
            .target_image()
            .1
            .history
            .iter()
            .map(|h| h.created_by.as_str())
            .collect();
        assert_eq!(
            history.last(),
            Some(&"RUN |2 A=3 B=2 /bin/sh -c true # buildkit")
        );
        let run = plan
            .nodes
            .iter()
            .find_map(|n| match &n.op {
                Op::Run(r) => Some(r),
                _ => None,
            })
            .unwrap();
        let args: Vec<&String> = run
            .env
            .iter()
            .filter(|kv| kv.starts_with("A=") || kv.starts_with("B="))
            .collect();
        assert_eq!(args, ["A=3", "B=2"]);
    }
}

/// A stage's build arguments: `build_arg()` and a stage `ARG` give one ARG history entry,
/// the same RUN environment and `|N K=V` history prefix, so equal keys and history, with
/// the arguments' defaults and with `--build-arg` values.
#[test]
fn build_arg_pair_has_equal_keys_env_and_history() {
    let dockerfile = "ARG VERSION=1.0\nFROM scratch\nARG VERSION\nARG FLAVOR=plain\nENV FLAVOR=env-wins\nRUN echo \"v$VERSION $FLAVOR\" > /v\nARG UNSET\nRUN [\"/bin/sh\", \"-c\", \"true\"]\n";
    let program = r#"
let version = arg("VERSION", default: "1.0")
export app = scratch()
  |> build_arg("VERSION", global: version)
  |> build_arg("FLAVOR", default: "plain")
  |> env(FLAVOR: "env-wins")
  |> run("echo \"v$VERSION $FLAVOR\" > /v")
  |> build_arg("UNSET")
  |> run(["/bin/sh", "-c", "true"])
"#;
    for (build_args, version) in [
        (vec![], "1.0"),
        (vec![("VERSION", "2.5"), ("UNSET", "u")], "2.5"),
    ] {
        let o = BuildOptions {
            build_args: build_args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..opts(None)
        };
        let d = tempfile::tempdir().unwrap();
        context(d.path());
        write(d.path(), "build.kiln", program);
        let a = dockerfile_plan_with(d.path(), dockerfile, &o);
        let b = kiln_plan_with(d.path(), program, &o);
        assert_eq!(keys(&a), keys(&b), "plans differ ({build_args:?})");
        let (ia, ib) = (a.target_image().1, b.target_image().1);
        assert_eq!(
            serde_json::to_value(ia).unwrap(),
            serde_json::to_value(ib).unwrap(),
            "config or history differ ({build_args:?})"
        );
        let history: Vec<&str> = ib.history.iter().map(|h| h.created_by.as_str()).collect();
        let unset = if build_args.is_empty() { "" } else { "u" };
        assert_eq!(
            history,
            [
                "ARG VERSION",
                "ARG FLAVOR=plain",
                "ENV FLAVOR=env-wins",
                &format!("RUN |2 VERSION={version} FLAVOR=env-wins /bin/sh -c echo \"v$VERSION $FLAVOR\" > /v # buildkit"),
                "ARG UNSET",
                &format!("RUN |3 VERSION={version} FLAVOR=env-wins UNSET={unset} /bin/sh -c true # buildkit"),
            ]
        );
        // The arguments are in the RUN steps' environment (an ENV of the same name wins),
        // never in the image's.
        let run = b
            .nodes
            .iter()
            .find_map(|n| match &n.op {
                Op::Run(r) => Some(r),
                _ => None,
            })
            .unwrap();
        assert!(
            run.env.contains(&format!("VERSION={version}")),
            "{:?}",
            run.env
        );
        assert!(
            run.env.contains(&"FLAVOR=env-wins".to_string()),
            "{:?}",
            run.env
        );
        assert!(
            !run.env.iter().any(|e| e.starts_with("FLAVOR=plain")),
            "{:?}",
            run.env
        );
        assert!(
            !ib.config.env.iter().any(|e| e.starts_with("VERSION=")),
            "{:?}",
            ib.config.env
        );
    }
}

#[test]
fn node_app_pair_has_equal_keys() {
    assert_same_plan(
        "FROM scratch\nCOPY package.json package-lock.json /app/\nENV NODE_ENV=production\nCOPY --exclude=node_modules . /app/\nWORKDIR /app\nEXPOSE 3000\nCMD [\"node\", \"server.js\"]\n",
        r#"
# The manifest first, so a source change reuses the layers before it.
fn node_app(src: Files, port: Int = 3000) -> Image {
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
        None,
    );
}

#[test]
fn multi_stage_pair_has_equal_keys() {
    assert_same_plan(
        "FROM scratch AS build\nCOPY src /src\nWORKDIR /src\nENV A=1 B=2\n\nFROM scratch\nCOPY --from=build /src /app\nLABEL a=b\nUSER 1000\nENTRYPOINT [\"/app/x\"]\nCMD [\"--help\"]\n",
        r#"
let build = scratch()
  |> copy(context("src"), to: "/src")
  |> workdir("/src")
  |> env(A: "1", B: "2")
export app = scratch()
  |> copy(files(build, "/src"), to: "/app")
  |> label(a: "b")
  |> user("1000")
  |> entrypoint(["/app/x"])
  |> cmd(["--help"])
export builder = build
"#,
        Some("app"),
    );
}

#[test]
fn base_image_run_and_flags_pair_has_equal_keys() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_same_plan(
        &format!(
            "FROM busybox@{digest}\nRUN echo hi > /x\nRUN [\"/bin/sh\", \"-c\", \"true\"]\nCOPY --chown=1:2 --chmod=0755 app/run.sh /usr/bin/\nVOLUME [\"/data\"]\nSTOPSIGNAL SIGTERM\nEXPOSE 53/udp\nCMD echo done\n"
        ),
        &format!(
            r#"
let base = image("busybox@{digest}")
export app = base
  |> run("echo hi > /x")
  |> run(["/bin/sh", "-c", "true"])
  |> copy(context().only(["app/run.sh"]), to: "/usr/bin/", owner: "1:2", mode: "0755")
  |> volume("/data")
  |> stopsignal("SIGTERM")
  |> expose(53, protocol: "udp")
  |> cmd("echo done")
"#
        ),
        None,
    );
}

#[test]
fn run_mounts_shell_and_healthcheck_pair_has_equal_keys() {
    assert_same_plan(
        "FROM scratch\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=tmpfs,target=/tmp,size=1024 --mount=type=secret,id=tok make\nHEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/\n",
        r#"
export app = scratch()
  |> shell(["/bin/sh", "-ec"])
  |> run("make", mounts: [cache("/root/.cache", sharing: "locked"), tmpfs("/tmp", size: 1024), secret("tok")])
  |> healthcheck(test: "curl -f http://localhost/", interval: "30s", retries: 3)
"#,
        None,
    );
}

#[test]
fn method_calls_and_pipelines_are_one_thing() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let a = kiln_plan(
        d.path(),
        "export a = scratch() |> copy(context(\".\").only([\"src\"]), to: \"/s\") |> env(X: \"1\")\n",
        None,
    );
    let b = kiln_plan(
        d.path(),
        "export b = scratch().copy(only(context(\".\"), [\"src\"]), to: \"/s\").env(X: \"1\")\n",
        None,
    );
    assert_eq!(keys(&a), keys(&b));
}

#[test]
fn hermeticity_follows_the_inputs() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let p = kiln_plan(
        d.path(),
        "export a = image(\"alpine:3\") |> run(\"true\", network: false)\nexport b = scratch() |> run([\"/x\"], network: true)\n",
        Some("a"),
    );
    let (img, _) = p.target_image();
    assert!(!img.hermetic, "a floating tag is impure");
    let base = &p.nodes[0];
    assert_eq!(
        base.reasons,
        ["base image alpine:3 is named without a digest"]
    );
    let p = kiln_plan(
        d.path(),
        "export a = image(\"alpine:3\")\nexport b = scratch() |> run([\"/x\"], network: true)\n",
        Some("b"),
    );
    let run = p.nodes.iter().find(|n| matches!(n.op, Op::Run(_))).unwrap();
    assert!(!run.hermetic);
    assert!(run.reasons[0].contains("network"), "{:?}", run.reasons);
}

#[test]
fn std_users_writes_passwd_and_group_without_run() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let p = kiln_plan(
        d.path(),
        "import std.users\nexport app = scratch() |> users.runtime_user(name: \"web\", uid: 1001, gid: 1002, home: \"/srv/web\")\n",
        None,
    );
    assert!(!p.nodes.iter().any(|n| matches!(n.op, Op::Run(_))));
    let inline: Vec<(String, String)> = p
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Copy(c) if !c.inline.is_empty() => Some((c.dest.clone(), c.inline[0].1.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        inline,
        [
            (
                "/etc/passwd".to_string(),
                "root:x:0:0::/root:/bin/sh\nweb:x:1001:1002::/srv/web:/sbin/nologin\n".to_string()
            ),
            (
                "/etc/group".to_string(),
                "root:x:0:\nweb:x:1002:\n".to_string()
            ),
            ("/srv/web/.keep".to_string(), String::new()),
        ]
    );
    assert_eq!(p.target_image().1.config.user, "1001:1002");
}

#[test]
fn std_oci_sets_only_the_labels_given() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let p = kiln_plan(
        d.path(),
        "import std.oci\nexport app = scratch() |> oci.labels(title: \"demo\", licenses: \"MIT\", version: none)\n",
        None,
    );
    let labels = &p.target_image().1.config.labels;
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert_eq!(labels["org.opencontainers.image.title"], "demo");
    assert_eq!(labels["org.opencontainers.image.licenses"], "MIT");
}

#[test]
fn std_static_is_scratch_certs_binary_and_user() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    write(d.path(), "bin/server", "\x7fELF");
    write(d.path(), "certs.pem", "-----BEGIN CERTIFICATE-----\n");
    let p = kiln_plan(
        d.path(),
        "import std.static\nexport app = static.binary_image(context().only([\"bin/server\"]), context().only([\"certs.pem\"]), path: \"/server\")\n",
        None,
    );
    assert!(matches!(p.nodes[0].op, Op::Scratch));
    assert!(!p.nodes.iter().any(|n| matches!(n.op, Op::Run(_))));
    let dests: Vec<&str> = p
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Copy(c) => Some(c.dest.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        dests,
        [
            "/etc/ssl/certs/ca-certificates.crt",
            "/server",
            "/etc/passwd",
            "/etc/group",
            "/home/app/.keep"
        ]
    );
    let (img, op) = p.target_image();
    assert!(img.hermetic);
    assert_eq!(
        op.config.entrypoint.as_deref(),
        Some(&["/server".to_string()][..])
    );
    assert_eq!(op.config.user, "10001:10001");
}

/// The key of the first RUN node and of the image node.
fn run_and_image_keys(p: &Plan) -> (String, String) {
    let run = p
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Run(_)))
        .expect("a RUN node");
    (run.key.to_hex(), p.target_image().0.key.to_hex())
}

#[test]
fn std_node_is_the_manifest_install_sources_dockerfile() {
    assert_same_plan(
        "FROM scratch\nWORKDIR /app\nCOPY package.json package-lock.json /app/\nRUN --network=host npm ci --omit=dev\nCOPY --exclude=node_modules --exclude=.git . /app/\nENV NODE_ENV=production\nUSER node\nEXPOSE 8080\nCMD [\"node\", \"index.js\"]\n",
        "import std.node\nexport app = node.app(scratch(), context(), port: 8080, command: [\"node\", \"index.js\"])\n",
        None,
    );
}

#[test]
fn std_node_source_change_reuses_the_install_layer() {
    let program = "import std.node\nexport app = node.app(scratch(), context())\n";
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let (install_a, image_a) = run_and_image_keys(&kiln_plan(d.path(), program, None));
    write(d.path(), "server.js", "console.log('changed')\n");
    let (install_b, image_b) = run_and_image_keys(&kiln_plan(d.path(), program, None));
    assert_eq!(
        install_a, install_b,
        "a source change must not touch the install step"
    );
    assert_ne!(image_a, image_b, "the sources are in the image");
    write(d.path(), "package-lock.json", "{\"lockfileVersion\":3}\n");
    let (install_c, _) = run_and_image_keys(&kiln_plan(d.path(), program, None));
    assert_ne!(install_b, install_c, "a manifest change reinstalls");
}

#[test]
fn std_python_installs_requirements_before_the_sources() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    write(d.path(), "requirements.txt", "requests==2.32.3\n");
    write(d.path(), "main.py", "print('hi')\n");
    let program = "import std.python\nexport app = python.app(scratch(), context())\n";
    let p = kiln_plan(d.path(), program, None);
    let steps: Vec<String> = p
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Copy(c) => Some(format!("copy {}", c.dest)),
            Op::Run(r) => Some(format!("run {}", r.argv.join(" "))),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            "copy /app/",
            "run /bin/sh -c pip install --no-cache-dir -r requirements.txt",
            "copy /app/"
        ]
    );
    let config = &p.target_image().1.config;
    assert!(config
        .env
        .contains(&"PYTHONDONTWRITEBYTECODE=1".to_string()));
    assert_eq!(config.user, "65534:65534");
    let (install_a, _) = run_and_image_keys(&p);
    write(d.path(), "main.py", "print('changed')\n");
    let (install_b, _) = run_and_image_keys(&kiln_plan(d.path(), program, None));
    assert_eq!(install_a, install_b);
    write(d.path(), "requirements.txt", "requests==2.32.4\n");
    let (install_c, _) = run_and_image_keys(&kiln_plan(d.path(), program, None));
    assert_ne!(install_b, install_c);
}

#[test]
fn std_debian_installs_and_removes_what_differs_between_builds() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let p = kiln_plan(
        d.path(),
        "import std.debian\nexport app = scratch() |> debian.install([\"curl\", \"ca-certificates\"])\n",
        None,
    );
    let runs: Vec<&kiln_compiler::plan::RunOp> = p
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Run(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 1, "one step: install and clean up together");
    let script = &runs[0].argv[2];
    assert!(
        script.starts_with("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates && rm -rf "),
        "{script}"
    );
    for gone in [
        "/var/lib/apt/lists/*",
        "/var/cache/ldconfig/aux-cache",
        "/var/log/dpkg.log",
        "/var/log/apt",
        "'*.pyc'",
    ] {
        assert!(script.contains(gone), "{gone} is not removed: {script}");
    }
    assert!(!p.target_image().0.hermetic, "apt needs the network");
}

/// Every example with a Dockerfile and a build.kiln: both plan the same nodes, keys, config
/// and history (so they build the same image ID; tests/kiln_lang.rs builds the one whose
/// base needs no registry).
#[test]
fn every_example_pair_plans_the_same_image() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut compared = Vec::new();
    let mut dirs: Vec<_> = fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        if !dir.join("Dockerfile").is_file() || !dir.join("build.kiln").is_file() {
            continue;
        }
        let df = match frontend::plan(
            &FrontendInput {
                context: dir.clone(),
                dockerfile: Some(dir.join("Dockerfile")),
            },
            &opts(None),
            &StatCache::default(),
            &NoImages,
        ) {
            Ok((_, l)) => l.plan,
            Err(e) => panic!("{}: Dockerfile: {e:?}", dir.display()),
        };
        let kl = match frontend::plan_kiln(
            &dir.join("build.kiln"),
            &dir,
            &opts(None),
            &StatCache::default(),
            &NoImages,
        ) {
            Ok((l, _)) => l.plan,
            Err(e) => panic!("{}: build.kiln: {e:?}", dir.display()),
        };
        let (a, b) = (df.target_image().1, kl.target_image().1);
        assert_eq!(keys(&df), keys(&kl), "{}: plans differ", dir.display());
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap(),
            "{}: image config or history differ",
            dir.display()
        );
        compared.push(dir.file_name().unwrap().to_string_lossy().into_owned());
    }
    for want in [
        "countdown",
        "hello",
        "multi-stage",
        "node-web",
        "python-script",
    ] {
        assert!(
            compared.iter().any(|c| c == want),
            "{want} not compared: {compared:?}"
        );
    }
}

#[test]
fn fetch_is_add_with_a_checksum_and_hermetic() {
    let hex = "a".repeat(64);
    let dockerfile = format!(
        "FROM scratch\nADD --checksum=sha256:{hex} http://127.0.0.1:9/tool.txt /opt/tool.txt\nCMD [\"/x\"]\n"
    );
    let program = format!(
        "export app = scratch()\n  |> copy(fetch(\"http://127.0.0.1:9/tool.txt\", sha256: \"{hex}\"), to: \"/opt/tool.txt\")\n  |> cmd([\"/x\"])\n"
    );
    assert_same_plan(&dockerfile, &program, None);
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let p = kiln_plan(d.path(), &program, None);
    assert!(
        p.nodes.iter().all(|n| n.hermetic),
        "a pinned download is hermetic"
    );
    // The Dockerfile without --checksum is not: the pin is what makes it hermetic.
    let unpinned = dockerfile_plan(
        d.path(),
        "FROM scratch\nADD http://127.0.0.1:9/tool.txt /opt/tool.txt\n",
    );
    assert!(!unpinned.target_image().0.hermetic);
    // A bad digest and a URL that is not http(s) are found before anything runs.
    write(
        d.path(),
        "bad.kiln",
        "export a = scratch() |> copy(fetch(\"http://x/y\", sha256: \"abc\"), to: \"/y\")\nexport b = scratch() |> copy(fetch(\"file:///etc/passwd\", sha256: \"abc\"), to: \"/y\")\n",
    );
    let prog = kiln::check_file(&d.path().join("bad.kiln")).unwrap();
    let errors = kiln::lower::check_exports(&prog, &opts(None))
        .unwrap_err()
        .errors;
    let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("64 lowercase hex digits"),
        "{messages:?}"
    );
    assert!(messages[1].contains("http or https URL"), "{messages:?}");
}

#[test]
fn bind_mounts_pair_with_run_mount_type_bind() {
    assert_same_plan(
        "FROM scratch AS build\nCOPY src /src\n\nFROM scratch\nRUN --network=none --mount=type=bind,source=app,target=/mnt/app --mount=type=bind,from=build,source=/src,target=/mnt/b,rw [\"/mnt/app/run.sh\"]\nRUN --network=none --mount=type=bind,target=/ctx [\"/x\"]\n",
        r#"
let build = scratch() |> copy(context("src"), to: "/src")
export app = scratch()
  |> run(
    ["/mnt/app/run.sh"],
    network: false,
    mounts: [bind("/mnt/app", context("app")), bind("/mnt/b", files(build, "/src"), rw: true)],
  )
  |> run(["/x"], network: false, mounts: [bind("/ctx", context())])
"#,
        None,
    );
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let p = kiln_plan(
        d.path(),
        "export app = scratch() |> run([\"/x\"], network: false, mounts: [bind(\"/m\", context(\"app\"))])\n",
        None,
    );
    let run = p.nodes.iter().find(|n| matches!(n.op, Op::Run(_))).unwrap();
    assert_eq!(
        run.inputs.len(),
        2,
        "the bound directory is an input of the step"
    );
    assert!(run.hermetic, "a bind mount of the context is hermetic");
    // The bound files are in the key: changing one changes the step's key.
    let before = run.key.to_hex();
    write(d.path(), "app/run.sh", "#!/bin/sh\necho changed\n");
    let p = kiln_plan(
        d.path(),
        "export app = scratch() |> run([\"/x\"], network: false, mounts: [bind(\"/m\", context(\"app\"))])\n",
        None,
    );
    let run = p.nodes.iter().find(|n| matches!(n.op, Op::Run(_))).unwrap();
    assert_ne!(before, run.key.to_hex());
}

/// The rendered diagnostics of `kiln check` on a program (files written into a temporary
/// directory; the first is the program).
fn check_errors(files: &[(&str, &str)]) -> (usize, String) {
    let d = tempfile::tempdir().unwrap();
    for (name, body) in files {
        write(d.path(), name, body);
    }
    match kiln::check_file(&d.path().join(files[0].0)) {
        Ok(_) => panic!("the program checked clean"),
        Err(e) => {
            let n = e.errors.len();
            let mut out = String::new();
            let handler = miette::GraphicalReportHandler::new_themed(
                miette::GraphicalTheme::unicode_nocolor(),
            )
            .with_width(200);
            for err in &e.errors {
                handler.render_report(&mut out, err).unwrap();
            }
            (n, out)
        }
    }
}

#[test]
fn unknown_name_gets_the_closest_name_in_scope() {
    let (n, out) = check_errors(&[(
        "build.kiln",
        "let base = scratch()\nexport app = bsae |> cmd([\"x\"])\n",
    )]);
    assert_eq!(n, 1, "{out}");
    assert!(out.contains("unknown name bsae"), "{out}");
    assert!(out.contains("did you mean base?"), "{out}");
    assert!(
        out.contains("build.kiln:2:14"),
        "file, line and column: {out}"
    );
}

#[test]
fn wrong_type_names_expected_and_found() {
    let (n, out) = check_errors(&[("build.kiln", "export app = scratch() |> expose(\"80\")\n")]);
    assert_eq!(n, 1, "{out}");
    assert!(
        out.contains("argument port of expose: expected Int, found String"),
        "{out}"
    );
}

#[test]
fn missing_named_argument_names_it_and_its_type() {
    let (n, out) = check_errors(&[(
        "build.kiln",
        "fn f(src: Files, port: Int = 3000) -> Image { scratch() |> copy(src) }\nexport app = f(context())\n",
    )]);
    assert_eq!(n, 1, "{out}");
    assert!(
        out.contains("missing argument to: Path in this call of copy"),
        "{out}"
    );
}

#[test]
fn import_cycle_shows_the_chain() {
    let (_, out) = check_errors(&[
        (
            "build.kiln",
            "import \"./a.kiln\"\nexport app = scratch()\n",
        ),
        ("a.kiln", "import \"./b.kiln\"\nlet x = 1\n"),
        ("b.kiln", "import \"./a.kiln\"\nlet y = 2\n"),
    ]);
    assert!(out.contains("import cycle"), "{out}");
    assert!(
        out.contains("a.kiln → ") && out.contains("b.kiln → "),
        "{out}"
    );
}

#[test]
fn errors_in_imported_files_are_reported_in_their_file() {
    let (n, out) = check_errors(&[
        (
            "build.kiln",
            "import \"./lib.kiln\"\nexport app = lib.base()\n",
        ),
        (
            "lib.kiln",
            "fn base() -> Image { scratch() |> user(1000) }\n",
        ),
    ]);
    assert_eq!(n, 1, "{out}");
    assert!(out.contains("lib.kiln:1:40"), "{out}");
    assert!(out.contains("expected String, found Int"), "{out}");
}

#[test]
fn twenty_independent_errors_are_reported_in_one_run() {
    let mut src = String::new();
    for i in 0..20 {
        src.push_str(&format!("let v{i} = scratch() |> expose(\"p{i}\")\n"));
    }
    src.push_str("export app = scratch()\n");
    let (n, _) = check_errors(&[("build.kiln", &src)]);
    assert_eq!(n, 20);
}

#[test]
fn syntax_errors_say_what_was_expected() {
    let (n, out) = check_errors(&[("build.kiln", "export app = scratch() |> cmd([\"x\"\n")]);
    assert_eq!(n, 1, "{out}");
    assert!(out.contains("syntax error: expected `,` or `]`"), "{out}");
}

#[test]
fn unknown_target_suggests_an_export() {
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    write(
        d.path(),
        "build.kiln",
        "export app = scratch()\nexport web = scratch()\n",
    );
    let err = frontend::plan_kiln(
        &d.path().join("build.kiln"),
        d.path(),
        &opts(Some("ap")),
        &StatCache::default(),
        &NoImages,
    )
    .err()
    .unwrap();
    let text = format!("{err:?}");
    assert!(
        text.contains("did you mean \\\"app\\\"") || text.contains("did you mean \"app\""),
        "{text}"
    );
}

/// The `#` comment lines of a kiln file's text, trimmed (the lexical view of what fmt keeps).
fn comment_texts(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| {
            l.find(" #")
                .map(|i| &l[i + 1..])
                .or(l.trim_start().starts_with('#').then(|| l.trim_start()))
        })
        .map(|c| c.trim_end().to_string())
        .collect()
}

#[test]
fn fmt_leaves_every_stdlib_module_and_example_as_it_is() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<(String, String)> = kiln::STDLIB
        .iter()
        .map(|(n, t)| (format!("std.{n}"), t.to_string()))
        .collect();
    for e in fs::read_dir(&examples).unwrap() {
        let p = e.unwrap().path().join("build.kiln");
        if p.is_file() {
            files.push((p.display().to_string(), fs::read_to_string(&p).unwrap()));
        }
    }
    assert!(files.len() >= 10, "{}", files.len());
    for (name, text) in &files {
        let once = kiln::fmt::format(text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let twice = kiln::fmt::format(&once).unwrap();
        assert_eq!(once, twice, "{name}: formatting twice changes it");
        assert_eq!(&once, text, "{name} is not in the canonical layout");
        assert_eq!(
            comment_texts(&once),
            comment_texts(text),
            "{name}: comments"
        );
    }
}

#[test]
fn fmt_is_one_layout_keeps_comments_and_meaning() {
    let messy = r##"# header

import std.users   # after the import
let   greeting="# not a comment ${ {A: "1"}.A } \$${name} end\n" # after the let
let name: String = "web"
fn f(port: Int, labels: {A: String, "b.c": String}? = none) -> Image { # after the brace
  # inside
  let base = { let q = scratch(); q }

  base |> env(A: "${port}", B: greeting)   # after a step
  # before a step
  |> cmd(["a",
   # in a list
   "b"]) |> users.runtime_user(name: name)
}
export app = f(8080)
# at the end
"##;
    let want = r##"# header

import std.users
# after the import
let greeting = "# not a comment ${{A: "1"}.A} $${name} end\n"
# after the let
let name: String = "web"
fn f(port: Int, labels: {A: String, "b.c": String}? = none) -> Image {
  # after the brace
  # inside
  let base = {
    let q = scratch()
    q
  }

  base
    |> env(A: "${port}", B: greeting)
    # after a step
    # before a step
    |> cmd(
      [
        "a",
        # in a list
        "b",
      ],
    )
    |> users.runtime_user(name: name)
}
export app = f(8080)
# at the end
"##;
    let once = kiln::fmt::format(messy).unwrap();
    assert_eq!(once, want);
    assert_eq!(kiln::fmt::format(&once).unwrap(), once);
    let d = tempfile::tempdir().unwrap();
    context(d.path());
    let a = kiln_plan(d.path(), messy, None);
    let b = kiln_plan(d.path(), &once, None);
    assert_eq!(keys(&a), keys(&b), "formatting changed the plan");
    assert_eq!(a.target_image().1, b.target_image().1);
}

/// Every ```kiln block of docs/language.md and docs/stdlib/*.md passes what `kiln check`
/// does for a program: loading and checking every file, then evaluating each export. The
/// doc's last ```dockerfile block before it is the `Dockerfile` beside it (for
/// `dockerfile()`), and `lib/common.kiln` is the module the language page's modules section
/// describes. Every fence names its language, so no program is left out unchecked.
#[test]
fn every_program_in_the_docs_checks() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut pages = vec![docs.join("language.md")];
    let mut stdlib: Vec<_> = fs::read_dir(docs.join("stdlib"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    stdlib.sort();
    pages.extend(stdlib);
    let mut checked = 0;
    for page in pages {
        let text = fs::read_to_string(&page).unwrap();
        let mut dockerfile: Option<String> = None;
        let mut block: Option<(String, usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            match (&mut block, line.strip_prefix("```")) {
                (None, Some(lang)) => {
                    assert!(
                        !lang.is_empty(),
                        "{}:{}: a code block without a language",
                        page.display(),
                        n + 1
                    );
                    block = Some((lang.to_string(), n + 1, String::new()));
                }
                (Some(_), Some("")) => {
                    let (lang, at, body) = block.take().unwrap();
                    match lang.as_str() {
                        "dockerfile" => dockerfile = Some(body),
                        "kiln" => {
                            let d = tempfile::tempdir().unwrap();
                            write(d.path(), "build.kiln", &body);
                            write(
                                d.path(),
                                "lib/common.kiln",
                                "fn base() -> Image { image(\"alpine:3.20\") }\n",
                            );
                            if let Some(df) = &dockerfile {
                                write(d.path(), "Dockerfile", df);
                            }
                            let render = |e: kiln::KilnErrors| -> String {
                                let handler = miette::GraphicalReportHandler::new_themed(
                                    miette::GraphicalTheme::unicode_nocolor(),
                                );
                                let mut out = String::new();
                                for err in &e.errors {
                                    handler.render_report(&mut out, err).unwrap();
                                }
                                format!(
                                    "{}:{at}: the program does not check:\n{out}\n{body}",
                                    page.display()
                                )
                            };
                            let checked_prog = kiln::check_file(&d.path().join("build.kiln"))
                                .and_then(|prog| {
                                    kiln::lower::check_exports(&prog, &BuildOptions::default())
                                });
                            if let Err(e) = checked_prog {
                                panic!("{}", render(e));
                            }
                            checked += 1;
                        }
                        _ => {}
                    }
                }
                (Some((_, _, body)), _) => {
                    body.push_str(line);
                    body.push('\n');
                }
                (None, None) => {}
            }
        }
        assert!(
            block.is_none(),
            "{}: an unclosed code block",
            page.display()
        );
    }
    assert!(checked >= 15, "only {checked} programs found in the docs");
}

/// A step that fails inside a standard-library function names the user's call too: the
/// error is at the step in `<stdlib>/node.kiln`, and a "called from" advice points at the
/// line of build.kiln that called `node.app`.
#[test]
fn an_error_inside_the_stdlib_names_the_users_call() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "package.json", "{}\n");
    write(
        d.path(),
        "build.kiln",
        "import std.node\n\nexport app = node.app(image(\"node:20\"), context(\".\"))\n",
    );
    let err = match frontend::plan_kiln(
        &d.path().join("build.kiln"),
        d.path(),
        &opts(None),
        &StatCache::default(),
        &NoImages,
    ) {
        Ok(_) => panic!("planned without package-lock.json"),
        Err(e) => e,
    };
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(200)
        .render_report(&mut out, err.as_ref())
        .unwrap();
    assert!(
        out.contains("\"package-lock.json\" is not in the build context"),
        "{out}"
    );
    assert!(out.contains("<stdlib>/node.kiln"), "{out}");
    assert!(
        out.contains("called from ") && out.contains("this call"),
        "{out}"
    );
    assert!(out.contains("build.kiln:3:14"), "the user's call: {out}");
}
