//! Detached containers end to end, against docker on the busybox base where docker has the
//! same command: `run -d` under a supervisor that outlives the CLI and its shell, the
//! json-file log and `logs -f`, `stop` (TERM handler, `-t 1` then SIGKILL), `exec`,
//! `--restart on-failure:3`, a killed supervisor recorded as a failure, `ps`/`inspect`
//! shapes, `cp` (symlinks never lead out of the root), `commit` (twice the same layer, the
//! same as a RUN step's), `diff CONTAINER`, `rename`/`port`/`top`/`container prune`, and 100 cycles of `run -d`/`exec`/`stop`/`rm`
//! leaving nothing behind (no cgroup either).
//!
//! Must not: start docker containers with a network (`--network none` only), or leave
//! anything outside the scratch directory and the docker containers named `kiln-e2e-lc-*`
//! (removed at the end of each test).

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

pub(crate) fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", show(&out));
    stdout_text(&out).trim().to_string()
}

/// A unique name for containers of this test process.
pub(crate) fn name(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "kiln-e2e-lc-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// `docker run -d --network none busybox:test ARGS` with a name; removed on drop.
pub(crate) struct DockerContainer(pub(crate) String);

impl DockerContainer {
    pub(crate) fn run(extra: &[&str], args: &[&str]) -> DockerContainer {
        let image = docker_busybox();
        let n = name("docker");
        let mut c = docker();
        c.args(["run", "-d", "--network", "none", "--name", &n]);
        c.args(extra).arg(image).args(args);
        ok(run(&mut c), "docker run -d");
        DockerContainer(n)
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Output {
        let mut c = docker();
        c.args(
            args.iter()
                .map(|a| if *a == "@" { self.0.as_str() } else { a }),
        );
        run(&mut c)
    }

    pub(crate) fn inspect(&self) -> Value {
        let v: Value = serde_json::from_str(&ok(self.cmd(&["inspect", "@"]), "docker inspect"))
            .expect("docker inspect JSON");
        v[0].clone()
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = run(docker().args(["rm", "-f", &self.0]));
    }
}

pub(crate) struct Kiln {
    pub(crate) store: KilnStore,
}

impl Kiln {
    pub(crate) fn new() -> Kiln {
        Kiln {
            store: KilnStore::with_busybox(),
        }
    }

    pub(crate) fn kiln(&self, args: &[&str]) -> Output {
        self.store.kiln(args)
    }

    /// `kiln run -d --name N busybox:test ARGS`: the ID it printed.
    pub(crate) fn run_d(&self, n: &str, extra: &[&str], args: &[&str]) -> String {
        let mut all = vec!["run", "-d", "--name", n];
        all.extend_from_slice(extra);
        all.push(BUSYBOX);
        all.extend_from_slice(args);
        ok(self.kiln(&all), "kiln run -d")
    }

    pub(crate) fn inspect(&self, n: &str) -> Value {
        let v: Value = serde_json::from_str(&ok(self.kiln(&["inspect", n]), "kiln inspect"))
            .expect("kiln inspect JSON");
        v[0].clone()
    }

    fn record(&self, id: &str) -> Value {
        let path = self
            .store
            .root()
            .join("containers")
            .join(id)
            .join("container.json");
        serde_json::from_slice(&std::fs::read(path).expect("container record")).expect("JSON")
    }

    pub(crate) fn supervisor_pid(&self, id: &str) -> u32 {
        self.record(id)["pid"]
            .as_u64()
            .expect("a running record has a pid") as u32
    }

    /// No supervisor of this store is left (each leaves right after recording the end).
    fn assert_no_supervisors(&self) {
        assert!(
            wait_until(Duration::from_secs(5), || self.supervisors().is_empty()),
            "supervisors left: {:?}",
            self.supervisors()
        );
    }

    fn supervisors(&self) -> Vec<u32> {
        let root = self.store.root().to_string_lossy().into_owned();
        processes()
            .into_iter()
            .filter(|(_, _, argv)| {
                argv.get(1).map(String::as_str) == Some("__kiln-supervise")
                    && argv.get(2) == Some(&root)
            })
            .map(|p| p.0)
            .collect()
    }
}

/// Every process: (pid, ppid, argv).
fn processes() -> Vec<(u32, u32, Vec<String>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let argv = std::fs::read(e.path().join("cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.push((pid, ppid, argv));
    }
    out
}

/// A running container's PID 1, from `inspect`.
pub(crate) fn pid_of(v: &Value) -> u32 {
    v["State"]["Pid"]
        .as_u64()
        .expect("a running container's pid") as u32
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next())
                .is_some_and(|st| st != "Z")
        })
        .unwrap_or(false)
}

/// Processes whose command line carries `marker` (kiln's own left out).
fn marked(marker: &str) -> Vec<u32> {
    let bin = kiln_bin().to_string_lossy().into_owned();
    processes()
        .into_iter()
        .filter(|p| p.2.first() != Some(&bin) && p.2.iter().any(|a| a.contains(marker)))
        .map(|p| p.0)
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&dir))
        .map(str::to_string)
        .collect()
}

const TERM_HANDLER: &str =
    "trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done";

#[test]
fn stop_runs_the_term_handler_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("term");
    k.run_d(&n, &[], &["sh", "-c", TERM_HANDLER]);
    let d = DockerContainer::run(&[], &["sh", "-c", TERM_HANDLER]);
    // Both payloads have installed the trap once they printed "ready".
    assert!(wait_until(Duration::from_secs(10), || ok(
        k.kiln(&["logs", &n]),
        "logs"
    )
    .contains("ready")));
    assert!(wait_until(Duration::from_secs(10), || ok(
        d.cmd(&["logs", "@"]),
        "docker logs"
    )
    .contains("ready")));
    let started = Instant::now();
    assert_eq!(ok(k.kiln(&["stop", &n]), "kiln stop"), n);
    let took = started.elapsed();
    ok(d.cmd(&["stop", "@"]), "docker stop");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let (ki, di) = (k.inspect(&n), d.inspect());
    assert_eq!(ki["State"]["ExitCode"], 3);
    assert_eq!(ki["State"]["ExitCode"], di["State"]["ExitCode"]);
    assert_eq!(ki["State"]["Status"], di["State"]["Status"]);
    assert_eq!(ki["State"]["Running"], di["State"]["Running"]);
    assert_eq!(
        ok(k.kiln(&["logs", &n]), "logs"),
        ok(d.cmd(&["logs", "@"]), "docker logs")
    );
    assert_eq!(ok(k.kiln(&["logs", &n]), "logs"), "ready\ngot TERM");
}

#[test]
fn stop_t1_kills_a_payload_that_ignores_term() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("ignore");
    // PID 1 without a handler ignores TERM (the kernel protects a namespace's init).
    k.run_d(&n, &[], &["sleep", "1000"]);
    let d = DockerContainer::run(&[], &["sleep", "1000"]);
    let started = Instant::now();
    ok(k.kiln(&["stop", "-t", "1", &n]), "kiln stop -t 1");
    let took = started.elapsed();
    let started = Instant::now();
    ok(d.cmd(&["stop", "-t", "1", "@"]), "docker stop -t 1");
    let docker_took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "kiln stop -t 1 took {took:?} (docker: {docker_took:?})"
    );
    let (ki, di) = (k.inspect(&n), d.inspect());
    assert_eq!(ki["State"]["ExitCode"], 137);
    assert_eq!(ki["State"]["ExitCode"], di["State"]["ExitCode"]);
    let ps = ok(
        k.kiln(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={n}"),
            "--format",
            "{{.Status}}",
        ]),
        "ps",
    );
    assert!(ps.starts_with("Exited (137) "), "{ps}");
}

#[test]
fn logs_follow_a_running_container() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let n = name("follow");
    k.run_d(
        &n,
        &[],
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line $i; echo err $i >&2; sleep 0.2; done",
        ],
    );
    // Started while the container runs: the first lines are in the log, the rest arrive.
    let mut follow = k.store.cmd();
    follow
        .args(["logs", "-f", &n])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = follow
        .spawn()
        .expect("kiln logs -f")
        .wait_with_output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        stdout_text(&out),
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    assert_eq!(stderr_text(&out), "err 1\nerr 2\nerr 3\nerr 4\nerr 5\n");
    assert!(
        took > Duration::from_millis(300),
        "logs -f returned after {took:?}: it did not follow"
    );
    // --tail and -t, as docker prints them.
    // --tail counts entries of both streams, as docker's does.
    let tail = k.kiln(&["logs", "--tail", "2", &n]);
    assert_eq!(stdout_text(&tail), "line 5\n");
    assert_eq!(stderr_text(&tail), "err 5\n");
    let stamped = ok(k.kiln(&["logs", "-t", "--tail", "2", &n]), "logs -t");
    let (stamp, text) = stamped.split_once(' ').unwrap();
    assert_eq!(text, "line 5");
    assert_eq!(
        stamp.len(),
        "2026-12-02T05:31:46.303807532Z".len(),
        "{stamp}"
    );
    // The file is docker's json-file format.
    let id = ok(
        k.kiln(&["ps", "-aq", "--no-trunc", "--filter", &format!("name={n}")]),
        "ps",
    );
    let log = std::fs::read_to_string(
        k.store
            .root()
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log")),
    )
    .unwrap();
    let first: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["stream"] == "stdout")
        .unwrap();
    assert_eq!(first["log"], "line 1\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let since_future = ok(
        k.kiln(&["logs", "--since", "2999-01-01T00:00:00Z", &n]),
        "logs --since",
    );
    assert_eq!(since_future, "");
}

#[test]
fn exec_output_and_exit_code_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("exec");
    k.run_d(&n, &["-e", "FROM_RUN=1"], &["sleep", "1000"]);
    let d = DockerContainer::run(&["-e", "FROM_RUN=1"], &["sleep", "1000"]);
    let script = "echo out; echo err >&2; echo $FROM_RUN $X; pwd; id -u; exit 7";
    let ko = k.kiln(&[
        "exec", "-e", "X=2", "-w", "/tmp", "-u", "1000", &n, "sh", "-c", script,
    ]);
    let dout = d.cmd(&[
        "exec", "-e", "X=2", "-w", "/tmp", "-u", "1000", "@", "sh", "-c", script,
    ]);
    assert_eq!(ko.status.code(), Some(7), "{}", show(&ko));
    assert_eq!(ko.status.code(), dout.status.code());
    assert_eq!(stdout_text(&ko), stdout_text(&dout));
    assert_eq!(stdout_text(&ko), "out\n1 2\n/tmp\n1000\n");
    assert_eq!(stderr_text(&ko), "err\n");
    // The same pid namespace (sleep is PID 1 in both), hostname and capabilities.
    let probe = "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname 2>/dev/null || cat /etc/hostname; grep CapBnd /proc/self/status";
    let ko = ok(k.kiln(&["exec", &n, "sh", "-c", probe]), "kiln exec probe");
    let dout = ok(
        d.cmd(&["exec", "@", "sh", "-c", probe]),
        "docker exec probe",
    );
    let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    let (kl, dl) = (lines(&ko), lines(&dout));
    assert_eq!(kl[0], "sleep 1000 ");
    assert_eq!(kl[0], dl[0]);
    assert_eq!(kl.last(), dl.last(), "capability bounding sets differ");
    let hostname = k.inspect(&n)["Config"]["Hostname"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(kl[1], hostname);
    // A missing command: 127, as `run` gives it (docker 20.10's exec says 126 for it, later
    // versions 127).
    let missing = k.kiln(&["exec", &n, "no-such-command"]);
    let dmissing = d.cmd(&["exec", "@", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127), "{}", show(&missing));
    assert!(matches!(dmissing.status.code(), Some(126 | 127)));
    ok(k.kiln(&["rm", "-f", &n]), "rm -f");
    assert!(!k.kiln(&["exec", &n, "true"]).status.success());
}

#[test]
fn detached_container_outlives_the_cli_and_its_shell() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let n = name("outlive");
    let marker = format!("{n}-payload");
    // The CLI runs in a shell in its own process group; both end, the group is killed.
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!(
            "\"$0\" --root \"$1\" run -d --name {n} {BUSYBOX} sh -c 'while true; do sleep 0.1; done # {marker}'"
        ))
        .arg(kiln_bin())
        .arg(k.store.root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut shell, 0);
    let child = shell.spawn().unwrap();
    let group = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let id = stdout_text(&out).trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id:?}");
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(group),
        nix::sys::signal::Signal::SIGKILL,
    );
    std::thread::sleep(Duration::from_millis(300));
    let sup = k.supervisor_pid(&id);
    assert!(alive(sup), "the supervisor is gone");
    let me = std::process::id();
    let parent = processes().into_iter().find(|p| p.0 == sup).map(|p| p.1);
    assert_ne!(parent, Some(me), "the supervisor is still the test's child");
    assert!(!marked(&marker).is_empty(), "the payload is gone");
    let status = ok(
        k.kiln(&[
            "ps",
            "--filter",
            &format!("id={}", &id[..10]),
            "--format",
            "{{.ID}} {{.State}}",
        ]),
        "ps",
    );
    assert_eq!(status, format!("{} running", &id[..12]));
    // A unique prefix names it like its name does.
    ok(k.kiln(&["kill", &id[..8]]), "kill by prefix");
    assert!(wait_until(Duration::from_secs(10), || marked(&marker)
        .is_empty()
        && !alive(sup)));
    assert_eq!(k.inspect(&n)["State"]["ExitCode"], 137);
    k.assert_no_supervisors();
}

#[test]
fn killing_the_supervisor_records_a_failure() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let n = name("killsup");
    let marker = format!("{n}-payload");
    let id = k.run_d(
        &n,
        &[],
        &[
            "sh",
            "-c",
            &format!("while true; do sleep 0.1; done # {marker}"),
        ],
    );
    let sup = k.supervisor_pid(&id);
    assert!(!marked(&marker).is_empty());
    let cgroups: Vec<_> = cgroup_dirs(pid_of(&k.inspect(&n)))
        .into_iter()
        .map(|(d, _)| d)
        .filter(|d| d.ends_with(&id))
        .collect();
    assert!(!cgroups.is_empty(), "the container has no cgroup");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The container dies with its supervisor (the liveness pipe closes).
    assert!(
        wait_until(Duration::from_secs(10), || marked(&marker).is_empty()),
        "the payload outlived its supervisor"
    );
    let state = &k.inspect(&n)["State"];
    assert_eq!(state["Status"], "exited");
    assert_eq!(state["Running"], false);
    assert_eq!(state["ExitCode"], 255);
    assert!(
        state["Error"].as_str().unwrap().contains("supervisor"),
        "{state}"
    );
    // The record now says so for every reader.
    assert_eq!(k.record(&id)["state"], "exited");
    let ps = ok(k.kiln(&["ps", "-q"]), "ps");
    assert_eq!(ps, "");
    ok(k.kiln(&["rm", &n]), "rm");
    // The supervisor could not remove the cgroup; rm did.
    let left: Vec<_> = cgroups.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

#[test]
fn restart_on_failure_3_restarts_three_times_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("restart");
    let args = ["sh", "-c", "echo run; exit 5"];
    k.run_d(&n, &["--restart", "on-failure:3"], &args);
    let d = DockerContainer::run(&["--restart", "on-failure:3"], &args);
    // `wait` returns when the current run ends, as docker's does; the restarts go on.
    let code = ok(k.kiln(&["wait", &n]), "kiln wait");
    let dcode = ok(d.cmd(&["wait", "@"]), "docker wait");
    assert_eq!(code, "5");
    assert_eq!(code, dcode);
    let exited = |v: Value| v["State"]["Status"] == "exited";
    assert!(wait_until(Duration::from_secs(20), || exited(
        k.inspect(&n)
    ) && exited(
        d.inspect()
    )));
    let (ki, di) = (k.inspect(&n), d.inspect());
    assert_eq!(ki["RestartCount"], 3);
    assert_eq!(ki["RestartCount"], di["RestartCount"]);
    assert_eq!(
        ki["HostConfig"]["RestartPolicy"],
        di["HostConfig"]["RestartPolicy"]
    );
    assert_eq!(ok(k.kiln(&["logs", &n]), "logs"), "run\nrun\nrun\nrun");
    assert_eq!(
        ok(k.kiln(&["logs", &n]), "logs"),
        ok(d.cmd(&["logs", "@"]), "docker logs")
    );
    // A success is not restarted; `always` is until stopped.
    let n2 = name("always");
    k.run_d(
        &n2,
        &["--restart", "always"],
        &["sh", "-c", "echo a; sleep 0.2"],
    );
    assert!(wait_until(Duration::from_secs(10), || k.inspect(&n2)
        ["RestartCount"]
        .as_u64()
        .unwrap()
        >= 2));
    ok(k.kiln(&["stop", "-t", "1", &n2]), "stop");
    let count = k.inspect(&n2)["RestartCount"].clone();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        k.inspect(&n2)["RestartCount"],
        count,
        "restarted after stop"
    );
    assert_eq!(k.inspect(&n2)["State"]["Running"], false);
    k.assert_no_supervisors();
}

#[test]
fn ps_and_inspect_have_dockers_shape() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("shape");
    let long = "echo a long command line; sleep 1000";
    let flags = [
        "-w", "/tmp", "-e", "A=1", "-l", "tier=web", "--label", "empty",
    ];
    k.run_d(&n, &flags, &["sh", "-c", long]);
    let d = DockerContainer::run(&flags, &["sh", "-c", long]);
    // Label filters: a key, a key and its value; a wrong value matches nothing.
    for (filter, shown) in [
        ("label=tier", true),
        ("label=tier=web", true),
        ("label=tier=db", false),
        ("label=empty=", true),
    ] {
        let kq = ok(
            k.kiln(&[
                "ps",
                "-q",
                "--filter",
                &format!("name={n}"),
                "--filter",
                filter,
            ]),
            "kiln ps",
        );
        let dq = ok(
            d.cmd(&[
                "ps",
                "-q",
                "--filter",
                &format!("name={}", d.0),
                "--filter",
                filter,
            ]),
            "docker ps",
        );
        assert_eq!((!kq.is_empty(), !dq.is_empty()), (shown, shown), "{filter}");
    }
    let header = |s: &str| {
        s.lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let kps = ok(k.kiln(&["ps"]), "kiln ps");
    let dps = ok(
        d.cmd(&["ps", "--filter", &format!("name={}", d.0)]),
        "docker ps",
    );
    assert_eq!(header(&kps), header(&dps));
    let fmt = "{{.Command}}|{{.State}}|{{.Image}}|{{.Labels}}";
    let kf = ok(k.kiln(&["ps", "--format", fmt]), "kiln ps --format");
    let df = ok(
        d.cmd(&["ps", "--filter", &format!("name={}", d.0), "--format", fmt]),
        "docker ps --format",
    );
    // docker joins {{.Labels}} in Go's map order, which differs from run to run; kiln's is
    // sorted: compare them as sets.
    let labels_sorted = |line: &str| {
        let (rest, labels) = line.rsplit_once('|').unwrap_or((line, ""));
        let mut labels: Vec<&str> = labels.split(',').collect();
        labels.sort_unstable();
        format!("{rest}|{}", labels.join(","))
    };
    assert_eq!(labels_sorted(&kf), labels_sorted(&df));
    assert_eq!(kf, labels_sorted(&kf), "kiln's labels are sorted");
    // inspect --format: Go templates over the same objects give the same text.
    for template in [
        "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}",
        "{{json .Config.Labels}} {{index .Config.Labels \"tier\"}}",
        "{{.Config.Cmd}} {{len .Config.Cmd}} {{.Config.WorkingDir}}",
        "{{range .Config.Cmd}}<{{.}}>{{end}}",
        "{{if .State.Running}}up{{else}}down{{end}} {{.HostConfig.NetworkMode | upper}}",
        "{{json .Config.ExposedPorts}} {{json .Config.Volumes}} {{.Config.OpenStdin}}",
        "{{json .HostConfig.PortBindings}} {{.HostConfig.Privileged}} {{.HostConfig.PidMode}}",
        "{{json .NetworkSettings.Ports}} {{.NetworkSettings.IPAddress}} {{len .NetworkSettings.Networks}}",
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
        "{{with .State}}{{.Status}}/{{.ExitCode}}{{end}} {{with .State.Error}}e{{else}}none{{end}}",
        r#"{{if eq .State.Status "exited"}}e{{else if eq .State.Status "running"}}r{{end}}"#,
        r#"{{printf "%s|%-8s|%3d|%q|%v" .Config.WorkingDir .State.Status .State.ExitCode .Config.Image .State.Running}}"#,
        "{{(index .Config.Cmd 0) | upper}} {{len (index .Config.Cmd 2)}} {{$.Config.WorkingDir}}",
        "{{$w := .Config.WorkingDir}}{{range $i, $c := .Config.Cmd}}{{$i}}{{$w}}{{end}}",
        r#"{{split .Config.WorkingDir "/"}} {{title .State.Status}} {{truncate .State.Status 3}}|{{pad .State.Status 1 2}}|"#,
        r#"{{if and .State.Running (not .State.Paused) (gt .State.Pid 1)}}live{{end}} {{or .State.Error "-"}}"#,
        "{{range $n, $e := .NetworkSettings.Networks}}{{$n}} {{$e.IPAddress}}{{end}}",
    ] {
        let kt = ok(k.kiln(&["inspect", "-f", template, &n]), "kiln inspect -f");
        let dt = ok(
            d.cmd(&["inspect", "-f", template, "@"]),
            "docker inspect -f",
        );
        assert_eq!(kt, dt, "{template}");
    }
    let (ki, di) = (k.inspect(&n), d.inspect());
    for path in [
        &["Path"][..],
        &["Args"],
        &["Name"],
        &["State", "Status"],
        &["State", "Running"],
        &["State", "ExitCode"],
        &["Config", "Cmd"],
        &["Config", "Entrypoint"],
        &["Config", "WorkingDir"],
        &["Config", "Image"],
        &["Config", "Labels"],
        &["RestartCount"],
        &["HostConfig", "NetworkMode"],
        &["HostConfig", "PortBindings"],
        &["Mounts"],
        &["NetworkSettings", "Ports"],
        &["NetworkSettings", "Networks", "none", "Aliases"],
        &["NetworkSettings", "Networks", "none", "IPAddress"],
    ] {
        let get = |v: &Value| path.iter().fold(v.clone(), |v, k| v[*k].clone());
        let (kv, dv) = (get(&ki), get(&di));
        if path == ["Name"] {
            assert!(kv.as_str().unwrap().starts_with('/'));
            continue;
        }
        assert_eq!(kv, dv, "{path:?}");
    }
    // docker's field names in NetworkSettings and in its one network's entry.
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let none = |v: &Value| v["NetworkSettings"]["Networks"]["none"].clone();
    assert_eq!(keys(&ki["NetworkSettings"]), keys(&di["NetworkSettings"]));
    assert_eq!(keys(&none(&ki)), keys(&none(&di)));
    assert!(ki["State"]["Pid"].as_u64().unwrap() > 1);
    assert_eq!(ki["Id"].as_str().unwrap().len(), 64);
    // docker's field set for the common fields.
    for key in [
        "Id",
        "Created",
        "State",
        "Image",
        "Name",
        "Config",
        "Mounts",
        "HostConfig",
        "LogPath",
    ] {
        assert!(ki.get(key).is_some(), "{key} missing");
    }
    ok(k.kiln(&["stop", "-t", "0", &n]), "stop");
    let latest = ok(
        k.kiln(&["ps", "-l", "--format", "{{.Names}} {{.State}}"]),
        "ps -l",
    );
    assert_eq!(latest, format!("{n} exited"));
    assert_eq!(ok(k.kiln(&["ps", "-q"]), "ps -q"), "");
    assert_eq!(
        ok(
            k.kiln(&[
                "ps",
                "-a",
                "--filter",
                "status=exited",
                "--format",
                "{{.Names}}"
            ]),
            "ps"
        ),
        n
    );
    ok(k.kiln(&["rm", &n]), "rm");
}

#[test]
fn create_start_restart_wait_rm() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let n = name("create");
    let id = ok(
        k.kiln(&[
            "create",
            "--name",
            &n,
            BUSYBOX,
            "sh",
            "-c",
            "echo started; exit 4",
        ]),
        "create",
    );
    assert_eq!(id.len(), 64);
    assert_eq!(k.inspect(&n)["State"]["Status"], "created");
    let attached = k.kiln(&["start", "-a", &n]);
    assert_eq!(attached.status.code(), Some(4), "{}", show(&attached));
    assert_eq!(stdout_text(&attached), "started\n");
    assert_eq!(ok(k.kiln(&["wait", &n]), "wait"), "4");
    let m = name("restartcmd");
    k.run_d(&m, &[], &["sh", "-c", "echo up; sleep 1000"]);
    let before = k.inspect(&m)["State"]["StartedAt"].clone();
    ok(k.kiln(&["restart", "-t", "0", &m]), "restart");
    let after = k.inspect(&m);
    assert_eq!(after["State"]["Running"], true);
    assert_ne!(after["State"]["StartedAt"], before);
    assert!(
        wait_until(Duration::from_secs(10), || ok(
            k.kiln(&["logs", &m]),
            "logs"
        ) == "up\nup"),
        "the log has both runs"
    );
    // rm refuses a running container; rm -f kills it first.
    let refused = k.kiln(&["rm", &m]);
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    assert!(stderr_text(&refused).contains("is running"));
    ok(k.kiln(&["rm", "-f", "-v", &m]), "rm -f");
    ok(k.kiln(&["rm", &n]), "rm");
    k.assert_no_supervisors();
}

#[test]
fn a_hundred_cycles_leave_nothing_behind() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let containers = k.store.root().join("containers");
    for i in 0..100 {
        let n = name(&format!("cycle{i}"));
        let marker = format!("{n}-payload");
        let id = k.run_d(
            &n,
            &[],
            &[
                "sh",
                "-c",
                &format!("trap 'exit 0' TERM; while true; do sleep 0.1; done # {marker}"),
            ],
        );
        let out = ok(k.kiln(&["exec", &n, "sh", "-c", "echo $((6*7))"]), "exec");
        assert_eq!(out, "42");
        let cgroups: Vec<_> = cgroup_dirs(pid_of(&k.inspect(&n)))
            .into_iter()
            .map(|(d, _)| d)
            .filter(|d| d.ends_with(&id))
            .collect();
        assert!(
            !cgroups.is_empty(),
            "cycle {i}: the container has no cgroup"
        );
        ok(k.kiln(&["stop", "-t", "5", &n]), "stop");
        ok(k.kiln(&["rm", &n]), "rm");
        let left: Vec<_> = cgroups.iter().filter(|d| d.exists()).collect();
        assert!(left.is_empty(), "cycle {i}: cgroups left: {left:?}");
        assert!(
            !containers.join(&id).exists(),
            "cycle {i}: the directory is left"
        );
        assert!(marked(&marker).is_empty(), "cycle {i}: the payload is left");
    }
    assert!(
        k.supervisors().is_empty(),
        "supervisors left: {:?}",
        k.supervisors()
    );
    assert_eq!(mounts_under(k.store.root()), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(&containers)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in containers/: {left:?}");
    let monitors: Vec<_> = processes()
        .into_iter()
        .filter(|p| k.supervisors().contains(&p.1))
        .collect();
    assert!(monitors.is_empty());
}

#[test]
fn cp_resolves_inside_the_root_and_refuses_escaping_symlinks() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let n = name("cp");
    let host_dir = temp_dir();
    let secret = host_dir.path().join("host-secret");
    std::fs::write(&secret, "host bytes\n").unwrap();
    let host = host_dir.path().to_string_lossy().into_owned();
    // Symlinks that would leave the root if followed on the host: relative, absolute, and
    // one planted where a copy will be written.
    let setup = format!(
        "echo inside > /tmp/in; ln -s ../../../../../../../..{host} /rel; ln -s {host} /abs; \
         ln -s ../../../../../../../..{host}/planted /tmp/trap; mkdir /box; sleep 1000"
    );
    k.run_d(&n, &[], &["sh", "-c", &setup]);
    assert!(wait_until(Duration::from_secs(10), || {
        k.kiln(&["exec", &n, "test", "-d", "/box"]).status.success()
    }));
    let out = temp_dir();
    // Out of the container: a plain file, then paths through the escaping links.
    ok(
        k.kiln(&["cp", &format!("{n}:/tmp/in"), out.path().to_str().unwrap()]),
        "cp out",
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("in")).unwrap(),
        "inside\n"
    );
    for link in ["/rel", "/abs"] {
        let dest = out.path().join(format!("got{}", &link[1..]));
        let r = k.kiln(&[
            "cp",
            &format!("{n}:{link}/host-secret"),
            dest.to_str().unwrap(),
        ]);
        assert!(
            !r.status.success(),
            "cp through {link} succeeded: {}",
            show(&r)
        );
        assert!(!dest.exists(), "cp through {link} wrote {}", dest.display());
        // The link itself is copied as a link, never followed (docker's default).
        let as_link = out.path().join(format!("link{}", &link[1..]));
        ok(
            k.kiln(&["cp", &format!("{n}:{link}"), as_link.to_str().unwrap()]),
            "cp of a symlink",
        );
        assert!(std::fs::symlink_metadata(&as_link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // Into the container: through a link the copy lands inside the root, or is refused.
    let src = out.path().join("in");
    ok(
        k.kiln(&["cp", src.to_str().unwrap(), &format!("{n}:/box/")]),
        "cp in",
    );
    assert_eq!(ok(k.kiln(&["exec", &n, "cat", "/box/in"]), "cat"), "inside");
    let through = k.kiln(&["cp", src.to_str().unwrap(), &format!("{n}:/rel/dropped")]);
    assert!(
        !host_dir.path().join("dropped").exists(),
        "{}",
        show(&through)
    );
    let planted = k.kiln(&["cp", src.to_str().unwrap(), &format!("{n}:/tmp/trap")]);
    assert!(
        !planted.status.success(),
        "wrote through a planted symlink: {}",
        show(&planted)
    );
    assert!(!host_dir.path().join("planted").exists());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host bytes\n");
    // A stopped container has no root to copy from (yet): a clear error.
    ok(k.kiln(&["kill", &n]), "kill");
    ok(k.kiln(&["wait", &n]), "wait");
    let stopped = k.kiln(&["cp", &format!("{n}:/tmp/in"), out.path().to_str().unwrap()]);
    assert_eq!(stopped.status.code(), Some(1));
    assert!(
        stderr_text(&stopped).contains("not running"),
        "{}",
        show(&stopped)
    );
}

/// `kiln inspect IMAGE`'s last layer.
fn top_layer(k: &Kiln, image: &str) -> String {
    let v = k.inspect(image);
    v["RootFS"]["Layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{image} has no layers: {v}"))
        .to_string()
}

#[test]
fn commit_twice_gives_the_same_layer_as_a_run_step() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let script = "mkdir -p /app && echo v1 > /app/f && rm /etc/group && touch /app/done";
    let mut layers = Vec::new();
    for i in 0..2 {
        let n = name(&format!("commit{i}"));
        k.run_d(&n, &[], &["sh", "-c", &format!("{script}; sleep 1000")]);
        assert!(wait_until(Duration::from_secs(10), || {
            k.kiln(&["exec", &n, "test", "-e", "/app/done"])
                .status
                .success()
        }));
        let tag = format!("committed:{i}");
        let mut c = k.store.cmd();
        c.env("SOURCE_DATE_EPOCH", "0").args([
            "commit",
            "-m",
            "snapshot",
            "-c",
            "CMD [\"cat\", \"/app/f\"]",
            "-c",
            "ENV MODE=committed",
            &n,
            &tag,
        ]);
        let id = ok(run(&mut c), "commit");
        assert!(id.starts_with("sha256:"), "{id}");
        layers.push((top_layer(&k, &tag), id));
        // The committed image runs with the -c config.
        let out = k.kiln(&["run", "--rm", &tag]);
        assert_eq!(stdout_text(&out), "v1\n", "{}", show(&out));
        let env = k.inspect(&tag)["Config"]["Env"].clone();
        assert!(
            env.as_array()
                .unwrap()
                .iter()
                .any(|e| e == "MODE=committed"),
            "{env}"
        );
        ok(k.kiln(&["rm", "-f", &n]), "rm -f");
    }
    assert_eq!(
        layers[0], layers[1],
        "two commits of the same changes differ"
    );
    // The same changes made by a RUN step: the same layer.
    let ctx = temp_dir();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {BUSYBOX}\nRUN {script}\n"),
    )
    .unwrap();
    let mut b = k.store.cmd();
    b.env("SOURCE_DATE_EPOCH", "0")
        .args(["build", "--network", "none", "-t", "built:1"])
        .arg(ctx.path());
    ok(run(&mut b), "build");
    assert_eq!(top_layer(&k, "built:1"), layers[0].0);
}

#[test]
fn diff_lists_changes_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("diff");
    let script =
        "mkdir -p /data/x && echo hi > /tmp/new && rm /etc/group && touch /done; sleep 1000";
    k.run_d(&n, &[], &["sh", "-c", script]);
    let d = DockerContainer::run(&[], &["sh", "-c", script]);
    assert!(wait_until(Duration::from_secs(10), || {
        k.kiln(&["exec", &n, "test", "-e", "/done"])
            .status
            .success()
            && d.cmd(&["exec", "@", "test", "-e", "/done"])
                .status
                .success()
    }));
    let kd = ok(k.kiln(&["diff", &n]), "kiln diff");
    let dd = ok(d.cmd(&["diff", "@"]), "docker diff");
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&kd), sorted(&dd));
    assert!(
        kd.contains("D /etc/group") && kd.contains("A /tmp/new"),
        "{kd}"
    );
    // Two arguments still compare images.
    let two = k.kiln(&["diff", BUSYBOX, BUSYBOX]);
    assert_eq!(two.status.code(), Some(0), "{}", show(&two));
    ok(k.kiln(&["rm", "-f", &n]), "rm -f");
}

#[test]
fn rename_port_and_container_prune() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    let n = name("ports");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = k.run_d(&n, &["-p", &publish], &["sleep", "1000"]);
    assert_eq!(
        ok(k.kiln(&["port", &n]), "port"),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(
        ok(k.kiln(&["port", &n, "80"]), "port 80"),
        format!("127.0.0.1:{port}")
    );
    assert!(!k.kiln(&["port", &n, "81"]).status.success());
    let renamed = name("renamed");
    ok(k.kiln(&["rename", &n, &renamed]), "rename");
    assert_eq!(k.inspect(&renamed)["Name"], format!("/{renamed}"));
    assert!(!k.kiln(&["inspect", &n]).status.success() || k.inspect(&n)["Id"] != id);
    // The supervisor keeps the new name when it records the end.
    ok(k.kiln(&["stop", "-t", "0", &renamed]), "stop");
    assert_eq!(k.record(&id)["name"], renamed.as_str());
    let other = name("running");
    let other_id = k.run_d(&other, &[], &["sleep", "1000"]);
    let pruned = ok(k.kiln(&["container", "prune", "-f"]), "container prune");
    assert_eq!(pruned, format!("Deleted Containers:\n{id}"));
    assert!(k.store.root().join("containers").join(&other_id).exists());
    ok(k.kiln(&["rm", "-f", &other]), "rm -f");
}

#[test]
fn top_lists_the_containers_processes_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("top");
    let args = ["sh", "-c", "sleep 1000 & sleep 999"];
    k.run_d(&n, &[], &args);
    let d = DockerContainer::run(&[], &args);
    let commands = |out: String| {
        let mut lines = out.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut cmds: Vec<String> = lines
            .map(|l| l.split_whitespace().skip(7).collect::<Vec<_>>().join(" "))
            .collect();
        cmds.sort();
        (header, cmds)
    };
    let mut got = (Vec::new(), Vec::new());
    assert!(wait_until(Duration::from_secs(10), || {
        got = commands(ok(k.kiln(&["top", &n]), "kiln top"));
        got.1.len() == 2
    }));
    let want = commands(ok(d.cmd(&["top", "@"]), "docker top"));
    assert_eq!(got, want);
    assert_eq!(got.1, ["sleep 1000", "sleep 999"]);
    ok(k.kiln(&["rm", "-f", &n]), "rm -f");
    assert!(!k.kiln(&["top", &n]).status.success());
}

#[test]
fn run_d_of_a_missing_command_fails_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let n = name("missing");
    let out = k.kiln(&["run", "-d", "--name", &n, BUSYBOX, "no-such-command"]);
    let dn = name("dmissing");
    let image = docker_busybox();
    let dout = run(docker().args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &dn,
        image,
        "no-such-command",
    ]));
    let _ = run(docker().args(["rm", "-f", &dn]));
    assert_eq!(out.status.code(), Some(127), "{}", show(&out));
    assert_eq!(out.status.code(), dout.status.code());
    assert!(
        stderr_text(&out).contains("no-such-command"),
        "{}",
        show(&out)
    );
    let state = &k.inspect(&n)["State"];
    assert_eq!(state["Status"], "exited");
    assert_eq!(state["ExitCode"], 127);
    assert!(
        state["Error"].as_str().unwrap().contains("not found"),
        "{state}"
    );
    k.assert_no_supervisors();
}

#[test]
fn stop_between_restarts_ends_the_policy() {
    if !can_run_containers() {
        return;
    }
    let k = Kiln::new();
    // `true` under `always` spends its life between runs: stops land in every phase.
    for (i, after) in [30u64, 120, 250, 420].into_iter().enumerate() {
        let n = name(&format!("between{i}"));
        k.run_d(&n, &["--restart", "always"], &["true"]);
        std::thread::sleep(Duration::from_millis(after));
        ok(k.kiln(&["stop", "-t", "1", &n]), "stop");
        k.assert_no_supervisors();
        let count = k.inspect(&n)["RestartCount"].clone();
        assert_eq!(k.inspect(&n)["State"]["Status"], "exited");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(k.inspect(&n)["RestartCount"], count, "restarted after stop");
        ok(k.kiln(&["rm", &n]), "rm");
    }
}

#[test]
fn run_d_with_a_relative_store_path_works() {
    if !can_run_containers() {
        return;
    }
    // The supervisor runs in `/`: a store named relative to the caller's directory must
    // still be the store it writes to.
    let k = Kiln::new();
    let root = k.store.root();
    let (parent, leaf) = (root.parent().unwrap(), root.file_name().unwrap());
    let n = name("relative");
    let mut c = Command::new(kiln_bin());
    c.current_dir(parent).arg("--root").arg(leaf);
    c.args([
        "run",
        "-d",
        "--name",
        &n,
        BUSYBOX,
        "sh",
        "-c",
        "echo hi; sleep 30",
    ]);
    let id = ok(run(&mut c), "kiln --root RELATIVE run -d");
    assert!(wait_until(Duration::from_secs(10), || stdout_text(
        &k.kiln(&["logs", &n])
    )
    .contains("hi")));
    assert_eq!(k.record(&id)["state"], "running", "{}", k.record(&id));
    ok(k.kiln(&["rm", "-f", &n]), "kiln rm -f");
    k.assert_no_supervisors();
}

/// `attach` against docker's: a `-i` container reads the attached input (its exit status
/// becomes attach's), a container without `-i` gives its output from now on and its status,
/// and a stopped one is refused with docker's message. (docker drops the output of the `-i`
/// case when the input ends first, so only kiln's output is checked there.)
#[test]
fn attach_feeds_stdin_and_returns_the_status_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let reader = "while read l; do [ \"$l\" = quit ] && exit 7; echo \"got $l\"; done";
    let n = name("attach-i");
    k.run_d(&n, &["-i"], &["sh", "-c", reader]);
    let out = run_with_stdin(
        kiln_cmd(&k, &["attach", &n]).stdin(Stdio::piped()),
        b"hello\nquit\n",
    );
    let d = DockerContainer::run(&["-i"], &["sh", "-c", reader]);
    let dout = run_with_stdin(
        docker().args(["attach", &d.0]).stdin(Stdio::piped()),
        b"hello\nquit\n",
    );
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    assert_eq!(out.status.code(), dout.status.code(), "{}", show(&dout));
    assert_eq!(stdout_text(&out), "got hello\n", "{}", show(&out));

    let script = "sleep 1; echo late; exit 3";
    let n2 = name("attach-out");
    k.run_d(&n2, &[], &["sh", "-c", script]);
    let out = run(&mut kiln_cmd(&k, &["attach", &n2]));
    let d2 = DockerContainer::run(&[], &["sh", "-c", script]);
    let dout = d2.cmd(&["attach", "@"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(out.status.code(), dout.status.code());
    assert_eq!(stdout_text(&out), stdout_text(&dout));

    let out = run(&mut kiln_cmd(&k, &["attach", &n2]));
    let dout = d2.cmd(&["attach", "@"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.status.code(), dout.status.code());
    let want = stderr_text(&dout);
    assert!(
        stderr_text(&out).contains(want.trim()),
        "{} vs {want}",
        show(&out)
    );
    for c in [&n, &n2] {
        ok(k.kiln(&["rm", "-f", c]), "rm -f");
    }
    k.assert_no_supervisors();
}

/// A `-t` container through a real terminal (`script`): typed input reaches its shell,
/// ctrl-p ctrl-q detaches with docker's message and status, and the container keeps
/// running; piped input to a terminal container is refused, as docker refuses it.
#[test]
fn attach_to_a_terminal_detaches_on_ctrl_p_ctrl_q_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    require_peer!("script");
    let k = Kiln::new();
    let n = name("attach-t");
    k.run_d(&n, &["-i", "-t"], &["sh"]);
    let d = DockerContainer::run(&["-i", "-t"], &["sh"]);
    let typed = "sleep 1; printf 'echo hi-$((6*7))\\r'; sleep 1; printf '\\020\\021'; sleep 1";
    let through_a_terminal = |attach: String| {
        run(Command::new("sh").args([
            "-c",
            &format!("({typed}) | script -qfec '{attach}' /dev/null"),
        ]))
    };
    let kiln = kiln_bin().display().to_string();
    let root = k.store.root().display().to_string();
    let out = through_a_terminal(format!("{kiln} --root {root} attach {n}"));
    let dout = through_a_terminal(format!("{} attach {}", docker_bin().display(), d.0));
    for (who, o) in [("kiln", &out), ("docker", &dout)] {
        let text = stdout_text(o).replace('\r', "");
        assert!(text.contains("hi-42"), "{who}: {}", show(o));
        assert!(text.contains("read escape sequence"), "{who}: {}", show(o));
        assert_eq!(o.status.code(), Some(1), "{who}: {}", show(o));
    }
    assert_eq!(k.inspect(&n)["State"]["Status"], "running");
    assert_eq!(d.inspect()["State"]["Status"], "running");

    let out = run_with_stdin(kiln_cmd(&k, &["attach", &n]).stdin(Stdio::piped()), b"x\n");
    let dout = run_with_stdin(
        docker().args(["attach", &d.0]).stdin(Stdio::piped()),
        b"x\n",
    );
    assert_eq!(out.status.code(), dout.status.code(), "{}", show(&out));
    assert!(
        stderr_text(&out).contains(stderr_text(&dout).trim()),
        "{} vs {}",
        show(&out),
        show(&dout)
    );
    ok(k.kiln(&["rm", "-f", &n]), "rm -f");
    k.assert_no_supervisors();
}

fn kiln_cmd(k: &Kiln, args: &[&str]) -> Command {
    let mut c = k.store.cmd();
    c.args(args);
    c
}

/// `--sig-proxy` (the default) against docker's: SIGUSR1 sent to an attached `kiln attach`,
/// a foreground `kiln run` and `kiln start -a` reaches the payload, whose trap prints and
/// exits 5; `attach --sig-proxy=false` passes nothing on (the container keeps running).
#[test]
fn attached_clients_proxy_signals_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let trap = "trap 'echo got-usr1; exit 5' USR1; echo ready; while :; do sleep 0.1; done";
    // The client's output and status after SIGUSR1, sent once the payload said "ready".
    let usr1 = |mut c: Command| {
        let child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(1500));
        let _ = run(Command::new("kill").args(["-USR1", &child.id().to_string()]));
        child.wait_with_output().expect("wait")
    };
    let expect = |who: &str, o: &Output| {
        assert_eq!(o.status.code(), Some(5), "{who}: {}", show(o));
        assert!(stdout_text(o).contains("got-usr1"), "{who}: {}", show(o));
    };

    let n = name("sigproxy-attach");
    k.run_d(&n, &[], &["sh", "-c", trap]);
    let d = DockerContainer::run(&[], &["sh", "-c", trap]);
    // Not proxied: the client ends, the container does not.
    let quiet = usr1(kiln_cmd(&k, &["attach", "--sig-proxy=false", &n]));
    assert_ne!(quiet.status.code(), Some(5), "{}", show(&quiet));
    assert_eq!(k.inspect(&n)["State"]["Status"], "running");
    expect("kiln attach", &usr1(kiln_cmd(&k, &["attach", &n])));
    let mut c = docker();
    c.args(["attach", &d.0]);
    expect("docker attach", &usr1(c));

    let n2 = name("sigproxy-run");
    expect(
        "kiln run",
        &usr1(kiln_cmd(
            &k,
            &["run", "--name", &n2, BUSYBOX, "sh", "-c", trap],
        )),
    );
    let d2 = name("docker-sigproxy-run");
    let mut c = docker();
    c.args(["run", "--network", "none", "--name", &d2, docker_busybox()]);
    c.args(["sh", "-c", trap]);
    expect("docker run", &usr1(c));
    let _ = run(docker().args(["rm", "-f", &d2]));

    // start -a: the same container again, proxied from its start.
    expect("kiln start -a", &usr1(kiln_cmd(&k, &["start", "-a", &n2])));
    let mut c = docker();
    c.args(["start", "-a", &d.0]);
    expect("docker start -a", &usr1(c));
    for c in [&n, &n2] {
        ok(k.kiln(&["rm", "-f", c]), "rm -f");
    }
    k.assert_no_supervisors();
}

/// `start -i` (and `-ai`) against docker's: the input reaches a `-i` container's payload,
/// whose output and status become the client's; a container made without `-i` gets none
/// of it; `--detach-keys` is checked as attach checks it.
#[test]
fn start_interactive_feeds_stdin_like_docker() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    let k = Kiln::new();
    let reader = "read l; echo \"got $l\"; exit 4";
    for (flags, start) in [(&["-i"][..], "-i"), (&["-i"][..], "-ai"), (&[][..], "-ai")] {
        let n = name("start-i");
        let mut create = vec!["create", "--name", &n];
        create.extend_from_slice(flags);
        create.extend_from_slice(&[BUSYBOX, "sh", "-c", reader]);
        ok(k.kiln(&create), "kiln create");
        let out = run_with_stdin(
            kiln_cmd(&k, &["start", start, &n]).stdin(Stdio::piped()),
            b"hello\n",
        );
        let d = name("docker-start-i");
        let mut c = docker();
        c.args(["create", "--network", "none", "--name", &d]);
        c.args(flags)
            .arg(docker_busybox())
            .args(["sh", "-c", reader]);
        ok(run(&mut c), "docker create");
        let dout = run_with_stdin(
            docker().args(["start", start, &d]).stdin(Stdio::piped()),
            b"hello\n",
        );
        let _ = run(docker().args(["rm", "-f", &d]));
        let want = if flags.is_empty() {
            "got \n"
        } else {
            "got hello\n"
        };
        let what = format!(
            "{flags:?} {start}\n--- kiln: {}\n--- docker: {}",
            show(&out),
            show(&dout)
        );
        assert_eq!(out.status.code(), Some(4), "{what}");
        assert_eq!(stdout_text(&out), want, "{what}");
        assert_eq!(out.status.code(), dout.status.code(), "{what}");
        assert_eq!(stdout_text(&out), stdout_text(&dout), "{what}");
        ok(k.kiln(&["rm", "-f", &n]), "rm -f");
    }
    let n = name("start-keys");
    ok(
        k.kiln(&["create", "--name", &n, BUSYBOX, "true"]),
        "kiln create",
    );
    let bad = k.kiln(&["start", "-ai", "--detach-keys", "ctrl-1", &n]);
    assert!(!bad.status.success(), "{}", show(&bad));
    assert!(
        stderr_text(&bad).contains("invalid detach key"),
        "{}",
        show(&bad)
    );
    ok(k.kiln(&["rm", "-f", &n]), "rm -f");
    k.assert_no_supervisors();
}
