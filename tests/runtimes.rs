//! The Node.js and Python examples (examples/node-web, examples/python-script) on real
//! interpreters: a Node.js and a Python base built with kiln from the Debian bookworm minbase
//! (tests/debian.rs) with apt, tagged in the test's own store under the names the examples'
//! FROM lines use; each example built from its Dockerfile and its build.kiln, run, and
//! checked against what its sources say it does, and against docker: `docker build` of the
//! same Dockerfile on the same base (kiln's, saved into docker) gives the same files and
//! runtime config.
//!
//! The tagged names are local stand-ins, not the registry's images: `node:20-alpine` here is
//! Debian's nodejs and npm (Node 18), `python:3.12-slim` Debian's python3 (3.11) with
//! python-is-python3 (the official image has `python`). Neither example uses anything
//! alpine-only or version-specific, so their Dockerfiles build as written.
//!
//! Needs the network: the Debian mirror (apt, and debootstrap for the first run) and
//! registry.npmjs.org (`npm install` in the example's RUN step, on the build's default
//! network, the host's, as a Dockerfile user gets from `docker build`). In CI (`CI=true`)
//! every failure is a failure; locally the tests skip, saying why, when the minbase or the
//! network is unavailable. Each base is built once per test process, by the one test that
//! uses it, in that test's temporary store.
//!
//! Must not: write inside the repository (the examples are copied out first), leave images
//! in docker (its tags are `kiln-e2e/runtimes*`, removed after use), or reach any host but
//! the Debian mirror and the npm registry.

use crate::common;
use crate::debian::{minbase_tarball, unavailable};

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

/// What apt, npm or the resolver print when the network is not there.
fn network_failure(text: &str) -> bool {
    [
        "Temporary failure resolving",
        "Could not connect",
        "Could not resolve",
        "EAI_AGAIN",
        "ENOTFOUND",
        "ECONNREFUSED",
        "ETIMEDOUT",
    ]
    .iter()
    .any(|s| text.contains(s))
}

/// `kiln build --progress plain` of `file` in `ctx` (network: the build's default); the
/// image ID and the build's output, or why the network stopped it (locally).
fn build(store: &KilnStore, ctx: &Path, file: &str, tag: &str) -> Result<(String, String), String> {
    let out_dir = temp_dir();
    let iid = out_dir.path().join("iid");
    let started = Instant::now();
    let out = store.kiln([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "--iidfile".as_ref(),
        iid.as_os_str(),
        "-t".as_ref(),
        tag.as_ref(),
        "-f".as_ref(),
        ctx.join(file).as_os_str(),
        ctx.as_os_str(),
    ]);
    let text = stdout_text(&out) + &stderr_text(&out);
    if !out.status.success() && !in_ci() && network_failure(&text) {
        return Err(format!(
            "building {tag} needs the network: {}",
            last_lines(&text)
        ));
    }
    assert_success(&format!("kiln build -f {file} -t {tag}"), &out);
    eprintln!("kiln build -t {tag} ({file}): {:.1?}", started.elapsed());
    let id = std::fs::read_to_string(&iid).unwrap().trim().to_string();
    Ok((id, text))
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().rev().take(4).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// A new store holding the Debian minbase as `debian:minbase` and, built from it with apt,
/// `tag`: a Dockerfile installing `packages` and removing apt's lists and downloads. The
/// host's extra certificate authorities (`/usr/local/share/ca-certificates/*.crt`, where a
/// host behind a TLS-inspecting proxy trusts it) go into the base as an image user behind
/// that proxy would add them, so HTTPS from a RUN step works wherever the host's does; with
/// none there, the base has Debian's alone.
fn debian_base(tag: &str, packages: &str) -> Result<KilnStore, String> {
    let tarball = minbase_tarball()?;
    let store = KilnStore::new();
    let started = Instant::now();
    store.kiln_ok([
        "import".as_ref(),
        tarball.as_os_str(),
        "debian:minbase".as_ref(),
    ]);
    eprintln!("kiln import of the minbase: {:.1?}", started.elapsed());
    let ctx = temp_dir();
    let certs = ctx.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    if let Ok(entries) = std::fs::read_dir("/usr/local/share/ca-certificates") {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "crt") && p.is_file() {
                std::fs::copy(&p, certs.join(e.file_name())).unwrap();
            }
        }
    }
    let dockerfile = format!(
        "FROM debian:minbase\n\
         COPY certs/ /usr/local/share/ca-certificates/\n\
         RUN apt-get update \\\n \
         && apt-get install -y --no-install-recommends ca-certificates {packages} \\\n \
         && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb\n"
    );
    write_file(&ctx.path().join("Dockerfile"), dockerfile.as_bytes(), 0o644);
    build(&store, ctx.path(), "Dockerfile", tag)?;
    Ok(store)
}

/// A copy of examples/NAME (so nothing is written into the source tree).
fn example(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let ctx = temp_dir();
    copy_fixture(&src, ctx.path());
    ctx
}

/// The image's layer diff_ids (`kiln inspect` RootFS.Layers).
fn layers(store: &KilnStore, image: &str) -> Vec<String> {
    let out = store.kiln_ok(["inspect", image]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = if v.is_array() { &v[0] } else { &v };
    first["RootFS"]["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("{image} has no RootFS.Layers: {v}"))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// The status of the `RUN`/`run` step whose progress line ends with `step` in a plain build
/// log: "CACHED", "DONE ..." or "ERROR ...".
fn step_status(log: &str, step: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let (i, head) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.starts_with('#') && l.contains(" [") && l.ends_with(step))
        .unwrap_or_else(|| panic!("no step {step:?} in the build log:\n{log}"));
    let num = head.split(' ').next().unwrap();
    lines[i + 1..]
        .iter()
        .filter_map(|l| l.strip_prefix(num)?.strip_prefix(' '))
        .find(|rest| {
            rest.starts_with("CACHED") || rest.starts_with("DONE") || rest.starts_with("ERROR")
        })
        .unwrap_or_else(|| panic!("step {step:?} has no end in the build log:\n{log}"))
        .to_string()
}

/// `kiln run -d -p 127.0.0.1:PORT:80 [-e ENV] image`, one page fetched from PORT, the
/// container removed; the reply (status line, headers, body).
fn fetch_page(store: &KilnStore, image: &str, env: &[&str]) -> String {
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let mut args = vec!["run", "-d", "-p", &publish];
    for e in env {
        args.extend(["-e", e]);
    }
    args.push(image);
    let started = Instant::now();
    let id = stdout_text(&store.kiln_ok(&args)).trim().to_string();
    let reply = http_get(port, "/", Duration::from_secs(20));
    eprintln!(
        "kiln run -d {image} to its first page: {:.1?}",
        started.elapsed()
    );
    let logs = store.kiln(["logs", &id]);
    store.kiln_ok(["rm", "-f", &id]);
    assert!(
        reply.contains("200 OK"),
        "no page from {image} on 127.0.0.1:{port}: {reply:?}\n--- its logs\n{}",
        show(&logs)
    );
    assert_eq!(
        stdout_text(&logs),
        "listening on 80\n",
        "server.js's start message"
    );
    reply
}

/// Docker (BuildKit) builds the example's Dockerfile on the same base (kiln's `base`, saved
/// into docker as `kiln-e2e/runtimes-base:NAME`, the Dockerfile's FROM pointed at it in a
/// copy outside the context, so COPY . sees the original) with the host's network, as kiln
/// did. Its final file tree (mode, owner, size, content, link target), layer count and
/// runtime config must be kiln's image's, but for paths starting with `varying` (names
/// npm makes from the clock). The history's wording is the differential tests' concern.
fn same_as_docker(store: &KilnStore, base: &str, ctx: &Path, kiln_image: &str, varying: &[&str]) {
    if let Err(why) = peer_status("docker") {
        return skip_or_fail("docker", &why);
    }
    let name = base.replace([':', '.'], "-");
    let docker_base = format!("kiln-e2e/runtimes-base:{name}");
    let docker_image = format!("kiln-e2e/runtimes:{name}");
    let work = temp_dir();
    store.kiln_ok(["tag", base, &docker_base]);
    store.save(&docker_base, &work.path().join("base.tar"));
    run_ok(
        docker()
            .arg("load")
            .arg("-i")
            .arg(work.path().join("base.tar")),
    );
    let text = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    let from = format!("FROM {base}\n");
    assert!(
        text.contains(&from),
        "the example's Dockerfile has no {from:?}"
    );
    let dockerfile = work.path().join("Dockerfile");
    write_file(
        &dockerfile,
        text.replace(&from, &format!("FROM {docker_base}\n"))
            .as_bytes(),
        0o644,
    );
    let started = Instant::now();
    let built = run(docker()
        .args([
            "build",
            "-q",
            "--network",
            "host",
            "-t",
            &docker_image,
            "-f",
        ])
        .arg(&dockerfile)
        .arg(ctx));
    eprintln!("docker build on {docker_base}: {:.1?}", started.elapsed());
    let started = Instant::now();
    let (d, k) = (work.path().join("docker.tar"), work.path().join("kiln.tar"));
    if built.status.success() {
        docker_save(&docker_image, &d);
    }
    docker_rmi(&docker_image);
    docker_rmi(&docker_base);
    assert_success("docker build of the example", &built);
    store.save(kiln_image, &k);
    let (d, k) = (read_saved_image(&d), read_saved_image(&k));
    // The base's layers are the same bytes on both sides (docker loaded kiln's); the
    // example's own layers, merged, are compared.
    let base_layers = layers(store, base).len();
    assert_eq!(
        d.diff_ids()[..base_layers],
        k.diff_ids()[..base_layers],
        "docker's image is not on kiln's base"
    );
    let upper = |image: &SavedImage| -> FsTree {
        let mut tree = FsTree::new();
        for blob in &image.layer_blobs[base_layers..] {
            apply_layer(&mut tree, &uncompressed(blob));
        }
        // dockerd 20.10's RUN layers keep the copied-up /etc of its mount points (see
        // tests/differential_run.rs); the directory itself, not anything in it.
        tree.into_iter()
            .filter(|(p, e)| {
                !varying.iter().any(|v| p.starts_with(v)) && (p != "etc" || e.kind != FsKind::Dir)
            })
            .collect()
    };
    let mut problems = diff_trees("docker", &upper(&d), "kiln", &upper(&k));
    problems.extend(diff_configs(
        "docker",
        &d.runtime_config(),
        "kiln",
        &k.runtime_config(),
    ));
    let (dn, kn) = (d.diff_ids().len(), k.diff_ids().len());
    if dn != kn {
        problems.push(format!("layers: docker has {dn}, kiln has {kn}"));
    }
    eprintln!("saving and comparing both: {:.1?}", started.elapsed());
    assert!(
        problems.is_empty(),
        "docker and kiln disagree on {kiln_image}:\n{}",
        problems.join("\n")
    );
}

fn body(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn node_web_example_installs_with_npm_serves_its_page_and_reuses_the_install() {
    let started = Instant::now();
    let store = match debian_base("node:20-alpine", "nodejs npm") {
        Ok(s) => s,
        Err(why) => return unavailable(&why),
    };
    eprintln!("Node.js base in all: {:.1?}", started.elapsed());
    let ctx = example("node-web");
    let (a, log) = match build(&store, ctx.path(), "Dockerfile", "kiln-e2e/node-web:df") {
        Ok(x) => x,
        Err(why) => return unavailable(&why),
    };
    assert!(
        step_status(&log, "RUN npm install").starts_with("DONE"),
        "the first build runs npm install:\n{log}"
    );
    let (b, _) = build(&store, ctx.path(), "build.kiln", "kiln-e2e/node-web:kiln").unwrap();
    assert_eq!(a, b, "the Dockerfile and build.kiln give different images");
    same_as_docker(
        &store,
        "node:20-alpine",
        ctx.path(),
        &a,
        &["root/.npm/_logs/"],
    );

    // npm really ran in /app: package.json has no dependencies, so its lock file lists the
    // package alone (npm 7 and later write lockfileVersion 3 for a new install).
    let lock = store.kiln_ok(["run", "--rm", &a, "cat", "/app/package-lock.json"]);
    let lock: serde_json::Value = serde_json::from_slice(&lock.stdout).unwrap();
    assert_eq!(lock["name"], "node-web", "{lock}");
    assert_eq!(lock["lockfileVersion"], 3, "{lock}");
    assert_eq!(
        lock["packages"],
        serde_json::json!({"": {"name": "node-web", "version": "1.0.0"}}),
        "{lock}"
    );

    // server.js: `Hello ${who}. Wish you were here.` as text/plain, WHO defaulting to World.
    let server = std::fs::read_to_string(ctx.path().join("server.js")).unwrap();
    assert!(server.contains("res.end(`Hello ${who}. Wish you were here.\\n`)"));
    let reply = fetch_page(&store, &a, &[]);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:?}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{reply:?}"
    );
    assert_eq!(body(&reply), "Hello World. Wish you were here.\n");

    // A change to a source file: the manifest and install steps are reused (their layers
    // too), the sources' step alone runs again, and both front ends still agree.
    write_file(
        &ctx.path().join("server.js"),
        server
            .replace("Wish you were here.", "Glad you came.")
            .as_bytes(),
        0o644,
    );
    let (a2, log) = build(&store, ctx.path(), "Dockerfile", "kiln-e2e/node-web:df2").unwrap();
    assert_eq!(step_status(&log, "RUN npm install"), "CACHED", "{log}");
    assert!(
        step_status(&log, "COPY . /app").starts_with("DONE"),
        "{log}"
    );
    let (b2, log) = build(&store, ctx.path(), "build.kiln", "kiln-e2e/node-web:kiln2").unwrap();
    assert_eq!(
        step_status(&log, "RUN /bin/sh -c npm install"),
        "CACHED",
        "{log}"
    );
    assert_eq!(a2, b2, "after the change the front ends differ");
    assert_ne!(a, a2, "the changed source made no new image");
    let (before, after) = (layers(&store, &a), layers(&store, &a2));
    assert_eq!(before.len(), after.len());
    let n = before.len();
    assert_eq!(
        before[..n - 1],
        after[..n - 1],
        "the install layer was not reused"
    );
    assert_ne!(before[n - 1], after[n - 1]);
    let reply = fetch_page(&store, &a2, &["WHO=kiln"]);
    assert_eq!(body(&reply), "Hello kiln. Glad you came.\n");

    // The other half of the promise: a change to package.json runs the install again. With
    // a dependency added (as the app's author would next), npm fetches it from the registry
    // over HTTPS in the RUN step.
    let manifest = ctx.path().join("package.json");
    let mut pkg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    pkg["dependencies"] = serde_json::json!({"ms": "2.1.3"});
    write_file(&manifest, pkg.to_string().as_bytes(), 0o644);
    let (a3, log) = match build(&store, ctx.path(), "Dockerfile", "kiln-e2e/node-web:dep") {
        Ok(x) => x,
        Err(why) => return unavailable(&why),
    };
    assert!(
        step_status(&log, "RUN npm install").starts_with("DONE"),
        "a new package.json must run npm install again:\n{log}"
    );
    let (b3, _) = build(&store, ctx.path(), "build.kiln", "kiln-e2e/node-web:kiln3").unwrap();
    assert_eq!(a3, b3);
    let out = store.kiln_ok([
        "run",
        "--rm",
        &a3,
        "node",
        "-p",
        "require('ms/package.json').version + ' ' + require('ms')(90000) + ' ' + \
         require('./package-lock.json').packages['node_modules/ms'].resolved",
    ]);
    assert_eq!(
        stdout_text(&out),
        "2.1.3 2m https://registry.npmjs.org/ms/-/ms-2.1.3.tgz\n"
    );
}

/// `kiln run -i --rm image` with `input` on its stdin.
fn ask(store: &KilnStore, image: &str, input: &str) -> Output {
    run_with_stdin(
        store.cmd().args(["run", "-i", "--rm", image]),
        input.as_bytes(),
    )
}

#[test]
fn python_script_example_runs_on_python_as_nobody() {
    let started = Instant::now();
    let store = match debian_base("python:3.12-slim", "python3 python-is-python3") {
        Ok(s) => s,
        Err(why) => return unavailable(&why),
    };
    eprintln!("Python base in all: {:.1?}", started.elapsed());
    let ctx = example("python-script");
    let (a, _) = build(&store, ctx.path(), "Dockerfile", "kiln-e2e/rng:df").unwrap();
    let (b, _) = build(&store, ctx.path(), "build.kiln", "kiln-e2e/rng:kiln").unwrap();
    assert_eq!(a, b, "the Dockerfile and build.kiln give different images");
    same_as_docker(&store, "python:3.12-slim", ctx.path(), &a, &[]);

    let prompts = "Please enter the min number: Please enter the max number: ";
    let started = Instant::now();
    let out = ask(&store, &a, "3\n9\n");
    eprintln!("kiln run -i of the script: {:.1?}", started.elapsed());
    assert_success("kiln run -i rng", &out);
    let said = stdout_text(&out);
    let n: i64 = said
        .strip_prefix(prompts)
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not the prompts and a number: {said:?}\n{}", show(&out)));
    assert!((3..=9).contains(&n), "{n} is not in 3..=9");
    let out = ask(&store, &a, "5\n5\n");
    assert_eq!(stdout_text(&out), format!("{prompts}5\n"), "{}", show(&out));
    let out = ask(&store, &a, "9\n3\n");
    assert_eq!(
        stdout_text(&out),
        format!("{prompts}Invalid input - shutting down...\n"),
        "{}",
        show(&out)
    );
    // Not a number: Python's ValueError, exit status 1, on stderr.
    let out = ask(&store, &a, "x\n");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stderr_text(&out).contains("ValueError"), "{}", show(&out));

    // As the Dockerfile says: user 65534, in /app, writing no bytecode.
    let out = store.kiln_ok([
        "run",
        "--rm",
        &a,
        "python",
        "-c",
        "import os, sys; print(os.getuid(), os.getgid(), os.getcwd(), sys.flags.dont_write_bytecode)",
    ]);
    assert_eq!(stdout_text(&out), "65534 65534 /app 1\n");

    // The example's comment: run it with a terminal.
    require_peer!("script");
    let kiln = kiln_bin().display().to_string();
    let root = store.root().display().to_string();
    let typed = "sleep 2; printf '4\\r'; sleep 1; printf '4\\r'; sleep 2";
    let out = run(std::process::Command::new("sh").args([
        "-c",
        &format!("({typed}) | script -qfec '{kiln} --root {root} run -it --rm {a}' /dev/null"),
    ]));
    let text = stdout_text(&out).replace('\r', "");
    assert_eq!(
        text,
        "Please enter the min number: 4\nPlease enter the max number: 4\n4\n",
        "{}",
        show(&out)
    );
}
