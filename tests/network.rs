//! Networks without bridges, end to end on the busybox base: a kiln network is one shared
//! loopback namespace, so members reach each other on 127.0.0.1 under their names and
//! aliases (the /etc/hosts kiln keeps for the network), a port published from any member
//! relays into it, a container port published twice is refused naming both containers,
//! `--network container:NAME` joins a running container's namespace, and removing the
//! containers and the network leaves no mount and no file behind.
//!
//! Must not: start anything outside the kiln store of each test (no docker, no bridges).

use crate::common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout_text(&out),
        stderr_text(&out)
    );
    stdout_text(&out).trim().to_string()
}

/// A network name unique to this test process.
fn unique(what: &str) -> String {
    format!("kn-{}-{what}", std::process::id())
}

/// `GET PATH` from 127.0.0.1:PORT in a new container on `network` (busybox `nc`: the
/// static busybox's `wget` cannot use glibc's resolver in the image), retried while the
/// server starts; the body on success.
fn fetch(store: &KilnStore, network: &str, port: u16, path: &str) -> Output {
    let script = format!(
        "printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | busybox nc 127.0.0.1 {port} | sed '1,/^\\r$/d'"
    );
    let start = Instant::now();
    loop {
        let out = store.kiln([
            "run",
            "--rm",
            "--network",
            network,
            BUSYBOX,
            "sh",
            "-c",
            &script,
        ]);
        if (out.status.success() && !out.stdout.is_empty())
            || start.elapsed() > Duration::from_secs(10)
        {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.display().to_string();
    text.lines()
        .filter(|l| l.contains(&dir))
        .map(str::to_string)
        .collect()
}

#[test]
fn members_reach_each_other_by_name_and_alias_and_leave_nothing() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let net = unique("names");
    let id = ok(store.kiln(["network", "create", &net]), "network create");
    assert_eq!(id.len(), 64, "a network ID: {id}");
    let listed = ok(store.kiln(["network", "ls", "-q"]), "network ls");
    assert_eq!(listed, net);
    let netns = store.root().join("networks").join(&net).join("netns");
    assert_eq!(
        mounts_under(&netns).len(),
        1,
        "the namespace is pinned by one mount"
    );

    // The server listens on the shared loopback only.
    let srv_id = ok(
        store.kiln([
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            &net,
            "--network-alias",
            "web",
            BUSYBOX,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "127.0.0.1:8080",
            "-h",
            "/etc",
        ]),
        "run -d srv",
    );
    let out = fetch(&store, &net, 8080, "/hostname");
    assert_eq!(
        ok(out, "wget 127.0.0.1"),
        srv_id[..12],
        "the server's loopback is shared"
    );
    // Names resolve through /etc/hosts (the busybox here is static glibc, whose resolver
    // cannot load NSS modules in the image, so the file is read rather than resolved).
    let hosts = ok(
        store.kiln([
            "run",
            "--rm",
            "--network",
            &net,
            BUSYBOX,
            "cat",
            "/etc/hosts",
        ]),
        "cat /etc/hosts",
    );
    let srv_line = format!("127.0.0.1\tsrv {} web", &srv_id[..12]);
    assert!(
        hosts.contains(&srv_line),
        "{srv_line:?} in a member's hosts:\n{hosts}"
    );
    // A container with a loopback of its own does not reach it.
    let out = fetch(&store, "none", 8080, "/hostname");
    assert!(
        out.stdout.is_empty(),
        "a private loopback reached the network: {}",
        stdout_text(&out)
    );
    // Joining another container's namespace.
    let out = fetch(&store, "container:srv", 8080, "/hostname");
    assert_eq!(ok(out, "wget in container:srv"), srv_id[..12]);

    // A member that joins later is in the running member's /etc/hosts at once.
    ok(
        store.kiln([
            "create",
            "--name",
            "late",
            "--network",
            &net,
            BUSYBOX,
            "true",
        ]),
        "create late",
    );
    let hosts = ok(
        store.kiln(["exec", "srv", "cat", "/etc/hosts"]),
        "exec cat /etc/hosts",
    );
    assert!(
        hosts.contains("127.0.0.1\tlate "),
        "hosts after a join:\n{hosts}"
    );
    assert!(
        hosts.contains("srv ") && hosts.contains(" web"),
        "hosts:\n{hosts}"
    );
    let inspect: serde_json::Value = serde_json::from_str(&ok(
        store.kiln(["network", "inspect", &net]),
        "network inspect",
    ))
    .expect("inspect JSON");
    assert_eq!(inspect[0]["Name"], net.as_str());
    assert_eq!(
        inspect[0]["Containers"].as_object().map(|m| m.len()),
        Some(2)
    );
    let c: serde_json::Value =
        serde_json::from_str(&ok(store.kiln(["inspect", "srv"]), "inspect srv")).expect("JSON");
    assert_eq!(c[0]["HostConfig"]["NetworkMode"], net.as_str());

    // In use: refused, naming the members.
    let out = store.kiln(["network", "rm", &net]);
    assert!(!out.status.success());
    let err = stderr_text(&out);
    assert!(err.contains("srv") && err.contains("late"), "{err}");

    // Disconnect and connect are for stopped containers.
    let out = store.kiln(["network", "disconnect", &net, "srv"]);
    assert!(!out.status.success(), "disconnected a running container");
    ok(
        store.kiln(["network", "disconnect", &net, "late"]),
        "disconnect late",
    );
    let hosts = ok(
        store.kiln(["exec", "srv", "cat", "/etc/hosts"]),
        "exec cat /etc/hosts",
    );
    assert!(
        !hosts.contains("late"),
        "hosts after a disconnect:\n{hosts}"
    );
    ok(
        store.kiln(["network", "connect", "--alias", "tardy", &net, "late"]),
        "connect late",
    );
    let hosts = ok(
        store.kiln(["exec", "srv", "cat", "/etc/hosts"]),
        "exec cat /etc/hosts",
    );
    assert!(hosts.contains("tardy"), "hosts after a connect:\n{hosts}");

    ok(store.kiln(["rm", "-f", "srv", "late"]), "rm -f");
    ok(store.kiln(["network", "rm", &net]), "network rm");
    assert!(
        mounts_under(store.root()).is_empty(),
        "mounts left: {:?}",
        mounts_under(store.root())
    );
    assert!(!store.root().join("networks").join(&net).exists());
    assert_eq!(ok(store.kiln(["network", "ls", "-q"]), "network ls"), "");
}

#[test]
fn ports_publish_from_any_member_and_twice_is_refused() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let net = unique("ports");
    ok(store.kiln(["network", "create", &net]), "network create");
    ok(
        store.kiln([
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            &net,
            BUSYBOX,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "127.0.0.1:8080",
            "-h",
            "/etc",
        ]),
        "run -d srv",
    );
    // Another member publishes the port the server binds: the relay reaches the server.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    ok(
        store.kiln([
            "run",
            "-d",
            "--name",
            "door",
            "--network",
            &net,
            "-p",
            &publish,
            BUSYBOX,
            "sleep",
            "60",
        ]),
        "run -d door",
    );
    let reply = http_get(port, "/hostname", Duration::from_secs(10));
    assert!(
        reply.contains("200 OK"),
        "through the published port: {reply:?}"
    );
    // inspect shows the member on its network, reached at 127.0.0.1 by its short ID, and
    // the port it publishes, in docker's shapes.
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(store.kiln(["inspect", "door"]), "inspect door")).unwrap();
    let settings = &inspect[0]["NetworkSettings"];
    let id = inspect[0]["Id"].as_str().unwrap();
    let entry = &settings["Networks"][&net];
    let net_id = ok(
        store.kiln(["network", "inspect", "-f", "{{.Id}}", &net]),
        "network inspect",
    );
    assert_eq!(entry["NetworkID"], net_id.as_str(), "{settings}");
    assert_eq!(entry["IPAddress"], "127.0.0.1", "{settings}");
    assert_eq!(
        entry["Aliases"],
        serde_json::json!([&id[..12]]),
        "{settings}"
    );
    let bound =
        serde_json::json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": port.to_string()}]});
    assert_eq!(settings["Ports"], bound, "{settings}");
    assert_eq!(inspect[0]["HostConfig"]["PortBindings"], bound);
    assert_eq!(
        inspect[0]["Config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );

    // The same container port published by a second member: a clear error naming both.
    let other = format!("127.0.0.1:{}:8080", free_port());
    let out = store.kiln([
        "run",
        "-d",
        "--name",
        "twin",
        "--network",
        &net,
        "-p",
        &other,
        BUSYBOX,
        "sleep",
        "60",
    ]);
    assert!(!out.status.success(), "a second publisher of 8080 started");
    let err = stderr_text(&out);
    assert!(
        err.contains("8080/tcp") && err.contains("door") && err.contains("twin"),
        "{err}"
    );
    // A bridge is never made.
    let out = store.kiln(["run", "--rm", "--network", "bridge", BUSYBOX, "true"]);
    assert!(!out.status.success());
    assert!(
        stderr_text(&out).contains("no bridges"),
        "{}",
        stderr_text(&out)
    );

    ok(store.kiln(["rm", "-f", "srv", "door"]), "rm -f");
    ok(store.kiln(["network", "rm", &net]), "network rm");
    assert!(
        mounts_under(store.root()).is_empty(),
        "mounts left: {:?}",
        mounts_under(store.root())
    );
}

/// Names resolve through the /etc/hosts kiln writes, with a real libc: a Debian member
/// reaches a busybox server by its name and by its alias. Needs the Debian minbase tarball
/// that tests/debian.rs caches (skipped locally, a failure in CI, when it is missing).
#[test]
fn a_debian_member_resolves_names_and_aliases() {
    if !can_run_containers() {
        return;
    }
    let tarball = match crate::debian::minbase_tarball() {
        Ok(tarball) => tarball,
        Err(why) => {
            skip_or_fail("debian minbase tarball", &why);
            return;
        }
    };
    let store = KilnStore::with_busybox();
    ok(
        store.kiln([
            "import".as_ref(),
            tarball.as_os_str(),
            "debian:minbase".as_ref(),
        ]),
        "import debian",
    );
    let net = unique("debian");
    ok(store.kiln(["network", "create", &net]), "network create");
    let srv_id = ok(
        store.kiln([
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            &net,
            "--network-alias",
            "web",
            BUSYBOX,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "127.0.0.1:8080",
            "-h",
            "/etc",
        ]),
        "run -d srv",
    );
    let getent = ok(
        store.kiln([
            "run",
            "--rm",
            "--network",
            &net,
            "debian:minbase",
            "getent",
            "hosts",
            "web",
        ]),
        "getent hosts web",
    );
    assert!(getent.starts_with("127.0.0.1"), "{getent}");
    for host in ["srv", "web"] {
        let script = format!(
            "exec 3<>/dev/tcp/{host}/8080 && printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let start = Instant::now();
        let reply = loop {
            let out = store.kiln([
                "run",
                "--rm",
                "--network",
                &net,
                "debian:minbase",
                "bash",
                "-c",
                &script,
            ]);
            let text = stdout_text(&out);
            if text.contains("200 OK") || start.elapsed() > Duration::from_secs(10) {
                break text;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            reply.contains("200 OK") && reply.contains(&srv_id[..12]),
            "{host}: {reply}"
        );
    }
    ok(store.kiln(["rm", "-f", "srv"]), "rm -f");
    ok(store.kiln(["network", "rm", &net]), "network rm");
}
