//! A real distribution: a Debian bookworm minbase root filesystem (debootstrap, cached as a
//! tarball outside the repository) imported as `debian:minbase`, a RUN step that installs a
//! package with apt from the Debian mirror, and `kiln run` of the result.
//!
//! Needs the network (deb.debian.org), and root (debootstrap). In CI (`CI=true`) every
//! failure is a failure; locally the test skips, saying why, when debootstrap cannot reach
//! the mirror or cannot run. The first run takes a few minutes (debootstrap); later runs
//! reuse the cached tarball (`$KILN_TEST_DEBIAN_TAR`, default
//! `/var/cache/kiln-tests/debian-bookworm-minbase.tar`).
//!
//! Must not: write inside the repository, or reach any host but the Debian mirror.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

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
