//! kiln's Linux sandbox: one way to run a process in a container, used by RUN steps and by
//! `kiln run`. Namespaces (mount, pid, uts, ipc, cgroup, and net unless the host's), an
//! overlayfs root over layers unpacked once in the store, Docker's standard mounts, default
//! capabilities and seccomp profile; no runc, no daemon.
//!
//! Files: `spec` (the typed container description), `launch` (kiln's side: start, exec,
//! report, wait), `channel` (the control socket), `init` (the re-executed monitor, PID 1 and
//! the payload's last steps; the exec monitor that joins a running container), `rootfs` (mounts and pivot_root), `syscall` (the kernel behind a
//! trait), `user` (passwd/group), `security` (identity, capabilities, seccomp in order),
//! `caps`, `seccomp`, `net` (loopback and published ports), `tty`, `cgroup` (a cgroup per
//! container: limits, freezer, usage).
//! Must not: read plans or parse Dockerfiles; know the store's layout (callers give paths).

pub mod caps;
pub mod cgroup;
mod channel;
pub mod init;
pub mod launch;
pub mod net;
pub mod rootfs;
pub mod seccomp;
mod security;
pub mod spec;
pub mod syscall;
pub mod tty;
pub mod user;

pub use launch::{Container, ExecSpec, Exit, Launcher, Streams};
pub use spec::ContainerSpec;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    #[error("cannot start the container: {0}")]
    Spawn(String),
    #[error("containers need root: kiln is running as uid {0}")]
    #[diagnostic(help(
        "run kiln as root (RUN steps and `kiln run` use namespaces and overlayfs directly; rootless mode is planned)"
    ))]
    NotRoot(u32),
    /// The container could not start its payload; `code` is Docker's status for it.
    #[error("{message}")]
    Start { message: String, code: i32 },
}

/// Containers need root for now (namespaces, overlayfs and layer extraction as the image's
/// owners); the clear error comes before any work.
pub fn require_root() -> Result<(), SandboxError> {
    let uid = nix::unistd::geteuid().as_raw();
    if uid != 0 {
        return Err(SandboxError::NotRoot(uid));
    }
    Ok(())
}
