//! Detached containers: the supervisor, kiln re-executed as `kiln __kiln-supervise ROOT ID`,
//! that holds one container after the command that started it is gone.
//!
//! Process model: the CLI spawns kiln (a fresh, single-threaded process) in a new session;
//! that process forks once more and exits, so the supervisor is nobody's child in the
//! user's shell and survives the CLI, the shell and its terminal. The supervisor starts the
//! container through the sandbox (it is the monitor's parent: when the supervisor dies, even
//! by SIGKILL, the liveness pipe closes and the container is killed), copies its output
//! into the json-file log, records every state change in `container.json`, carries out the
//! restart policy, probes the container's HEALTHCHECK (`health`) while it runs, and answers
//! other kiln commands on `containers/<id>/supervisor.sock`
//! (one JSON request line, one JSON response line). When the container ends for good the
//! supervisor removes its socket and exits: with no container running, no kiln process
//! exists. It opens the store only for the moment of each record write, so it never holds
//! the store's gc lock.
//!
//! Must not: parse flags (the record says everything); touch other containers.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{io, log, now_rfc3339_nanos, ContainerError, Record, State};
use crate::sandbox::{Launcher, SandboxError, Streams};
use crate::store::Store;

/// The first argument that makes kiln run as a container's supervisor.
pub const SUPERVISE_ARG: &str = "__kiln-supervise";
/// The descriptor on which the supervisor tells the starting command how the start went.
const READY_FD: RawFd = 3;
/// The socket's name in the container's directory.
pub const SOCKET: &str = "supervisor.sock";

/// A command for the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The stop signal, then SIGKILL after `timeout` seconds; answered once the record
    /// shows the end.
    Stop { timeout: u64 },
    /// Send `signal` to the container's PID 1.
    Kill { signal: i32 },
    /// Answered when the record shows the current run's end (or at once with the last
    /// status when the supervisor is finishing).
    Wait,
    /// `kiln attach`: answered at once; then every byte the client sends goes to the
    /// container's stdin (its terminal, or the `-i` pipe) until the client closes.
    AttachStdin,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub error: Option<String>,
}

/// How the start went, sent once on the ready pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ready {
    error: Option<String>,
    code: i32,
}

/// The unix socket path for `name` in `dir`, short enough for `sun_path` (108 bytes)
/// whatever the store's path: through `/proc/self/fd` of the open directory.
fn short_path(dir: &File, name: &str) -> String {
    format!("/proc/self/fd/{}/{name}", dir.as_raw_fd())
}

/// Connect to the supervisor of the container whose directory is `dir`.
pub fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    let d = File::open(dir)?;
    UnixStream::connect(short_path(&d, SOCKET))
}

/// Send one request and read the answer. An error means no supervisor answered (the
/// container is not running under one, or it ended while answering).
pub fn request(dir: &Path, req: &Request) -> std::io::Result<Response> {
    let mut stream = connect(dir)?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

/// Ask for the container's stdin (`Request::AttachStdin`): the returned stream's writes go
/// to it. `Err` with the supervisor's reason when the stdin is not open.
pub fn attach_stdin(dir: &Path) -> std::io::Result<Result<UnixStream, String>> {
    let mut stream = connect(dir)?;
    let mut line = serde_json::to_vec(&Request::AttachStdin).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    // Read the answer a byte at a time: nothing after its newline belongs to it.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte)? == 1 && byte[0] != b'\n' {
        answer.push(byte[0]);
    }
    let response: Response = serde_json::from_slice(&answer).map_err(std::io::Error::other)?;
    Ok(match response.error {
        Some(why) => Err(why),
        None => Ok(stream),
    })
}

/// Start `record`'s container under a new supervisor; returns once it runs (or failed to
/// start, with Docker's status for the failure).
pub fn start(store: &Store, record: &Record) -> Result<(), ContainerError> {
    crate::sandbox::require_root()?;
    let exe = std::env::current_exe().map_err(|e| SandboxError::Spawn(e.to_string()))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SandboxError::Spawn(format!("pipe: {}", e.desc())))?;
    let ready_fd = ready_w.as_raw_fd();
    let mut cmd = Command::new(&exe);
    cmd.arg(SUPERVISE_ARG)
        .arg(store.root())
        .arg(&record.id)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2, sigprocmask,
    // setsid) on a descriptor that stays open until exec.
    unsafe {
        cmd.pre_exec(move || {
            let high = libc::fcntl(ready_fd, libc::F_DUPFD_CLOEXEC, 10);
            if high < 0 || libc::dup2(high, READY_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::Spawn(format!("{}: {e}", exe.display())))?;
    drop(ready_w);
    // The first process forks the supervisor and exits at once.
    let _ = child.wait();
    let mut text = String::new();
    let _ = File::from(ready_r).read_to_string(&mut text);
    let name = record.name.clone();
    match serde_json::from_str::<Ready>(&text) {
        Ok(Ready { error: None, .. }) => Ok(()),
        Ok(Ready {
            error: Some(message),
            code,
        }) => Err(SandboxError::Start { message, code }.into()),
        Err(_) => Err(ContainerError::Supervisor {
            name,
            message: "it ended before starting the container".into(),
        }),
    }
}

/// Call first thing in `main`, before any thread exists: when kiln was started as a
/// supervisor, this runs it and never returns.
pub fn run_if_requested() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a.as_os_str()) != Some(std::ffi::OsStr::new(SUPERVISE_ARG)) {
        return;
    }
    let (Some(root), Some(id)) = (args.get(2), args.get(3)) else {
        std::process::exit(2);
    };
    // SAFETY: this process is single-threaded (a fresh exec, nothing started yet).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            // SAFETY: leaving without running destructors; the child owns everything now.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => std::process::exit(125),
    }
    let _ = std::env::set_current_dir("/");
    // SAFETY: READY_FD was set up by `start` for this process, which now owns it.
    let ready = unsafe { File::from_raw_fd(READY_FD) };
    let code = supervise(
        PathBuf::from(root),
        id.to_string_lossy().into_owned(),
        ready,
    );
    std::process::exit(code);
}

/// What the socket's handlers and the main loop share.
#[derive(Default)]
struct Live {
    running: bool,
    init_pid: Option<u32>,
    /// Runs that have ended so far.
    ended: u64,
    /// Runs whose end the record shows (`ended` counts it a moment before): `stop` and
    /// `wait` answer once it has moved, so their callers read the end without polling.
    recorded: u64,
    last_code: Option<i32>,
    stopped_by_user: bool,
    /// Set when no restart follows.
    finished: bool,
    /// Connections being answered (the supervisor waits for them before leaving).
    answering: u32,
}

struct Shared {
    live: Mutex<Live>,
    changed: Condvar,
    stop_signal: Signal,
    /// Where attached input goes during a run: the terminal's master or the write end of
    /// the `-i` pipe; `None` when the container's stdin is /dev/null or no run is going.
    stdin: Mutex<Option<Arc<File>>>,
}

impl Shared {
    fn set_stdin(&self, to: Option<Arc<File>>) {
        *self.stdin.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
    fn stdin(&self) -> Option<Arc<File>> {
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Signal PID 1, and thaw a paused container so the signal is acted on (docker's way).
fn signal_pid(pid: Option<u32>, sig: Signal) -> bool {
    pid.is_some_and(|p| super::signal_init(p, sig))
}

fn record_path(root: &Path, id: &str) -> PathBuf {
    root.join("containers").join(id).join("container.json")
}

fn load(root: &Path, id: &str) -> Result<Record, ContainerError> {
    let path = record_path(root, id);
    let bytes = std::fs::read(&path).map_err(io("read", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| ContainerError::Supervisor {
        name: id.to_string(),
        message: format!("reading {}: {e}", path.display()),
    })
}

/// Change the record (read fresh: another command may have renamed it) and write it.
fn update(root: &Path, id: &str, f: impl FnOnce(&mut Record)) -> Result<Record, ContainerError> {
    let mut record = load(root, id)?;
    f(&mut record);
    let store = Store::open(root)?;
    super::save(&store, &record)?;
    Ok(record)
}

fn tell(ready: &mut Option<File>, error: Option<String>, code: i32) {
    if let Some(mut f) = ready.take() {
        let text = serde_json::to_string(&Ready { error, code }).unwrap_or_default();
        let _ = f.write_all(text.as_bytes());
    }
}

fn supervise(root: PathBuf, id: String, ready: File) -> i32 {
    let mut ready = Some(ready);
    match supervise_inner(&root, &id, &mut ready) {
        Ok(code) => code,
        Err(e) => {
            let message = e.to_string();
            let code = match &e {
                ContainerError::Sandbox(SandboxError::Start { code, .. }) => *code,
                _ => 125,
            };
            let _ = update(&root, &id, |r| {
                r.state = State::Exited;
                r.exit_code = Some(code);
                r.pid = None;
                r.init_pid = None;
                r.error = Some(message.clone());
                r.finished_at = Some(now_rfc3339_nanos());
            });
            tell(&mut ready, Some(message), code);
            code
        }
    }
}

fn supervise_inner(root: &Path, id: &str, ready: &mut Option<File>) -> Result<i32, ContainerError> {
    let dir = root.join("containers").join(id);
    let record = load(root, id)?;
    let dir_file = File::open(&dir).map_err(io("open", &dir))?;
    let socket = dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(short_path(&dir_file, SOCKET)).map_err(io("listen on", &socket))?;
    let shared = Arc::new(Shared {
        live: Mutex::new(Live::default()),
        changed: Condvar::new(),
        stop_signal: record.stop_signal(),
        stdin: Mutex::new(None),
    });
    {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                shared.lock().answering += 1;
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    answer(conn, &shared);
                    let idle = {
                        let mut live = shared.lock();
                        live.answering -= 1;
                        live.answering == 0 && live.running
                    };
                    shared.changed.notify_all();
                    if idle {
                        super::idle::release_idle_memory();
                    }
                });
            }
        });
    }
    let log_path = log::path(&dir, id);
    let writer = Arc::new(Mutex::new(
        log::Writer::open(log_path.clone(), record.log).map_err(io("open", &log_path))?,
    ));
    let launcher = Launcher::current()?;
    let mut backoff = Duration::from_millis(100);
    let code = loop {
        let record = update(root, id, |r| {
            r.stopped_by_user = false;
            r.error = None;
        })?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin, input) = if record.open_stdin && !record.spec.process.terminal {
            let (in_r, in_w) = pipe()?;
            (Stdio::from(in_r), Some(Arc::new(File::from(in_w))))
        } else {
            (Stdio::null(), None)
        };
        let streams = Streams {
            stdin,
            stdout: Stdio::from(out_w),
            stderr: Stdio::from(err_w),
        };
        let mut container = launcher.start(&record.spec, streams)?;
        let started = std::time::Instant::now();
        // Before the start is reported: a client attaching right after it (`start -i`)
        // finds the stdin open.
        let input = match (&container.terminal, input) {
            (Some(master), _) => master.try_clone().ok().map(|m| Arc::new(File::from(m))),
            (None, input) => input,
        };
        shared.set_stdin(input);
        {
            let mut live = shared.lock();
            live.running = true;
            live.init_pid = container.init_pid;
        }
        let me = std::process::id();
        let init_pid = container.init_pid;
        let stubs = container.stubs.clone();
        let cgroups = container.cgroup_dirs();
        update(root, id, |r| {
            r.stubs = stubs;
            r.cgroups = cgroups;
            r.state = State::Running;
            r.supervised = true;
            r.pid = Some(me);
            r.init_pid = init_pid;
            r.exit_code = None;
            r.oom_killed = false;
            r.started_at = Some(now_rfc3339_nanos());
        })?;
        tell(ready, None, 0);
        let mut copiers = Vec::new();
        let interactive = container.terminal.is_some();
        let streams: Vec<(OwnedFd, &str)> = match container.terminal.take() {
            Some(master) => vec![(master, "stdout")],
            None => vec![(out_r, "stdout"), (err_r, "stderr")],
        };
        for (fd, name) in streams {
            let writer = Arc::clone(&writer);
            copiers.push(std::thread::spawn(move || {
                let _ = log::copy_stream(File::from(fd), name, &writer, interactive);
            }));
        }
        // The healthcheck probes this run until it ends.
        let prober = match (
            record
                .healthcheck
                .as_ref()
                .and_then(super::health::Settings::of),
            init_pid,
        ) {
            (Some(settings), Some(init_pid)) => {
                let shared = Arc::clone(&shared);
                let (dir, spec) = (dir.clone(), record.spec.clone());
                let run = shared.lock().ended;
                Some(std::thread::spawn(move || {
                    super::health::monitor(&dir, &spec, init_pid, &settings, |pause| {
                        let live = shared.lock();
                        let (live, _) = shared
                            .changed
                            .wait_timeout_while(live, pause, |l| l.ended == run)
                            .unwrap_or_else(|p| p.into_inner());
                        live.ended != run
                    })
                }))
            }
            _ => None,
        };
        // Everything is set up: from here on it waits, so its start-up's pages can go.
        super::idle::release_idle_memory();
        let (code, oom_killed) = match container.wait() {
            Ok(exit) => (exit.code, exit.oom_killed),
            Err(SandboxError::Start { code, .. }) => (code, false),
            Err(e) => return Err(e.into()),
        };
        // The next run gets a new stdin; attached clients of this one see their writes fail.
        shared.set_stdin(None);
        for c in copiers {
            let _ = c.join();
        }
        let stopped = {
            let mut live = shared.lock();
            live.running = false;
            live.init_pid = None;
            live.ended += 1;
            live.last_code = Some(code);
            live.stopped_by_user
        };
        shared.changed.notify_all();
        if let Some(p) = prober {
            let _ = p.join();
        }
        // One write decides: exited, or restarting (so no reader sees an end that is not).
        let current = load(root, id)?;
        let again = current
            .restart
            .restarts(code, current.restart_count, stopped);
        update(root, id, |r| {
            r.state = if again {
                State::Restarting
            } else {
                State::Exited
            };
            r.exit_code = Some(code);
            r.oom_killed = oom_killed;
            r.pid = if again { Some(me) } else { None };
            r.init_pid = None;
            r.stopped_by_user = stopped;
            r.finished_at = Some(now_rfc3339_nanos());
        })?;
        shared.lock().recorded += 1;
        shared.changed.notify_all();
        if !again {
            break code;
        }
        // Docker's delay: 100 ms, doubling, back to 100 ms after a run of 10 s or more.
        if started.elapsed() >= Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        let live = shared.lock();
        let (live, _) = shared
            .changed
            .wait_timeout_while(live, backoff, |l| !l.stopped_by_user)
            .unwrap_or_else(|p| p.into_inner());
        if live.stopped_by_user {
            drop(live);
            update(root, id, |r| {
                r.state = State::Exited;
                r.stopped_by_user = true;
            })?;
            break code;
        }
        drop(live);
        backoff = (backoff * 2).min(Duration::from_secs(60));
        update(root, id, |r| r.restart_count += 1)?;
    };
    {
        let mut live = shared.lock();
        live.finished = true;
        shared.changed.notify_all();
        // Let the commands waiting for the end read it (briefly; a stuck client cannot
        // keep the supervisor alive).
        let _ = shared
            .changed
            .wait_timeout_while(live, Duration::from_secs(2), |l| l.answering > 0);
    }
    let _ = std::fs::remove_file(&socket);
    let record = load(root, id)?;
    if record.auto_remove {
        let store = Store::open(root)?;
        super::remove(&store, &record)?;
        super::remove_anonymous_volumes(&store, &record)?;
    }
    Ok(code)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ContainerError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SandboxError::Spawn(format!("pipe: {}", e.desc())).into())
}

fn answer(conn: UnixStream, shared: &Shared) {
    let mut line = String::new();
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    // The reader is kept: after an AttachStdin line it holds the first input bytes.
    let mut reader = BufReader::new(conn);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let reply = |writer: &mut UnixStream, response: &Response| {
        let mut text = serde_json::to_vec(response).unwrap_or_default();
        text.push(b'\n');
        writer.write_all(&text)
    };
    match serde_json::from_str::<Request>(&line) {
        Ok(Request::AttachStdin) => {
            let Some(stdin) = shared.stdin() else {
                let _ = reply(
                    &mut writer,
                    &error(
                        "the container's stdin is not open (it was not started with -i or -t)"
                            .into(),
                    ),
                );
                return;
            };
            if reply(&mut writer, &Response::default()).is_ok() {
                let _ = std::io::copy(&mut reader, &mut &*stdin);
            }
        }
        Ok(req) => {
            let _ = reply(&mut writer, &carry_out(req, shared));
        }
        Err(e) => {
            let _ = reply(&mut writer, &error(format!("bad request: {e}")));
        }
    }
}

fn carry_out(req: Request, shared: &Shared) -> Response {
    let mut live = shared.lock();
    match req {
        Request::Kill { signal } => {
            let Ok(sig) = Signal::try_from(signal) else {
                return error(format!("invalid signal {signal}"));
            };
            if !live.running {
                return error("the container is not running".into());
            }
            live.stopped_by_user = true;
            shared.changed.notify_all();
            if !signal_pid(live.init_pid, sig) {
                return error("the container's PID 1 is gone".into());
            }
            Response::default()
        }
        Request::Stop { timeout } => {
            live.stopped_by_user = true;
            shared.changed.notify_all();
            if live.running {
                let (ended, recorded) = (live.ended, live.recorded);
                signal_pid(live.init_pid, shared.stop_signal);
                let (l, waited) = shared
                    .changed
                    .wait_timeout_while(live, Duration::from_secs(timeout), |l| l.ended == ended)
                    .unwrap_or_else(|p| p.into_inner());
                live = l;
                if waited.timed_out() {
                    signal_pid(live.init_pid, Signal::SIGKILL);
                }
                live = shared
                    .changed
                    .wait_while(live, |l| l.recorded == recorded)
                    .unwrap_or_else(|p| p.into_inner());
            }
            Response {
                exit_code: live.last_code,
                error: None,
            }
        }
        Request::Wait => {
            let recorded = live.recorded;
            let live = shared
                .changed
                .wait_while(live, |l| l.recorded == recorded && !l.finished)
                .unwrap_or_else(|p| p.into_inner());
            Response {
                exit_code: live.last_code,
                error: None,
            }
        }
        // Answered by `answer`, which keeps the connection for the input.
        Request::AttachStdin => error("attach is answered on its own connection".into()),
    }
}

fn error(message: String) -> Response {
    Response {
        exit_code: None,
        error: Some(message),
    }
}
