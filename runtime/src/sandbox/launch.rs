//! kiln's side of a container: start the monitor (kiln re-executed, never a fork of this
//! possibly multi-threaded process), hand it the spec, follow its reports, forward signals,
//! wait for the end. The same path serves RUN steps and `kiln run`.
//! Must not: set anything up itself (the init does, inside the namespaces).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;

use super::cgroup::{self, Cgroup, Layout, RealFs};
pub use super::channel::ExecSpec;
use super::channel::{self, Report, Reports, CONTROL_FD};
use super::init::{EXEC_ARG, INIT_ARG, LIVENESS_FD};
use super::spec::ContainerSpec;
use super::SandboxError;

/// The program that runs as the monitor: kiln itself.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub exe: PathBuf,
}

impl Launcher {
    /// The running kiln binary.
    pub fn current() -> Result<Launcher, SandboxError> {
        let exe = std::env::current_exe().map_err(|e| SandboxError::Spawn(e.to_string()))?;
        Ok(Launcher { exe })
    }
}

/// Where the payload's standard streams go (the terminal replaces all three with `-t`).
pub struct Streams {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// A started container.
pub struct Container {
    child: Child,
    reports: Reports,
    /// Closing it (dropping the container, or kiln dying) makes the monitor kill everything.
    _liveness: OwnedFd,
    /// Mount points set-up created inside the root.
    pub stubs: Vec<String>,
    /// The terminal's master side, with `-t`.
    pub terminal: Option<OwnedFd>,
    /// PID 1 of the container, in kiln's pid namespace (once the monitor has reported it).
    pub init_pid: Option<u32>,
    /// The container's cgroup, removed when the container is dropped (a started container;
    /// an exec joins its container's and leaves it be).
    cgroup: Option<cgroup::Owned>,
}

/// Which cgroup the monitor goes in.
enum Place<'a> {
    /// A new one for the container, with its limits.
    New(&'a ContainerSpec),
    /// The running container's whose PID 1 this is.
    Join(u32),
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Docker's status: the payload's exit code, or 128+signal.
    pub code: i32,
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container (docker's
    /// `State.OOMKilled`), read from its memory cgroup as it ended.
    pub oom_killed: bool,
}

fn dup_high(fd: RawFd) -> RawFd {
    // F_DUPFD_CLOEXEC to 10 or above, so the dup2 onto 3 and 4 cannot clobber a source.
    // SAFETY: fcntl on a descriptor the caller owns; async-signal-safe.
    unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) }
}

impl Launcher {
    /// Start `spec`. Returns once the payload has exec'd (its root set up, its terminal
    /// attached); a failure before that, its command missing included, is an error with
    /// Docker's status code (125, 126, 127).
    pub fn start(&self, spec: &ContainerSpec, streams: Streams) -> Result<Container, SandboxError> {
        self.launch(
            INIT_ARG,
            streams,
            spec.process.terminal,
            Place::New(spec),
            |sock| channel::write_spec(sock, spec),
        )
    }

    /// Run `exec.spec`'s process inside the running container whose PID 1 is
    /// `exec.init_pid`, joining its namespaces (`kiln exec`). Returns once it has exec'd; a
    /// failure before (its command missing included) is an error with Docker's status.
    pub fn exec(&self, exec: &ExecSpec, streams: Streams) -> Result<Container, SandboxError> {
        self.launch(
            EXEC_ARG,
            streams,
            exec.spec.process.terminal,
            Place::Join(exec.init_pid),
            |sock| channel::write_exec(sock, exec),
        )
    }

    fn launch(
        &self,
        arg: &str,
        streams: Streams,
        terminal: bool,
        place: Place<'_>,
        send: impl FnOnce(&std::fs::File) -> std::io::Result<()>,
    ) -> Result<Container, SandboxError> {
        super::require_root()?;
        let (host, inner) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| SandboxError::Spawn(format!("socketpair: {}", e.desc())))?;
        let (live_r, live_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| SandboxError::Spawn(format!("pipe: {}", e.desc())))?;
        let (inner_fd, live_fd) = (inner.as_raw_fd(), live_r.as_raw_fd());
        let mut cmd = Command::new(&self.exe);
        cmd.arg(arg)
            .env_clear()
            .stdin(streams.stdin)
            .stdout(streams.stdout)
            .stderr(streams.stderr);
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
        // functions (fcntl, dup2, sigprocmask, setpgid, prctl) on descriptors that stay open
        // until exec.
        unsafe {
            cmd.pre_exec(move || {
                let a = dup_high(inner_fd);
                let b = dup_high(live_fd);
                if a < 0 || b < 0 || libc::dup2(a, CONTROL_FD) < 0 || libc::dup2(b, LIVENESS_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // kiln may block signals it forwards; the container starts with none blocked.
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                // Terminal signals reach kiln, which forwards them; not the monitor directly.
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| SandboxError::Spawn(format!("{}: {e}", self.exe.display())))?;
        drop(inner);
        drop(live_r);
        let mut container = Container {
            child,
            reports: Reports::new(host),
            _liveness: live_w,
            stubs: Vec::new(),
            terminal: None,
            init_pid: None,
            cgroup: None,
        };
        // Into its cgroup before it is sent the spec, so everything it starts is in it.
        let fs = RealFs;
        let placed = match place {
            Place::New(spec) => {
                let cg = Cgroup::create(&fs, &Layout::current(&fs), &spec.id);
                let applied = cg.apply(&fs, &spec.resources);
                container.cgroup = Some(cgroup::Owned { cgroup: cg.clone() });
                match applied.and_then(|()| cg.add(&fs, container.child.id())) {
                    Err(e) if spec.resources.any() => Err(e),
                    // No limits asked for: a cgroup kiln may not fill is only left out
                    // (the container runs, `pause` and `stats` have nothing to work on).
                    Err(_) => {
                        container.cgroup = None;
                        Ok(())
                    }
                    Ok(()) => Ok(()),
                }
            }
            // An exec outside its container's cgroup (one that has none) still runs.
            Place::Join(pid) => {
                let _ = Cgroup::of_pid(&fs, pid).add(&fs, container.child.id());
                Ok(())
            }
        };
        if let Err(e) = placed {
            return Err(container.abandon(format!("the container's cgroup: {e}")));
        }
        // SAFETY: the socket is owned by `container.reports`; this File only borrows it.
        let sock = std::mem::ManuallyDrop::new(unsafe {
            std::fs::File::from_raw_fd(container.reports.raw())
        });
        if let Err(e) = send(&sock) {
            let _ = container.child.kill();
            let _ = container.child.wait();
            return Err(SandboxError::Spawn(format!("sending the spec: {e}")));
        }
        let mut stubs_seen = false;
        let mut started = false;
        while !stubs_seen
            || !started
            || container.init_pid.is_none()
            || (terminal && container.terminal.is_none())
        {
            match container.reports.next() {
                Ok(Some((Report::Pid { pid }, _))) => container.init_pid = Some(pid),
                Ok(Some((Report::Started, _))) => started = true,
                Ok(Some((Report::Stubs { paths }, _))) => {
                    container.stubs = paths;
                    stubs_seen = true;
                }
                Ok(Some((Report::Tty, fd))) => {
                    let Some(master) = fd else {
                        return Err(container.abandon("the terminal did not arrive".into()));
                    };
                    super::tty::copy_window_size(0, master.as_raw_fd());
                    let _ = container.reports.ack();
                    container.terminal = Some(master);
                }
                Ok(Some((Report::Failed { message, code }, _))) => {
                    let _ = container.child.wait();
                    return Err(SandboxError::Start { message, code });
                }
                Ok(Some((Report::Exited { .. }, _))) | Ok(None) | Err(_) => {
                    let status = container.child.wait();
                    return Err(SandboxError::Start {
                        message: format!("the container's monitor ended early ({status:?})"),
                        code: 125,
                    });
                }
            }
        }
        Ok(container)
    }
}

impl Container {
    fn abandon(&mut self, message: String) -> SandboxError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        SandboxError::Start { message, code: 125 }
    }

    /// The directories of the container's cgroup (for a record: removed again by `rm` when
    /// the holder died before it could remove them).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.cgroup.dirs.iter().map(|d| d.path.clone()).collect())
            .unwrap_or_default()
    }

    /// The monitor's pid (signals sent to it reach the payload).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Pass a signal on to the payload.
    pub fn signal(&self, sig: Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Wait for the end. A payload that could not be started (not found, not executable) is
    /// an error carrying Docker's status (127, 126).
    pub fn wait(mut self) -> Result<Exit, SandboxError> {
        let mut exit = None;
        let mut failed = None;
        loop {
            match self.reports.next() {
                Ok(Some((Report::Exited { code, signal }, _))) => {
                    exit = Some(Exit {
                        code,
                        signal,
                        oom_killed: false,
                    })
                }
                Ok(Some((Report::Failed { message, code }, _))) => failed = Some((message, code)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let status = self
            .child
            .wait()
            .map_err(|e| SandboxError::Spawn(format!("waiting for the container: {e}")))?;
        if let Some((message, code)) = failed {
            return Err(SandboxError::Start { message, code });
        }
        use std::os::unix::process::ExitStatusExt;
        let mut exit = exit.unwrap_or(Exit {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(9)),
            signal: None,
            oom_killed: false,
        });
        // Before `self` (and with it the cgroup) goes.
        exit.oom_killed = self.cgroup.as_ref().is_some_and(|c| {
            c.cgroup
                .oom_killed(&RealFs, exit.code == 128 + Signal::SIGKILL as i32)
        });
        Ok(exit)
    }
}
