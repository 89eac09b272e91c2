//! Resource limits and the freezer end to end, against docker on the busybox base: a payload
//! over `--memory` is OOM-killed with 137 and `inspect` says `OOMKilled`; the cgroup files for `--memory`, `--cpus`,
//! `--cpu-shares`, `--cpu-quota`/`--cpu-period` and `--pids-limit` hold what docker's hold,
//! and `inspect` shows the same HostConfig; `pause`/`unpause` (`ps` status, exec refused,
//! kill and stop of a paused container); `stats --no-stream`'s table; `ps -s`.
//!
//! Must not: start docker containers with a network (`--network none` only), or leave
//! containers behind (docker's are named `kiln-e2e-lc-*` and removed on drop).

use crate::common;
use crate::lifecycle::{name, ok, pid_of, DockerContainer, Kiln};

use common::*;

/// The limit files of each cgroup version kiln and docker write for the flags below.
const FILES: [&str; 11] = [
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "memory.max",
    "memory.swap.max",
    "cpu.max",
    "cpu.weight",
    "pids.max",
    "freezer.state",
];

/// `kiln rm -f NAME` when dropped, so a failed assertion leaves no (paused) container.
struct RemoveOnDrop<'a>(&'a Kiln, String);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kiln(&["rm", "-f", &self.1]);
    }
}

#[test]
fn a_payload_over_memory_is_oom_killed_with_137_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    // busybox's tail keeps the one 64 MiB line in memory; the shell exits with its status.
    let eat = "head -c 64m /dev/zero | tail > /dev/null";
    let kiln = k.kiln(&["run", "--rm", "-m", "8m", BUSYBOX, "sh", "-c", eat]);
    let docker_out = run(docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "-m",
        "8m",
        docker_busybox(),
        "sh",
        "-c",
        eat,
    ]));
    assert_eq!(docker_out.status.code(), Some(137), "{}", show(&docker_out));
    assert_eq!(kiln.status.code(), Some(137), "{}", show(&kiln));
    // Without the limit the same payload runs to its end.
    let free = k.kiln(&["run", "--rm", BUSYBOX, "sh", "-c", eat]);
    ok(free, "the same payload without the limit");
}

/// `State.OOMKilled` and the exit code in `inspect` after an OOM kill, against docker's, for
/// a detached and a foreground container; a payload killed by SIGKILL otherwise (137 too)
/// is not OOM-killed, in either.
#[test]
fn inspect_shows_oom_killed_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let eat = "head -c 100m /dev/zero | tail > /dev/null";
    // A child killed by SIGKILL (PID 1 cannot be, from inside), its status the shell's.
    let sigkill = "sh -c 'kill -9 $$'; exit $?";
    for (payload, oom) in [(eat, true), (sigkill, false)] {
        let state = |v: &serde_json::Value| {
            (
                v["State"]["OOMKilled"].clone(),
                v["State"]["ExitCode"].clone(),
            )
        };
        let d = DockerContainer::run(&["-m", "16m"], &["sh", "-c", payload]);
        ok(d.cmd(&["wait", "@"]), "docker wait");
        let want = state(&d.inspect());
        assert_eq!(
            want,
            (serde_json::json!(oom), serde_json::json!(137)),
            "docker: {payload}"
        );

        let n = name("oom-d");
        let _gone = RemoveOnDrop(&k, n.clone());
        k.run_d(&n, &["-m", "16m"], &["sh", "-c", payload]);
        ok(k.kiln(&["wait", &n]), "kiln wait");
        assert_eq!(state(&k.inspect(&n)), want, "kiln run -d: {payload}");
        // The next run starts afresh.
        if oom {
            ok(k.kiln(&["start", &n]), "kiln start");
            ok(k.kiln(&["wait", &n]), "kiln wait");
            assert_eq!(state(&k.inspect(&n)), want, "kiln start: {payload}");
        }

        let n = name("oom-fg");
        let _gone = RemoveOnDrop(&k, n.clone());
        let out = k.kiln(&[
            "run", "--name", &n, "-m", "16m", BUSYBOX, "sh", "-c", payload,
        ]);
        assert_eq!(out.status.code(), Some(137), "{}", show(&out));
        assert_eq!(state(&k.inspect(&n)), want, "kiln run: {payload}");
    }
}

#[test]
fn limit_files_and_inspect_match_dockers() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    for flags in [
        &[
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "20",
        ][..],
        &[
            "-m",
            "32m",
            "--memory-swap",
            "-1",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "200000",
        ][..],
    ] {
        let n = name("limits");
        k.run_d(&n, flags, &["sleep", "100"]);
        let _cleanup = RemoveOnDrop(&k, n.clone());
        let d = DockerContainer::run(flags, &["sleep", "100"]);
        let (ki, di) = (k.inspect(&n), d.inspect());
        let (kp, dp) = (pid_of(&ki), pid_of(&di));
        let mut compared = 0;
        for f in FILES {
            let theirs = cgroup_file(dp, f);
            if theirs.is_some() {
                compared += 1;
            }
            assert_eq!(cgroup_file(kp, f), theirs, "{f} with {flags:?}");
        }
        assert!(compared >= 4, "docker's cgroup files were not found");
        for field in [
            "Memory",
            "MemorySwap",
            "NanoCpus",
            "CpuShares",
            "CpuQuota",
            "CpuPeriod",
            "PidsLimit",
        ] {
            assert_eq!(
                ki["HostConfig"][field], di["HostConfig"][field],
                "HostConfig.{field} with {flags:?}"
            );
        }
        ok(k.kiln(&["rm", "-f", &n]), "rm -f");
    }
}

#[test]
fn pause_and_unpause_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("pause");
    let id = k.run_d(&n, &[], &["sleep", "100"]);
    let _cleanup = RemoveOnDrop(&k, n.clone());
    let d = DockerContainer::run(&[], &["sleep", "100"]);
    let pid = pid_of(&k.inspect(&n));
    let cgroups: Vec<_> = cgroup_dirs(pid)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(&id))
        .collect();
    assert!(
        !cgroups.is_empty(),
        "the container has no cgroup of its own"
    );

    assert_eq!(ok(k.kiln(&["pause", &n]), "pause"), n);
    ok(d.cmd(&["pause", "@"]), "docker pause");
    let status = |out: std::process::Output| ok(out, "ps").lines().next().unwrap_or("").to_string();
    let ks = status(k.kiln(&[
        "ps",
        "--format",
        "{{.Status}}|{{.State}}",
        "-f",
        &format!("name={n}"),
    ]));
    let ds = status(d.cmd(&[
        "ps",
        "--format",
        "{{.Status}}|{{.State}}",
        "-f",
        &format!("name={}", d.0),
    ]));
    assert!(ks.ends_with("(Paused)|paused"), "kiln: {ks}");
    assert!(ds.ends_with("(Paused)|paused"), "docker: {ds}");
    assert_eq!(k.inspect(&n)["State"]["Paused"], true);
    assert_eq!(k.inspect(&n)["State"]["Status"], "paused");
    // A second pause fails, as docker's does.
    assert_eq!(
        k.kiln(&["pause", &n]).status.code(),
        d.cmd(&["pause", "@"]).status.code()
    );
    // exec into a paused container fails with docker's message.
    let ke = k.kiln(&["exec", &n, "true"]);
    let de = d.cmd(&["exec", "@", "true"]);
    assert_eq!(ke.status.code(), de.status.code(), "{}", show(&ke));
    // Compared without whitespace: miette wraps long lines.
    let said = |o: &std::process::Output| {
        stderr_text(o)
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ',')
            .collect::<String>()
    };
    for (who, out) in [("kiln", &ke), ("docker", &de)] {
        assert!(
            said(out).contains("ispaused,unpausethecontainerbeforeexec"),
            "{who}: {}",
            show(out)
        );
    }
    // unpause, then exec works again.
    assert_eq!(ok(k.kiln(&["unpause", &n]), "unpause"), n);
    ok(d.cmd(&["unpause", "@"]), "docker unpause");
    assert_eq!(k.inspect(&n)["State"]["Paused"], false);
    assert_eq!(ok(k.kiln(&["exec", &n, "echo", "back"]), "exec"), "back");
    assert_eq!(
        k.kiln(&["unpause", &n]).status.code(),
        d.cmd(&["unpause", "@"]).status.code()
    );

    // kill -s TERM of a paused container: signalled and thawed (sleep as PID 1 ignores TERM).
    ok(k.kiln(&["pause", &n]), "pause");
    ok(d.cmd(&["pause", "@"]), "docker pause");
    ok(k.kiln(&["kill", "-s", "TERM", &n]), "kill -s TERM");
    ok(d.cmd(&["kill", "-s", "TERM", "@"]), "docker kill -s TERM");
    assert_eq!(
        k.inspect(&n)["State"]["Status"],
        d.inspect()["State"]["Status"]
    );
    assert_eq!(k.inspect(&n)["State"]["Status"], "running");

    // stop of a paused container ends it with SIGKILL's status after the timeout.
    ok(k.kiln(&["pause", &n]), "pause");
    ok(d.cmd(&["pause", "@"]), "docker pause");
    ok(k.kiln(&["stop", "-t", "1", &n]), "stop");
    ok(d.cmd(&["stop", "-t", "1", "@"]), "docker stop");
    assert_eq!(
        k.inspect(&n)["State"]["ExitCode"],
        d.inspect()["State"]["ExitCode"]
    );
    assert_eq!(k.inspect(&n)["State"]["Paused"], false);
    ok(k.kiln(&["rm", &n]), "rm");
    let left: Vec<_> = cgroups.iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

/// The cells of a table kiln or docker printed (columns split on runs of 2+ spaces).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn stats_no_stream_has_dockers_shape() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("stats");
    let id = k.run_d(&n, &["-m", "64m"], &["sleep", "100"]);
    let _cleanup = RemoveOnDrop(&k, n.clone());
    let d = DockerContainer::run(&["-m", "64m"], &["sleep", "100"]);
    let kt = ok(k.kiln(&["stats", "--no-stream", &n]), "stats");
    let dt = ok(d.cmd(&["stats", "--no-stream", "@"]), "docker stats");
    let (kl, dl): (Vec<&str>, Vec<&str>) = (kt.lines().collect(), dt.lines().collect());
    assert_eq!(cells(kl[0]), cells(dl[0]), "the header");
    assert_eq!(kl.len(), 2, "{kt}");
    let (kr, dr) = (cells(kl[1]), cells(dl[1]));
    assert_eq!(kr.len(), dr.len(), "kiln: {kt}\ndocker: {dt}");
    assert_eq!(kr[0], id[..12]);
    assert_eq!(kr[1], n);
    // MEM USAGE / LIMIT: the limit is the same; NET I/O with no network; PIDS: the one sleep.
    let limit = |c: &str| c.split(" / ").nth(1).unwrap_or("").to_string();
    assert_eq!(limit(&kr[3]), limit(&dr[3]));
    assert_eq!(limit(&kr[3]), "64MiB");
    assert_eq!(kr[5], dr[5], "NET I/O");
    assert_eq!(kr[7], dr[7], "PIDS");
    assert!(kr[2].ends_with('%') && kr[4].ends_with('%'), "{kt}");
    // --format picks fields.
    let one = ok(
        k.kiln(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}}",
            &n,
        ]),
        "stats --format",
    );
    assert_eq!(one, format!("{n} 1"));
    ok(k.kiln(&["rm", "-f", &n]), "rm -f");
}

#[test]
fn ps_size_shows_the_writes_and_the_virtual_size_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("size");
    let payload = ["sh", "-c", "echo hello > /a; sleep 100"];
    k.run_d(&n, &[], &payload);
    let _cleanup = RemoveOnDrop(&k, n.clone());
    let d = DockerContainer::run(&[], &payload);
    let size = |out: std::process::Output, who: &str| {
        let text = ok(out, who);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{who}: {text}");
        assert!(lines[0].trim_end().ends_with("SIZE"), "{who}: {text}");
        lines[1].to_string()
    };
    // The write lands before the table is read.
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        ok(k.kiln(&["exec", &n, "cat", "/a"]), "exec") == "hello"
            && ok(d.cmd(&["exec", "@", "cat", "/a"]), "docker exec") == "hello"
    }));
    let kl = size(
        k.kiln(&["ps", "-s", "-f", &format!("name={n}")]),
        "kiln ps -s",
    );
    let dl = size(
        d.cmd(&["ps", "-s", "-f", &format!("name={}", d.0)]),
        "docker ps -s",
    );
    let tail = |l: &str| l[l.rfind("  ").map_or(0, |i| i + 2)..].trim().to_string();
    assert_eq!(tail(&kl), tail(&dl));
    assert!(tail(&kl).starts_with("6B (virtual "), "{kl}");
    let formatted = ok(
        k.kiln(&["ps", "--format", "{{.Size}}", "-f", &format!("name={n}")]),
        "ps --format {{.Size}}",
    );
    assert_eq!(formatted, tail(&kl));
    ok(k.kiln(&["rm", "-f", &n]), "rm -f");
}

#[test]
fn a_paused_container_whose_supervisor_is_killed_ends_and_leaves_no_cgroup() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let n = name("pausedsup");
    let id = k.run_d(&n, &[], &["sleep", "100"]);
    let _cleanup = RemoveOnDrop(&k, n.clone());
    let pid = pid_of(&k.inspect(&n));
    let cgroups: Vec<_> = cgroup_dirs(pid)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(&id))
        .collect();
    ok(k.kiln(&["pause", &n]), "pause");
    let sup = k.supervisor_pid(&id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The next reader records the failure and thaws the container, which then dies with
    // its supervisor (frozen, it could not).
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        ok(k.kiln(&["ps", "-a", "--format", "{{.State}}"]), "ps") == "exited"
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }));
    ok(k.kiln(&["rm", &n]), "rm");
    let left: Vec<_> = cgroups.iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}
