//! The docker client and the images the tests put in its daemon.

use super::*;

/// The docker client: `$KILN_TEST_DOCKER`, else Debian's `/usr/bin/docker` (which has
/// BuildKit built in), else `docker` from PATH.
pub fn docker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KILN_TEST_DOCKER") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/docker");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    PathBuf::from("docker")
}

/// A docker command with BuildKit enabled.
pub fn docker() -> Command {
    let mut c = Command::new(docker_bin());
    c.env("DOCKER_BUILDKIT", "1");
    c.stdin(Stdio::null());
    c
}

/// `busybox:test` exists in docker with exactly our rootfs tarball as its one layer
/// (`docker import` keeps the tarball's bytes, so its diff_id is the tarball's sha256);
/// imported once, and only again when the tarball changed.
pub fn docker_busybox() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let bb = busybox();
        let want = format!("[\"sha256:{}\"]", sha256_file(&bb.tarball));
        let have = run(docker().args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            BUSYBOX,
        ]));
        if have.status.success() && stdout_text(&have).trim() == want {
            return;
        }
        run_ok(docker().arg("import").arg(&bb.tarball).arg(BUSYBOX));
        let have = run_ok(docker().args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            BUSYBOX,
        ]));
        assert_eq!(
            stdout_text(&have).trim(),
            want,
            "docker import changed the bytes of the busybox tarball"
        );
    });
    BUSYBOX
}

/// `docker save -o <dest> <image>`.
pub fn docker_save(image: &str, dest: &Path) {
    run_ok(docker().arg("save").arg("-o").arg(dest).arg(image));
}

/// Remove docker images the tests tagged (ignoring ones already gone).
pub fn docker_rmi(image: &str) {
    let _ = run(docker().args(["rmi", "-f", image]));
}

/// Docker objects this test made, removed on drop (also when an assertion fails).
#[derive(Default)]
pub struct DockerCleanup {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub images: Vec<String>,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = run(docker().args(["rm", "-f", c]));
        }
        for v in &self.volumes {
            let _ = run(docker().args(["volume", "rm", "-f", v]));
        }
        for i in &self.images {
            docker_rmi(i);
        }
    }
}
