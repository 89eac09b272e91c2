//! The run flags and image commands of issue 11 §1 end to end, against docker on the busybox
//! base: `--cap-add`/`--cap-drop`/`--privileged` (CapEff, CapBnd and the seccomp mode of
//! /proc/self/status; chown without CAP_CHOWN), `--pid host` and `--pid container:NAME`,
//! `--volumes-from`, `-P` (kiln only: docker publishes nothing without a bridge), `exec -d`,
//! `rmi`/`rmi -f` with containers using the image, `kiln image ...` and `kiln version`.
//!
//! Must not: start docker containers with a network (`--network none` only), or leave
//! anything outside the scratch directory and the docker containers, volumes and images
//! named `kiln-e2e-rf-*` (removed at the end of each test).

use crate::common;

use std::process::Output;
use std::time::Duration;

use common::*;

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", show(&out));
    stdout_text(&out).trim().to_string()
}

/// A unique name for what this test process makes.
fn name(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "kiln-e2e-rf-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// `docker run --rm --network none FLAGS busybox:test ARGS`.
fn docker_run(flags: &[&str], args: &[&str]) -> Output {
    let mut c = docker();
    c.args(["run", "--rm", "--network", "none"])
        .args(flags)
        .arg(docker_busybox())
        .args(args);
    run(&mut c)
}

fn kiln_run(store: &KilnStore, flags: &[&str], args: &[&str]) -> Output {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(flags);
    all.push(BUSYBOX);
    all.extend_from_slice(args);
    store.kiln(&all)
}

/// The `Cap*:` and `Seccomp:` lines of /proc/self/status that tell the confinement apart.
fn confinement(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| {
            l.starts_with("CapEff:") || l.starts_with("CapBnd:") || l.starts_with("Seccomp:")
        })
        .map(str::to_string)
        .collect()
}

/// This process's bounding set, as a number.
fn own_bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn capabilities_match_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let cases: &[(&[&str], Option<u64>)] = &[
        (&[], None),
        (&["--cap-drop", "CHOWN"], None),
        (&["--cap-drop", "all", "--cap-add", "chown"], None),
        (
            &["--cap-add", "CAP_SYS_ADMIN", "--cap-drop", "net_raw"],
            None,
        ),
        // Every capability: where docker's daemon lacks one (as in some CI sandboxes) docker
        // cannot start these, and kiln gives what its bounding set holds.
        (&["--cap-add", "ALL", "--cap-drop", "CAP_CHOWN"], Some(!1)),
        (&["--privileged"], Some(!0)),
    ];
    for (flags, all_but) in cases {
        let k = kiln_run(&store, flags, &["cat", "/proc/self/status"]);
        assert!(k.status.success(), "kiln {flags:?}: {}", show(&k));
        let kiln = confinement(&stdout_text(&k));
        let d = docker_run(flags, &["cat", "/proc/self/status"]);
        if d.status.success() {
            assert_eq!(kiln, confinement(&stdout_text(&d)), "{flags:?}");
            continue;
        }
        let all_but = all_but.unwrap_or_else(|| panic!("docker {flags:?}: {}", show(&d)));
        assert!(
            stderr_text(&d).contains("unable to apply caps"),
            "docker {flags:?}: {}",
            show(&d)
        );
        let want = own_bounding_set() & all_but;
        let seccomp = if flags.contains(&"--privileged") {
            0
        } else {
            2
        };
        assert_eq!(
            kiln,
            vec![
                format!("CapEff:\t{want:016x}"),
                format!("CapBnd:\t{want:016x}"),
                format!("Seccomp:\t{seccomp}"),
            ],
            "{flags:?}"
        );
    }
    // An unknown name is refused before anything runs, as docker refuses it.
    let k = kiln_run(&store, &["--cap-add", "foo"], &["true"]);
    let d = docker_run(&["--cap-add", "foo"], &["true"]);
    assert!(!k.status.success() && !d.status.success());
    for out in [&k, &d] {
        let err = stderr_text(out);
        assert!(
            err.contains("unknown capability") && err.contains("\"CAP_FOO\""),
            "{}",
            show(out)
        );
    }

    // chown needs CAP_CHOWN: without it, it fails as under docker.
    let script = "chown 1:1 /tmp && echo chowned";
    for flags in [&[][..], &["--cap-drop", "CHOWN"][..]] {
        let k = kiln_run(&store, flags, &["sh", "-c", script]);
        let d = docker_run(flags, &["sh", "-c", script]);
        assert_eq!(
            k.status.code(),
            d.status.code(),
            "{flags:?}: {} / {}",
            show(&k),
            show(&d)
        );
        assert_eq!(stdout_text(&k), stdout_text(&d), "{flags:?}");
        assert_eq!(
            stderr_text(&k).contains("Operation not permitted"),
            stderr_text(&d).contains("Operation not permitted"),
            "{flags:?}: {} / {}",
            show(&k),
            show(&d)
        );
    }
    let k = kiln_run(&store, &["--cap-drop", "CHOWN"], &["sh", "-c", script]);
    assert!(!k.status.success(), "{}", show(&k));
}

/// `ps -o pid,args` lines inside a container whose args contain `marker`.
fn ps_lines(out: &Output, marker: &str) -> Vec<String> {
    stdout_text(out)
        .lines()
        .filter(|l| l.contains(marker) && !l.contains("ps -o"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn pid_host_and_container_namespaces_match_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let mut cleanup = DockerCleanup::default();
    // A host process both must see with --pid host, at its host pid.
    let mut marker = std::process::Command::new(BUSYBOX_BINARY)
        .args(["sleep", "4242"])
        .spawn()
        .unwrap();
    let want = format!("{} {BUSYBOX_BINARY} sleep 4242", marker.id());
    let script = ["sh", "-c", "ps -o pid,args"];
    let k = kiln_run(&store, &["--pid", "host"], &script);
    let d = docker_run(&["--pid", "host"], &script);
    let (kl, dl) = (ps_lines(&k, "sleep 4242"), ps_lines(&d, "sleep 4242"));
    assert_eq!(kl, vec![want.clone()], "{}", show(&k));
    assert_eq!(kl, dl, "{}", show(&d));
    // Without it, neither sees the host's processes.
    let k = kiln_run(&store, &[], &script);
    let d = docker_run(&[], &script);
    assert!(ps_lines(&k, "sleep 4242").is_empty(), "{}", show(&k));
    assert!(ps_lines(&d, "sleep 4242").is_empty(), "{}", show(&d));
    let _ = marker.kill();
    let _ = marker.wait();

    // --pid container:NAME: the other container's PID 1 is this one's PID 1.
    let kn = name("pidsrc");
    ok(
        store.kiln(["run", "-d", "--name", &kn, BUSYBOX, "sleep", "4343"]),
        "kiln run -d",
    );
    let dn = name("pidsrc");
    cleanup.containers.push(dn.clone());
    let mut c = docker();
    c.args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &dn,
        docker_busybox(),
        "sleep",
        "4343",
    ]);
    ok(run(&mut c), "docker run -d");
    let k = kiln_run(&store, &["--pid", &format!("container:{kn}")], &script);
    let d = docker_run(&["--pid", &format!("container:{dn}")], &script);
    assert_eq!(
        ps_lines(&k, "sleep 4343"),
        vec!["1 sleep 4343"],
        "{}",
        show(&k)
    );
    assert_eq!(
        ps_lines(&k, "sleep 4343"),
        ps_lines(&d, "sleep 4343"),
        "{}",
        show(&d)
    );
    ok(store.kiln(["rm", "-f", &kn]), "kiln rm -f");
    // A container that is not running has no namespace to join.
    let k = kiln_run(&store, &["--pid", &format!("container:{kn}")], &["true"]);
    assert!(!k.status.success(), "{}", show(&k));
}

#[test]
fn volumes_from_matches_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let mut cleanup = DockerCleanup::default();
    let dir = temp_dir();
    let bind = dir.path().join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    std::fs::write(bind.join("f"), "from the host\n").unwrap();
    let bind_spec = format!("{}:/bind:ro", bind.display());
    let vol = name("vol");
    cleanup.volumes.push(vol.clone());
    let vol_spec = format!("{vol}:/data");
    let setup = "echo in-volume > /data/v && sleep 1000";
    let kn = name("vsrc");
    ok(
        store.kiln([
            "run", "-d", "--name", &kn, "-v", &vol_spec, "-v", &bind_spec, BUSYBOX, "sh", "-c",
            setup,
        ]),
        "kiln run -d",
    );
    let dn = name("vsrc");
    cleanup.containers.push(dn.clone());
    let mut c = docker();
    c.args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &dn,
        "-v",
        &vol_spec,
        "-v",
        &bind_spec,
    ])
    .args([docker_busybox(), "sh", "-c", setup]);
    ok(run(&mut c), "docker run -d");
    let check = "cat /data/v /bind/f; touch /data/w && echo data-writable; \
                 touch /bind/w 2>/dev/null || echo bind-read-only";
    // `:ro` makes every mount read-only; `:rw` leaves each as it was (docker's rule).
    for mode in ["", ":ro", ":rw"] {
        let (kf, df) = (format!("{kn}{mode}"), format!("{dn}{mode}"));
        // The source may still be writing its file.
        let mut k = kiln_run(&store, &["--volumes-from", &kf], &["sh", "-c", check]);
        assert!(wait_until(Duration::from_secs(10), || {
            k = kiln_run(&store, &["--volumes-from", &kf], &["sh", "-c", check]);
            stdout_text(&k).contains("in-volume")
        }));
        let d = docker_run(&["--volumes-from", &df], &["sh", "-c", check]);
        assert_eq!(
            stdout_text(&k),
            stdout_text(&d),
            "{mode}: {} / {}",
            show(&k),
            show(&d)
        );
        let writable = mode != ":ro";
        assert_eq!(
            stdout_text(&k).contains("data-writable"),
            writable,
            "{mode}"
        );
        assert!(stdout_text(&k).contains("bind-read-only"), "{mode}");
    }
    let k = kiln_run(&store, &["--volumes-from", &format!("{kn}:rx")], &["true"]);
    assert!(!k.status.success(), "{}", show(&k));
    ok(store.kiln(["rm", "-f", &kn]), "kiln rm -f");
}

#[test]
fn publish_all_publishes_every_exposed_port_on_loopback() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox:test\nEXPOSE 80 53/udp\n",
    )
    .unwrap();
    let image = name("exposed");
    ok(
        store.kiln([
            "build".as_ref(),
            "-q".as_ref(),
            "-t".as_ref(),
            image.as_ref(),
            dir.path().as_os_str(),
        ]),
        "kiln build",
    );
    let n = name("pall");
    ok(
        store.kiln([
            "run", "-d", "-P", "--name", &n, &image, "busybox", "httpd", "-f", "-p", "80", "-h",
            "/etc",
        ]),
        "kiln run -d -P",
    );
    let ports = ok(store.kiln(["port", &n]), "kiln port");
    let lines: Vec<&str> = ports.lines().collect();
    assert_eq!(lines.len(), 2, "{ports}");
    assert!(
        lines.iter().any(|l| l.starts_with("53/udp -> 127.0.0.1:")),
        "{ports}"
    );
    let tcp = ok(store.kiln(["port", &n, "80"]), "kiln port 80");
    let port: u16 = tcp
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("kiln port 80: {tcp:?}"));
    assert!(
        lines.contains(&format!("80/tcp -> {tcp}").as_str()),
        "{ports}"
    );
    let reply = http_get(port, "/hostname", Duration::from_secs(10));
    assert!(reply.contains("200 OK"), "through the -P port: {reply:?}");
    ok(store.kiln(["rm", "-f", &n]), "kiln rm -f");
}

#[test]
fn exec_detached_returns_once_started() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let mut cleanup = DockerCleanup::default();
    let kn = name("execd");
    ok(
        store.kiln(["run", "-d", "--name", &kn, BUSYBOX, "sleep", "1000"]),
        "kiln run -d",
    );
    let dn = name("execd");
    cleanup.containers.push(dn.clone());
    let mut c = docker();
    c.args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &dn,
        docker_busybox(),
        "sleep",
        "1000",
    ]);
    ok(run(&mut c), "docker run -d");
    // The command outlives the exec that started it; its output goes nowhere.
    let script = "echo not-shown; sleep 0.3; echo done > /tmp/marker";
    let k = store.kiln(["exec", "-d", &kn, "sh", "-c", script]);
    let d = run(docker().args(["exec", "-d", &dn, "sh", "-c", script]));
    assert_eq!(
        stdout_text(&k),
        stdout_text(&d),
        "{} / {}",
        show(&k),
        show(&d)
    );
    assert_eq!(k.status.code(), d.status.code());
    assert!(wait_until(Duration::from_secs(10), || {
        stdout_text(&store.kiln(["exec", &kn, "cat", "/tmp/marker"])) == "done\n"
    }));
    // A command that cannot start fails the exec itself, as docker's.
    let k = store.kiln(["exec", "-d", &kn, "no-such-command"]);
    let d = run(docker().args(["exec", "-d", &dn, "no-such-command"]));
    assert!(
        !k.status.success() && !d.status.success(),
        "{} / {}",
        show(&k),
        show(&d)
    );
    assert!(
        stderr_text(&k).contains("executable file not found"),
        "{}",
        show(&k)
    );
    ok(store.kiln(["rm", "-f", &kn]), "kiln rm -f");
}

/// The REPOSITORY:TAG pairs `images` lists.
fn tags(out: &Output) -> Vec<String> {
    stdout_text(out)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{}:{}", f[0], f[1])
        })
        .collect()
}

#[test]
fn rmi_and_image_commands_match_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let mut cleanup = DockerCleanup::default();
    // One image with one tag each side, used by a stopped container.
    let image = format!("{}:1", name("img"));
    let (ksrc, dsrc) = (name("src"), name("src"));
    cleanup.containers.push(dsrc.clone());
    cleanup.images.push(image.clone());
    ok(
        store.kiln(["run", "--name", &ksrc, BUSYBOX, "touch", "/x"]),
        "kiln run",
    );
    ok(store.kiln(["commit", &ksrc, &image]), "kiln commit");
    let mut c = docker();
    c.args([
        "run",
        "--network",
        "none",
        "--name",
        &dsrc,
        docker_busybox(),
        "touch",
        "/x",
    ]);
    ok(run(&mut c), "docker run");
    ok(
        run(docker().args(["commit", &dsrc, &image])),
        "docker commit",
    );
    let (kuser, duser) = (name("user"), name("user"));
    cleanup.containers.push(duser.clone());
    ok(
        store.kiln(["create", "--name", &kuser, &image, "true"]),
        "kiln create",
    );
    ok(
        run(docker().args([
            "create",
            "--network",
            "none",
            "--name",
            &duser,
            &image,
            "true",
        ])),
        "docker create",
    );
    let k = store.kiln(["rmi", &image]);
    let d = run(docker().args(["rmi", &image]));
    assert_eq!(
        k.status.code(),
        d.status.code(),
        "{} / {}",
        show(&k),
        show(&d)
    );
    assert_eq!(k.status.code(), Some(1));
    for out in [&k, &d] {
        assert!(stderr_text(out).contains("(must force)"), "{}", show(out));
    }
    assert!(tags(&store.kiln(["images"])).contains(&image));
    let k = store.kiln(["rmi", "-f", &image]);
    let d = run(docker().args(["rmi", "-f", &image]));
    assert!(
        k.status.success() && d.status.success(),
        "{} / {}",
        show(&k),
        show(&d)
    );
    let untagged = format!("Untagged: {image}");
    assert_eq!(stdout_text(&k).lines().next(), Some(untagged.as_str()));
    assert_eq!(stdout_text(&d).lines().next(), Some(untagged.as_str()));
    assert!(!tags(&store.kiln(["images"])).contains(&image));
    // The container still runs its image (kiln keeps it, untagged, while a container uses it).
    ok(
        store.kiln(["start", "-a", &kuser]),
        "kiln start -a after rmi -f",
    );

    // A running container's image cannot be removed by ID, even forced.
    let kid = store.image_id(BUSYBOX).trim_start_matches("sha256:")[..12].to_string();
    let krun = name("running");
    ok(
        store.kiln(["run", "-d", "--name", &krun, BUSYBOX, "sleep", "1000"]),
        "kiln run -d",
    );
    let drun = name("running");
    cleanup.containers.push(drun.clone());
    let mut c = docker();
    c.args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &drun,
        docker_busybox(),
        "sleep",
        "1000",
    ]);
    ok(run(&mut c), "docker run -d");
    let did = ok(
        run(docker().args(["image", "inspect", "--format", "{{.Id}}", docker_busybox()])),
        "docker image inspect",
    );
    let did = did.trim_start_matches("sha256:")[..12].to_string();
    let k = store.kiln(["rmi", "-f", &kid]);
    let d = run(docker().args(["rmi", "-f", &did]));
    assert_eq!(
        k.status.code(),
        d.status.code(),
        "{} / {}",
        show(&k),
        show(&d)
    );
    for out in [&k, &d] {
        assert!(
            stderr_text(out).contains("(cannot be forced)"),
            "{}",
            show(out)
        );
    }
    ok(store.kiln(["rm", "-f", &krun, &kuser, &ksrc]), "kiln rm -f");

    // `kiln image ...` is the same commands.
    assert_eq!(
        stdout_text(&store.kiln(["image", "ls"])),
        stdout_text(&store.kiln(["images", "-a"]))
    );
    let inspect = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(store.kiln(args), "inspect")).unwrap()
    };
    assert_eq!(
        inspect(&["image", "inspect", BUSYBOX])[0]["Id"],
        inspect(&["inspect", BUSYBOX])[0]["Id"]
    );
    ok(
        store.kiln(["image", "tag", BUSYBOX, "kiln-e2e-rf-tag:1"]),
        "image tag",
    );
    assert!(tags(&store.kiln(["image", "ls"])).contains(&"kiln-e2e-rf-tag:1".to_string()));
    ok(store.kiln(["image", "rm", "kiln-e2e-rf-tag:1"]), "image rm");
    ok(store.kiln(["image", "prune", "-f"]), "image prune -f");
    // `image inspect` is for images: a container's name is no image.
    ok(
        store.kiln(["run", "--name", &krun, BUSYBOX, "true"]),
        "kiln run",
    );
    assert!(!store.kiln(["image", "inspect", &krun]).status.success());
    assert!(store.kiln(["inspect", &krun]).status.success());

    // `kiln version`: docker's Client section, with the same OS/Arch.
    let v = ok(store.kiln(["version"]), "kiln version");
    let dv = stdout_text(&run(docker().arg("version")));
    let os_arch = |text: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with("OS/Arch:"))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
    };
    assert!(v.starts_with("Client:\n Version:"), "{v}");
    assert_eq!(os_arch(&v), os_arch(&dv), "{v}\n{dv}");
}

/// `--health-cmd` and its siblings, `--stop-signal`, `--stop-timeout` and `--cidfile`, as
/// docker reads them: the same Config.Healthcheck, StopSignal and StopTimeout, a container
/// that turns healthy, a plain `stop` that sends the signal chosen (the payload's handler
/// sets the exit code), the ID in the file, and a second run refused while the file is there.
#[test]
fn health_stop_and_cidfile_flags_match_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let script = "trap 'exit 3' USR1; touch /tmp/ok; sleep 1000 & wait";
    let mut docker_names = Vec::new();
    for who in ["kiln", "docker"] {
        let n = name("health");
        let cidfile = dir.path().join(format!("{who}.cid"));
        let cid = cidfile.to_str().unwrap();
        let flags = [
            "-d",
            "--name",
            &n,
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "--stop-signal",
            "USR1",
            "--stop-timeout",
            "20",
            "--cidfile",
            cid,
        ];
        let cmd = |args: &[&str]| match who {
            "kiln" => store.kiln(args),
            _ => run(docker().args(args)),
        };
        let mut run_args = vec!["run"];
        if who == "docker" {
            run_args.extend(["--network", "none"]);
            docker_names.push(n.clone());
        }
        run_args.extend(flags);
        let image = if who == "kiln" {
            BUSYBOX
        } else {
            docker_busybox()
        };
        run_args.extend([image, "sh", "-c", script]);
        let id = ok(cmd(&run_args), &format!("{who} run"));
        assert_eq!(
            std::fs::read_to_string(&cidfile).unwrap(),
            id,
            "{who}: cidfile"
        );
        let config = ok(
            cmd(&[
                "inspect",
                "-f",
                "{{.Config.StopSignal}} {{.Config.StopTimeout}} {{json .Config.Healthcheck}}",
                &n,
            ]),
            "inspect",
        );
        // kiln's json sorts an object's keys; docker keeps its struct's order.
        let (stop, health) = config.split_at(8);
        assert_eq!(stop, "USR1 20 ", "{who}");
        let health: serde_json::Value = serde_json::from_str(health).unwrap();
        assert_eq!(
            health,
            serde_json::json!({"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 1000000000u64, "Retries": 2}),
            "{who}"
        );
        let healthy = || {
            stdout_text(&cmd(&["inspect", "-f", "{{.State.Health.Status}}", &n])).trim()
                == "healthy"
        };
        assert!(
            wait_until(Duration::from_secs(20), healthy),
            "{who}: never healthy"
        );
        // Refused while the file is there: nothing is created.
        let again = cmd(&run_args);
        assert_eq!(again.status.code(), Some(125), "{who}: {}", show(&again));
        assert!(
            stderr_text(&again).contains("container ID file found"),
            "{who}: {}",
            show(&again)
        );
        let started = std::time::Instant::now();
        ok(cmd(&["stop", &n]), "stop");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{who}: stop waited for the timeout, so USR1 did not end the payload"
        );
        let code = ok(
            cmd(&["inspect", "-f", "{{.State.ExitCode}}", &n]),
            "inspect",
        );
        assert_eq!(code, "3", "{who}: the USR1 handler's exit code");
        ok(cmd(&["rm", &n]), "rm");
    }
    // Bad values are refused before anything is made.
    for bad in [
        &["--health-interval", "soon"][..],
        &["--stop-signal", "SIGNOPE"],
        &["--no-healthcheck", "--health-cmd", "true"],
    ] {
        let out = kiln_run(&store, bad, &["true"]);
        assert!(!out.status.success(), "{bad:?} was taken");
        let d = docker_run(bad, &["true"]);
        assert!(!d.status.success(), "docker took {bad:?}");
    }
    for n in docker_names {
        let _ = run(docker().args(["rm", "-f", &n]));
    }
}

/// `--ulimit` and `--shm-size` as docker's: the limits the payload sees, the size of its
/// /dev/shm, inspect's HostConfig.Ulimits and ShmSize (and their defaults), and docker's
/// refusals of a bad limit.
#[test]
fn ulimits_and_shm_size_match_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let flags = [
        "--ulimit",
        "nofile=1024:2048",
        "--ulimit",
        "nproc=100",
        "--ulimit",
        "core=-1",
        "--shm-size",
        "16m",
    ];
    let script =
        "ulimit -Sn; ulimit -Hn; ulimit -u; ulimit -c; df -k /dev/shm | tail -1 | awk '{print $2}'";
    let k = ok(kiln_run(&store, &flags, &["sh", "-c", script]), "kiln run");
    let d = ok(docker_run(&flags, &["sh", "-c", script]), "docker run");
    assert_eq!(k, d);
    assert_eq!(
        k.split_whitespace().collect::<Vec<_>>(),
        ["1024", "2048", "100", "unlimited", "16384"]
    );
    let template = "{{.HostConfig.ShmSize}} {{json .HostConfig.Ulimits}}";
    let shown = |with: &[&str]| {
        let (kn, dn) = (name("ul"), name("ul"));
        let mut kargs = vec!["create", "--name", &kn];
        kargs.extend_from_slice(with);
        kargs.extend([BUSYBOX, "true"]);
        ok(store.kiln(&kargs), "kiln create");
        let mut dargs = vec!["create", "--network", "none", "--name", &dn];
        dargs.extend_from_slice(with);
        dargs.extend([docker_busybox(), "true"]);
        ok(run(docker().args(&dargs)), "docker create");
        let kt = ok(store.kiln(["inspect", "-f", template, &kn]), "kiln inspect");
        let dt = ok(
            run(docker().args(["inspect", "-f", template, &dn])),
            "docker inspect",
        );
        let _ = run(docker().args(["rm", &dn]));
        let parse = |t: &str| {
            let (size, limits) = t.split_once(' ').unwrap();
            (
                size.to_string(),
                serde_json::from_str::<serde_json::Value>(limits).unwrap(),
            )
        };
        (parse(&kt), parse(&dt))
    };
    let (k, d) = shown(&flags);
    assert_eq!(k, d);
    assert_eq!(k.0, "16777216");
    let (k, d) = shown(&[]);
    assert_eq!(k, d);
    assert_eq!(k, ("67108864".to_string(), serde_json::Value::Null));
    for bad in ["nofile=3:2", "bogus=1", "nofile"] {
        let k = kiln_run(&store, &["--ulimit", bad], &["true"]);
        let d = docker_run(&["--ulimit", bad], &["true"]);
        assert_eq!(
            k.status.code(),
            d.status.code(),
            "{bad}: {} / {}",
            show(&k),
            show(&d)
        );
        assert_eq!(k.status.code(), Some(125), "{bad}");
    }
}

/// `--add-host NAME:IP` as docker's: the lines after the loopback names of /etc/hosts (kiln
/// adds the container's own hostname after them, docker does not on `--network none`),
/// HostConfig.ExtraHosts, and docker's refusals; kiln refuses `host-gateway` (there is no
/// bridge) and a kiln network (its members share one /etc/hosts).
#[test]
fn add_host_matches_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let store = KilnStore::with_busybox();
    let flags = [
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "six:::1",
        "--hostname",
        "hh",
    ];
    let k = ok(kiln_run(&store, &flags, &["cat", "/etc/hosts"]), "kiln run");
    let d = ok(docker_run(&flags, &["cat", "/etc/hosts"]), "docker run");
    let k: Vec<&str> = k.lines().filter(|l| *l != "127.0.0.1\thh").collect();
    assert_eq!(k, d.lines().collect::<Vec<_>>());
    assert!(d.contains("10.1.2.3\tdb\n::1\tsix"), "{d}");
    let n = name("hosts");
    let mut args = vec!["create", "--name", &n];
    args.extend(flags);
    args.extend([BUSYBOX, "true"]);
    ok(store.kiln(&args), "create");
    let shown = ok(
        store.kiln(["inspect", "-f", "{{json .HostConfig.ExtraHosts}}", &n]),
        "inspect",
    );
    assert_eq!(shown, r#"["db:10.1.2.3","six:::1"]"#);
    for bad in ["nocolon", "db:notanip", ":1.2.3.4"] {
        let k = kiln_run(&store, &["--add-host", bad], &["true"]);
        let d = docker_run(&["--add-host", bad], &["true"]);
        assert_eq!(k.status.code(), Some(125), "{bad}: {}", show(&k));
        assert_eq!(d.status.code(), Some(125), "{bad}: {}", show(&d));
    }
    let out = kiln_run(&store, &["--add-host", "h:host-gateway"], &["true"]);
    assert!(stderr_text(&out).contains("no bridge"), "{}", show(&out));
    ok(
        store.kiln(["network", "create", "hostsnet"]),
        "network create",
    );
    let out = kiln_run(
        &store,
        &["--network", "hostsnet", "--add-host", "a:1.2.3.4"],
        &["true"],
    );
    assert!(
        stderr_text(&out).contains("share one /etc/hosts"),
        "{}",
        show(&out)
    );
    ok(store.kiln(["network", "rm", "hostsnet"]), "network rm");
}
