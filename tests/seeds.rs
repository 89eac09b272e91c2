//! The tutorials' volume, anonymous-volume, inspect, search and history command lines
//! (`../shared/seeds`: 000 lines 2326-2412, 001 lines 589-609 and 710, 003 line 1853), run as
//! written but on the busybox base, against kiln and docker: the same exit codes, the same
//! output lines where docker's are fixed, the same JSON keys where they are not.
//!
//! Must not: start docker containers with a network (`--network none` only), or leave
//! docker containers or volumes other than those named `kiln-e2e-seed-*` (removed on drop).

use crate::common;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn name(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "kiln-e2e-seed-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// One side of the comparison: kiln with its store, or docker.
enum Side<'a> {
    Kiln(&'a KilnStore),
    Docker,
}

impl Side<'_> {
    fn label(&self) -> &'static str {
        match self {
            Side::Kiln(_) => "kiln",
            Side::Docker => "docker",
        }
    }

    /// The command line with `docker`/`kiln` left out; `docker run` gets `--network none`.
    fn cmd(&self, args: &[&str]) -> Output {
        match self {
            Side::Kiln(store) => store.kiln(args),
            Side::Docker => {
                let mut c = docker();
                match args.split_first() {
                    Some((&"run", rest)) => c.args(["run", "--network", "none"]).args(rest),
                    _ => c.args(args),
                };
                run(&mut c)
            }
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.label(),
            show(&out)
        );
        stdout_text(&out).trim_end().to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn sides(store: &KilnStore) -> [Side<'_>; 2] {
    docker_busybox();
    [Side::Kiln(store), Side::Docker]
}

/// 000: `volume create my-volume`, two containers writing and reading it through `--mount
/// type=volume`, `volume inspect`, `volume ls`, `inspect` of the volume (003), `volume rm`.
#[test]
fn volume_walkthrough_matches_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let mut cleanup = DockerCleanup::default();
    let vol = name("my-volume");
    cleanup.volumes.push(vol.clone());
    let mut inspected = Vec::new();
    for side in sides(&store) {
        let who = side.label();
        assert_eq!(side.ok(&["volume", "create", &vol]), vol, "{who}");
        let write = format!("type=volume,source={vol},destination=/data-volume");
        side.ok(&[
            "run",
            "--rm",
            "--mount",
            &write,
            BUSYBOX,
            "sh",
            "-c",
            "echo seeded > /data-volume/newfile.txt",
        ]);
        let read = format!("type=volume,source={vol},destination=/modified-data-volume");
        let text = side.ok(&[
            "run",
            "--rm",
            "--mount",
            &read,
            BUSYBOX,
            "cat",
            "/modified-data-volume/newfile.txt",
        ]);
        assert_eq!(text, "seeded", "{who}");
        let v = side.json(&["volume", "inspect", &vol]);
        let by_inspect = side.json(&["inspect", &vol]);
        assert_eq!(
            keys(&v[0]),
            keys(&by_inspect[0]),
            "{who}: inspect VOLUME and volume inspect differ"
        );
        let formatted = side.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}}",
            &vol,
        ]);
        assert_eq!(formatted, format!("{vol} local local"), "{who}");
        let ls = side.ok(&["volume", "ls"]);
        let header = ls.lines().next().unwrap_or_default().to_string();
        let row = ls
            .lines()
            .find(|l| l.ends_with(vol.as_str()))
            .unwrap_or_else(|| panic!("{who}: {vol} not in volume ls: {ls}"))
            .to_string();
        inspected.push((v[0].clone(), header, row));
        assert_eq!(side.ok(&["volume", "rm", &vol]), vol, "{who}");
        let gone = side.cmd(&["volume", "inspect", &vol]);
        assert_eq!(gone.status.code(), Some(1), "{who}: {}", show(&gone));
    }
    let (k, d) = (&inspected[0], &inspected[1]);
    assert_eq!(keys(&k.0), keys(&d.0), "volume inspect keys");
    // Labels and Options: docker 28 prints null or {} for a volume made by `volume create`.
    for field in ["Name", "Driver", "Scope"] {
        assert_eq!(k.0[field], d.0[field], "volume inspect {field}");
    }
    assert_eq!(k.1, d.1, "volume ls header");
    assert_eq!(k.2, d.2, "volume ls row");
}

/// 001: `run -v /container_collab --name containerA`, `run --volumes-from containerA`, then
/// `rm -v` and `run --rm` remove the anonymous volume; `rm` without `-v` keeps it.
#[test]
fn anonymous_volumes_and_volumes_from_match_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let mut cleanup = DockerCleanup::default();
    for side in sides(&store) {
        let who = side.label();
        let a = name("containerA");
        let c = name("containerC");
        cleanup.containers.extend([a.clone(), c.clone()]);
        side.ok(&[
            "run",
            "-d",
            "-v",
            "/container_collab",
            "--name",
            &a,
            BUSYBOX,
            "sh",
            "-c",
            "echo collab > /container_collab/f; exec sleep 1000",
        ]);
        let mounts = side.json(&["inspect", &a])[0]["Mounts"].clone();
        let m = mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == "/container_collab")
            .unwrap_or_else(|| panic!("{who}: no /container_collab mount in {mounts}"))
            .clone();
        assert_eq!(m["Type"], "volume", "{who}: {m}");
        let vol = m["Name"].as_str().unwrap().to_string();
        cleanup.volumes.push(vol.clone());
        assert!(
            vol.len() == 64 && vol.chars().all(|c| c.is_ascii_hexdigit()),
            "{who}: anonymous volume name {vol}"
        );
        let from = ["run", "--rm", "--volumes-from", &a, BUSYBOX];
        let read = |side: &Side| {
            let mut args = from.to_vec();
            args.extend(["cat", "/container_collab/f"]);
            side.cmd(&args)
        };
        assert!(
            wait_until(Duration::from_secs(10), || stdout_text(&read(&side)).trim()
                == "collab"),
            "{who}: --volumes-from did not show the file: {}",
            show(&read(&side))
        );
        assert_eq!(side.ok(&["rm", "-f", "-v", &a]), a, "{who}");
        let gone = side.cmd(&["volume", "inspect", &vol]);
        assert_eq!(gone.status.code(), Some(1), "{who}: rm -v kept {vol}");

        // `rm` without -v keeps the anonymous volume.
        side.ok(&["run", "-d", "-v", "/kept", "--name", &c, BUSYBOX, "true"]);
        let mounts = side.json(&["inspect", &c])[0]["Mounts"].clone();
        let kept = mounts[0]["Name"].as_str().unwrap().to_string();
        cleanup.volumes.push(kept.clone());
        side.ok(&["wait", &c]);
        assert_eq!(side.ok(&["rm", &c]), c, "{who}");
        side.ok(&["volume", "inspect", &kept]);
        assert_eq!(side.ok(&["volume", "rm", &kept]), kept, "{who}");
    }
}

/// An image's `VOLUME`: `run` mounts a new anonymous volume there, filled from the image;
/// `--volumes-from` shares it, a named volume at that path takes its place, and `rm -v` and
/// `--rm` remove it, as docker does. kiln builds the image; docker loads kiln's tarball.
#[test]
fn image_volumes_become_anonymous_volumes_as_in_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let ctx = temp_dir();
    write_file(&ctx.path().join("seed"), b"from the image\n", 0o644);
    write_file(
        &ctx.path().join("Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY seed /data/seed\nVOLUME /data\n").as_bytes(),
        0o644,
    );
    let image = format!("{}:1", name("volimg"));
    store.kiln_ok(["build", "-t", &image, ctx.path().to_str().unwrap()]);
    let tarball = ctx.path().join("image.tar");
    store.save(&image, &tarball);
    let mut cleanup = DockerCleanup::default();
    cleanup.images.push(image.clone());
    run_ok(docker().args(["load", "-i"]).arg(&tarball));
    for side in sides(&store) {
        let who = side.label();
        let v = name("v");
        let named = name("named");
        let r = name("r");
        cleanup.containers.extend([v.clone(), r.clone()]);
        cleanup.volumes.push(named.clone());
        let script = "cat /data/seed; echo written > /data/new";
        assert_eq!(
            side.ok(&["run", "--name", &v, &image, "sh", "-c", script]),
            "from the image",
            "{who}"
        );
        let mounts = side.json(&["inspect", &v])[0]["Mounts"].clone();
        let [m] = mounts.as_array().unwrap().as_slice() else {
            panic!("{who}: one mount expected: {mounts}");
        };
        assert_eq!(m["Type"], "volume", "{who}: {m}");
        assert_eq!(m["Destination"], "/data", "{who}: {m}");
        let vol = m["Name"].as_str().unwrap().to_string();
        cleanup.volumes.push(vol.clone());
        assert_eq!(vol.len(), 64, "{who}: anonymous volume name {vol}");
        let from = [
            "run",
            "--rm",
            "--volumes-from",
            &v,
            &image,
            "cat",
            "/data/new",
        ];
        assert_eq!(side.ok(&from), "written", "{who}: --volumes-from");

        // A named volume at the image's VOLUME path replaces the anonymous one.
        let at = format!("{named}:/data");
        let script = "cat /data/seed; ls /data";
        let out = side.ok(&["run", "--rm", "-v", &at, &image, "sh", "-c", script]);
        assert_eq!(out, "from the image\nseed", "{who}: named volume");

        // `--rm` removes the image's volume with the container.
        let args = ["run", "-d", "--rm", "--name", &r, &image, "sleep", "1"];
        side.ok(&args);
        let mounts = side.json(&["inspect", &r])[0]["Mounts"].clone();
        let gone = mounts[0]["Name"].as_str().unwrap().to_string();
        cleanup.volumes.push(gone.clone());
        assert!(
            wait_until(Duration::from_secs(20), || side
                .cmd(&["volume", "inspect", &gone])
                .status
                .code()
                == Some(1)),
            "{who}: --rm kept the image's volume {gone}"
        );

        assert_eq!(side.ok(&["rm", "-v", &v]), v, "{who}");
        let kept = side.cmd(&["volume", "inspect", &vol]);
        assert_eq!(kept.status.code(), Some(1), "{who}: rm -v kept {vol}");
        side.ok(&["volume", "rm", &named]);
    }
}

/// 001: `docker search webdriver`. kiln has no registry search; docker's search fails here
/// too (a registry that cannot answer; flags docker refuses). Both: status 1, nothing on
/// stdout.
#[test]
fn search_fails_like_docker() {
    require_peer!("docker");
    let store = KilnStore::new();
    for args in [
        &["search", "127.0.0.1:1/webdriver"][..],
        &["search", "--limit", "101", "webdriver"],
        &["search", "-f", "foo=bar", "webdriver"],
    ] {
        let k = Side::Kiln(&store).cmd(args);
        let d = Side::Docker.cmd(args);
        assert_eq!(k.status.code(), Some(1), "kiln {args:?}: {}", show(&k));
        assert_eq!(d.status.code(), Some(1), "docker {args:?}: {}", show(&d));
        assert_eq!(stdout_text(&k), "", "kiln {args:?}");
        assert_eq!(stdout_text(&d), "", "docker {args:?}");
        assert!(!stderr_text(&k).is_empty(), "kiln {args:?} said nothing");
    }
}

/// 001: `docker history IMAGE` of an imported image: the same header, one row, an import
/// comment.
#[test]
fn history_of_an_imported_image_matches_docker() {
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let [k, d] = sides(&store).map(|s| s.ok(&["history", BUSYBOX]));
    let cols = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    };
    let (kc, dc) = (cols(&k), cols(&d));
    assert_eq!(kc[0], dc[0], "history header:\nkiln:\n{k}\ndocker:\n{d}");
    assert_eq!(
        kc.len(),
        dc.len(),
        "history rows:\nkiln:\n{k}\ndocker:\n{d}"
    );
    // The comments differ in their tail: docker's `import FILE` says "Imported from -" (the
    // client streams the file), kiln's import names what it read; both begin the same way.
    for (who, c) in [("kiln", &kc), ("docker", &dc)] {
        let comment = c[1].last().unwrap();
        assert!(
            comment.starts_with("Imported from "),
            "{who} history COMMENT: {comment}"
        );
    }
}
