//! Skipping: a missing peer skips locally and fails in CI.

use super::*;

/// True when `CI=true`: then a missing peer is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Called by `require_peer!` when `name` is missing.
pub fn skip_or_fail(name: &str, why: &str) {
    if in_ci() {
        panic!("peer `{name}` is required in CI (CI=true) but is not usable: {why}");
    }
    eprintln!("SKIPPED: peer `{name}` is not usable here ({why}); with CI=true this fails");
}

/// Whether a peer can be used: `docker` (a reachable daemon with BuildKit), `podman`,
/// `skopeo`, `umoci`, `busybox` (the static binary the base image is made of).
pub fn peer_available(name: &str) -> bool {
    peer_status(name).is_ok()
}

/// Like [`peer_available`], with the reason when it is not. Probed once per process.
pub fn peer_status(name: &str) -> Result<(), String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Result<(), String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(name.to_string())
        .or_insert_with(|| probe_peer(name))
        .clone()
}

pub(crate) fn probe_peer(name: &str) -> Result<(), String> {
    let probe = |mut cmd: Command| -> Result<(), String> {
        let shown = format!("{cmd:?}");
        match cmd.stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{shown} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("{shown} cannot start: {e}")),
        }
    };
    match name {
        "docker" => {
            let mut c = docker();
            c.args(["info", "--format", "{{.ServerVersion}}"]);
            probe(c)?;
            // BuildKit through the classic client: `docker build` with DOCKER_BUILDKIT=1
            // needs a client that has BuildKit built in (Debian's docker.io does; a newer
            // client without the buildx plugin refuses).
            let mut c = docker();
            c.args(["build", "--help"]);
            probe(c)
        }
        "busybox" => {
            if Path::new(BUSYBOX_BINARY).is_file() {
                Ok(())
            } else {
                Err(format!(
                    "{BUSYBOX_BINARY} is missing (Debian: busybox-static)"
                ))
            }
        }
        "kubernetes-validate" => {
            let mut c = Command::new(kubernetes_validate_bin());
            c.arg("--version");
            probe(c).map_err(|e| {
                format!("{e} (.ci/run installs it into {KUBERNETES_VALIDATE_VENV}; or set KILN_TEST_KUBERNETES_VALIDATE)")
            })
        }
        "docker-compose" => {
            // Debian's docker-compose 1 (Python); it talks to the same dockerd.
            let mut c = Command::new("docker-compose");
            c.arg("version");
            probe(c)?;
            probe_peer("docker")
        }
        "podman" | "skopeo" | "umoci" | "make" | "script" => {
            let mut c = Command::new(name);
            c.arg("--version");
            probe(c)
        }
        other => Err(format!("unknown peer {other:?}")),
    }
}

/// Whether kiln's containers (and RUN steps) can run here: they need root and the busybox
/// binary; otherwise skips with the reason, or fails in CI.
pub fn can_run_containers() -> bool {
    if !crate::common::running_as_root() {
        skip_or_fail("root", "containers and RUN steps need root");
        return false;
    }
    if let Err(why) = peer_status("busybox") {
        skip_or_fail("busybox", &why);
        return false;
    }
    true
}

/// The venv `.ci/run` installs the PyPI package `kubernetes-validate` into (it bundles the
/// Kubernetes OpenAPI schemas, so validation needs no network).
pub const KUBERNETES_VALIDATE_VENV: &str = "/opt/kiln-ci-venv";

/// `kubernetes-validate`: `$KILN_TEST_KUBERNETES_VALIDATE`, else the one in `.ci/run`'s venv.
pub fn kubernetes_validate_bin() -> PathBuf {
    std::env::var_os("KILN_TEST_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(KUBERNETES_VALIDATE_VENV).join("bin/kubernetes-validate"))
}
