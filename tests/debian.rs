//! A real distribution: a Debian bookworm minbase root filesystem (debootstrap, cached as a
//! tarball outside the repository) imported as `debian:minbase`, a RUN step that installs a
//! package with apt from the Debian mirror, and `kiln run` of the result; and the detached
//! lifecycle on it (`run -d` of a bash with a TERM trap, `exec -it bash` through a real
//! terminal, `ps`, `stop`, `logs`, `rm`) against docker with the same tarball imported.
//!
//! Needs the network (deb.debian.org), and root (debootstrap). In CI (`CI=true`) every
//! failure is a failure; locally the test skips, saying why, when debootstrap cannot reach
//! the mirror or cannot run. The first run takes a few minutes (debootstrap); later runs
//! reuse the cached tarball (`$KILN_TEST_DEBIAN_TAR`, default
//! `/var/cache/kiln-tests/debian-bookworm-minbase.tar`).
//!
//! Must not: write inside the repository, reach any host but the Debian mirror, or start
//! docker containers with a network (`--network none` only; they are named `kiln-e2e-lc-*`
//! and removed at the end).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const MIRROR: &str = "http://deb.debian.org/debian";

fn cached_tarball() -> PathBuf {
    std::env::var_os("KILN_TEST_DEBIAN_TAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kiln-tests/debian-bookworm-minbase.tar"))
}

/// Skip (locally) or fail (in CI) with a reason.
pub(crate) fn unavailable(why: &str) {
    if in_ci() {
        panic!("the Debian test cannot run in CI (CI=true): {why}");
    }
    eprintln!("SKIPPED: {why}; with CI=true this fails");
}

/// The cached minbase tarball, made with debootstrap when it is missing (in a directory next
/// to it, written to a temporary name, renamed into place when whole). Tests that need it
/// call this, so one debootstrap serves them all: a second caller waits for the first.
pub(crate) fn minbase_tarball() -> Result<PathBuf, String> {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let tarball = cached_tarball();
    if tarball.is_file() {
        return Ok(tarball);
    }
    if !running_as_root() {
        return Err("debootstrap needs root".into());
    }
    let have = Command::new("debootstrap").arg("--version").output();
    if !have.map(|o| o.status.success()).unwrap_or(false) {
        let apt = run(Command::new("apt-get").args(["install", "-y", "debootstrap"]));
        if !apt.status.success() {
            return Err(format!(
                "debootstrap is missing and apt-get install failed: {}",
                stderr_text(&apt).trim()
            ));
        }
    }
    let dir = tarball.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".debootstrap-")
        .tempdir_in(dir)
        .map_err(|e| format!("temp dir in {}: {e}", dir.display()))?;
    let rootfs = work.path().join("rootfs");
    eprintln!("debootstrap bookworm minbase into {} ...", rootfs.display());
    let out = run(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .arg(MIRROR));
    if !out.status.success() {
        return Err(format!(
            "debootstrap from {MIRROR} failed ({}): {}",
            out.status,
            stdout_text(&out)
                .lines()
                .chain(stderr_text(&out).lines())
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    let tmp = work.path().join("rootfs.tar");
    let out = run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tmp)
        .arg("."));
    if !out.status.success() {
        return Err(format!("tar of the rootfs failed: {}", stderr_text(&out)));
    }
    std::fs::rename(&tmp, &tarball).map_err(|e| format!("rename to {}: {e}", tarball.display()))?;
    Ok(tarball)
}

#[test]
fn apt_get_install_hello_and_run_it() {
    let tarball = match minbase_tarball() {
        Ok(t) => t,
        Err(why) => return unavailable(&why),
    };
    let store = KilnStore::new();
    store.kiln_ok([
        "import".as_ref(),
        tarball.as_os_str(),
        "debian:minbase".as_ref(),
    ]);
    let work = temp_dir();
    let ctx = work.path().join("context");
    write_file(
        &ctx.join("Dockerfile"),
        b"FROM debian:minbase\n\
          RUN apt-get update && apt-get install -y --no-install-recommends hello\n\
          CMD [\"hello\"]\n",
        0o644,
    );
    let built = store.kiln([
        "build".as_ref(),
        "--network".as_ref(),
        "host".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        "kiln-e2e/hello:1".as_ref(),
        ctx.as_os_str(),
    ]);
    if !built.status.success() && !in_ci() {
        let text = stdout_text(&built) + &stderr_text(&built);
        if text.contains("Temporary failure resolving") || text.contains("Could not connect") {
            return unavailable("apt-get cannot reach the Debian mirror");
        }
    }
    assert_success("kiln build of the apt-get image", &built);
    let ran = store.kiln_ok(["run", "--rm", "kiln-e2e/hello:1"]);
    assert_eq!(
        stdout_text(&ran).trim_end(),
        "Hello, world!",
        "kiln run printed something else\n--- stderr\n{}",
        stderr_text(&ran)
    );
}

/// The lifecycle of a detached container on the Debian image, kiln's and docker's side by
/// side: `run -d` of bash with a TERM trap, `exec -it bash` through a terminal (`script`),
/// `ps`, `stop` (the trap runs: status 0), `logs`, `rm`.
#[test]
fn detached_lifecycle_on_debian_like_docker() {
    use crate::lifecycle::{name, ok};
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    require_peer!("script");
    let tarball = match minbase_tarball() {
        Ok(t) => t,
        Err(why) => return unavailable(&why),
    };
    let image = "kiln-e2e/debian:minbase";
    let store = KilnStore::new();
    store.kiln_ok(["import".as_ref(), tarball.as_os_str(), image.as_ref()]);
    run_ok(docker().arg("import").arg(&tarball).arg(image));
    let payload = "trap 'echo term-handled; exit 0' TERM; echo started; \
                   while :; do sleep 0.2; done";
    let (k, d) = (name("debian"), name("docker-debian"));
    struct Gone<'a>(&'a KilnStore, String, String);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            let _ = self.0.kiln(["rm", "-f", &self.1]);
            let _ = run(docker().args(["rm", "-f", &self.2]));
        }
    }
    let _gone = Gone(&store, k.clone(), d.clone());
    ok(
        store.kiln(["run", "-d", "--name", &k, image, "bash", "-c", payload]),
        "kiln run -d",
    );
    ok(
        run(docker()
            .args(["run", "-d", "--network", "none", "--name", &d, image])
            .args(["bash", "-c", payload])),
        "docker run -d",
    );
    // The payload is up when it has said so.
    for (who, logs) in [
        (
            "kiln",
            Box::new(|| store.kiln(["logs", &k])) as Box<dyn Fn() -> Output>,
        ),
        ("docker", Box::new(|| run(docker().args(["logs", &d])))),
    ] {
        assert!(
            wait_until(std::time::Duration::from_secs(10), || stdout_text(&logs())
                .contains("started")),
            "{who}: no 'started' in the log"
        );
    }

    // exec -it bash on a real terminal: the typed command runs in the container's bash.
    let typed = "sleep 1; printf 'echo in-$((6*7)) $BASH_VERSION\\r'; sleep 1; printf 'exit 3\\r'";
    let through_a_terminal = |exec: String| {
        run(Command::new("sh").args([
            "-c",
            &format!("({typed}) | script -qfec '{exec}' /dev/null"),
        ]))
    };
    let kiln_exec = format!(
        "{} --root {} exec -it {k} bash",
        kiln_bin().display(),
        store.root().display()
    );
    let docker_exec = format!("{} exec -it {d} bash", docker_bin().display());
    let outs = [
        through_a_terminal(kiln_exec),
        through_a_terminal(docker_exec),
    ];
    for (who, o) in ["kiln", "docker"].iter().zip(&outs) {
        let text = stdout_text(o).replace('\r', "");
        assert!(text.contains("in-42 5."), "{who}: {}", show(o));
        assert_eq!(o.status.code(), Some(3), "{who}: {}", show(o));
    }

    let ps = [store.kiln(["ps"]), run(docker().args(["ps"]))];
    for ((who, o), n) in ["kiln", "docker"].iter().zip(&ps).zip([&k, &d]) {
        let line = stdout_text(o)
            .lines()
            .find(|l| l.ends_with(n.as_str()))
            .map(str::to_string);
        let line = line.unwrap_or_else(|| panic!("{who} ps has no {n}: {}", show(o)));
        assert!(line.contains(" Up "), "{who}: {line}");
        assert!(line.contains(image), "{who}: {line}");
    }

    ok(store.kiln(["stop", &k]), "kiln stop");
    ok(run(docker().args(["stop", &d])), "docker stop");
    let codes = [
        serde_json::from_str::<serde_json::Value>(&ok(store.kiln(["inspect", &k]), "inspect"))
            .expect("kiln inspect JSON")[0]["State"]["ExitCode"]
            .to_string(),
        ok(
            run(docker().args(["inspect", "-f", "{{.State.ExitCode}}", &d])),
            "docker inspect",
        ),
    ];
    assert_eq!(codes[0], "0", "the TERM trap ends bash with 0");
    assert_eq!(codes[0], codes[1]);
    let logs = [
        ok(store.kiln(["logs", &k]), "kiln logs"),
        ok(run(docker().args(["logs", &d])), "docker logs"),
    ];
    assert_eq!(logs[0], "started\nterm-handled");
    assert_eq!(logs[0], logs[1]);

    ok(store.kiln(["rm", &k]), "kiln rm");
    ok(run(docker().args(["rm", &d])), "docker rm");
    assert!(!store.kiln(["inspect", &k]).status.success());
    assert!(!run(docker().args(["inspect", &d])).status.success());
}
