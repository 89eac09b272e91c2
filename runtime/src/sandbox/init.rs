//! The container side: kiln re-executed as `kiln __kiln-sandbox-init` (a fresh,
//! single-threaded process, so forking is safe) becomes the container's monitor.
//!
//! Process tree and duties:
//! - **monitor** (in kiln's pid namespace): reads the spec, binds published ports on the host,
//!   unshares the mount, uts, ipc, cgroup, pid (and, unless the network is the host's, net)
//!   namespaces, forks PID 1, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/SIGWINCH
//!   to it, relays published ports into the container's loopback, kills it when kiln goes
//!   away (the liveness pipe closes, even when kiln is SIGKILLed), and exits with its status
//!   (128+signal when it was killed). With `--pid host` it unshares no pid namespace, with
//!   `--pid container:` it joins that one; in both it is the payload's subreaper and kills
//!   what the payload leaves.
//! - **PID 1**: mounts the root and everything in it (`rootfs`), pivots, then either becomes
//!   the payload (Docker's default) or, with `--init`, stays as a minimal init that forwards
//!   signals to the payload and reaps every zombie.
//! - **exec monitor** (`kiln __kiln-sandbox-exec`, for `kiln exec`): joins the namespaces of
//!   a running container's PID 1, forks the process into them and watches it as the monitor
//!   watches PID 1 (reporting Started once it has exec'd); the process takes the payload's
//!   steps below.
//! - **payload**: closes every inherited descriptor, enters its working directory (resolved
//!   inside the root, then checked, CVE-2024-21626), takes its identity, capabilities and
//!   seccomp filter, and execs.
//!
//! Must not: read the store or decide policy (the spec says everything); write to kiln's
//! stdout/stderr except the payload's own output (failures travel as [`Report`]s).

use std::ffi::CString;
use std::io::Read;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::channel::{self, Report, CONTROL_FD};
use super::spec::{ContainerSpec, Network, PidNamespace};
use super::syscall::{Create, Linux, Syscall};
use super::{rootfs, security, user};

/// The first argument that makes kiln run as a container's monitor.
pub const INIT_ARG: &str = "__kiln-sandbox-init";
/// The descriptor of the liveness pipe's read end in the monitor.
pub const LIVENESS_FD: RawFd = 4;

/// Signals kiln, the monitor and the `--init` PID 1 pass on to the payload.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The first argument that makes kiln run a process inside an existing container (`exec`).
pub const EXEC_ARG: &str = "__kiln-sandbox-exec";

/// Call first thing in `main`, before any thread exists: when kiln was started as a
/// container's monitor (or an exec's), this runs it and never returns.
pub fn run_if_requested() {
    let mut args = std::env::args_os();
    let code = match args.nth(1) {
        Some(a) if a == INIT_ARG => monitor(),
        Some(a) if a == EXEC_ARG => exec_monitor(),
        _ => return,
    };
    std::process::exit(code);
}

/// The namespaces `exec` joins, the mount namespace last (after it, the host's /proc is out
/// of sight).
const EXEC_NAMESPACES: [(&str, CloneFlags); 6] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// `kiln exec`'s monitor: join every namespace of the container whose PID 1 the spec names,
/// fork the process (it lands in the container's pid namespace), and watch it as the
/// container's monitor watches PID 1. The process gets the container's capabilities and
/// seccomp filter through the same payload steps.
fn exec_monitor() -> i32 {
    close_from(LIVENESS_FD as u32 + 1);
    // SAFETY: fd 3 was set up by the launcher for this process; it is borrowed, not owned.
    let control = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(CONTROL_FD) });
    let exec = match channel::read_exec(&*control) {
        Ok(s) => s,
        Err(e) => return fail(format!("reading the exec spec: {e}"), 125),
    };
    let mut namespaces = Vec::new();
    for (name, flag) in EXEC_NAMESPACES {
        let path = format!("/proc/{}/ns/{name}", exec.init_pid);
        match std::fs::File::open(&path) {
            Ok(f) => namespaces.push((name, f, flag)),
            Err(e) => return fail(format!("the container is not running ({path}: {e})"), 125),
        }
    }
    for (name, file, flag) in &namespaces {
        if let Err(e) = nix::sched::setns(file, *flag) {
            return fail(
                format!("joining the container's {name} namespace: {}", e.desc()),
                125,
            );
        }
    }
    drop(namespaces);
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    let mut old = SigSet::empty();
    if nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
        .is_err()
    {
        return fail("blocking signals".into(), 125);
    }
    // The exec pipe, as the container's monitor has one: kiln learns that the process has
    // exec'd (or why it could not) before `exec` returns.
    let (exec_r, exec_w) =
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK) {
            Ok(p) => p,
            Err(e) => return fail(format!("pipe: {}", e.desc()), 125),
        };
    // SAFETY: this process is single-threaded (a fresh exec).
    let child = match unsafe { fork() } {
        Err(e) => return fail(format!("fork: {}", e.desc()), 125),
        Ok(ForkResult::Child) => {
            drop(exec_r);
            EXEC_PIPE.store(exec_w.as_raw_fd(), std::sync::atomic::Ordering::SeqCst);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let _ = nix::unistd::setsid();
            let code = payload(&exec.spec, &old, true);
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    report(&Report::Pid {
        pid: child.as_raw() as u32,
    });
    drop(exec_w);
    // Nothing is mounted for an exec: set-up is done.
    report(&Report::Stubs { paths: Vec::new() });
    watch(child, &mask, None, Some(exec_r))
}

fn report(r: &Report) {
    let _ = channel::send(CONTROL_FD, r, None);
}

/// In PID 1 and the payload: the write end of the exec pipe (-1 elsewhere). It closes on the
/// payload's exec; a failure writes one byte first, so the monitor tells the two apart.
static EXEC_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

fn fail(message: String, code: i32) -> i32 {
    report(&Report::Failed { message, code });
    let fd = EXEC_PIPE.load(std::sync::atomic::Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: writing one byte to a descriptor this process holds.
        unsafe {
            libc::write(fd, b"x".as_ptr().cast(), 1);
        }
    }
    code
}

fn monitor() -> i32 {
    // Nothing kiln inherited beyond the standard streams and the two channels stays open.
    close_from(LIVENESS_FD as u32 + 1);
    // SAFETY: fd 3 was set up by the launcher for this process; it is borrowed, not owned.
    let control = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(CONTROL_FD) });
    let spec = match channel::read_spec(&*control) {
        Ok(s) => s,
        Err(e) => return fail(format!("reading the container spec: {e}"), 125),
    };
    let listeners = match super::net::bind_ports(&spec) {
        Ok(l) => l,
        Err(e) => return fail(e, 125),
    };
    if let Network::Join { path } = &spec.network {
        if let Err(e) = super::net::join(path) {
            return fail(e, 125);
        }
    }
    if spec.network == Network::None {
        if let Err(e) = Linux.unshare(CloneFlags::CLONE_NEWNET) {
            return fail(format!("creating the network namespace: {}", e.desc()), 125);
        }
        if let Err(e) = super::net::loopback_up() {
            return fail(
                format!("bringing up the loopback interface: {}", e.desc()),
                125,
            );
        }
    }
    // The relays need threads, which a process cannot start once it has unshared its pid
    // namespace: they get a process of their own, in the container's network namespace.
    let relay = match relay_process(listeners) {
        Ok(r) => r,
        Err(e) => return fail(format!("starting the port relays: {}", e.desc()), 125),
    };
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    match &spec.pid {
        PidNamespace::Private => flags |= CloneFlags::CLONE_NEWPID,
        PidNamespace::Host => {}
        PidNamespace::Join { path } => {
            // The next fork lands in the other container's pid namespace.
            let joined = std::fs::File::open(path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    nix::sched::setns(&f, CloneFlags::CLONE_NEWPID).map_err(|e| e.desc().into())
                });
            if let Err(e) = joined {
                return fail(
                    format!(
                        "joining the pid namespace {} (is that container running?): {e}",
                        path.display()
                    ),
                    125,
                );
            }
        }
    }
    if spec.pid != PidNamespace::Private {
        // No pid namespace of its own ends the payload's children with it: the monitor
        // adopts them (subreaper) and kills what is left when the payload ends.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    if let Err(e) = Linux.unshare(flags) {
        return fail(format!("creating the namespaces: {}", e.desc()), 125);
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    let mut old = SigSet::empty();
    if nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
        .is_err()
    {
        return fail("blocking signals".into(), 125);
    }
    // The exec pipe: its write end closes when the payload execs (close-on-exec).
    let (exec_r, exec_w) =
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK) {
            Ok(p) => p,
            Err(e) => return fail(format!("pipe: {}", e.desc()), 125),
        };
    // SAFETY: this process is single-threaded (a fresh exec; the relays start after the fork).
    let pid1 = match unsafe { fork() } {
        Err(e) => return fail(format!("fork: {}", e.desc()), 125),
        Ok(ForkResult::Child) => {
            drop(exec_r);
            EXEC_PIPE.store(exec_w.as_raw_fd(), std::sync::atomic::Ordering::SeqCst);
            let code = pid1(&spec, &old, exec_w);
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(exec_w);
    report(&Report::Pid {
        pid: pid1.as_raw() as u32,
    });
    let code = watch(pid1, &mask, relay, Some(exec_r));
    if spec.pid != PidNamespace::Private {
        kill_adopted();
    }
    code
}

/// Without a pid namespace of its own nothing ends the payload's children with it: kill
/// and reap every process the monitor has adopted as their subreaper (the relay has been
/// reaped by then), until none is left.
fn kill_adopted() {
    let me = std::process::id();
    for _ in 0..100 {
        let children: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|st| {
                        let rest = &st[st.rfind(')')? + 1..];
                        rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                    })
                    == Some(me)
            })
            .collect();
        if children.is_empty() {
            return;
        }
        for pid in children {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

/// Whether the payload has exec'd: `Some(true)` when the exec pipe closed with nothing in it,
/// `Some(false)` after a failure's byte, `None` while it is still open.
fn exec_done(pipe: &OwnedFd) -> Option<bool> {
    let mut b = [0u8; 1];
    match nix::unistd::read(pipe.as_raw_fd(), &mut b) {
        Ok(0) => Some(true),
        Ok(_) => Some(false),
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => None,
        Err(_) => Some(false),
    }
}

/// The monitor's loop: forward signals to `pid1`, kill it when kiln goes away, and end with
/// its status (reported to kiln first).
/// With `exec_pipe`, [`Report::Started`] is sent once the payload has exec'd.
fn watch(pid1: Pid, mask: &SigSet, relay: Option<Pid>, mut exec_pipe: Option<OwnedFd>) -> i32 {
    let sfd = match SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(s) => s,
        Err(e) => {
            let _ = kill(pid1, Signal::SIGKILL);
            return fail(format!("signalfd: {}", e.desc()), 125);
        }
    };
    loop {
        let exec_fd = exec_pipe.as_ref().map(|p| {
            // SAFETY: the pipe outlives this iteration's poll.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(p.as_raw_fd()) }
        });
        let mut fds = vec![
            nix::poll::PollFd::new(sfd.as_fd_borrowed(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(liveness(), nix::poll::PollFlags::POLLIN),
        ];
        if let Some(fd) = exec_fd {
            fds.push(nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => {}
        }
        let kiln_gone = fds[1].revents().is_some_and(|r| {
            r.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLIN)
        });
        if kiln_gone {
            let _ = kill(pid1, Signal::SIGKILL);
        }
        let ready = fds[0]
            .revents()
            .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLIN));
        if ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                if sig != Signal::SIGCHLD {
                    let _ = kill(pid1, sig);
                }
            }
        }
        if let Some(done) = exec_pipe.as_ref().and_then(exec_done) {
            if done {
                report(&Report::Started);
            }
            exec_pipe = None;
        }
        if let Some(code) = reap(pid1) {
            if let Some(r) = relay {
                // The relay drains what is in flight and exits (bounded by RELAY_DRAIN).
                let _ = kill(r, Signal::SIGTERM);
                let _ = waitpid(r, None);
            }
            return code;
        }
        if kiln_gone {
            // Block until PID 1 is gone; SIGKILL cannot be refused.
            match waitpid(pid1, None) {
                Ok(status) => return exit_code(status).unwrap_or(137),
                Err(_) => return 137,
            }
        }
    }
}

/// How long the relay may take, once the payload has ended, to pass on what is in flight.
const RELAY_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Fork the process that relays published ports (none when nothing is published). It dies
/// with the monitor; on SIGTERM (the payload has ended) it first drains open connections,
/// for at most [`RELAY_DRAIN`].
fn relay_process(listeners: Vec<super::net::Listener>) -> nix::Result<Option<Pid>> {
    if listeners.is_empty() {
        return Ok(None);
    }
    // SAFETY: the monitor is single-threaded here.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let _ = nix::sys::prctl::set_dumpable(false);
            // Blocked before the relay threads start, so they inherit the mask and only
            // this thread takes SIGTERM, through sigwait.
            let mut term = SigSet::empty();
            term.add(Signal::SIGTERM);
            let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&term), None);
            super::net::start_relays(listeners);
            while term.wait() != Ok(Signal::SIGTERM) {}
            super::net::drain(RELAY_DRAIN);
            // SAFETY: leaving without running destructors; the relay threads end with us.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => Ok(Some(child)),
    }
}

fn liveness() -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the launcher set up LIVENESS_FD for the monitor's whole life.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(LIVENESS_FD) }
}

trait SignalFdExt {
    fn as_fd_borrowed(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl SignalFdExt for SignalFd {
    fn as_fd_borrowed(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor lives as long as the SignalFd it is borrowed from.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

/// Reap children without blocking; when `pid1` is among them, report its end and give the
/// monitor's exit code.
fn reap(pid1: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(status) if status.pid() == Some(pid1) => {
                let code = exit_code(status)?;
                let signal = match status {
                    WaitStatus::Signaled(_, s, _) => Some(s as i32),
                    _ => None,
                };
                report(&Report::Exited { code, signal });
                return Some(code);
            }
            Ok(_) => continue,
        }
    }
}

/// Docker's exit status: the code, or 128+signal.
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn pid1(spec: &ContainerSpec, old_mask: &SigSet, exec_pipe: OwnedFd) -> i32 {
    // If the monitor dies, so does the container. (Its parent lives outside this pid
    // namespace, so getppid() says 0 here whether or not the monitor is still there.)
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::unistd::setsid();
    let sys = Linux;
    let scratch = &spec.rootfs.scratch;
    if let Err(e) = sys.mount(
        Some("tmpfs"),
        scratch,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=700"),
    ) {
        return fail(format!("mounting the private tmpfs: {}", e.desc()), 125);
    }
    let files = rootfs::FileStage {
        dir: scratch.clone(),
    };
    let stubs = match rootfs::setup(&sys, spec, &files) {
        Ok(s) => s,
        Err(e) => return fail(format!("setting up the root filesystem: {e}"), 125),
    };
    report(&Report::Stubs { paths: stubs });
    if !spec.init {
        return payload(spec, old_mask, true);
    }
    // --init: harden PID 1 as much as the payload, so the payload gains nothing through it.
    let root = user::Identity {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: "/".into(),
    };
    if let Err(e) = security::confine(spec, &root) {
        return fail(e, 125);
    }
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: PID 1 is single-threaded.
    let child = match unsafe { fork() } {
        Err(e) => return fail(format!("fork: {}", e.desc()), 125),
        Ok(ForkResult::Child) => {
            let code = payload(spec, old_mask, false);
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    // Only the payload's copy of the exec pipe may keep it open.
    EXEC_PIPE.store(-1, std::sync::atomic::Ordering::SeqCst);
    drop(exec_pipe);
    let _ = nix::unistd::close(CONTROL_FD);
    init_loop(child)
}

/// kiln's minimal init: forward signals to the payload, reap everything, end with the
/// payload's status.
fn init_loop(child: Pid) -> i32 {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) else {
        let _ = kill(child, Signal::SIGKILL);
        return 125;
    };
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) if status.pid() == Some(child) => {
                    return exit_code(status).unwrap_or(125);
                }
                Ok(_) => continue,
            }
        }
        if let Ok(Some(info)) = sfd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                if sig != Signal::SIGCHLD {
                    let _ = kill(child, sig);
                }
            }
        }
    }
}

fn payload(spec: &ContainerSpec, old_mask: &SigSet, confine: bool) -> i32 {
    match prepare_and_exec(spec, old_mask, confine) {
        Err((message, code)) => fail(message, code),
        Ok(never) => match never {},
    }
}

fn read_inside(path: &str) -> Option<String> {
    let (r, _) = Linux
        .resolve_in_root(Path::new("/"), path, Create::Nothing)
        .ok()?;
    let mut s = String::new();
    std::fs::File::open(r.proc_path())
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

fn prepare_and_exec(
    spec: &ContainerSpec,
    old_mask: &SigSet,
    confine: bool,
) -> Result<std::convert::Infallible, (String, i32)> {
    let p = &spec.process;
    let passwd = read_inside("/etc/passwd");
    let group = read_inside("/etc/group");
    let id = user::resolve(&p.user, passwd.as_deref(), group.as_deref())
        .map_err(|e| (e.to_string(), 125))?;
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", id.home));
    }
    if p.terminal {
        super::tty::attach_container_side().map_err(|e| (e, 125))?;
    }
    // No descriptor of kiln's may reach the payload (CVE-2024-21626): everything above the
    // standard three closes on exec; the control socket stays until then to report failures.
    close_range_cloexec(CONTROL_FD as u32);
    let cwd = if p.cwd.is_empty() {
        "/"
    } else {
        p.cwd.as_str()
    };
    let (dir, _) = Linux
        .resolve_in_root(Path::new("/"), cwd, Create::Dir)
        .map_err(|e| (format!("working directory {cwd}: {}", e.desc()), 125))?;
    nix::unistd::chdir(&dir.proc_path()).map_err(|e| {
        (
            format!("entering the working directory {cwd}: {}", e.desc()),
            125,
        )
    })?;
    drop(dir);
    match nix::unistd::getcwd() {
        Ok(d) if d.starts_with("/") => {}
        _ => {
            return Err((
                format!("working directory {cwd} is outside the container"),
                125,
            ))
        }
    }
    let exe = find_executable(&p.args, &env)?;
    // `--ulimit`, while the process may still raise hard limits (before it drops privileges).
    for u in &spec.limits.ulimits {
        if let Some((resource, soft, hard)) = u.rlimit() {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: setrlimit reads the struct it is given.
            if unsafe { libc::setrlimit(resource, &limit) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err((format!("setting --ulimit {}: {e}", u.name), 125));
            }
        }
    }
    if confine {
        security::confine(spec, &id).map_err(|e| (e, 125))?;
    } else {
        security::switch_user(&id).map_err(|e| (e, 125))?;
    }
    // Give the payload default signal handling and the mask kiln started with.
    for s in [
        Signal::SIGPIPE,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGQUIT,
        Signal::SIGHUP,
    ] {
        // SAFETY: restoring default dispositions in a single-threaded process before exec.
        unsafe {
            let _ = nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigDfl);
        }
    }
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
    // Every payload starts with umask 0022, as runc gives container processes: the umask of
    // whoever ran kiln must not decide the modes of the files a RUN step writes.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let argv: Vec<CString> = p
        .args
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| ("argument contains NUL".to_string(), 125)))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = env
        .iter()
        .filter_map(|e| CString::new(e.as_bytes()).ok())
        .collect();
    // Changing credentials clears the parent-death signal: set it again, last.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let err = nix::unistd::execve(&exe, &argv, &envp).unwrap_err();
    let code = if err == Errno::ENOENT { 127 } else { 126 };
    Err((format!("exec {:?}: {}", p.args[0], err.desc()), code))
}

/// `args[0]` as Docker finds it: a path when it contains `/`, else searched in the
/// container's PATH.
fn find_executable(args: &[String], env: &[String]) -> Result<CString, (String, i32)> {
    let Some(name) = args.first() else {
        return Err(("no command given".into(), 125));
    };
    let c = |s: &str| CString::new(s).map_err(|_| ("command contains NUL".to_string(), 125));
    if name.contains('/') {
        return c(name);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(super::spec::DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return c(&candidate);
            }
        }
    }
    Err((
        format!("exec: {name:?}: executable file not found in $PATH"),
        127,
    ))
}

/// Close every descriptor from `first` up.
fn close_from(first: u32) {
    // SAFETY: close_range closes only descriptors this process owns; none above `first` is
    // in use by this freshly started process.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    if r != 0 {
        for fd in first as RawFd..1024 {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// Mark every descriptor from `first` up close-on-exec.
fn close_range_cloexec(first: u32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        // Older kernels: mark them one by one.
        for fd in first as RawFd..1024 {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
    }
}
